"""Phantoms against analytic truth: rasterised volumes and positions, materials, painter's rule, library phantoms."""
from __future__ import annotations

import math

import numpy as np
import pytest

from recon.data import ImageGrid
from recon.data.materials import linear_mu_per_mm
from recon.phantoms.library import (
    IEC_SPHERE_DIAMETERS_MM,
    IECBodyInterior,
    bone_torso,
    iec_sphere_centers_mm,
    nema_iec_body,
    uniform_cylinder,
)
from recon.phantoms.phantom import PhantomBuilder
from recon.phantoms.shapes import Box, Ellipsoid, EllipticCylinder, Sphere, rasterize, rotation_matrix

WATER_MU_140 = linear_mu_per_mm("water", 140.5)


def sphere_ml(radius_mm: float) -> float:
    return 4.0 / 3.0 * math.pi * radius_mm**3 / 1000.0


def centroid_mm(frac: np.ndarray, grid: ImageGrid) -> np.ndarray:
    """Weighted mean (x, y, z) mm of voxel centres, from the grid's axes (not from the rasteriser)."""
    x, y, z = (grid.axis_mm(a) for a in "xyz")
    w = frac.astype(np.float64)
    total = w.sum()
    return np.array([
        (w.sum(axis=(0, 1)) * x).sum() / total,
        (w.sum(axis=(0, 2)) * y).sum() / total,
        (w.sum(axis=(1, 2)) * z).sum() / total,
    ])


# ----------------------------------------------------------------------------- shapes and rasteriser


@pytest.mark.parametrize("radius_vox", [2.0, 2.6, 3.5, 6.0])
def test_sphere_volume_within_1_percent_from_two_voxels(radius_vox):
    grid = ImageGrid.centered((24, 24, 24), (4.0, 4.0, 4.0))
    rng = np.random.default_rng(7)
    for _ in range(5):
        center = tuple(rng.uniform(-6.0, 6.0, 3))
        r = radius_vox * 4.0
        vol = rasterize(Sphere(center, r), grid).sum(dtype=np.float64) * grid.voxel_volume_ml
        assert vol == pytest.approx(sphere_ml(r), rel=0.01)


def test_off_centre_sphere_centroid_on_anisotropic_offset_grid():
    grid = ImageGrid((30, 40, 50), (3.0, 2.5, 2.0), origin_mm=(-40.3, 12.7, -101.1))
    center = (-3.37, 51.9, -52.45)  # LPS mm, between voxel centres on every axis
    frac = rasterize(Sphere(center, 9.0), grid)
    np.testing.assert_allclose(centroid_mm(frac, grid), center, atol=0.05)
    assert frac.sum() * grid.voxel_volume_ml == pytest.approx(sphere_ml(9.0), rel=0.01)


def test_box_fractions_are_exact_products_of_overlaps():
    grid = ImageGrid((10, 12, 14), (2.0, 3.0, 4.0), origin_mm=(0.0, 0.0, 0.0))
    box = Box((20.3, 14.1, 9.7), (17.0, 11.0, 7.9))
    frac = rasterize(box, grid)

    def overlap(axis: str, lo: float, hi: float, d: float) -> np.ndarray:
        c = grid.axis_mm(axis)
        return np.clip(np.minimum(c + d / 2, hi) - np.maximum(c - d / 2, lo), 0, None) / d

    (x0, x1), (y0, y1), (z0, z1) = box.bounds_mm()
    truth = overlap("z", z0, z1, 2.0)[:, None, None] * overlap("y", y0, y1, 3.0)[None, :, None] * \
        overlap("x", x0, x1, 4.0)[None, None, :]
    # in-plane sampling is a 16x16 lattice, so each axis is exact to 1/16 of a voxel
    np.testing.assert_allclose(frac, truth, atol=1.0 / 16 + 1e-6)
    assert frac.sum() * grid.voxel_volume_ml == pytest.approx(box.volume_ml, rel=0.01)


