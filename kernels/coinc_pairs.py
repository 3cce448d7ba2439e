"""Crystal-pair products over sinogram bins: the hot loops of randoms and normalisation fan sums.

Pure functions of arrays and plain numbers (no ``recon`` imports). A sinogram bin ``(v, p, r)``
joins, for every ring pair ``(ra[q], rb[q])`` merged into plane ``p = plane[q]``, the crystal
``ra*cpr + first[v, r]`` with ``rb*cpr + second[v, r]`` (detector ids ``ring * cpr + crystal``).

* :func:`pair_forward`: ``out[v, p, r] = sum_q s[i_q] * s[j_q]`` (a bilinear "singles" model);
* :func:`pair_fan`: the fan sums ``fan[i] = sum_{bins b containing i} x[b] * s[j(b, i)]``, the
  gradient of ``sum_b x_b * out_b`` with respect to ``s_i``.

The per-element math (:func:`pair_product`) is a plain function so a CUDA launcher could reuse it.
"""
from __future__ import annotations

import numba
import numpy as np


def pair_product(si: float, sj: float) -> float:
    """The model of one crystal pair: the product of the two crystals' values."""
    return si * sj


_pair_product = numba.njit(cache=True, inline="always")(pair_product)


@numba.njit(cache=True, parallel=True)
def _forward(s, first, second, ra, rb, plane, n_planes, cpr, out):
    n_views, n_radial = first.shape
    for v in numba.prange(n_views):
        for q in range(ra.shape[0]):
            p = plane[q]
            oa = ra[q] * cpr
            ob = rb[q] * cpr
            for r in range(n_radial):
                out[v, p, r] += _pair_product(s[oa + first[v, r]], s[ob + second[v, r]])


@numba.njit(cache=True)
def _fan(x, s, first, second, ra, rb, plane, cpr, fan):
    n_views, n_radial = first.shape
    for v in range(n_views):
        for q in range(ra.shape[0]):
            p = plane[q]
            oa = ra[q] * cpr
            ob = rb[q] * cpr
            for r in range(n_radial):
                xb = x[v, p, r]
                if xb == 0.0:
                    continue
                i = oa + first[v, r]
                j = ob + second[v, r]
                fan[i] += xb * s[j]
                fan[j] += xb * s[i]


def _check(s: np.ndarray, first: np.ndarray, second: np.ndarray, ring_pairs: np.ndarray) -> None:
    if s.ndim != 1 or s.dtype != np.float64:
        raise ValueError(f"s must be a 1-D float64 array, got {s.dtype} with shape {s.shape}")
    if first.shape != second.shape or first.ndim != 2:
        raise ValueError(f"first and second must be 2-D arrays of one shape, got {first.shape} and {second.shape}")
    if ring_pairs.ndim != 2 or ring_pairs.shape[1] != 3:
        raise ValueError(f"ring_pairs must have shape (n, 3) (ring_a, ring_b, plane), got {ring_pairs.shape}")


def pair_forward(s: np.ndarray, first: np.ndarray, second: np.ndarray, ring_pairs: np.ndarray,
                 n_planes: int, crystals_per_ring: int) -> np.ndarray:
    """(n_views, n_planes, n_radial) float64: ``sum over the plane's ring pairs of s_i * s_j``."""
    _check(s, first, second, ring_pairs)
    out = np.zeros((first.shape[0], int(n_planes), first.shape[1]), np.float64)
    rp = np.ascontiguousarray(ring_pairs, np.int64)
    _forward(s, np.ascontiguousarray(first, np.int64), np.ascontiguousarray(second, np.int64),
             rp[:, 0].copy(), rp[:, 1].copy(), rp[:, 2].copy(), int(n_planes), int(crystals_per_ring), out)
    return out


def pair_fan(x: np.ndarray, s: np.ndarray, first: np.ndarray, second: np.ndarray, ring_pairs: np.ndarray,
             crystals_per_ring: int) -> np.ndarray:
    """(len(s),) float64 fan sums: ``fan_i = sum_b x_b * s_j`` over the bins ``b`` that join ``i`` to ``j``."""
    _check(s, first, second, ring_pairs)
    if x.ndim != 3 or x.shape[0] != first.shape[0] or x.shape[2] != first.shape[1]:
        raise ValueError(f"x has shape {x.shape}; expected (n_views, n_planes, n_radial) with "
                         f"n_views, n_radial = {first.shape}")
    fan = np.zeros_like(s)
    rp = np.ascontiguousarray(ring_pairs, np.int64)
    _fan(np.ascontiguousarray(x, np.float64), s, np.ascontiguousarray(first, np.int64),
         np.ascontiguousarray(second, np.int64), rp[:, 0].copy(), rp[:, 1].copy(), rp[:, 2].copy(),
         int(crystals_per_ring), fan)
    return fan
