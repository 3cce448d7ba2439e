"""Image-space Gaussian PSF: normalised, the right width, self-adjoint with zero padding."""
from __future__ import annotations

import math

import numpy as np
import pytest

from recon.algorithms.adjoint import assert_adjoint
from recon.data.grid import ImageGrid
from recon.pet.resolution import GaussianPSF, gaussian_taps


def test_psf_is_adjoint_and_not_trivially(rng):
    grid = ImageGrid.centered((9, 14, 17), (3.0, 2.0, 2.5))
    psf = GaussianPSF(grid, (5.0, 4.0, 6.0))
    assert_adjoint(psf, rng, tolerance=1e-4, signed=True, n_power_iterations=3)
    x = rng.random(grid.shape).astype(np.float32)
    assert not np.allclose(psf.apply(x), x)


def test_psf_keeps_counts_inside_and_has_the_requested_fwhm():
    grid = ImageGrid.centered((3, 3, 101), (2.0, 2.0, 0.5))
    x = np.zeros(grid.shape, np.float32)
    x[1, 1, 50] = 1.0
    out = GaussianPSF(grid, (6.0, 0.0, 0.0)).apply(x)
    assert out.sum() == pytest.approx(1.0, rel=1e-5)
    prof = out[1, 1]
    pos = (np.arange(101) - 50) * 0.5
    sigma = math.sqrt(float((prof * pos ** 2).sum()))
    assert sigma * 2 * math.sqrt(2 * math.log(2)) == pytest.approx(6.0, rel=0.02)
    assert out[0].sum() == 0  # no blur along z with FWHM 0


def test_taps_are_symmetric_and_truncated_at_three_sigma():
    t = gaussian_taps(4.0, 1.0)
    sigma = 4.0 / 2.3548
    assert t.size == 2 * math.ceil(3 * sigma) + 1
    np.testing.assert_array_equal(t, t[::-1])
    assert t.sum() == pytest.approx(1.0, rel=1e-6)


def test_bad_fwhm_is_refused_by_name():
    grid = ImageGrid.centered((3, 3, 3), (1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match=r"^fwhm_mm must be finite and >= 0"):
        GaussianPSF(grid, (1.0, -2.0, 1.0))
    with pytest.raises(ValueError, match=r"^fwhm_xyz_mm must be one number or 3"):
        GaussianPSF(grid, (1.0, 2.0))
