"""Volume (Bq/mL) -> DICOM image series -> Volume: exact to the rescale precision, standard tags."""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from recon.data.grid import ImageGrid, Volume
from recon.io.dicom import (
    NM_IMAGE_STORAGE,
    PET_IMAGE_STORAGE,
    read_image_series,
    read_volume_series,
    write_volume_series,
)


def _volume(rng: np.random.Generator) -> Volume:
    grid = ImageGrid((6, 9, 11), (4.7952, 3.9, 4.1), (-21.3, -17.25, 103.6))
    data = rng.gamma(2.0, 5000.0, grid.shape).astype(np.float32)
    data[1] *= 50.0  # slices with very different ranges need their own slopes
    data[2] = 0.0
    data[3, 4, 5] = 2.5e6  # a hot voxel
    return Volume(data, grid, unit="Bq/mL")


def _reference() -> Dataset:
    ref = Dataset()
    ref.PatientName = "Doe^Jane"
    ref.PatientID = "P123"
    ref.PatientBirthDate = "19600101"
    ref.PatientSex = "F"
    ref.PatientWeight = 62.5
    ref.StudyInstanceUID = generate_uid()
    ref.StudyDate = "20240311"
    ref.StudyTime = "091500"
    ref.AccessionNumber = "A1"
    ref.SeriesInstanceUID = generate_uid()
    ref.FrameOfReferenceUID = generate_uid()
    return ref


@pytest.mark.parametrize("modality", ["PT"])  # NM: one multi-frame file, tests/test_dicom_objects.py
def test_round_trip_within_half_slope(tmp_path: Path, modality: str) -> None:
    vol = _volume(np.random.default_rng(8))
    paths = write_volume_series(vol, tmp_path / "out", modality=modality)
    assert len(paths) == vol.grid.shape[0]
    back = read_volume_series(tmp_path / "out")
    assert back.unit == "Bq/mL"
    assert back.grid.same_as(vol.grid, tol_mm=1e-6)
    slopes = np.array([float(pydicom.dcmread(p).RescaleSlope) for p in paths])
    np.testing.assert_allclose(back.metadata["rescale_slopes"], slopes)
    assert len(set(slopes.tolist())) > 2  # per-slice slopes
    err = np.abs(back.data.astype(np.float64) - vol.data.astype(np.float64))
    bound = slopes[:, None, None] / 2 * (1 + 1e-6) + 1e-6 * np.abs(vol.data)
    assert (err <= bound).all()
    np.testing.assert_array_equal(back.data[2], 0.0)
    assert abs(back.data[3, 4, 5] - 2.5e6) <= slopes[3] / 2 + 1.0
    ds = pydicom.dcmread(paths[0])
    assert ds.SOPClassUID == (PET_IMAGE_STORAGE if modality == "PT" else NM_IMAGE_STORAGE)