def test_rotated_ellipsoid_volume_bounds_and_centroid():
    grid = ImageGrid.centered((40, 40, 40), (2.5, 2.5, 2.5))
    r = rotation_matrix(z_deg=30.0, y_deg=-20.0, x_deg=50.0)
    ell = Ellipsoid((4.1, -3.3, 2.2), (30.0, 12.0, 7.0), r)
    frac = rasterize(ell, grid)
    assert frac.sum() * grid.voxel_volume_ml == pytest.approx(4 / 3 * math.pi * 30 * 12 * 7 / 1000, rel=0.01)
    np.testing.assert_allclose(centroid_mm(frac, grid), ell.center, atol=0.05)
    # the tip of the long axis is inside, just beyond it is not; the box holds the tip
    tip = np.asarray(ell.center) + 29.9 * r[:, 0]
    beyond = np.asarray(ell.center) + 30.1 * r[:, 0]
    assert ell.contains(*tip) and not ell.contains(*beyond)
    assert all(lo <= t <= hi for t, (lo, hi) in zip(tip, ell.bounds_mm()))


def test_shapes_reject_bad_sizes_and_leaving_the_grid():
    with pytest.raises(ValueError, match="positive"):
        Sphere((0, 0, 0), 0.0)
    with pytest.raises(ValueError, match="positive"):
        Ellipsoid((0, 0, 0), (1.0, -2.0, 3.0))
    with pytest.raises(ValueError, match="positive"):
        EllipticCylinder((0, 0, 0), (5.0, 5.0), -1.0)
    with pytest.raises(ValueError, match="orthonormal"):
        Ellipsoid((0, 0, 0), (1, 2, 3), np.ones((3, 3)))
    grid = ImageGrid.centered((10, 10, 10), (2.0, 2.0, 2.0))
    with pytest.raises(ValueError, match="does not fit"):
        rasterize(Sphere((8.0, 0.0, 0.0), 5.0), grid)
    with pytest.raises(ValueError, match="subsamples"):
        rasterize(Sphere((0.0, 0.0, 0.0), 5.0), grid, subsamples=0)
    partial = rasterize(Sphere((8.0, 0.0, 0.0), 5.0), grid, allow_partial=True)
    assert 0 < partial.sum() * grid.voxel_volume_ml < sphere_ml(5.0)


# ----------------------------------------------------------------------------- painter's composition


