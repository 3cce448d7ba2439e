"""Energy-window scatter estimates: the TEW and DEW formulas, window detection and smoothing."""
from __future__ import annotations

import numpy as np
import pytest

from recon.data import EnergyWindow, SPECTAcquisition, SPECTGeometry, get_collimator
from recon.spect.scatter import dew_estimate, dew_k, estimate_scatter, smooth_projections, tew_estimate


def test_tew_trapezoid():
    # lower window 3 keV with 30 counts -> 10 counts/keV; upper 6 keV with 12 counts -> 2 counts/keV
    est = tew_estimate(np.array([30.0]), np.array([12.0]), 3.0, 6.0, 28.0)
    assert est[0] == pytest.approx((10.0 + 2.0) * 28.0 / 2.0)
    assert tew_estimate(np.array([30.0]), None, 3.0, None, 28.0)[0] == pytest.approx(10.0 * 14.0)


def test_dew_reference_windows_give_jaszczak_k():
    assert dew_k(28.0, 33.0) == pytest.approx(0.5)
    assert dew_estimate(np.array([100.0]), 33.0, 28.0)[0] == pytest.approx(50.0)
    assert dew_k(14.0, 33.0) == pytest.approx(0.25)  # half the photopeak width, half the scatter in it


def test_smoothing_preserves_a_flat_field_and_interior_counts(rng):
    flat = np.full((2, 20, 30), 7.0, np.float32)
    np.testing.assert_allclose(smooth_projections(flat, 12.0, 4.0), 7.0, rtol=1e-5)
    spot = np.zeros((1, 40, 40), np.float32)
    spot[0, 20, 20] = 100.0
    sm = smooth_projections(spot, 12.0, 4.0)
    assert sm.sum() == pytest.approx(100.0, rel=1e-4)
    assert sm.max() < 100.0


def _acq(windows, counts):
    geo = SPECTGeometry([0.0, 90.0], 200.0, n_rows=4, n_cols=5, pixel_size_mm=4.0)
    return SPECTAcquisition(counts, windows, "peak", geo, get_collimator("SY-LEHR"), 10.0)


def test_estimate_scatter_finds_adjacent_windows():
    wins = (EnergyWindow("peak", 126.0, 154.0), EnergyWindow("lo", 119.0, 126.0), EnergyWindow("hi", 154.0, 161.0),
            EnergyWindow("dew", 92.0, 125.0))
    shape = (2, 4, 5)
    counts = {"peak": np.full(shape, 100.0), "lo": np.full(shape, 14.0), "hi": np.full(shape, 7.0),
              "dew": np.full(shape, 66.0)}
    acq = _acq(wins, counts)
    tew = estimate_scatter(acq, "tew", smoothing_fwhm_mm=0.0)
    np.testing.assert_allclose(tew, (14.0 / 7.0 + 7.0 / 7.0) * 28.0 / 2.0, rtol=1e-6)
    dew = estimate_scatter(acq, "dew", smoothing_fwhm_mm=0.0)
    np.testing.assert_allclose(dew, dew_k(28.0, 33.0) * 66.0, rtol=1e-6)
    assert estimate_scatter(acq, "none") is None


def test_estimate_scatter_errors_name_the_missing_window():
    wins = (EnergyWindow("peak", 126.0, 154.0),)
    acq = _acq(wins, {"peak": np.ones((2, 4, 5))})
    with pytest.raises(ValueError, match="TEW needs a scatter window"):
        estimate_scatter(acq, "tew")
    with pytest.raises(ValueError, match="DEW needs a scatter window"):
        estimate_scatter(acq, "dew")
    with pytest.raises(ValueError, match="scatter method"):
        estimate_scatter(acq, "monte-carlo")
