"""Shared physics: HU -> mu at SPECT and PET energies against NIST, and the patient-space resampler."""
from __future__ import annotations

import logging

import numpy as np
import pytest

from recon.data.grid import ImageGrid, Volume
from recon.data.materials import linear_mu_per_mm
from recon.physics.attenuation import (
    CTCoverageError,
    bilinear_model,
    cortical_bone_hu,
    ct_effective_energy_kev,
    ct_to_mu_map,
    hu_to_mu,
)
from recon.physics.resample import grid_affine, resample, resample_grid, shift_affine, source_footprint

# NIST XCOM (total with coherent), water: mu/rho 0.1536 cm^2/g at 140.5 keV, 0.0960 cm^2/g at 511 keV;
# ICRU-44 cortical bone (1.92 g/cm^3): mu/rho 0.0894 cm^2/g at 511 keV
NIST_WATER_140 = 0.01536
NIST_WATER_511 = 0.00960
NIST_BONE_511 = 0.0894 * 1.92 / 10.0


def _ct(hu: np.ndarray, grid: ImageGrid, **meta) -> Volume:
    return Volume(hu, grid, "HU", dict(meta), frame_of_reference_uid="1.2.3.4")


@pytest.mark.parametrize("energy, nist", [(140.5, NIST_WATER_140), (511.0, NIST_WATER_511)])
def test_water_gives_nist_water_mu(energy, nist):
    grid = ImageGrid.centered((4, 6, 6), (4.0, 4.0, 4.0))
    mu = ct_to_mu_map(_ct(np.zeros(grid.shape), grid), ImageGrid.centered((3, 4, 4), (5.0, 5.0, 5.0)), energy)
    assert mu.unit == "1/mm"
    np.testing.assert_allclose(mu.data, nist, rtol=0.01)
    np.testing.assert_allclose(mu.data, linear_mu_per_mm("water", energy), rtol=1e-6)


def test_air_is_zero_and_bone_at_511_matches_nist():
    assert float(hu_to_mu(-1000.0, 511.0)) == pytest.approx(0.0, abs=1e-9)
    assert float(hu_to_mu(-1024.0, 140.5)) == 0.0
    hu_bone = cortical_bone_hu(ct_effective_energy_kev(120))
    grid = ImageGrid.centered((3, 3, 3), (2.0, 2.0, 2.0))
    mu = ct_to_mu_map(_ct(np.full(grid.shape, hu_bone), grid, kvp=120), grid, 511.0)
    np.testing.assert_allclose(mu.data, NIST_BONE_511, rtol=0.03)
    # cortical bone at a 120 kVp beam is of the order of 1500-2000 HU
    assert 1200 < hu_bone < 2200


@pytest.mark.parametrize("energy", [70.0, 140.5, 364.5, 511.0])
def test_monotonic_in_hu_and_continuous_at_the_break(energy):
    hu = np.linspace(-1100, 3000, 4101)
    mu = hu_to_mu(hu, energy)
    assert (np.diff(mu) >= 0).all() and mu[-1] > mu[1100]
    b = bilinear_model(energy, break_hu=50.0)
    lo, hi = b(np.array([50.0 - 1e-6, 50.0 + 1e-6]))
    assert abs(float(lo) - float(hi)) < 1e-7


def test_bilinear_segments_and_input_untouched():
    model = bilinear_model(140.5)
    hu = np.array([-2000.0, -1000.0, -500.0, 0.0, model.bone_hu, 2 * model.bone_hu])
    mw, mb = linear_mu_per_mm("water", 140.5), linear_mu_per_mm("cortical_bone", 140.5)
    mu = model(hu)
    np.testing.assert_allclose(mu[:5], [0.0, 0.0, mw / 2, mw, mb], rtol=1e-6)
    assert mu[5] > mb
    h = np.array([[-100.0, 0.0]])
    hu_to_mu(h, 140.5)
    np.testing.assert_array_equal(h, [[-100.0, 0.0]])


def test_effective_energy_from_kvp():
    assert ct_effective_energy_kev(120) == 70.0
    assert ct_effective_energy_kev(None) == 70.0
    assert ct_effective_energy_kev(140) == 80.0
    assert ct_effective_energy_kev(70) == 50.0  # raised to the tables' lower end
    # a harder beam sees bone as less dense relative to water: fewer HU per unit of mu
    assert cortical_bone_hu(ct_effective_energy_kev(80)) > cortical_bone_hu(ct_effective_energy_kev(140))
    with pytest.raises(ValueError, match="kVp"):
        ct_effective_energy_kev(-5)


