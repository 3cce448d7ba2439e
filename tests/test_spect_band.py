"""The CUDA path's column blur matrices (kernels.spect_band) against explicit products of the CPU path's
3-tap passes, written out here as dense matrices."""
from __future__ import annotations

import numpy as np
import pytest

from kernels import spect_band
from kernels import spect_math as sm


def _pass_matrix(var_z: float, var_c: float, nc: int) -> np.ndarray:
    """The column passes of one depth step as a dense nc x nc matrix (zero padding), float32 weights as on the CPU."""
    n = sm.blur_passes(var_z, var_c)
    if n == 0:
        return np.eye(nc)
    w = np.float32(var_c / (2 * n))
    centre = np.float64(np.float32(1.0) - np.float32(2.0) * w)
    t = np.diag(np.full(nc, centre)) + np.diag(np.full(nc - 1, np.float64(w)), 1) + np.diag(np.full(nc - 1, np.float64(w)), -1)
    return np.linalg.matrix_power(t, n)


def _dense(band: np.ndarray, p: int, k: int, nc: int) -> np.ndarray:
    half = (band.shape[3] - 1) // 2
    m = np.zeros((nc, nc))
    for r in range(nc):
        for j in range(band.shape[3]):
            c = r + j - half
            if 0 <= c < nc:
                m[r, c] = band[p, k, r, j]
    return m


def test_band_is_the_product_of_the_column_passes_and_drops_almost_nothing():
    """Non-circular orbit (every view its own profile), 40 columns, a band much narrower than the detector:
    each C_{>k} = T_K ... T_{k+1} within float32 rounding, and the weight outside the band is < 1e-7."""
    rng = np.random.default_rng(3)
    n_views, nk, nc = 3, 12, 40
    var_c = rng.random((n_views, nk + 1)) * 0.3
    var_z = rng.random((n_views, nk + 1)) * 0.6  # sets the pass count where it exceeds var_c
    var_c[:, 0] = var_z[:, 0] = 0.0
    profile, band, half = spect_band.column_band(var_z, var_c, nc)
    assert half < nc // 2
    assert sorted(set(profile.tolist())) == [0, 1, 2]
    for v in range(n_views):
        full = np.eye(nc)
        for k in range(nk - 1, -1, -1):
            full = full @ _pass_matrix(var_z[v, k + 1], var_c[v, k + 1], nc)
            got = _dense(band, profile[v], k, nc)
            inside = np.abs(np.subtract.outer(np.arange(nc), np.arange(nc))) <= half
            assert np.abs(got - full * inside).max() < 1e-7, (v, k)
            assert np.abs(full * ~inside).sum(axis=1).max() <= spect_band.DROPPED_WEIGHT_LIMIT


def test_circular_orbit_shares_one_profile_and_no_blur_is_the_identity():
    nk, nc = 6, 10
    var = np.tile(np.linspace(0.2, 0.0, nk + 1), (5, 1))
    profile, band, _ = spect_band.column_band(var, var, nc)
    assert band.shape[0] == 1 and (profile == 0).all()
    profile, band, half = spect_band.column_band(np.zeros((2, nk + 1)), np.zeros((2, nk + 1)), nc)
    assert half >= 0
    for k in range(nk):
        np.testing.assert_array_equal(_dense(band, 0, k, nc), np.eye(nc))


def test_band_widens_until_nothing_is_lost():
    """A start width that loses weight is doubled: with a huge blur the band covers the whole detector."""
    nk, nc = 4, 16
    var = np.zeros((1, nk + 1))
    var[0, 1:] = 20.0  # sigma ~ 9 columns: wider than 6.5 sigma fits
    _, band, half = spect_band.column_band(var, var, nc)
    assert half == nc - 1
    full = np.eye(nc)
    for k in range(nk - 1, -1, -1):
        full = full @ _pass_matrix(var[0, k + 1], var[0, k + 1], nc)
        np.testing.assert_allclose(_dense(band, 0, k, nc), full, atol=1e-7)


def test_bad_variance_arrays_are_refused():
    with pytest.raises(ValueError, match="var_z and var_c"):
        spect_band.column_band(np.zeros((2, 5)), np.zeros((2, 4)), 8)
    with pytest.raises(ValueError, match="n_cols"):
        spect_band.column_band(np.zeros((2, 5)), np.zeros((2, 5)), 0)
