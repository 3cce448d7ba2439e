"""DICOM objects recon writes, checked from outside: dciodvfy (dicom3tools) on every kind, SimpleITK and
dcm2niix reading NM and PT geometry and values, SUV and SEG round trips. Volumes are asymmetric on every axis
(shape, spacing, content), so a flipped or swapped axis fails."""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

from recon.data.grid import ImageGrid, Volume
from recon.data.study import DoseInfo, PatientInfo
from recon.io.dicom import read_image_series, write_volume_series
from recon.io.dicom.codes import radionuclide_code
from recon.io.dicom.image_base import SeriesFacts
from recon.io.dicom.nm_recon_write import NMRotation, NMStudyFacts, write_nm_recon

REPO = Path(__file__).resolve().parents[1]
INJECTION = dt.datetime(2026, 11, 25, 8, 0, 0)
REFERENCE = INJECTION + dt.timedelta(hours=3, minutes=7)
PATIENT = PatientInfo(weight_kg=71.5, height_m=1.68, sex="F", patient_id="P7", name="Test^Asym")
TC_DOSE = DoseInfo("Tc-99m", 712e6, INJECTION, "Tc99m MDP", 21624.12)
F_DOSE = DoseInfo("F-18", 312e6, INJECTION, "Fluorodeoxyglucose", 6586.2)
GRID = ImageGrid((9, 12, 15), (4.25, 3.9, 3.3), (-31.7, -12.4, 88.3))


def _asymmetric() -> np.ndarray:
    z, y, x = np.meshgrid(*(np.arange(n, dtype=np.float64) for n in GRID.shape), indexing="ij")
    data = 800.0 + 40.0 * x + 90.0 * y + 170.0 * z
    data[2:4, 3:6, 10:14] = 61000.0  # lesion 1: low z, high x
    data[6:8, 8:11, 2:4] = 93000.0  # lesion 2: high z, low x, high y
    return data.astype(np.float32)


