"""DICOM NM multi-frame SPECT projections: vendor-layout round trips, the angle convention, errors."""
from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from recon.data.collimator import Collimator, get_collimator
from recon.data.spect import EnergyWindow, SPECTAcquisition, SPECTGeometry
from recon.io.dicom import (
    DicomFormatError,
    dicom_angle_to_recon_deg,
    read_nm,
    recon_angle_to_dicom_deg,
    write_nm,
)

N_ROWS, N_COLS = 7, 5  # deliberately unequal so row/column mix-ups show


def _acquisition(rng: np.random.Generator, angles: np.ndarray, collimator: str = "SY-LEHR") -> SPECTAcquisition:
    nv = angles.size
    geometry = SPECTGeometry(angles, 180.0 + rng.uniform(0.0, 80.0, nv), N_ROWS, N_COLS, 4.7952, 4.7952)
    windows = (EnergyWindow("EM", 126.45, 154.55), EnergyWindow("SC", 108.5, 126.45))
    counts = {w.name: rng.poisson(40.0, (nv, N_ROWS, N_COLS)).astype(np.float32) for w in windows}
    return SPECTAcquisition(
        counts, windows, "EM", geometry, get_collimator(collimator), 12.5,
        center_mm=(1.5, -20.0, 85.0),
    )


def _assert_same(a: SPECTAcquisition, b: SPECTAcquisition) -> None:
    assert [w.name for w in b.windows] == [w.name for w in a.windows]
    for wa, wb in zip(a.windows, b.windows):
        assert (wa.lower_kev, wa.upper_kev) == (wb.lower_kev, wb.upper_kev)
    for name in a.counts:
        np.testing.assert_array_equal(b.counts[name], a.counts[name])
    np.testing.assert_allclose(b.geometry.angles_deg, np.mod(a.geometry.angles_deg, 360.0), rtol=0, atol=1e-9)
    np.testing.assert_allclose(b.geometry.radius_mm, a.geometry.radius_mm, rtol=1e-12)
    assert b.frame_duration_s == a.frame_duration_s
    assert b.photopeak == a.photopeak
    assert b.collimator == a.collimator
    assert b.geometry.pixel_size_mm == a.geometry.pixel_size_mm
    assert b.geometry.slice_thickness_mm == a.geometry.slice_thickness_mm
    assert b.radionuclide == "Tc-99m"


@pytest.mark.parametrize("vendor", ["siemens", "ge"])
def test_round_trip_vendor_layout(tmp_path: Path, vendor: str) -> None:
    rng = np.random.default_rng(3)
    acq = _acquisition(rng, np.arange(16) * 22.5, "SY-LEHR" if vendor == "siemens" else "GI-LEHR")
    path = write_nm(acq, tmp_path / f"{vendor}.dcm", vendor)
    back = read_nm(path)
    _assert_same(acq, back)
    np.testing.assert_allclose(back.center_mm, (1.5, -20.0, 85.0), atol=1e-9)
    grid = back.image_grid
    np.testing.assert_allclose(grid.center_mm, (1.5, -20.0, 85.0), atol=1e-9)

    ds = pydicom.dcmread(path)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.20"
    assert ds.NumberOfFrames == 2 * 16 and ds.NumberOfDetectors == 2
    assert [int(t) for t in ds.FrameIncrementPointer] == [0x00540010, 0x00540020, 0x00540050, 0x00540090]
    assert ds.DetectorInformationSequence[0].CollimatorGridName == "LEHR"
    # our angles 0, 22.5, ... increase: CW by the standard; detector 1 starts anterior = DICOM 180
    assert ds.RotationInformationSequence[0].RotationDirection == "CW"
    assert float(ds.DetectorInformationSequence[0].StartAngle) == 180.0
    assert float(ds.DetectorInformationSequence[1].StartAngle) == 0.0
    # first stored row is the most superior: our last row
    np.testing.assert_array_equal(ds.pixel_array[0], acq.counts["EM"][0][::-1])