def test_mu_map_carries_frame_of_reference_and_cube_lands_at_its_position():
    corner = (-63.0, -63.0, -40.0)
    src = ImageGrid((48, 64, 64), (2.0, 2.0, 2.0), corner)
    x, y, z = src.axis_mm("x"), src.axis_mm("y"), src.axis_mm("z")
    inside = ((np.abs(z - 15.0) < 10.0)[:, None, None] & (np.abs(y + 20.0) < 10.0)[None, :, None]
              & (np.abs(x - 30.0) < 10.0)[None, None, :])
    hu = np.where(inside, 0.0, -1000.0)
    target = ImageGrid((16, 24, 24), (4.0, 4.0, 4.0), (-46.0, -46.0, -29.0))
    mu = ct_to_mu_map(_ct(hu, src), target, 140.5)
    assert mu.frame_of_reference_uid == "1.2.3.4" and mu.metadata["frame_of_reference_uid"] == "1.2.3.4"
    zz, yy, xx = np.meshgrid(target.axis_mm("z"), target.axis_mm("y"), target.axis_mm("x"), indexing="ij")
    total = mu.data.sum()
    centroid = [(mu.data * c).sum() / total for c in (xx, yy, zz)]
    np.testing.assert_allclose(centroid, (30.0, -20.0, 15.0), atol=0.5)
    # the cube's volume (8000 mm^3 of water) is preserved by linear interpolation of a sampled box
    assert total * 64.0 / linear_mu_per_mm("water", 140.5) == pytest.approx(8000.0, rel=0.05)


def test_coverage_short_ct_is_air_xy_is_air(caplog):
    src = ImageGrid((10, 10, 10), (2.0, 2.0, 2.0), (0.0, 0.0, 0.0))
    ct = _ct(np.zeros(src.shape), src)
    long_grid = ImageGrid((12, 4, 4), (2.0, 2.0, 2.0), (4.0, 4.0, 0.0))  # z 0..22 mm; CT z -1..19 mm
    with pytest.raises(CTCoverageError, match="along z"):
        ct_to_mu_map(ct, long_grid, 140.5, outside_z="error")
    with caplog.at_level(logging.WARNING):
        padded = ct_to_mu_map(ct, long_grid, 140.5)
    assert "2 of 12 emission slices" in caplog.text and "set to air" in caplog.text
    assert (padded.data[:10] > 0).all() and (padded.data[10:] == 0).all()
    wide = ImageGrid((4, 4, 8), (2.0, 2.0, 4.0), (-8.0, 4.0, 0.0))  # x from -8 to 20 mm; CT -1 to 19 mm
    with caplog.at_level(logging.WARNING):
        mu = ct_to_mu_map(ct, wide, 140.5)
    assert "set to air" in caplog.text
    assert (mu.data[..., :2] == 0).all() and (mu.data[..., 2:7] > 0).all() and (mu.data[..., 7] == 0).all()
    with pytest.raises(CTCoverageError, match="does not cover"):
        ct_to_mu_map(ct, wide, 140.5, outside_xy="error")
    with pytest.raises(ValueError, match="in HU"):
        ct_to_mu_map(Volume(np.zeros(src.shape), src, "1/mm"), src, 140.5)


# ----------------------------------------------------------------------------------------- resampling

def _linear_field(lps: np.ndarray) -> np.ndarray:
    return 3.0 + 0.5 * lps[..., 0] - 0.25 * lps[..., 1] + 0.125 * lps[..., 2]


def test_same_grid_is_identity_and_linear_fields_are_exact():
    rng = np.random.default_rng(3)
    src = ImageGrid((6, 7, 8), (3.0, 2.0, 2.5), (-5.0, 4.0, 10.0))
    data = rng.random(src.shape).astype(np.float32)
    np.testing.assert_array_equal(resample_grid(data, src, src), data)
    np.testing.assert_array_equal(resample_grid(data, src, src, method="nearest"), data)
    # trilinear interpolation reproduces a linear function of position exactly inside the source
    kk, jj, ii = np.meshgrid(*(np.arange(n) for n in src.shape), indexing="ij")
    field = _linear_field(src.index_to_mm(np.stack([kk, jj, ii], -1)))
    target = ImageGrid((5, 5, 5), (2.1, 1.7, 2.3), (-3.0, 5.5, 11.0))
    got = resample_grid(field, src, target)
    tk, tj, ti = np.meshgrid(*(np.arange(n) for n in target.shape), indexing="ij")
    np.testing.assert_allclose(got, _linear_field(target.index_to_mm(np.stack([tk, tj, ti], -1))), rtol=1e-5, atol=1e-5)