@pytest.fixture(scope="module")
def objects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every kind of object, written once: NM (Bq/mL + SUVbw map), PT series, SEG (NM and PT sources), SR."""
    root = tmp_path_factory.mktemp("dicom_objects")
    vol = Volume(_asymmetric(), GRID, "Bq/mL", frame_of_reference_uid="1.2.826.0.1.3680043.10.511.77")
    suv = Volume(vol.data * 0.0011, GRID, "SUVbw (g/mL)", frame_of_reference_uid=vol.frame_of_reference_uid)
    facts = SeriesFacts(patient=PATIENT, decay_reference_time=REFERENCE, patient_position="FFS")
    study = NMStudyFacts("Tc-99m", TC_DOSE, (("EM", 126.45, 154.55),), NMRotation(180.0, 3.0, "CW", 60, 20.0, 210.0),
                         "LEHR", ("ATTN", "SCAT", "DECY"))
    nm_files = write_nm_recon([(vol, facts), (suv, SeriesFacts(patient=PATIENT, decay_reference_time=REFERENCE,
                                                                series_number=1002))], root / "nm", study)
    rp = {"Radiopharmaceutical": F_DOSE.radiopharmaceutical, "RadionuclideTotalDose": F_DOSE.injected_activity_bq,
          "RadionuclideHalfLife": F_DOSE.half_life_s,
          "RadiopharmaceuticalStartDateTime": INJECTION.strftime("%Y%m%d%H%M%S"),
          "RadiopharmaceuticalStartTime": INJECTION.strftime("%H%M%S"),
          "RadionuclideCodeSequence": [radionuclide_code("F-18")]}
    write_volume_series(vol, root / "pt", modality="PT", radiopharmaceutical=rp, decay_correction="START",
                        decay_reference_time=REFERENCE, patient=PATIENT, frame_duration_s=180.0, decay_factor=2.04)
    out = {"nm": nm_files[0], "nm_suv": nm_files[1], "pt": root / "pt", "pt_slice": root / "pt" / "slice_0001.dcm",
           "vol": vol}
    if _has_highdicom():
        for src in ("nm", "pt"):
            out[f"seg_{src}"], out[f"sr_{src}"] = _seg_and_sr(out[src], root / src, root)
    return out


def _has_highdicom() -> bool:
    try:
        import highdicom  # noqa: F401
    except ImportError:
        return False
    return True


def _seg_and_sr(series: Path, name: Path, root: Path) -> tuple[Path, Path]:
    from recon.cli import main as recon_main

    seg_dir, sr = root / f"seg_{name.name}", root / f"sr_{name.name}.dcm"
    mask = root / f"voi_{name.name}.npy"
    voi = np.zeros(GRID.shape, bool)
    voi[1:8, 2:11, 1:14] = True
    np.save(mask, voi)
    assert recon_main(["-q", "suv", str(series), "--mask", str(mask), "--lesions", "--threshold", "5",
                       "--dicom-seg", str(seg_dir), "--dicom-sr", str(sr)]) == 0
    return seg_dir / "seg.dcm", sr


# ----------------------------------------------------------------------------------------------- dciodvfy

def _dciodvfy() -> str | None:
    found = shutil.which("dciodvfy")
    if found is None and os.environ.get("RECON_REQUIRE_DCIODVFY") == "1":
        pytest.fail("dciodvfy is required here (RECON_REQUIRE_DCIODVFY=1) but not installed")
    return found


@pytest.mark.parametrize("kind", ["nm", "nm_suv", "pt_slice", "seg_nm", "seg_pt", "sr_nm", "sr_pt"])
def test_dciodvfy_reports_no_errors_and_only_documented_warnings(objects: dict, kind: str) -> None:
    tool = _dciodvfy()
    if tool is None:
        pytest.skip("dciodvfy not installed (apt-get install dicom3tools; .ci/run installs it)")
    if kind not in objects:
        pytest.skip("highdicom not installed (pip install 'recon[dicom]')")
    run = subprocess.run([tool, str(objects[kind])], capture_output=True, text=True, check=False)
    lines = [ln.strip() for ln in (run.stdout + run.stderr).splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("Error")]
    assert errors == [], f"{kind}: {errors}"
    documented = (REPO / "docs" / "dicom.md").read_text(encoding="utf-8")
    undocumented = {ln for ln in lines if ln.startswith("Warning") and ln[len("Warning - "):] not in documented}
    assert not undocumented, f"{kind}: warnings not listed in docs/dicom.md: {sorted(undocumented)}"


# --------------------------------------------------------------------------------- SimpleITK and dcm2niix

def _rwv_slope(path: Path) -> float:
    return float(pydicom.dcmread(path, stop_before_pixels=True).RealWorldValueMappingSequence[0].RealWorldValueSlope)


def _check_sitk_image(image, reference: np.ndarray, bound: float) -> None:
    import SimpleITK as sitk

    np.testing.assert_allclose(image.GetOrigin(), GRID.origin_mm, atol=1e-3)
    np.testing.assert_allclose(image.GetSpacing(), GRID.spacing_mm[::-1], atol=1e-3)
    np.testing.assert_allclose(image.GetDirection(), np.eye(3).ravel(), atol=1e-6)
    values = sitk.GetArrayFromImage(image).astype(np.float64)
    assert values.shape == GRID.shape
    assert np.abs(values - reference).max() <= bound


def test_simpleitk_reads_nm_geometry_and_values(objects: dict) -> None:
    sitk = pytest.importorskip("SimpleITK")
    vol = objects["vol"].data.astype(np.float64)
    bound = 1e-4 * vol.max()  # stored precision: slope / 2 = max / 131070
    assert _rwv_slope(objects["nm"]) / 2 <= bound
    _check_sitk_image(sitk.ReadImage(str(objects["nm"])), vol, bound)  # Rescale Slope = the RWV slope


def test_simpleitk_reads_pt_series_geometry_and_values(objects: dict) -> None:
    sitk = pytest.importorskip("SimpleITK")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(objects["pt"])))
    vol = objects["vol"].data.astype(np.float64)
    _check_sitk_image(reader.Execute(), vol, 1e-4 * vol.max())


def _dcm2niix_binary() -> str:
    pytest.importorskip("dcm2niix")
    beside = Path(sys.executable).parent / "dcm2niix"
    found = str(beside) if beside.exists() else shutil.which("dcm2niix")
    if found is None:
        pytest.skip("dcm2niix executable not found")
    return found


def _dcm2niix_values_on_grid(source: Path, out: Path) -> tuple[np.ndarray, np.ndarray]:
    """dcm2niix's NIfTI mapped back onto GRID: (values in our (z, y, x) order, max index misfit in voxels)."""
    import nibabel as nib

    out.mkdir()
    subprocess.run([_dcm2niix_binary(), "-z", "n", "-f", "img", "-o", str(out), str(source)], check=True,
                   capture_output=True)
    img = nib.load(str(out / "img.nii"))
    arr = np.asarray(img.dataobj, dtype=np.float64)
    slope = float(img.header["scl_slope"])
    if np.isfinite(slope) and slope != 0:
        arr = arr * slope + float(img.header["scl_inter"])
    ijk = np.stack(np.meshgrid(*(np.arange(n) for n in arr.shape[:3]), indexing="ij"), -1).reshape(-1, 3)
    ras = ijk @ img.affine[:3, :3].T + img.affine[:3, 3]
    lps = ras * np.array([-1.0, -1.0, 1.0])
    idx_xyz = (lps - np.array(GRID.origin_mm)) / np.array(GRID.spacing_mm[::-1])
    near = np.rint(idx_xyz).astype(np.int64)
    assert (near >= 0).all() and (near < np.array(GRID.shape[::-1])).all(), "dcm2niix voxels outside our grid"
    values = np.full(GRID.shape, np.nan)
    values[near[:, 2], near[:, 1], near[:, 0]] = (arr if arr.ndim == 3 else arr[..., 0]).reshape(-1)
    return values, np.abs(idx_xyz - near).max() * np.array(GRID.spacing_mm[::-1]).max()