def test_tags_present_and_copied(tmp_path: Path) -> None:
    vol = _volume(np.random.default_rng(9))
    ref = _reference()
    ref_before = copy.deepcopy(ref)
    ct_for = generate_uid()
    rp = {
        "Radiopharmaceutical": "Tc99m MDP",
        "RadiopharmaceuticalStartDateTime": "20240311083000",
        "RadionuclideTotalDose": 740.0e6,
        "RadionuclideHalfLife": 21624.12,
    }
    paths = write_volume_series(
        vol, tmp_path / "out", modality="PT", reference=ref, radiopharmaceutical=rp, frame_of_reference_uid=ct_for,
        decay_correction="START",
    )
    assert ref == ref_before  # the caller's dataset is untouched
    series_uids = set()
    for k, p in enumerate(paths):
        ds = pydicom.dcmread(p)  # plain pydicom reads it
        assert ds.Modality == "PT"
        assert ds.Units == "BQML"
        assert ds.DecayCorrection == "START"
        assert ds.PatientID == "P123" and str(ds.PatientName) == "Doe^Jane"
        assert float(ds.PatientWeight) == 62.5
        assert ds.StudyInstanceUID == ref.StudyInstanceUID
        assert ds.SeriesInstanceUID != ref.SeriesInstanceUID
        assert ds.FrameOfReferenceUID == ct_for
        assert ds.ImageIndex == k + 1 and ds.InstanceNumber == k + 1
        item = ds.RadiopharmaceuticalInformationSequence[0]
        assert item.Radiopharmaceutical == "Tc99m MDP"
        assert float(item.RadionuclideTotalDose) == 740.0e6
        assert float(item.RadionuclideHalfLife) == 21624.12
        assert ds.RescaleIntercept == 0 and float(ds.RescaleSlope) > 0
        assert [float(v) for v in ds.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
        np.testing.assert_allclose([float(v) for v in ds.ImagePositionPatient], vol.grid.index_to_mm([k, 0, 0]))
        assert ds.pixel_array.dtype == np.int16
        series_uids.add(ds.SeriesInstanceUID)
    assert len(series_uids) == 1
    back = read_volume_series(tmp_path / "out")
    assert back.metadata["frame_of_reference_uid"] == ct_for


def test_radiopharmaceutical_from_reference_and_frame_of_reference(tmp_path: Path) -> None:
    vol = _volume(np.random.default_rng(10))
    ref = _reference()
    item = Dataset()
    item.RadionuclideTotalDose = 5.0e8
    ref.RadiopharmaceuticalInformationSequence = Sequence([item])
    paths = write_volume_series(vol, tmp_path / "o", modality="PT", reference=ref)
    ds = pydicom.dcmread(paths[0])
    assert float(ds.RadiopharmaceuticalInformationSequence[0].RadionuclideTotalDose) == 5.0e8
    assert ds.FrameOfReferenceUID == ref.FrameOfReferenceUID
    with pytest.raises(ValueError, match="write_nm_recon"):
        write_volume_series(vol, tmp_path / "nm", modality="NM", reference=ref)


def test_errors(tmp_path: Path) -> None:
    vol = _volume(np.random.default_rng(1))
    with pytest.raises(ValueError, match="Units"):
        write_volume_series(Volume(vol.data, vol.grid, unit="furlongs"), tmp_path / "a")
    with pytest.raises(ValueError, match="modality"):
        write_volume_series(vol, tmp_path / "b", modality="MR")
    write_volume_series(vol, tmp_path / "c")
    with pytest.raises(FileExistsError):
        write_volume_series(vol, tmp_path / "c")
    with pytest.raises(ValueError, match="DICOM keyword"):
        write_volume_series(vol, tmp_path / "d", radiopharmaceutical={"NotAKeyword": 1})


def test_negative_values_round_trip(tmp_path: Path) -> None:
    grid = ImageGrid.centered((2, 3, 4), (2.0, 2.0, 2.0))
    data = np.linspace(-100.0, 250.0, 24, dtype=np.float32).reshape(2, 3, 4)
    write_volume_series(Volume(data, grid, unit="Bq/mL"), tmp_path / "n")
    back = read_volume_series(tmp_path / "n")
    slopes = back.metadata["rescale_slopes"]
    assert (np.abs(back.data - data) <= slopes[:, None, None] / 2 * (1 + 1e-6) + 1e-4).all()


def test_pet_series_reader_agrees(tmp_path: Path) -> None:
    """The quantitative series reader (with the SUV header) reads our PT series like read_volume_series."""
    vol = _volume(np.random.default_rng(12))
    rp = {"RadionuclideTotalDose": 3.7e8, "RadiopharmaceuticalStartTime": "080000", "RadionuclideHalfLife": 6586.2}
    write_volume_series(vol, tmp_path / "s", modality="PT", radiopharmaceutical=rp, decay_correction="START")
    ours = read_volume_series(tmp_path / "s")
    series = read_image_series(tmp_path / "s", modalities=("PT",))
    theirs = series.volume
    assert series.header.dose_bq == pytest.approx(3.7e8) and series.header.decay_correction == "START"
    assert theirs.grid.same_as(ours.grid, tol_mm=1e-6)
    np.testing.assert_array_equal(theirs.data, ours.data)