def test_round_trip_counter_clockwise_orbit(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    acq = _acquisition(rng, np.mod(90.0 - np.arange(12) * 30.0, 360.0))
    path = write_nm(acq, tmp_path / "cc.dcm", "siemens", n_detectors=2)
    assert pydicom.dcmread(path).RotationInformationSequence[0].RotationDirection == "CC"
    _assert_same(acq, read_nm(path))


def test_non_integer_counts_stored_with_slope(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rng = np.random.default_rng(5)
    acq = _acquisition(rng, np.arange(8) * 45.0)
    counts = {k: v * 1.37 for k, v in acq.counts.items()}
    acq = SPECTAcquisition(counts, acq.windows, "EM", acq.geometry, acq.collimator, acq.frame_duration_s)
    with caplog.at_level(logging.WARNING):
        back = read_nm(write_nm(acq, tmp_path / "f.dcm", "ge"))
    assert "RescaleSlope" in caplog.text
    slope = float(pydicom.dcmread(tmp_path / "f.dcm").RescaleSlope)
    for k in counts:
        assert np.abs(back.counts[k] - counts[k]).max() <= slope / 2 * (1 + 1e-6)


def test_angle_mapping_is_an_involution() -> None:
    theta = np.array([0.0, 45.0, 90.0, 180.0, 270.0, 359.5])
    np.testing.assert_allclose(dicom_angle_to_recon_deg(recon_angle_to_dicom_deg(theta)), theta, atol=1e-12)
    # DICOM 0 = patient's back, 90 = patient's left, 180 = anterior -> ours 180, 90, 0
    np.testing.assert_allclose(dicom_angle_to_recon_deg([0.0, 90.0, 180.0, 270.0]), [180.0, 90.0, 0.0, 270.0])


# ----------------------------------------------------------------------------- a hand-built file


def _hand_built(n_per_det: int = 3, step: float = 60.0, shuffle: bool = True) -> tuple[Dataset, np.ndarray]:
    """Two detectors, CW, detector 1 starting at the patient's back (DICOM 0), detector 2 anterior (180).

    Frames are stored in a shuffled order; each frame's value tells (window, detector, view).
    """
    n_win, n_det = 1, 2
    n_frames = n_win * n_det * n_per_det
    ids = [(1, d + 1, 1, k + 1) for d in range(n_det) for k in range(n_per_det)]
    order = np.random.default_rng(7).permutation(n_frames) if shuffle else np.arange(n_frames)
    ids = [ids[i] for i in order]
    frames = np.zeros((n_frames, 4, 3), dtype=np.uint16)
    for f, (_, d, _, k) in enumerate(ids):
        frames[f] = 10 * d + k
        frames[f, 0, 0] = 1000  # marks the first stored row (superior)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.20"
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.20"
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.Modality = "NM"
    ds.Manufacturer = "SIEMENS NM"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "TOMO", "EMISSION"]
    ds.PatientPosition = "HFS"
    ds.Rows, ds.Columns = 4, 3
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelSpacing = [4.0, 3.0]
    ds.NumberOfFrames = n_frames
    ds.FrameIncrementPointer = [0x00540010, 0x00540020, 0x00540050, 0x00540090]
    ds.EnergyWindowVector = [i[0] for i in ids]
    ds.DetectorVector = [i[1] for i in ids]
    ds.RotationVector = [i[2] for i in ids]
    ds.AngularViewVector = [i[3] for i in ids]
    ds.NumberOfEnergyWindows, ds.NumberOfDetectors, ds.NumberOfRotations = n_win, n_det, 1
    rng_item = Dataset()
    rng_item.EnergyWindowLowerLimit, rng_item.EnergyWindowUpperLimit = 129.0, 150.0
    ew = Dataset()
    ew.EnergyWindowName = "TC99M"
    ew.EnergyWindowRangeSequence = Sequence([rng_item])
    ds.EnergyWindowInformationSequence = Sequence([ew])
    dets = []
    for start in (0.0, 180.0):
        det = Dataset()
        det.StartAngle = start
        det.CollimatorGridName = "LEHR"
        det.RadialPosition = [200.0 + i for i in range(n_per_det)]
        det.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
        dets.append(det)
    ds.DetectorInformationSequence = Sequence(dets)
    rot = Dataset()
    rot.StartAngle = 0.0
    rot.AngularStep = step
    rot.RotationDirection = "CW"
    rot.ScanArc = step * n_per_det
    rot.NumberOfFramesInRotation = n_per_det
    rot.ActualFrameDuration = 20000
    ds.RotationInformationSequence = Sequence([rot])
    ds.PixelData = frames.astype("<u2").tobytes()
    return ds, frames


def _expected_theta(start_deg: float, k: np.ndarray, step: float, direction: str) -> np.ndarray:
    """Our angle from the standard's words, by geometry: detector at p(phi) = (sin phi, cos phi) in LPS
    (0 = back, +y; 90 = patient's left, +x), CW seen from the feet makes phi fall; ours has the detector
    at n(theta) = (sin theta, -cos theta)."""
    phi = np.radians(start_deg + (-1.0 if direction == "CW" else 1.0) * k * step)
    px, py = np.sin(phi), np.cos(phi)
    return np.mod(np.degrees(np.arctan2(px, -py)), 360.0)


def test_hand_built_two_detectors_clockwise(tmp_path: Path) -> None:
    ds, _ = _hand_built()
    ds.save_as(tmp_path / "hand.dcm", enforce_file_format=True)
    acq = read_nm(tmp_path / "hand.dcm")
    k = np.arange(3)
    expected = np.concatenate([_expected_theta(0.0, k, 60.0, "CW"), _expected_theta(180.0, k, 60.0, "CW")])
    expected[np.isclose(expected, 360.0)] = 0.0
    np.testing.assert_allclose(acq.geometry.angles_deg, expected, atol=1e-9)
    # in words: detector 1 starts behind the patient (our 180) and turns clockwise seen from the feet,
    # i.e. towards the patient's right (our 270); detector 2 starts anterior (our 0)
    np.testing.assert_allclose(acq.geometry.angles_deg, [180.0, 240.0, 300.0, 0.0, 60.0, 120.0], atol=1e-9)
    np.testing.assert_array_equal(acq.geometry.radius_mm, [200, 201, 202, 200, 201, 202])
    assert acq.frame_duration_s == 20.0
    assert acq.collimator.name == "SY-LEHR"
    assert acq.photopeak == "TC99M"
    proj = acq.counts["TC99M"]
    for v, (d, kk) in enumerate([(1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (2, 3)]):
        assert proj[v, 0, 1] == 10 * d + kk  # the shuffled frames land on their views
        assert proj[v, -1, 0] == 1000  # first stored row became our last (most superior) row


def test_single_radial_position_falls_back_with_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ds, _ = _hand_built()
    for det in ds.DetectorInformationSequence:
        del det.RadialPosition
    ds.RotationInformationSequence[0].RadialPosition = 250.0
    ds.save_as(tmp_path / "r.dcm", enforce_file_format=True)
    with caplog.at_level(logging.WARNING):
        acq = read_nm(tmp_path / "r.dcm")
    np.testing.assert_array_equal(acq.geometry.radius_mm, 250.0)
    assert "RadialPosition" in caplog.text


# ----------------------------------------------------------------------------- errors


def _save(ds: Dataset, path: Path) -> Path:
    ds.save_as(path, enforce_file_format=True)
    return path


def test_error_inconsistent_frame_counts(tmp_path: Path) -> None:
    ds, _ = _hand_built()
    ds.NumberOfFrames = 5
    with pytest.raises(DicomFormatError, match=r"inconsistent frame counts.*NumberOfFrames"):
        read_nm(_save(ds, tmp_path / "a.dcm"))
    ds, _ = _hand_built()
    ds.RotationInformationSequence[0].NumberOfFramesInRotation = 4
    with pytest.raises(DicomFormatError, match="inconsistent frame counts"):
        read_nm(_save(ds, tmp_path / "b.dcm"))


@pytest.mark.parametrize(
    ("remove", "named"),
    [
        (lambda ds: delattr(ds.RotationInformationSequence[0], "AngularStep"), "AngularStep"),
        (lambda ds: delattr(ds.RotationInformationSequence[0], "RotationDirection"), "RotationDirection"),
        (lambda ds: delattr(ds, "EnergyWindowInformationSequence"), "EnergyWindowInformationSequence"),
        (lambda ds: delattr(ds.DetectorInformationSequence[1], "StartAngle"), "StartAngle"),
        (lambda ds: delattr(ds, "AngularViewVector"), "AngularViewVector"),
        (lambda ds: delattr(ds, "PixelSpacing"), "PixelSpacing"),
        (lambda ds: delattr(ds.RotationInformationSequence[0], "ActualFrameDuration"), "ActualFrameDuration"),
    ],
)
def test_error_missing_required_tag(tmp_path: Path, remove, named: str) -> None:
    ds, _ = _hand_built()
    remove(ds)
    with pytest.raises(DicomFormatError, match=f"missing required DICOM tag .*{named}"):
        read_nm(_save(ds, tmp_path / "m.dcm"))


def test_error_missing_radius_without_fallback(tmp_path: Path) -> None:
    ds, _ = _hand_built()
    for det in ds.DetectorInformationSequence:
        del det.RadialPosition
    path = _save(ds, tmp_path / "r.dcm")
    with pytest.raises(DicomFormatError, match="RadialPosition"):
        read_nm(path)
    assert np.all(read_nm(path, radius_mm=222.0).geometry.radius_mm == 222.0)


def test_error_unknown_collimator_and_override(tmp_path: Path) -> None:
    ds, _ = _hand_built()
    for det in ds.DetectorInformationSequence:
        det.CollimatorGridName = "PINHOLE-X"
    path = _save(ds, tmp_path / "c.dcm")
    with pytest.raises(DicomFormatError, match="unknown collimator 'PINHOLE-X'"):
        read_nm(path)
    assert read_nm(path, collimator="GI-LEHR").collimator.name == "GI-LEHR"
    custom = Collimator("MY", 1.2, 30.0, 0.2, 3.5)
    assert read_nm(path, collimator=custom).collimator is custom
    with pytest.raises(ValueError, match="unknown collimator"):
        read_nm(path, collimator="NOPE")


def test_error_not_tomo(tmp_path: Path) -> None:
    ds, _ = _hand_built()
    ds.ImageType = ["ORIGINAL", "PRIMARY", "STATIC", "EMISSION"]
    with pytest.raises(DicomFormatError, match="ImageType"):
        read_nm(_save(ds, tmp_path / "s.dcm"))


def test_writer_rejects_unsplittable_orbit(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    angles = np.array([0.0, 10.0, 30.0, 40.0])
    acq = _acquisition(rng, angles)
    with pytest.raises(ValueError, match="AngularStep"):
        write_nm(acq, tmp_path / "x.dcm", n_detectors=1)
    with pytest.raises(ValueError, match="vendor"):
        write_nm(acq, tmp_path / "x.dcm", vendor="acme")


def test_reader_does_not_modify_input_file(tmp_path: Path) -> None:
    ds, _ = _hand_built()
    path = _save(ds, tmp_path / "h.dcm")
    before = path.read_bytes()
    read_nm(path)
    assert path.read_bytes() == before
    assert math.isclose(float(pydicom.dcmread(path).RotationInformationSequence[0].AngularStep), 60.0)


def test_frames_in_rotation_counting_all_detectors_is_tolerated(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ds, _ = _hand_built()
    ds.RotationInformationSequence[0].NumberOfFramesInRotation = 6  # 3 views x 2 detectors
    with caplog.at_level(logging.WARNING):
        acq = read_nm(_save(ds, tmp_path / "t.dcm"))
    assert acq.geometry.n_views == 6
    assert "counts all 2 detectors" in caplog.text


def test_typed_metadata_round_trip(tmp_path: Path) -> None:
    """Placement, detectors, start time, UIDs, patient and dose survive write_nm -> read_nm."""
    from dataclasses import replace
    from datetime import datetime

    from recon.data.study import AcquisitionInfo, DoseInfo, PatientInfo

    rng = np.random.default_rng(8)
    base = _acquisition(rng, np.arange(12) * 30.0)
    start = datetime(2026, 11, 25, 11, 2, 3, 250000)
    injection = datetime(2026, 11, 25, 8, 15, 0)
    acq = replace(
        base,
        n_detectors=3,
        center_mm=(-12.5, 33.0, -140.25),
        info=AcquisitionInfo(frame_of_reference_uid="1.2.826.0.1.3680043.99.1",
                             study_instance_uid="1.2.826.0.1.3680043.99.2", start_time=start, patient_position="FFS"),
        patient=PatientInfo(weight_kg=81.5, height_m=1.82, sex="M", patient_id="ID-42", name="Doe^John"),
        dose=DoseInfo(radionuclide="Tc-99m", injected_activity_bq=7.4e8, injection_time=injection,
                      radiopharmaceutical="Tc99m MDP", half_life_s=21624.12),
    )
    back = read_nm(write_nm(acq, tmp_path / "t.dcm", "siemens"))
    _assert_same(acq, back)
    assert back.n_detectors == 3
    np.testing.assert_allclose(back.center_mm, acq.center_mm, atol=1e-9)
    np.testing.assert_allclose(back.image_grid.center_mm, acq.center_mm, atol=1e-9)
    assert back.info.start_time == start
    assert back.info.frame_of_reference_uid == acq.info.frame_of_reference_uid
    assert back.info.study_instance_uid == acq.info.study_instance_uid
    assert back.info.patient_position == "FFS"
    assert back.info.manufacturer == "SIEMENS NM" and back.info.source.endswith("t.dcm")
    assert back.patient == acq.patient
    assert back.dose == acq.dose
    # typed values are not duplicated in the free dict; the header for writers is kept
    assert set(back.metadata) == {"dicom_header", "detector_of_view", "n_rotations"}
    np.testing.assert_array_equal(back.metadata["detector_of_view"], np.repeat([0, 1, 2], 4))
    assert "PixelData" not in back.metadata["dicom_header"]


def test_injection_time_only_is_put_on_the_series_date(tmp_path: Path) -> None:
    """RadiopharmaceuticalStartTime without a date: on the acquisition day (previous day after midnight)."""
    from datetime import datetime

    acq = _acquisition(np.random.default_rng(9), np.arange(8) * 45.0)
    path = write_nm(acq, tmp_path / "t.dcm", "ge")
    ds = pydicom.dcmread(path)
    ds.AcquisitionDate = ds.SeriesDate = "20261125"
    ds.AcquisitionTime = ds.SeriesTime = "003000"
    rp = ds.RadiopharmaceuticalInformationSequence[0]
    rp.RadiopharmaceuticalStartTime = "223000"
    rp.RadionuclideTotalDose = "555000000"
    ds.save_as(path)
    back = read_nm(path)
    assert back.info.start_time == datetime(2026, 11, 25, 0, 30)
    assert back.dose.injection_time == datetime(2026, 11, 24, 22, 30)
    assert back.dose.injected_activity_bq == pytest.approx(555e6)
    assert back.dose.radionuclide == "Tc-99m" and back.dose.half_life_s == pytest.approx(21624, rel=1e-3)