@pytest.mark.parametrize("kind", ["nm", "pt"])
def test_dcm2niix_reads_geometry_and_values(objects: dict, kind: str, tmp_path: Path) -> None:
    source = objects["nm"].parent if kind == "nm" else objects["pt"]
    if kind == "nm":  # dcm2niix reads the directory; keep only the Bq/mL object there
        source = tmp_path / "src"
        source.mkdir()
        shutil.copy(objects["nm"], source)
    values, misfit_mm = _dcm2niix_values_on_grid(source, tmp_path / "nii")
    assert misfit_mm <= 1e-3
    assert not np.isnan(values).any()  # every voxel of our grid, once
    # NM: dcm2niix applies the Rescale Slope recon writes beside the Real World Value Mapping (same slope)
    vol = objects["vol"].data.astype(np.float64)
    assert np.abs(values - vol).max() <= 1e-4 * vol.max()


# ------------------------------------------------------------------------------------------ round trips

def _in_memory_suv_factor() -> tuple[float, float]:
    from recon.quant.suv import study_header, suv_factors

    nm = suv_factors(study_header(PATIENT, TC_DOSE, REFERENCE), "bw").factors
    pt = suv_factors(study_header(PATIENT, F_DOSE, REFERENCE), "bw").factors
    return float(nm[0]), float(pt[0])


@pytest.mark.parametrize("kind", ["nm", "pt"])
def test_suv_of_our_output_equals_the_in_memory_suv(objects: dict, kind: str, tmp_path: Path) -> None:
    from recon.cli import main as recon_main
    from recon.quant.suv import suv_volume

    expected = _in_memory_suv_factor()[0 if kind == "nm" else 1]
    back = read_image_series(objects[kind])
    suv_back, conv = suv_volume(back.volume, back.header, "bw", slice_axis=back.slice_axis,
                                slice_order=back.slice_order)
    np.testing.assert_allclose(conv.factors, expected, rtol=1e-6)
    vol = objects["vol"].data.astype(np.float64)
    np.testing.assert_allclose(suv_back.data, vol * expected, rtol=0, atol=1e-4 * vol.max() * expected)
    report = tmp_path / "r.json"
    assert recon_main(["-q", "suv", str(objects[kind]), "--json", str(report)]) == 0
    voi = json.loads(report.read_text())["voi"]
    assert voi["max"] == pytest.approx(float(suv_back.data.max()), rel=1e-6)
    assert voi["max"] == pytest.approx(vol.max() * expected, rel=1e-4)


def test_nm_suv_map_reads_back_as_suvbw(objects: dict) -> None:
    back = read_image_series(objects["nm_suv"])
    assert back.header.units == "GML" and back.volume.unit == "g/mL"
    expected = objects["vol"].data.astype(np.float64) * 0.0011
    assert np.abs(back.volume.data - expected).max() <= expected.max() / 65535.0 * 0.5 * (1 + 1e-6)
    ds = pydicom.dcmread(objects["nm_suv"], stop_before_pixels=True)
    assert ds.RealWorldValueMappingSequence[0].MeasurementUnitsCodeSequence[0].CodeValue == "{SUVbw}g/ml"


