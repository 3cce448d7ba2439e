"""Scatter estimates from energy windows, used as the additive term of the model (never subtracted).

- TEW, triple energy window (Ogawa et al., IEEE TMI 1991)::

      S_peak = (C_low / w_low + C_up / w_up) * w_peak / 2

- DEW, dual energy window (Jaszczak et al., J Nucl Med 1984)::

      S_peak = k * C_low

  with k = 0.5 measured for a 20 % Tc-99m photopeak (28 keV wide) and a
  92-125 keV scatter window (33 keV). For other widths we scale k by the
  window-width ratio relative to that reference, k_eff = k (w_peak/28)/(w_low/33),
  keeping the per-keV relation of the original calibration.

Window widths come from the acquisition's energy windows. Estimates are
smoothed per projection with a Gaussian (counts preserved in the interior) to
tame Poisson noise in the narrow windows.
"""
from __future__ import annotations

import logging

import numpy as np

from recon.data.spect import EnergyWindow, SPECTAcquisition

logger = logging.getLogger(__name__)

DEW_K_REFERENCE = 0.5
_DEW_REF_PEAK_WIDTH_KEV = 28.0
_DEW_REF_LOW_WIDTH_KEV = 33.0
_ADJACENT_TOL_KEV = 1.0


def tew_estimate(c_low: np.ndarray, c_up: np.ndarray | None, w_low_kev: float, w_up_kev: float | None,
                 w_peak_kev: float) -> np.ndarray:
    """TEW scatter in the photopeak (counts). ``c_up`` may be None (taken as 0, as for Tc-99m)."""
    if w_low_kev <= 0 or w_peak_kev <= 0:
        raise ValueError("TEW window widths must be positive (keV)")
    density = np.asarray(c_low, dtype=np.float64) / w_low_kev
    if c_up is not None:
        if w_up_kev is None or w_up_kev <= 0:
            raise ValueError("TEW upper window width must be positive (keV)")
        density = density + np.asarray(c_up, dtype=np.float64) / w_up_kev
    return (density * w_peak_kev / 2.0).astype(np.float32)


def dew_k(w_peak_kev: float, w_low_kev: float, k_reference: float = DEW_K_REFERENCE) -> float:
    """DEW multiplier for the given window widths (keV), scaled from Jaszczak's reference windows."""
    return k_reference * (w_peak_kev / _DEW_REF_PEAK_WIDTH_KEV) / (w_low_kev / _DEW_REF_LOW_WIDTH_KEV)


def dew_estimate(c_low: np.ndarray, w_low_kev: float, w_peak_kev: float,
                 k_reference: float = DEW_K_REFERENCE) -> np.ndarray:
    """DEW scatter in the photopeak (counts)."""
    return (dew_k(w_peak_kev, w_low_kev, k_reference) * np.asarray(c_low, dtype=np.float64)).astype(np.float32)


def _gaussian_matrix(n: int, sigma_px: float) -> np.ndarray:
    """(n, n) row-normalised Gaussian smoothing matrix: zero outside the detector, edge-normalised."""
    t = np.arange(n, dtype=np.float64)
    m = np.exp(-0.5 * ((t[:, None] - t[None, :]) / sigma_px) ** 2)
    return m / m.sum(axis=1, keepdims=True)


def smooth_projections(proj: np.ndarray, fwhm_mm: float, pixel_mm: float, row_mm: float | None = None) -> np.ndarray:
    """Gaussian smoothing of each view (rows and columns) with FWHM ``fwhm_mm``; edge-normalised, so a
    flat field stays flat and interior counts are preserved."""
    if fwhm_mm <= 0:
        return np.array(proj, dtype=np.float32, copy=True)
    row_mm = pixel_mm if row_mm is None else row_mm
    out = np.asarray(proj, dtype=np.float64)
    rows = _gaussian_matrix(out.shape[1], fwhm_mm / row_mm / 2.3548200450309493)
    cols = _gaussian_matrix(out.shape[2], fwhm_mm / pixel_mm / 2.3548200450309493)
    out = np.einsum("ij,vjc->vic", rows, out, optimize=True)
    out = np.einsum("vrj,kj->vrk", out, cols, optimize=True)
    return out.astype(np.float32)


def _adjacent_window(windows: tuple[EnergyWindow, ...], peak: EnergyWindow, side: str) -> EnergyWindow | None:
    for w in windows:
        if w.name == peak.name:
            continue
        if side == "lower" and abs(w.upper_kev - peak.lower_kev) <= _ADJACENT_TOL_KEV:
            return w
        if side == "upper" and abs(w.lower_kev - peak.upper_kev) <= _ADJACENT_TOL_KEV:
            return w
    return None


def _widest_lower_window(windows: tuple[EnergyWindow, ...], peak: EnergyWindow) -> EnergyWindow | None:
    below = [w for w in windows if w.name != peak.name and w.upper_kev <= peak.lower_kev + _ADJACENT_TOL_KEV]
    return max(below, key=lambda w: w.width_kev) if below else None


def estimate_scatter(acq: SPECTAcquisition, method: str = "tew", smoothing_fwhm_mm: float | None = None,
                     lower: str | None = None, upper: str | None = None) -> np.ndarray | None:
    """Photopeak scatter estimate (views, rows, cols) in counts, or None for ``method="none"``.

    TEW uses the windows adjacent to the photopeak (or those named by ``lower``/``upper``);
    DEW uses the widest window below the photopeak (or ``lower``). Smoothing defaults to
    two pixels FWHM.
    """
    method = method.lower()
    if method == "none":
        return None
    if method not in ("tew", "dew"):
        raise ValueError(f"scatter method must be 'none', 'dew' or 'tew', got {method!r}")
    peak = acq.window(acq.photopeak)
    pixel = acq.geometry.pixel_size_mm
    fwhm = 2.0 * pixel if smoothing_fwhm_mm is None else smoothing_fwhm_mm
    if method == "tew":
        low = acq.window(lower) if lower else _adjacent_window(acq.windows, peak, "lower")
        up = acq.window(upper) if upper else _adjacent_window(acq.windows, peak, "upper")
        if low is None:
            raise ValueError(
                f"TEW needs a scatter window just below the photopeak {peak.lower_kev:.2f} keV; windows: "
                + ", ".join(f"{w.name} [{w.lower_kev:.2f}, {w.upper_kev:.2f}]" for w in acq.windows)
            )
        if up is None:
            logger.info("TEW: no upper scatter window; taking its counts as 0")
        est = tew_estimate(acq.counts[low.name], None if up is None else acq.counts[up.name], low.width_kev,
                           None if up is None else up.width_kev, peak.width_kev)
    else:
        low = acq.window(lower) if lower else _widest_lower_window(acq.windows, peak)
        if low is None:
            raise ValueError(f"DEW needs a scatter window below the photopeak ({peak.lower_kev:.2f} keV)")
        est = dew_estimate(acq.counts[low.name], low.width_kev, peak.width_kev)
    return smooth_projections(est, fwhm, pixel, acq.geometry.slice_thickness_mm)
