"""``recon demo --modality pet`` at its reduced size: every output written, the lesions found, their
SUVmax ordered like the truth, and the NaF phantom's pieces (crop, uptake) checked on their own."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from recon.cli import main as recon_main
from recon.data.grid import ImageGrid
from recon.phantoms.naf import NAF_SUV, NAF_SUV1_BQ_ML, crop_phantom, naf_bone_torso


def test_crop_phantom_keeps_values_and_refuses_misaligned_grids() -> None:
    big = ImageGrid.centered((150, 36, 48), (8.0, 8.0, 8.0))
    ph = naf_bone_torso(big, subsamples=2)
    assert ph.energy_kev == 511.0
    assert ph.concentration_bq_ml["normal_bone"] == pytest.approx(NAF_SUV["normal_bone"] * NAF_SUV1_BQ_ML)
    assert ph.suv_bw(ph.concentration_bq_ml["lesion_T10"]) == pytest.approx(36.0)
    sub = ImageGrid((30, 36, 48), big.spacing_mm, (big.origin_mm[0], big.origin_mm[1], big.origin_mm[2] + 60 * 8.0))
    cropped = crop_phantom(ph, sub)
    np.testing.assert_array_equal(cropped.activity.data, ph.activity.data[60:90])
    np.testing.assert_array_equal(cropped.mu_map.data, ph.mu_map.data[60:90])
    assert "bladder" not in cropped.regions  # far below the kept slab
    for name in cropped.regions:
        np.testing.assert_array_equal(cropped.regions[name], ph.regions[name][60:90])
    with pytest.raises(ValueError, match="not aligned"):
        crop_phantom(ph, ImageGrid(sub.shape, sub.spacing_mm, (sub.origin_mm[0] + 3.0, *sub.origin_mm[1:])))
    with pytest.raises(ValueError, match="not inside"):
        crop_phantom(ph, ImageGrid((200, 36, 48), big.spacing_mm, big.origin_mm))


def test_pet_demo_small_finds_the_lesions_in_order(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    # --scatter none keeps CI short (SSS inside the reconstruction is tested in test_pet_model; the demo's
    # default runs it); the data still hold 30 % scatter, so this also shows the lesions stand out without it
    assert recon_main(["-q", "demo", "--modality", "pet", "--size", "64", "--scatter", "none", "--out", str(out)]) == 0
    for name in ("sinogram.h5", "recon_bqml.h5", "suvbw.h5", "overview.png", "report.json"):
        assert (out / f"demo_pet_{name}").stat().st_size > 0
    report = json.loads((out / "demo_pet_report.json").read_text())
    rows = {r["region"]: r for r in report["regions"]}
    focal = [n for n in rows if n.startswith(("lesion_", "degenerative_"))]
    assert sorted(focal) == ["degenerative_L4", "lesion_L1", "lesion_L3", "lesion_T10"]
    bone = rows["normal_bone"]["suv_mean"]
    assert 0.6 * 6.0 < bone < 1.3 * 6.0
    for name in focal:  # every focus stands out of normal bone
        assert rows[name]["suv_max"] > 1.3 * bone, (name, rows[name]["suv_max"], bone)
    by_truth = sorted(focal, key=lambda n: rows[n]["true_suv"])
    measured = [rows[n]["suv_max"] for n in by_truth]
    assert measured == sorted(measured), list(zip(by_truth, measured))
    # a second run refuses to overwrite, before any compute
    assert recon_main(["-q", "demo", "--modality", "pet", "--size", "64", "--out", str(out)]) == 2


def test_pet_demo_refuses_spect_scatter_methods(tmp_path: Path) -> None:
    assert recon_main(["-q", "demo", "--modality", "pet", "--scatter", "tew", "--out", str(tmp_path / "d")]) == 2
    assert not (tmp_path / "d").exists()