@pytest.mark.parametrize("src", ["nm", "pt"])
def test_seg_masks_read_back_equal_the_masks_written(objects: dict, src: str, tmp_path: Path) -> None:
    pytest.importorskip("highdicom")
    from recon.cli import main as recon_main
    from recon.io.dicom.seg import read_seg_masks

    masks = read_seg_masks(objects[f"seg_{src}"], GRID)
    assert [label for label, _ in masks.values()][:1] == [f"VOI voi_{src}.npy"]
    voi = np.zeros(GRID.shape, bool)
    voi[1:8, 2:11, 1:14] = True
    np.testing.assert_array_equal(masks[1][1], voi)
    lesion1 = np.zeros(GRID.shape, bool)
    lesion1[2:4, 3:6, 10:14] = True
    lesion2 = np.zeros(GRID.shape, bool)
    lesion2[6:8, 8:11, 2:4] = True
    found = [m for n, (_, m) in masks.items() if n > 1]
    assert len(found) == 2
    assert any(np.array_equal(m, lesion1) for m in found) and any(np.array_equal(m, lesion2) for m in found)
    report = tmp_path / "seg.json"
    assert recon_main(["-q", "suv", str(objects[src]), "--mask", str(objects[f"seg_{src}"]), "--segment", "1",
                       "--json", str(report)]) == 0
    assert json.loads(report.read_text())["voi"]["n_voxels"] == int(voi.sum())


def test_sr_holds_each_lesion_measurement(objects: dict) -> None:
    pytest.importorskip("highdicom")
    ds = pydicom.dcmread(objects["sr_nm"])
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
    text = str(ds)
    assert text.count("126401") == 6  # SUVbw max, peak, mean for two lesions
    for code in ("56851009", "373098007", "126031", "118565006", "{SUVbw}g/ml", "CUTOFF-7.4", "CUTOFF-11.26"):
        assert code in text
    seg = pydicom.dcmread(objects["seg_nm"], stop_before_pixels=True)
    assert seg.SOPInstanceUID in text  # the SR references the SEG
    nm = pydicom.dcmread(objects["nm"], stop_before_pixels=True)
    ref = seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0]
    assert ref.ReferencedSOPInstanceUID == nm.SOPInstanceUID  # the SEG references the NM file itself


def test_nm_object_carries_the_required_sequences(objects: dict) -> None:
    ds = pydicom.dcmread(objects["nm"], stop_before_pixels=True)
    assert list(ds.ImageType) == ["ORIGINAL", "PRIMARY", "RECON TOMO", "EMISSION"]
    assert int(ds.NumberOfFrames) == int(ds.NumberOfSlices) == GRID.shape[0]
    assert ds.FrameIncrementPointer == 0x00540080 and list(ds.SliceVector) == list(range(1, GRID.shape[0] + 1))
    det = ds.DetectorInformationSequence[0]
    np.testing.assert_allclose([float(v) for v in det.ImagePositionPatient], GRID.origin_mm)
    assert "ImagePositionPatient" not in ds and "Units" not in ds and "PatientPosition" not in ds
    assert ds.PatientGantryRelationshipCodeSequence[0].CodeMeaning == "feet-first"
    assert ds.PatientOrientationCodeSequence[0].PatientOrientationModifierCodeSequence[0].CodeMeaning == "supine"
    window = ds.EnergyWindowInformationSequence[0].EnergyWindowRangeSequence[0]
    assert float(window.EnergyWindowLowerLimit) == 126.45 and float(window.EnergyWindowUpperLimit) == 154.55
    rp = ds.RadiopharmaceuticalInformationSequence[0]
    assert float(rp.RadionuclideTotalDose) == pytest.approx(712.0)  # NM: MBq
    assert rp.RadionuclideCodeSequence[0].CodeMeaning == "^99m^Technetium"
    rot = ds.RotationInformationSequence[0]
    assert rot.RotationDirection == "CW" and int(rot.NumberOfFramesInRotation) == 60
    assert ds.RealWorldValueMappingSequence[0].MeasurementUnitsCodeSequence[0].CodeValue == "Bq/ml"
    assert "DECY" in ds.CorrectedImage and ds.PixelRepresentation == 0


def test_dicom_out_directory_is_refused_when_not_empty(tmp_path: Path) -> None:
    vol = Volume(_asymmetric(), GRID, "Bq/mL")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x").write_text("x")
    with pytest.raises(FileExistsError, match="not an empty directory"):
        write_nm_recon(vol, tmp_path / "d", NMStudyFacts())
    with pytest.raises(FileExistsError, match="not an empty directory"):
        write_volume_series(vol, tmp_path / "d")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]  # no temp directory left behind


