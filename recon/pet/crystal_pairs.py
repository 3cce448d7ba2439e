"""Crystal-pair models on a sinogram layout, and their maximum-likelihood fan-sum fit.

Both the randoms (``R_ij = 2 tau S_i S_j``) and the crystal efficiencies of a normalisation
(``n_ij = g_r eps_i eps_j``) are *pair products*: a bin ``b`` of the sinogram holds

    m_b = w_b * sum_{(i, j) in b} s_i * s_j

summed over the ring pairs merged into its plane (span > 1), with a known per-bin weight ``w_b``
(1 for randoms; radial profile x expected counts for a normalisation scan). Detector ids are
``ring * crystals_per_ring + crystal`` (:mod:`recon.data.pet_scanner`); gap crystals carry 0.

:func:`fit_pair_factors` finds ``s`` maximising the Poisson likelihood of data ``d`` by the
multiplicative fan-sum update (the ML singles estimate of Panin et al. 2007; for span 1 it is
Casey & Hoffman's fan-sum estimate iterated to self-consistency)::

    s_i <- s_i * sqrt( sum_b (d_b / m_b) w_b s_j  /  sum_b w_b s_j )

The square root damps the global-scale oscillation of the undamped update; at convergence
``sum_b m_b = sum_b d_b`` (a property of the Poisson ML fit of a model with a free scale).
"""
from __future__ import annotations

import logging

import numpy as np

from kernels.coinc_pairs import pair_fan, pair_forward
from recon.data.pet_sinogram import SinogramLayout

logger = logging.getLogger(__name__)


def ring_pairs(layout: SinogramLayout) -> np.ndarray:
    """(n, 3) int64 rows (ring of first crystal, ring of second crystal, plane) of every ring pair in a plane."""
    lut = layout.ring_pair_plane()
    ra, rb = np.nonzero(lut >= 0)
    return np.stack([ra, rb, lut[ra, rb]], axis=1).astype(np.int64)


def present_crystals(layout: SinogramLayout) -> np.ndarray:
    """(n_crystals,) bool over detector ids: False for the virtual block-gap crystals."""
    return np.tile(layout.scanner.crystal_present(), layout.scanner.n_rings)


def pair_model(layout: SinogramLayout, s: np.ndarray) -> np.ndarray:
    """(n_views, n_planes, n_radial) float64: ``sum over the plane's ring pairs of s_i s_j`` per bin."""
    s = np.ascontiguousarray(s, np.float64).ravel()
    if s.shape[0] != layout.scanner.n_crystals:
        raise ValueError(f"per-crystal values have {s.shape[0]} entries; the scanner has "
                         f"{layout.scanner.n_crystals} detector ids (rings x crystals per ring)")
    first, second = layout.crystal_pairs()
    return pair_forward(s, first, second, ring_pairs(layout), layout.n_planes, layout.scanner.crystals_per_ring)


def fan_sums(layout: SinogramLayout, x: np.ndarray, s: np.ndarray) -> np.ndarray:
    """(n_crystals,) float64: ``sum_b x_b s_j`` over the bins b joining crystal i to a crystal j."""
    first, second = layout.crystal_pairs()
    return pair_fan(np.asarray(x, np.float64), np.ascontiguousarray(s, np.float64).ravel(), first, second,
                    ring_pairs(layout), layout.scanner.crystals_per_ring)


def fit_pair_factors(layout: SinogramLayout, data: np.ndarray, weights: np.ndarray | None = None,
                     n_iterations: int = 30, initial: np.ndarray | None = None) -> np.ndarray:
    """Per-crystal factors ``s`` (n_crystals,) maximising the Poisson likelihood of ``data`` under
    ``m_b = w_b * sum_{(i,j) in b} s_i s_j`` (module docstring); gap crystals stay 0."""
    shape = layout.shape[:3]
    d = np.asarray(data, np.float64)
    if d.shape != shape:
        raise ValueError(f"data has shape {d.shape}; the layout's non-TOF shape is {shape}")
    w = np.ones(shape) if weights is None else np.asarray(weights, np.float64)
    if w.shape != shape:
        raise ValueError(f"weights have shape {w.shape}; the layout's non-TOF shape is {shape}")
    present = present_crystals(layout)
    if initial is None:
        fan_d = fan_sums(layout, d, present.astype(np.float64))
        s = np.sqrt(np.maximum(fan_d, 0.0) / max(float(fan_d[present].mean()), 1e-300))
        s = np.where(present, np.maximum(s, 1e-3), 0.0)
    else:
        s = np.where(present, np.asarray(initial, np.float64).ravel(), 0.0)
    for it in range(int(n_iterations)):
        m = w * pair_model(layout, s)
        ratio = np.divide(d, m, out=np.zeros_like(d), where=m > 0)
        num = fan_sums(layout, ratio * w, s)
        den = fan_sums(layout, w, s)
        factor = np.sqrt(np.divide(num, den, out=np.zeros_like(num), where=den > 0))
        s = s * factor
    m = w * pair_model(layout, s)
    total_m, total_d = float(m.sum()), float(d.sum())
    if total_m > 0:
        s *= np.sqrt(total_d / total_m)
    logger.debug("pair-factor fit: %d iterations, data total %.4g", n_iterations, total_d)
    return s
