"""SUV digital reference objects (Vacha et al.), read in place from ../shared/reference/suv-dro.

Inside each DRO's mask the correct SUVbw has min 0.20, median 1.00, max 4.00
(DRO_list.csv). Every case must match within 0.5 %. The mask is a NIfTI file
mapped onto the PET grid through its own affine, which also checks the
reader's geometry against an independent writer.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from recon.io.dicom import read_image_series
from recon.quant.suv import suv_volume
from recon.io.nifti import read_nifti, resample_to_grid

DRO_ROOT = Path(__file__).parents[1] / ".." / "shared" / "reference" / "suv-dro"

pytestmark = pytest.mark.skipif(not (DRO_ROOT / "DRO_list.csv").is_file(), reason=f"SUV DROs not found at {DRO_ROOT}")


def _cases() -> list[dict[str, str]]:
    if not (DRO_ROOT / "DRO_list.csv").is_file():
        return []
    with open(DRO_ROOT / "DRO_list.csv", newline="", encoding="utf-8") as fh:
        return [row for row in csv.DictReader(fh) if (DRO_ROOT / row["ID"]).is_dir()]


CASES = _cases()

# DRO_2_3 stores SUVbsa (Units CM2ML) as int16 with RescaleSlope 0.01, i.e. values
# 0.05 / 0.26 / 1.05 for true SUVbsa 0.0528 / 0.264 / 1.056 (Du Bois BSA 1.848 m^2,
# 70 kg): the stored numbers are truncated by up to 5 % of the smallest value, so no
# correct conversion can reach 0.5 % there. That case is checked against its own
# quantisation step instead, and the 0.5 % check is an expected failure (strict).
QUANTISED = {"DRO_2_3"}


def _suv_in_mask(case_id: str) -> tuple[np.ndarray, float]:
    d = DRO_ROOT / case_id
    series = read_image_series(d / "PT", modalities=("PT",))
    vol, _ = suv_volume(series.volume, series.header, "bw", slice_axis=series.slice_axis,
                        slice_order=series.slice_order)
    masks = sorted((d / "mask").glob("*.nii*"))
    assert masks, f"{case_id}: no mask"
    mask = resample_to_grid(read_nifti(masks[0]), vol.grid) > 0
    assert mask.any()
    step = _cm2ml_step(d) if case_id in QUANTISED else 0.0
    return vol.data[mask], step


def _cm2ml_step(d: Path) -> float:
    """One stored unit of a CM2ML series in SUVbw: RescaleSlope x W(g) / BSA(cm^2), Du Bois BSA."""
    import pydicom

    ds = pydicom.dcmread(sorted((d / "PT").glob("*.dcm"))[0], stop_before_pixels=True)
    w, h_cm = float(ds.PatientWeight), 100.0 * float(ds.PatientSize)
    bsa_cm2 = 0.007184 * w**0.425 * h_cm**0.725 * 1e4
    return float(ds.RescaleSlope) * w * 1000.0 / bsa_cm2


def _expected(row: dict[str, str]) -> tuple[float, float, float]:
    return float(row["SUVmin_expected"]), float(row["SUVmed_expected"]), float(row["SUVmax_expected"])


def test_dro_list_is_complete():
    assert len(CASES) >= 11, [c["ID"] for c in CASES]


@pytest.mark.parametrize(
    "row",
    [pytest.param(r, id=r["ID"], marks=pytest.mark.xfail(strict=True, reason="DRO quantised by its RescaleSlope"))
     if r["ID"] in QUANTISED else pytest.param(r, id=r["ID"]) for r in CASES],
)
def test_dro_suv_within_half_percent(row):
    vals, _ = _suv_in_mask(row["ID"])
    got = (float(vals.min()), float(np.median(vals)), float(vals.max()))
    for g, e, name in zip(got, _expected(row), ("min", "median", "max")):
        assert g == pytest.approx(e, rel=0.005), f"{row['ID']} {row['Description']}: SUV {name} {g:.4f} != {e}"


@pytest.mark.parametrize("row", [r for r in CASES if r["ID"] in QUANTISED], ids=lambda r: r["ID"])
def test_quantised_dro_within_one_stored_unit(row):
    vals, step = _suv_in_mask(row["ID"])
    got = (float(vals.min()), float(np.median(vals)), float(vals.max()))
    for g, e in zip(got, _expected(row)):
        assert abs(g - e) <= step, (g, e, step)


def test_mask_geometry_matches_series():
    """The DRO mask (RAS sform) lands on the PET grid voxel for voxel and covers exactly the non-zero region."""
    d = DRO_ROOT / "DRO_0_0"
    series = read_image_series(d / "PT", modalities=("PT",))
    img = read_nifti(d / "mask" / "DRO_mask.nii.gz")
    mask = resample_to_grid(img, series.volume.grid) > 0
    np.testing.assert_array_equal(mask, img.to_zyx() > 0)
    assert np.all(series.volume.data[~mask] == 0) and np.all(series.volume.data[mask] > 0)


def test_cli_report_on_a_dro(tmp_path, capsys):
    import argparse
    import json

    from recon.commands import suv as suv_cmd

    parser = argparse.ArgumentParser(prog="recon")
    suv_cmd.register(parser.add_subparsers())
    d = DRO_ROOT / "DRO_3_3"
    out = tmp_path / "r.json"
    args = parser.parse_args(["suv", str(d / "PT"), "--mask", str(d / "mask" / "DRO_mask.nii.gz"), "--lesions",
                              "--threshold", "3", "--json", str(out)])
    assert suv_cmd.run(args) == 0
    rep = json.loads(out.read_text())
    assert rep["voi"]["max"] == pytest.approx(4.0, rel=0.005)
    assert rep["voi"]["median"] == pytest.approx(1.0, rel=0.005)
    assert rep["voi"]["min"] == pytest.approx(0.2, rel=0.005)
    assert len(rep["lesions"]["table"]) == 1  # the hot sphere
    assert all(c["relation"] == "below cut-off" for c in rep["lesions"]["table"][0]["cutoffs"])
    assert "SUVmax" in capsys.readouterr().out