def test_recon_spect_dicom_out_writes_clean_nm_objects(tmp_path: Path) -> None:
    """recon spect --dicom-out on an NM acquisition: nm_recon.dcm and nm_suvbw.dcm, dciodvfy-clean, on the
    output grid, with the acquisition's window, rotation and typed patient/dose data."""
    from recon.cli import main as recon_main
    from recon.io.hdf5 import read_volume
    from tests.test_patient_placement import RECON, _hand_built_nm

    nm = _hand_built_nm(tmp_path / "nm.dcm", attenuate=False)
    out = tmp_path / "dicom"
    assert recon_main(["-q", "spect", str(nm), "-o", str(tmp_path / "r.h5"), "--no-attenuation", *RECON,
                       "--calibration", "91", "--dicom-out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["nm_recon.dcm", "nm_suvbw.dcm"]
    h5 = read_volume(tmp_path / "r.h5")
    back = read_image_series(out / "nm_recon.dcm")
    assert back.volume.grid.same_as(h5.grid, tol_mm=1e-3)
    assert np.abs(back.volume.data - h5.data).max() <= h5.data.max() / 65535.0 * 0.5 * (1 + 1e-6)
    ds = pydicom.dcmread(out / "nm_recon.dcm", stop_before_pixels=True)
    assert len(ds.EnergyWindowInformationSequence) == 1 and len(ds.RotationInformationSequence) == 1
    assert float(ds.PatientWeight) > 0 and ds.RadiopharmaceuticalInformationSequence[0].RadionuclideTotalDose
    tool = _dciodvfy()
    if tool is None:
        pytest.skip("dciodvfy not installed")
    documented = (REPO / "docs" / "dicom.md").read_text(encoding="utf-8")
    for name in ("nm_recon.dcm", "nm_suvbw.dcm"):
        run = subprocess.run([tool, str(out / name)], capture_output=True, text=True, check=False)
        lines = [ln.strip() for ln in (run.stdout + run.stderr).splitlines() if ln.strip()]
        assert [ln for ln in lines if ln.startswith("Error")] == [], name
        assert all(ln[len("Warning - "):] in documented for ln in lines if ln.startswith("Warning")), lines


def test_dicom_seg_and_sr_options_are_checked_before_compute(objects: dict, tmp_path: Path, capsys) -> None:
    from recon.cli import main as recon_main

    nm = str(objects["nm"])
    assert recon_main(["-q", "suv", nm, "--dicom-sr", str(tmp_path / "sr.dcm")]) == 2
    assert "--dicom-sr needs --lesions and --dicom-seg" in capsys.readouterr().err
    assert recon_main(["-q", "suv", nm, "--lesions", "--suv-type", "ibw", "--dicom-seg", str(tmp_path / "s"),
                       "--dicom-sr", str(tmp_path / "sr.dcm")]) == 2
    assert "SUVbw" in capsys.readouterr().err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    assert recon_main(["-q", "suv", nm, "--lesions", "--dicom-seg", str(tmp_path / "full")]) == 2
    assert "not an empty directory" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full"]


@pytest.mark.parametrize(("slope", "message"), [(0.0, "must be finite with a non-zero slope"),
                                                (float("nan"), "has no RealWorldValueSlope")])
def test_a_broken_real_world_value_slope_is_refused(objects: dict, tmp_path: Path, slope: float,
                                                    message: str) -> None:
    from recon.io.dicom import DicomFormatError
    from recon.io.dicom.nm_recon import read_nm_recon

    ds = pydicom.dcmread(objects["nm"])
    ds.RealWorldValueMappingSequence[0].RealWorldValueSlope = slope
    ds.save_as(tmp_path / "bad.dcm")
    with pytest.raises(DicomFormatError, match=message):
        read_nm_recon(tmp_path / "bad.dcm")


def test_a_seg_of_another_frame_of_reference_is_refused(objects: dict) -> None:
    pytest.importorskip("highdicom")
    from recon.io.dicom import DicomFormatError
    from recon.io.dicom.seg import read_seg_masks

    assert read_seg_masks(objects["seg_nm"], GRID, objects["vol"].frame_of_reference_uid)
    with pytest.raises(DicomFormatError, match="another study or needs registration"):
        read_seg_masks(objects["seg_nm"], GRID, "1.2.3.4.5")
