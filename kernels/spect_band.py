"""The column (transaxial) half of the depth-dependent blur as banded matrices, for the CUDA path.

The projector blurs depth plane k by ``B_{k+1} ... B_K`` (:mod:`kernels.spect_projector`), each
``B_j`` being ``n_j`` separable 3-tap passes along rows (z) and columns (c) with zero padding. The
row and column passes act on different axes, so they commute exactly and plane k's blur is
``Z_{>k} C_{>k}`` with ``C_{>k} = Tc_K^{n_K} ... Tc_{k+1}^{n_{k+1}}`` (nc x nc, columns only). The
CUDA path applies ``C_{>k}`` to every plane at once from the matrices built here (a banded product,
parallel over views, planes and rows), then runs the row recursion ``Z`` per column: two steps
that each fill a GPU, where the joint recursion needs one whole view plane per block.

``C_{>k}`` is exactly the product of the CPU path's column passes: the same float32 side weight
``w = float32(var / 2n)`` and centre weight ``float32(1 - 2w)`` (:func:`kernels.spect_math.blur3`),
multiplied out in float64, so the two paths differ by float32 rounding of the data only. The band
keeps ``|c' - c| <= half``; :func:`column_band` widens it until the weight left out of any row is
below :data:`DROPPED_WEIGHT_LIMIT` (the rows sum to at most 1).
"""
from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np
from numba import prange

from kernels import spect_math as sm

_math = sm.compile_math(numba.njit(inline="always"))
_blur_passes = _math["blur_passes"]
_blur_weight = _math["blur_weight"]
_blur3 = _math["blur3"]

# Largest summed |weight| a row of C_{>k} may lose to the band's truncation (relative to a row sum <= 1).
DROPPED_WEIGHT_LIMIT: float = 1e-7


@numba.njit(parallel=True, cache=True)
def _fill_band(var_z: np.ndarray, var_c: np.ndarray, band: np.ndarray, dropped: np.ndarray) -> None:
    """band[p, k, r, j] = C_{>k}[r, r + j - half] of profile p (0 outside the matrix); dropped[p, r] = the
    largest summed |weight| of row r outside the band over all k."""
    n_prof = var_c.shape[0]
    nk = var_c.shape[1] - 1
    nc = band.shape[2]
    width = band.shape[3]
    half = (width - 1) // 2
    for t in prange(n_prof * nc):
        p = t // nc
        r = t - p * nc
        row = np.zeros(nc + 2, dtype=np.float64)  # row[c + 1] = C[r, c], one zero of padding on each side
        tmp = np.zeros(nc + 2, dtype=np.float64)
        row[r + 1] = 1.0
        lo = r  # columns lo..hi hold the row's non-zero weights
        hi = r
        worst = 0.0
        for k in range(nk - 1, -1, -1):
            n = _blur_passes(var_z[p, k + 1], var_c[p, k + 1])
            if n > 0:
                w32 = np.float32(_blur_weight(var_c[p, k + 1], n))
                for _ in range(n):
                    lo = max(lo - 1, 0)
                    hi = min(hi + 1, nc - 1)
                    for c in range(lo, hi + 1):  # float32 weights, float64 products (blur3 on float64 rows)
                        tmp[c + 1] = _blur3(row[c], row[c + 1], row[c + 2], w32)
                    for c in range(lo, hi + 1):
                        row[c + 1] = tmp[c + 1]
            out = 0.0
            for c in range(lo, hi + 1):
                j = c - r + half
                if 0 <= j < width:
                    band[p, k, r, j] = np.float32(row[c + 1])
                else:
                    out += abs(row[c + 1])
            if out > worst:
                worst = out
        dropped[p, r] = worst


