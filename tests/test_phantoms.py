"""Phantoms against analytic truth: volumes, positions, materials, painter's composition."""
from __future__ import annotations

import math

import numpy as np
import pytest

from recon.data import ImageGrid
from recon.data.materials import linear_mu_per_mm
from recon.phantoms.library import (
    BONE_TORSO_INJECTED_MBQ,
    BONE_TORSO_WEIGHT_KG,
    IEC_SPHERE_DIAMETERS_MM,
    bone_torso,
    iec_sphere_centers_mm,
    nema_iec_body,
    uniform_cylinder,
)
from recon.phantoms.shapes import EllipticCylinder, Sphere, rasterize


@pytest.mark.parametrize("radius_mm", [8.0, 13.0, 30.0])
def test_rasterised_sphere_volume_and_centroid(radius_mm):
    grid = ImageGrid.centered((32, 32, 32), (4.0, 4.0, 4.0))
    center = (3.3, -5.1, 7.7)  # off the voxel lattice
    frac = rasterize(Sphere(center, radius_mm), grid, subsamples=6)
    volume = frac.sum() * grid.voxel_volume_ml
    assert volume == pytest.approx(4 / 3 * math.pi * radius_mm**3 / 1000, rel=0.01)
    zyx = np.indices(grid.shape).reshape(3, -1)
    centroid = grid.index_to_mm((zyx * frac.ravel()).sum(axis=1) / frac.sum())
    np.testing.assert_allclose(centroid, center, atol=0.05 * 4.0)


def test_uniform_cylinder_volume_mu_and_activity():
    grid = ImageGrid.centered((40, 48, 48), (5.0, 5.0, 5.0))
    ph = uniform_cylinder(grid, 80.0, 150.0, 1e4)
    assert ph.regions["cylinder"].sum() * grid.voxel_volume_ml == pytest.approx(math.pi * 80**2 * 150 / 1000,
                                                                                  rel=0.01)
    inside = ph.regions["cylinder"] == 1.0
    np.testing.assert_allclose(ph.mu_map.data[inside], linear_mu_per_mm("water", 140.5), rtol=1e-6)
    np.testing.assert_allclose(ph.activity.data[inside], 1e4, rtol=1e-6)
    assert ph.activity.unit == "Bq/mL" and ph.mu_map.unit == "1/mm"


def test_iec_spheres_volumes_ratio_and_positions():
    grid = ImageGrid.centered((48, 80, 80), (4.8, 4.8, 4.8))
    ph = nema_iec_body(grid, sphere_to_background=8.0, background_bq_ml=2000.0)
    centers = iec_sphere_centers_mm()
    for d in IEC_SPHERE_DIAMETERS_MM:
        name = f"sphere_{d:.0f}"
        assert ph.volume_ml[name] == pytest.approx(4 / 3 * math.pi * (d / 2) ** 3 / 1000, rel=1e-9)
        assert ph.regions[name].sum() * grid.voxel_volume_ml == pytest.approx(ph.volume_ml[name], rel=0.02)
        assert ph.concentration_bq_ml[name] == pytest.approx(16000.0)
        assert math.hypot(centers[d][0], centers[d][1]) == pytest.approx(57.2)
    assert ph.concentration_bq_ml["lung_insert"] == 0.0
    # body interior: half disc r 147 + 140 x 77 rectangle + two quarter discs r 77, 180 mm long
    body_ml = (math.pi * 147**2 / 2 + 140 * 77 + math.pi * 77**2 / 2) * 180 / 1000
    total = sum(f.sum() for f in ph.regions.values()) * grid.voxel_volume_ml
    assert total == pytest.approx(body_ml, rel=0.01)


def test_painter_keeps_fractions_consistent():
    grid = ImageGrid.centered((20, 20, 20), (5.0, 5.0, 5.0))
    from recon.phantoms.phantom import PhantomBuilder

    b = PhantomBuilder(grid, 140.5)
    b.paint("big", EllipticCylinder.circular((0, 0, 0), 40.0, 80.0), 100.0, 0.01)
    b.paint("small", Sphere((0, 0, 0), 15.0), 500.0, 0.02)
    ph = b.build()
    total = ph.regions["big"] + ph.regions["small"]
    assert total.max() <= 1.0 + 1e-6
    np.testing.assert_allclose(ph.activity.data, 100.0 * ph.regions["big"] + 500.0 * ph.regions["small"], rtol=1e-5,
                               atol=1e-3)


def test_bone_torso_lesions_sit_in_bone_and_truth_suv_straddles_cutoffs():
    grid = ImageGrid.centered((64, 64, 64), (9.6, 9.6, 9.6))
    ph = bone_torso(grid)
    suv_unit = BONE_TORSO_INJECTED_MBQ * 1e6 / (BONE_TORSO_WEIGHT_KG * 1000)
    for name in ph.regions:
        if name.startswith("lesion_L") or name.startswith("lesion_T"):
            vertebra = "vertebra_" + name.split("_")[1]
            # the lesion lies inside its vertebral body: painting it removed bone there
            assert ph.volume_ml[vertebra] > ph.regions[vertebra].sum() * grid.voxel_volume_ml
    metastases = [n for n in ph.regions if n.startswith("lesion_")]
    assert len(metastases) >= 3
    for n in metastases:
        assert ph.concentration_bq_ml[n] / suv_unit > 11.26
    degenerative = ph.concentration_bq_ml["degenerative_L4"] / suv_unit
    assert 7.40 < degenerative < 11.26
    assert ph.concentration_bq_ml["vertebra_L2"] / suv_unit < 7.40
    with pytest.raises(ValueError, match="leaves the grid|outside|does not fit"):
        bone_torso(ImageGrid.centered((32, 32, 32), (4.8, 4.8, 4.8)))
