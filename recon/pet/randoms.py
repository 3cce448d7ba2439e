"""Randoms sinograms: from singles rates, or smoothed from a delayed-coincidence sinogram.

Singles formula. Two detectors with singles rates ``S_i``, ``S_j`` (counts/s) and a coincidence
window of total width ``2 tau`` (s; a pair is accepted when ``|t_i - t_j| <= tau``) record random
coincidences at the rate ``R_ij = 2 tau S_i S_j`` (counts/s). ``2 tau`` is the scanner's
``coincidence_window_ns`` (the *full* window width), so a frame of ``T`` s holds

    r_b = 2 tau * T * sum_{(i, j) in b} S_i S_j

expected randoms in bin ``b`` (the sum runs over the ring pairs merged into the bin's plane for
span > 1; one pair for span 1).

Delayed coincidences (the same window delayed by far more than its width) measure randoms with
the same expectation but Poisson noise. :func:`randoms_from_delayed` fits per-crystal "singles"
``s_i`` to the delayed sinogram by the ML fan-sum estimate (:mod:`recon.pet.crystal_pairs`:
Casey & Hoffman's fan sums iterated to the Poisson ML solution) and returns ``sum s_i s_j`` per
bin, whose total equals the delayed total: the same mean with far lower variance.

TOF. Random coincidences have no relation between the time difference and the LOR position: their
time difference is uniform over the coincidence window, so, as long as the TOF bins cover the
window, randoms are uniform over TOF bins: each TOF bin holds ``r_b / n_tof`` (the approximation
ignores TOF bins that reach beyond the window; documented, not modelled).
"""
from __future__ import annotations

import logging

import numpy as np

from recon.data.pet_sinogram import SinogramLayout
from recon.pet.crystal_pairs import fit_pair_factors, pair_model, present_crystals

logger = logging.getLogger(__name__)

__all__ = ["randoms_from_singles", "randoms_from_delayed", "singles_from_delayed", "spread_over_tof"]


def spread_over_tof(layout: SinogramLayout, non_tof: np.ndarray) -> np.ndarray:
    """A non-TOF randoms sinogram in the layout's shape: unchanged without TOF, divided evenly
    over the ``n_tof`` TOF bins (last axis) with TOF."""
    a = np.asarray(non_tof, np.float32)
    if not layout.tof:
        return a
    return np.ascontiguousarray(np.repeat(a[..., None] / np.float32(layout.n_tof), layout.n_tof, axis=-1))


def _singles_per_detector(layout: SinogramLayout, singles_cps: np.ndarray) -> np.ndarray:
    sc = layout.scanner
    s = np.asarray(singles_cps, np.float64)
    if s.shape not in ((sc.n_crystals,), (sc.n_rings, sc.crystals_per_ring)):
        raise ValueError(f"singles rates have shape {s.shape}; expected ({sc.n_crystals},) by detector id "
                         f"or ({sc.n_rings}, {sc.crystals_per_ring}) by (ring, crystal)")
    s = s.ravel()
    if not np.isfinite(s).all() or (s < 0).any():
        raise ValueError("singles rates must be finite and >= 0 (counts/s)")
    return np.where(present_crystals(layout), s, 0.0)


def randoms_from_singles(layout: SinogramLayout, singles_cps: np.ndarray, frame_duration_s: float,
                         coincidence_window_ns: float | None = None) -> np.ndarray:
    """Expected randoms per bin in a frame: ``r_b = 2 tau T sum_{(i,j) in b} S_i S_j`` (counts).

    ``singles_cps``: singles rate of every detector (counts/s), shape (n_crystals,) by detector id
    or (n_rings, crystals_per_ring); ``coincidence_window_ns``: the full window width ``2 tau`` (ns),
    the scanner's by default. Returns float32 in ``layout.shape`` (TOF: divided evenly over bins).
    """
    t = float(frame_duration_s)
    if not np.isfinite(t) or t <= 0:
        raise ValueError(f"frame_duration_s must be positive (s), got {frame_duration_s!r}")
    window_ns = layout.scanner.coincidence_window_ns if coincidence_window_ns is None else float(coincidence_window_ns)
    if not np.isfinite(window_ns) or window_ns <= 0:
        raise ValueError(f"coincidence_window_ns must be positive (ns), got {coincidence_window_ns!r}")
    s = _singles_per_detector(layout, singles_cps)
    r = (window_ns * 1e-9 * t) * pair_model(layout, s)
    return spread_over_tof(layout, r)


def _delayed_non_tof(layout: SinogramLayout, delayed: np.ndarray) -> np.ndarray:
    d = np.asarray(delayed)
    if layout.tof and d.shape == layout.shape:
        d = d.sum(axis=-1)
    if d.shape != layout.shape[:3]:
        raise ValueError(f"delayed sinogram has shape {d.shape}; expected the layout's non-TOF shape "
                         f"{layout.shape[:3]} (view, plane, radial)")
    d = d.astype(np.float64)
    if not np.isfinite(d).all() or (d < 0).any():
        raise ValueError("delayed sinogram contains NaN, infinite or negative values")
    if d.sum() <= 0:
        raise ValueError("delayed sinogram is empty (no delayed coincidences)")
    return d


def singles_from_delayed(layout: SinogramLayout, delayed: np.ndarray, frame_duration_s: float | None = None,
                         coincidence_window_ns: float | None = None, n_iterations: int = 30) -> np.ndarray:
    """Per-detector factors ``s`` (n_crystals,) with ``delayed_b ~ Poisson(sum s_i s_j)`` (ML fan-sum fit).

    With ``frame_duration_s`` they are converted to singles rates (counts/s):
    ``S_i = s_i / sqrt(2 tau T)``.
    """
    d = _delayed_non_tof(layout, delayed)
    s = fit_pair_factors(layout, d, n_iterations=n_iterations)
    if frame_duration_s is None:
        return s
    window_ns = layout.scanner.coincidence_window_ns if coincidence_window_ns is None else float(coincidence_window_ns)
    return s / np.sqrt(window_ns * 1e-9 * float(frame_duration_s))


def randoms_from_delayed(layout: SinogramLayout, delayed: np.ndarray, n_iterations: int = 30) -> np.ndarray:
    """Smoothed randoms expectation from a delayed sinogram: ``sum_{(i,j) in b} s_i s_j`` with ``s``
    the ML fan-sum singles estimate; same total as the delayed sinogram. float32 in ``layout.shape``.

    ``delayed`` is non-TOF (view, plane, radial) or, for a TOF layout, TOF-binned (summed first).
    """
    d = _delayed_non_tof(layout, delayed)
    s = fit_pair_factors(layout, d, n_iterations=n_iterations)
    r = pair_model(layout, s)
    logger.info("randoms from delayed: total %.6g (delayed %.6g)", float(r.sum()), float(d.sum()))
    return spread_over_tof(layout, r)