def _profiles(var_z: np.ndarray, var_c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(profile of each view (n_views,) int64, var_z and var_c of each distinct profile): views with equal
    variance rows (every view of a circular orbit) share one set of matrices."""
    both = np.ascontiguousarray(np.concatenate([var_z, var_c], axis=1))
    _, first, inverse = np.unique(both, axis=0, return_index=True, return_inverse=True)
    return inverse.reshape(-1).astype(np.int64), var_z[first], var_c[first]


def _check_and_profile(var_z: Any, var_c: Any, n_cols: int) -> tuple:
    """Checked float64 copies, n_cols, profiles and the starting half-width (:func:`column_band`)."""
    var_z = np.ascontiguousarray(var_z, dtype=np.float64)
    var_c = np.ascontiguousarray(var_c, dtype=np.float64)
    if var_z.shape != var_c.shape or var_z.ndim != 2 or var_z.shape[1] < 2:
        raise ValueError(f"var_z and var_c must be equal (n_views, n_depth + 1) arrays, got {var_z.shape}, {var_c.shape}")
    n_cols = int(n_cols)
    if n_cols < 1:
        raise ValueError(f"n_cols must be >= 1, got {n_cols}")
    profile, pz, pc = _profiles(var_z, var_c)
    total = float(pc[:, 1:].sum(axis=1).max())
    half = min(n_cols - 1, int(math.ceil(6.5 * math.sqrt(total))) + 2)
    return n_cols, profile, pz, pc, half


def column_band_device(var_z: np.ndarray, var_c: np.ndarray, n_cols: int, xp: Any) -> tuple[Any, Any, int]:
    """:func:`column_band` built on the GPU (``xp`` = cupy; one block per (profile, row) of
    :mod:`kernels.spect_cuda`), for orbits with many profiles (every view of a non-circular orbit); the
    dropped weight is bounded from above (per thread, the largest over planes, summed): one host sync per
    width tried."""
    from kernels import spect_cuda  # noqa: PLC0415 - lazy: only with device arrays

    n_cols, profile, pz, pc, half = _check_and_profile(var_z, var_c, n_cols)
    pz_d, pc_d = xp.asarray(pz), xp.asarray(pc)
    n_depth = pc.shape[1] - 1
    threads = spect_cuda.THREADS["column_band"]
    while True:
        band = xp.zeros((pc.shape[0], n_depth, n_cols, 2 * half + 1), dtype=xp.float32)
        partial = xp.zeros((pc.shape[0], n_cols, threads), dtype=xp.float64)
        spect_cuda.column_band(pz_d, pc_d, band, partial)
        if half >= n_cols - 1 or float(partial.sum(axis=2).max()) <= DROPPED_WEIGHT_LIMIT:
            return xp.asarray(profile), band, half
        half = min(n_cols - 1, 2 * half)


def column_band(var_z: np.ndarray, var_c: np.ndarray, n_cols: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(profile (n_views,) int64, band (n_profiles, n_depth, n_cols, 2 half + 1) float32, half) of the
    column blurs ``C_{>k}`` for variance increments ``var_z``, ``var_c`` (n_views, n_depth + 1, pixel^2).

    ``half`` starts at 6.5 sigma of the widest cumulative column blur (+2) and doubles until no row
    loses more than :data:`DROPPED_WEIGHT_LIMIT` of its weight (at most n_cols - 1: nothing dropped).
    Cost: n_profiles x n_cols rows x (all passes) x (row width), in parallel; memory: the band.
    """
    n_cols, profile, pz, pc, half = _check_and_profile(var_z, var_c, n_cols)
    n_depth = pc.shape[1] - 1
    while True:
        band = np.zeros((pc.shape[0], n_depth, n_cols, 2 * half + 1), dtype=np.float32)
        dropped = np.zeros((pc.shape[0], n_cols), dtype=np.float64)
        _fill_band(pz, pc, band, dropped)
        if half >= n_cols - 1 or float(dropped.max()) <= DROPPED_WEIGHT_LIMIT:
            return profile, band, half
        half = min(n_cols - 1, 2 * half)