def test_painter_rule_weights_activity_mu_and_true_volumes():
    grid = ImageGrid.centered((20, 20, 20), (5.0, 5.0, 5.0))
    b = PhantomBuilder(grid, 140.5)
    b.paint("big", EllipticCylinder.circular((0, 0, 0), 40.0, 80.0), 100.0, material="water")
    b.paint("small", Sphere((2.0, -1.0, 3.0), 15.0), 500.0, mu_per_mm=0.02, carve_from=("big",))
    ph = b.build(note="test")
    big, small = ph.regions["big"], ph.regions["small"]
    assert (big + small).max() <= 1.0 + 1e-6
    np.testing.assert_allclose(ph.activity.data, 100.0 * big + 500.0 * small, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(ph.mu_map.data, WATER_MU_140 * big + 0.02 * small, rtol=1e-5, atol=1e-7)
    assert ph.volume_ml["small"] == pytest.approx(sphere_ml(15.0))
    assert ph.volume_ml["big"] == pytest.approx(math.pi * 40**2 * 80 / 1000 - sphere_ml(15.0))
    assert big.sum() * grid.voxel_volume_ml == pytest.approx(ph.volume_ml["big"], rel=0.01)
    assert ph.total_activity_bq == pytest.approx(100.0 * ph.volume_ml["big"] + 500.0 * ph.volume_ml["small"])
    assert ph.metadata["note"] == "test"
    with pytest.raises(ValueError, match="already has concentration"):
        b.paint("small", Sphere((-20.0, 0.0, 0.0), 5.0), 7.0, material="water")
    with pytest.raises(ValueError, match="exactly one"):
        b.paint("x", Sphere((0.0, 0.0, 0.0), 5.0), 1.0)
    with pytest.raises(ValueError, match="carve_from"):
        b.paint("y", Sphere((0.0, 0.0, 0.0), 5.0), 1.0, material="water", carve_from=("nothing",))


# ----------------------------------------------------------------------------- library phantoms


def test_uniform_cylinder_volume_water_mu_and_activity():
    grid = ImageGrid.centered((40, 48, 48), (5.0, 5.0, 5.0))
    ph = uniform_cylinder(grid, 80.0, 150.0, 1e4)
    frac = ph.regions["cylinder"]
    assert frac.sum() * grid.voxel_volume_ml == pytest.approx(math.pi * 80**2 * 150 / 1000, rel=0.005)
    inside = frac == 1.0
    assert inside.sum() > 1000
    np.testing.assert_allclose(ph.mu_map.data[inside], WATER_MU_140, rtol=1e-6)
    np.testing.assert_allclose(ph.activity.data[inside], 1e4, rtol=1e-6)
    assert ph.activity.unit == "Bq/mL" and ph.mu_map.unit == "1/mm"
    assert (ph.mu_map.data[frac == 0] == 0).all() and (ph.activity.data[frac == 0] == 0).all()


def test_iec_body_spheres_ratio_geometry_and_volumes():
    grid = ImageGrid.centered((40, 52, 64), (4.8, 4.8, 4.8))
    ph = nema_iec_body(grid, sphere_to_background=8.0, background_bq_ml=2000.0)
    centers = iec_sphere_centers_mm(grid.center_mm)
    plane_z = grid.center_mm[2] + 90.0 - 70.0  # 70 mm from the lid at the +z end of the 180 mm interior
    for d in IEC_SPHERE_DIAMETERS_MM:
        name = f"sphere_{d:.0f}"
        assert ph.volume_ml[name] == pytest.approx(sphere_ml(d / 2))
        assert ph.regions[name].sum() * grid.voxel_volume_ml == pytest.approx(sphere_ml(d / 2), rel=0.02)
        assert ph.concentration_bq_ml[name] / ph.concentration_bq_ml["background"] == pytest.approx(8.0)
        cx, cy, cz = centers[d]
        assert math.hypot(cx - grid.center_mm[0], cy - grid.center_mm[1]) == pytest.approx(57.2)
        assert cz == pytest.approx(plane_z)
    np.testing.assert_allclose(centroid_mm(ph.regions["sphere_37"], grid), centers[37.0], atol=0.1)
    assert ph.concentration_bq_ml["lung_insert"] == 0.0
    lung = ph.regions["lung_insert"] == 1.0
    np.testing.assert_allclose(ph.mu_map.data[lung], linear_mu_per_mm("lung", 140.5), rtol=1e-6)
    # interior: half disc r 147 + 140 x 77 rectangle + two quarter discs r 77, 180 mm long (NEMA NU 2-2012)
    body_ml = (math.pi * 147**2 / 2 + 140 * 77 + math.pi * 77**2 / 2) * 180 / 1000
    assert IECBodyInterior(grid.center_mm).volume_ml == pytest.approx(body_ml)
    assert sum(ph.volume_ml.values()) == pytest.approx(body_ml)
    rasterised = sum(f.sum(dtype=np.float64) for f in ph.regions.values()) * grid.voxel_volume_ml
    assert rasterised == pytest.approx(body_ml, rel=0.005)
    assert ph.regions["background"].sum() * grid.voxel_volume_ml == pytest.approx(ph.volume_ml["background"],
                                                                                  rel=0.005)
    # 294 mm wide, 224 mm deep: half disc anterior (-y), flat side posterior
    (x0, x1), (y0, y1), _ = IECBodyInterior(grid.center_mm).bounds_mm()
    assert (x1 - x0, y1 - y0) == pytest.approx((294.0, 224.0))
    assert 0.5 * (y0 + y1) == pytest.approx(grid.center_mm[1])


def test_iec_without_lung_insert_and_bad_input():
    grid = ImageGrid.centered((40, 52, 64), (4.8, 4.8, 4.8))
    ph = nema_iec_body(grid, lung_insert=False)
    assert "lung_insert" not in ph.regions
    with pytest.raises(ValueError, match="sphere_to_background"):
        nema_iec_body(grid, sphere_to_background=-1.0)
    with pytest.raises(ValueError, match="does not fit"):
        nema_iec_body(ImageGrid.centered((40, 40, 40), (4.8, 4.8, 4.8)))


@pytest.fixture(scope="module")
def torso():
    grid = ImageGrid.centered((64, 64, 64), (9.6, 9.6, 9.6))
    return grid, bone_torso(grid)


def test_bone_torso_lesions_sit_inside_vertebral_bodies(torso):
    grid, ph = torso
    bodies = [s for s in ph.shapes["normal_bone"] if isinstance(s, EllipticCylinder)]
    focal = [n for n in ph.regions if n.startswith(("lesion_", "degenerative_"))]
    assert {"lesion_L1", "degenerative_L4", "normal_bone", "soft_tissue"} <= set(ph.regions)
    assert len([n for n in focal if n.startswith("lesion_")]) >= 3
    rng = np.random.default_rng(3)
    for name in focal:
        (sphere,) = ph.shapes[name]
        assert isinstance(sphere, Sphere) and 10.0 <= 2 * sphere.radius_mm <= 25.0
        # random points throughout the lesion all lie inside one vertebral body
        u = rng.normal(size=(2000, 3))
        p = np.asarray(sphere.center) + sphere.radius_mm * u / np.linalg.norm(u, axis=1, keepdims=True) * \
            rng.uniform(0, 1, (2000, 1)) ** (1 / 3)
        assert any(body.contains(p[:, 0], p[:, 1], p[:, 2]).all() for body in bodies), name
        # the lesion took bone's place: its activity sits where bone was, over soft tissue
        assert ph.volume_ml[name] == pytest.approx(sphere_ml(sphere.radius_mm))
    level = ph.metadata["lesions"]["lesion_L1"]["vertebra"]
    assert level == "L1"


def test_bone_torso_truth_suv_and_fit(torso):
    grid, ph = torso
    a_bq = float(ph.metadata["injected_activity_bq"])
    w_g = float(ph.metadata["body_weight_kg"]) * 1000.0
    assert a_bq == pytest.approx(740e6) and w_g == pytest.approx(70000.0)

    def suv(name: str) -> float:
        return ph.concentration_bq_ml[name] / (a_bq / w_g)

    assert 3.0 <= suv("normal_bone") < 7.4
    for name in ph.regions:
        if name.startswith("lesion_"):
            assert suv(name) > 7.4, name
            assert ph.region_suv(name) == pytest.approx(suv(name))
    assert suv("soft_tissue") < 1.0
    assert suv("bladder") > suv("normal_bone") and suv("kidney_left") > suv("soft_tissue")
    contrasts = sorted(ph.concentration_bq_ml[n] / ph.concentration_bq_ml["normal_bone"]
                       for n in ph.regions if n.startswith("lesion_"))
    assert contrasts == pytest.approx([2.5, 4.0, 6.0])
    assert ph.concentration_bq_ml["degenerative_L4"] > ph.concentration_bq_ml["normal_bone"]
    # bone is denser than tissue in the mu-map; everything lies inside the grid
    bone = ph.regions.mask("normal_bone", 1.0)
    assert bone.any()
    np.testing.assert_allclose(ph.mu_map.data[bone], linear_mu_per_mm("cortical_bone", 140.5), rtol=1e-6)
    for name in ph.regions:
        rast = ph.regions[name].sum(dtype=np.float64) * grid.voxel_volume_ml
        assert rast == pytest.approx(ph.volume_ml[name], rel=0.03), name


def test_bone_torso_fits_128_grid_and_rejects_a_small_one():
    grid = ImageGrid.centered((128, 128, 128), (4.8, 4.8, 4.8))
    ph = bone_torso(grid, lesion_contrasts=(3.0, 5.0), lesion_sites=(("L2", 20.0), ("T11", 14.0)))
    assert {"lesion_L2", "lesion_T11"} <= set(ph.regions)
    assert ph.activity.data.shape == (128, 128, 128)
    with pytest.raises(ValueError, match="does not fit"):
        bone_torso(ImageGrid.centered((32, 32, 32), (4.8, 4.8, 4.8)))
    with pytest.raises(ValueError, match="lesion_contrasts"):
        bone_torso(grid, lesion_contrasts=(2.0,))
    with pytest.raises(ValueError, match="does not fit inside vertebral body"):
        bone_torso(grid, lesion_contrasts=(3.0,), lesion_sites=(("T10", 25.0),))