def test_oblique_affine_is_exact_for_linear_fields_and_fills_outside():
    c, s = np.cos(np.radians(30)), np.sin(np.radians(30))
    # index (k, j, i) -> LPS: i along (c, s, 0) * 2 mm, j along (-s, c, 0) * 2 mm, k along z * 3 mm
    affine = np.array([[0, -2 * s, 2 * c, -20.0], [0, 2 * c, 2 * s, -15.0], [3.0, 0, 0, -12.0], [0, 0, 0, 1]])
    shape = (10, 24, 24)
    kk, jj, ii = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    ijk1 = np.stack([kk, jj, ii, np.ones_like(kk)], -1).astype(float)
    field = _linear_field((ijk1 @ affine.T)[..., :3])
    target = ImageGrid((4, 6, 6), (3.0, 2.0, 2.0), (-10.0, 0.0, -3.0))
    got = resample(field, affine, target)
    tk, tj, ti = np.meshgrid(*(np.arange(n) for n in target.shape), indexing="ij")
    np.testing.assert_allclose(got, _linear_field(target.index_to_mm(np.stack([tk, tj, ti], -1))), rtol=1e-5, atol=1e-5)
    far = ImageGrid((1, 1, 1), (1.0, 1.0, 1.0), (500.0, 0.0, 0.0))
    assert resample(field, affine, far, fill=-7.0)[0, 0, 0] == -7.0


def test_nearest_finds_a_marked_voxel_through_flipped_axes():
    data = np.zeros((4, 5, 6), dtype=np.uint8)
    data[1, 3, 2] = 9
    # source axis 2 runs towards -x, axis 1 towards -y: voxel (1, 3, 2) sits at LPS (10 - 2*2, 20 - 3*3, 1*4)
    affine = np.array([[0, 0, -2.0, 10.0], [0, -3.0, 0, 20.0], [4.0, 0, 0, 0.0], [0, 0, 0, 1]])
    target = ImageGrid((6, 8, 8), (4.0, 3.0, 2.0), (0.0, 2.0, -4.0))
    out = resample(data, affine, target, method="nearest")
    assert out.dtype == np.uint8 and out.sum() == 9
    k, j, i = np.argwhere(out)[0]
    np.testing.assert_allclose(target.index_to_mm([k, j, i]), (6.0, 11.0, 4.0))


def test_footprint_crop_gives_the_same_result():
    rng = np.random.default_rng(5)
    src = ImageGrid((40, 30, 30), (2.5, 3.0, 3.0), (-45.0, -45.0, -50.0))
    data = rng.random(src.shape)
    target = ImageGrid((7, 9, 9), (4.0, 4.4, 4.4), (-20.0, -25.0, -10.0))
    box = source_footprint(src.shape, grid_affine(src), target)
    assert box[0].stop - box[0].start < src.shape[0]
    full = resample_grid(data, src, target)
    part = resample(data[box], shift_affine(grid_affine(src), tuple(b.start for b in box)), target)
    np.testing.assert_array_equal(full, part)


def test_resample_refuses_bad_input():
    with pytest.raises(ValueError, match="method"):
        resample(np.zeros((2, 2, 2)), np.eye(4), ImageGrid((1, 1, 1), (1.0, 1.0, 1.0)), method="cubic")
    with pytest.raises(ValueError, match="singular"):
        resample(np.zeros((2, 2, 2)), np.zeros((4, 4)), ImageGrid((1, 1, 1), (1.0, 1.0, 1.0)))
    with pytest.raises(ValueError, match="does not match"):
        resample_grid(np.zeros((2, 2, 2)), ImageGrid((3, 2, 2), (1.0, 1.0, 1.0)), ImageGrid((1, 1, 1), (1.0, 1.0, 1.0)))


def test_physics_imports_no_io_modality_or_quantification():
    """recon.physics sits below the modalities: its modules import only recon.data and itself."""
    import ast
    from pathlib import Path

    import recon.physics

    for path in Path(recon.physics.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                if name.startswith("recon"):
                    assert name.startswith(("recon.data", "recon.physics")), f"{path.name} imports {name}"
