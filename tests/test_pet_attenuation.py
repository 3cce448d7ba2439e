"""PET attenuation factors: exp(-mu L) through a water cylinder, list-mode == sinogram, wrong maps refused."""
from __future__ import annotations

import numpy as np
import pytest

from recon.data.grid import ImageGrid, Volume
from recon.data.pet import ScannerPlacement
from recon.data.pet_presets import get_pet_scanner
from recon.data.pet_sinogram import SinogramLayout
from recon.pet.attenuation import attenuation_factors, check_mu_map_511
from recon.pet.projector import ListModeProjector, SinogramProjector
from tests.conftest import supersampled_cylinder

SMALL = get_pet_scanner("small_test")
MU_WATER_511 = 0.0096  # 1/mm
RADIUS = 70.0


def _water_cylinder(centre_xy=(0.0, 0.0)) -> Volume:
    grid = ImageGrid.centered((4, 180, 180), (8.0, 1.0, 1.0))
    frac = supersampled_cylinder(grid.shape, grid.spacing_mm, RADIUS, 1e3, n_sub=4)
    return Volume(frac * MU_WATER_511, grid, "1/mm")


def test_direct_plane_factors_equal_exp_minus_mu_chord():
    """Transaxial LORs of direct planes: chord 2 sqrt(R^2 - d^2), d from crystal angles computed here."""
    mu = _water_cylinder()
    layout = SinogramLayout.for_fov(SMALL, 140.0)
    proj = SinogramProjector(layout, ScannerPlacement("HFS", (0.0, 0.0, 0.0)), mu.grid)
    views = np.arange(0, layout.n_views, 7)
    att = attenuation_factors(proj, mu, views)
    assert att.shape == (views.size, layout.n_planes, layout.n_radial)
    n = SMALL.crystals_per_ring
    first, second = layout.crystal_pairs()
    ang_a, ang_b = 2 * np.pi * first[views] / n, 2 * np.pi * second[views] / n
    d = SMALL.lor_radius_mm * np.abs(np.cos((ang_a - ang_b) / 2))  # distance of a chord from the centre
    chord = 2 * np.sqrt(np.clip(RADIUS ** 2 - d ** 2, 0, None))
    for ring in (2, 5):
        plane = layout.ring_pair_plane()[ring, ring]
        got = -np.log(att[:, plane, :])
        inside = d < RADIUS - 3.0
        # factors within 0.5 %; exponents within 1 % (the worst are exact lattice diagonals, see test_pet_projector)
        np.testing.assert_allclose(att[:, plane, :][inside], np.exp(-MU_WATER_511 * chord[inside]), rtol=5e-3)
        np.testing.assert_allclose(got[inside], MU_WATER_511 * chord[inside], rtol=1e-2)
        assert np.all(att[:, plane, :][d > RADIUS + 2.0] == pytest.approx(1.0))


def test_listmode_factors_match_the_sinogram_bins(rng):
    mu = _water_cylinder(centre_xy=(0.0, 0.0))
    layout = SinogramLayout.for_fov(SMALL, 140.0)
    placement = ScannerPlacement("HFS", (0.0, 0.0, 0.0))
    da = rng.integers(0, SMALL.n_crystals, 300)
    db = rng.integers(0, SMALL.n_crystals, 300)
    flat, valid = layout.bins_of_events(da, db)
    lm = ListModeProjector(layout, placement, mu.grid, da[valid], db[valid])
    att_lm = attenuation_factors(lm, mu)
    att_sino = attenuation_factors(SinogramProjector(layout, placement, mu.grid), mu).reshape(-1)
    np.testing.assert_allclose(att_lm, att_sino[flat[valid]], rtol=1e-5)


@pytest.mark.parametrize(("scale", "unit", "message"), [
    (0.0154 / MU_WATER_511, "1/mm", r"too high for 511 keV .*SPECT energy"),
    (10.0, "1/mm", r"units must be 1/mm, not 1/cm"),
    (1.0, "1/cm", r"^mu_map unit must be '1/mm'"),
    (0.1, "1/mm", r"^mu_map has no attenuating body .*not at 511 keV in 1/mm"),  # 10 x too low
    (0.0, "1/mm", r"^mu_map has no attenuating body"),  # empty: attenuation would silently be off
    (0.75, "1/mm", r"^mu_map is not at 511 keV in 1/mm: .* too low"),
])
def test_mu_maps_not_at_511_kev_in_1_per_mm_are_refused(scale, unit, message):
    mu = _water_cylinder()
    bad = Volume(mu.data * scale, mu.grid, unit)
    with pytest.raises(ValueError, match=message):
        check_mu_map_511(bad)
    check_mu_map_511(Volume(mu.data * 1.05, mu.grid, "1/mm"))  # soft tissue is fine


def test_mu_map_on_another_grid_is_refused():
    mu = _water_cylinder()
    layout = SinogramLayout.for_fov(SMALL, 140.0)
    other = ImageGrid.centered((4, 90, 90), (8.0, 2.0, 2.0))
    with pytest.raises(ValueError, match=r"^mu_map grid .* differs from the projector's grid"):
        attenuation_factors(SinogramProjector(layout, ScannerPlacement(), other), mu)
