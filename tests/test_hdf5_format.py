"""The native HDF5 container and its kinds: exact round trips (typed study metadata included), version-1
files still read, refusals with one-line messages, atomic writes, no overwriting."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import h5py
import numpy as np
import pytest

from recon.data import (
    AcquisitionInfo,
    DoseInfo,
    EnergyWindow,
    ImageGrid,
    PatientInfo,
    SPECTAcquisition,
    SPECTGeometry,
    Volume,
    get_collimator,
)
from recon.io.hdf5 import FileFormatError, read_mu_map, read_projections, read_volume, write_projections, write_volume


def _acquisition(rng):
    geo = SPECTGeometry(np.arange(6) * 60.0 + 2.5, 200.0 + np.arange(6), n_rows=5, n_cols=7, pixel_size_mm=4.42,
                        slice_thickness_mm=4.5)
    wins = (EnergyWindow("peak", 126.45, 154.55), EnergyWindow("low", 119.43, 126.45))
    counts = {w.name: rng.poisson(20, (6, 5, 7)).astype(np.float32) for w in wins}
    return SPECTAcquisition(counts, wins, "peak", geo, get_collimator("GI-LEHR"), 25.0, 140.5, "Tc-99m",
                            {"patient": "phantom"})


def test_projection_round_trip_is_exact(tmp_path, rng):
    acq = _acquisition(rng)
    mu = Volume(rng.random((5, 7, 7)).astype(np.float32) * 0.02, acq.geometry.image_grid(), "1/mm")
    path = write_projections(acq, tmp_path / "p.h5", mu_map=mu)
    back = read_projections(path)
    assert [w for w in back.windows] == list(acq.windows)
    for name in acq.counts:
        np.testing.assert_array_equal(back.counts[name], acq.counts[name])
    np.testing.assert_array_equal(back.geometry.angles_deg, acq.geometry.angles_deg)
    np.testing.assert_array_equal(back.geometry.radius_mm, acq.geometry.radius_mm)
    assert back.geometry.slice_thickness_mm == 4.5
    assert back.collimator == acq.collimator
    assert back.frame_duration_s == 25.0 and back.photopeak == "peak" and back.metadata == {"patient": "phantom"}
    mu_back = read_mu_map(path)
    np.testing.assert_array_equal(mu_back.data, mu.data)
    assert mu_back.grid == mu.grid


def test_volume_round_trip_is_exact(tmp_path, rng):
    grid = ImageGrid((3, 4, 5), (2.0, 3.0, 4.0), (-10.0, 20.5, 7.0))
    vol = Volume(rng.random((3, 4, 5)), grid, "Bq/mL", {"iterations": 4})
    back = read_volume(write_volume(vol, tmp_path / "v.h5"))
    np.testing.assert_array_equal(back.data, vol.data)
    assert back.grid == grid and back.unit == "Bq/mL" and back.metadata == {"iterations": 4}


def test_refuses_to_overwrite(tmp_path, rng):
    grid = ImageGrid((2, 2, 2), (1.0, 1.0, 1.0))
    path = tmp_path / "v.h5"
    path.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        write_volume(Volume(np.ones((2, 2, 2)), grid), path)
    assert path.read_bytes() == b"precious"


def test_refuses_foreign_and_future_files(tmp_path, rng):
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f.create_dataset("x", data=np.ones(3))
    with pytest.raises(FileFormatError, match="found format None"):
        read_projections(foreign)
    vol_path = write_volume(Volume(np.ones((2, 2, 2)), ImageGrid((2, 2, 2), (1.0, 1.0, 1.0))), tmp_path / "v.h5")
    with pytest.raises(FileFormatError, match="expected an HDF5 file of format 'recon-spect-projections'"):
        read_projections(vol_path)
    with h5py.File(vol_path, "a") as f:
        f.attrs["format_version"] = 99
    with pytest.raises(FileFormatError, match="version 99 is not supported"):
        read_volume(vol_path)
    text = tmp_path / "notes.h5"
    text.write_text("not hdf5")
    with pytest.raises(FileFormatError, match="not an HDF5 file"):
        read_volume(text)


# ------------------------------------------------------------------ version 2: typed study metadata

DATA = Path(__file__).parent / "data"


def _typed_acquisition(rng) -> SPECTAcquisition:
    acq = _acquisition(rng)
    tz = timezone(timedelta(hours=1))
    return replace(
        acq,
        geometry=SPECTGeometry(np.arange(6) * 60.0, 200.0, n_rows=5, n_cols=7, pixel_size_mm=4.42),
        n_detectors=2,
        center_mm=(1.5, -20.25, 310.0),
        info=AcquisitionInfo(frame_of_reference_uid="1.2.826.0.1.3", study_instance_uid="1.2.3",
                             series_instance_uid="1.2.3.4", start_time=datetime(2026, 11, 25, 9, 30, 5, 250000, tz),
                             patient_position="FFS", manufacturer="ACME", model="Gamma 2", source="test"),
        patient=PatientInfo(weight_kg=72.5, height_m=1.78, sex="F", patient_id="P-001", name="Doe^Jane"),
        dose=DoseInfo(radionuclide="Tc-99m", injected_activity_bq=7.4e8, injection_time=datetime(2026, 11, 25, 6, 0),
                      radiopharmaceutical="Tc-99m MDP", half_life_s=21624.12),
    )


def test_typed_metadata_round_trip(tmp_path, rng):
    acq = _typed_acquisition(rng)
    mu = Volume(np.full((5, 7, 7), 0.015), acq.image_grid, "1/mm", frame_of_reference_uid="1.2.826.0.1.3")
    path = write_projections(acq, tmp_path / "p.h5", mu_map=mu)
    back = read_projections(path)
    assert back.n_detectors == 2 and back.center_mm == (1.5, -20.25, 310.0)
    assert back.info == acq.info and back.patient == acq.patient and back.dose == acq.dose
    assert back.info.start_time.utcoffset() == timedelta(hours=1)
    assert back.image_grid == acq.image_grid
    mu_back = read_mu_map(path)
    assert mu_back.frame_of_reference_uid == "1.2.826.0.1.3" and mu_back.grid == mu.grid
    with h5py.File(path) as f:
        assert f.attrs["format_version"] == 2
        assert f["acquisition_info"].attrs["start_time"] == "2026-11-25T09:30:05.250000+01:00"
        assert "sex" in f["patient"].attrs and "weight_kg" in f["patient"].attrs


def test_defaults_round_trip_as_none(tmp_path, rng):
    acq = _acquisition(rng)  # no placement, default (empty) records
    back = read_projections(write_projections(acq, tmp_path / "p.h5"))
    assert back.center_mm is None and back.n_detectors == 1
    assert back.info == AcquisitionInfo() and back.patient == PatientInfo() and back.dose == DoseInfo()
    assert read_mu_map(tmp_path / "p.h5") is None


def test_volume_frame_of_reference_round_trip(tmp_path, rng):
    vol = Volume(rng.random((2, 3, 4)), ImageGrid((2, 3, 4), (1.0, 1.0, 1.0)), "Bq/mL", {"k": [1, 2]},
                 frame_of_reference_uid="1.2.840.99")
    back = read_volume(write_volume(vol, tmp_path / "v.h5"))
    assert back.frame_of_reference_uid == "1.2.840.99" and back.metadata == {"k": [1, 2]}


def test_version_1_files_still_read():
    """Files written by the version-1 writer (committed fixtures) read, typed fields lifted from their JSON."""
    acq = read_projections(DATA / "spect_projections_v1.h5")
    assert acq.geometry.n_views == 4 and [w.name for w in acq.windows] == ["peak", "scatter"]
    np.testing.assert_array_equal(acq.counts["peak"], np.arange(48, dtype=np.float32).reshape(4, 3, 4))
    np.testing.assert_array_equal(acq.geometry.radius_mm, [200.0, 210.0, 220.0, 230.0])
    assert acq.collimator == get_collimator("SY-LEHR") and acq.frame_duration_s == 20.0
    assert acq.n_detectors == 2 and acq.center_mm == (1.5, -20.0, 35.0)
    assert acq.info.start_time == datetime(2026, 11, 25, 9, 30)
    assert str(acq.metadata["dicom_header"].PatientName) == "Phantom^One"
    mu = read_mu_map(DATA / "spect_projections_v1.h5")
    np.testing.assert_allclose(mu.data, 0.015)
    # version 1 placed the study by the projections; its mu-map follows them onto the placed grid
    assert mu.frame_of_reference_uid == "" and mu.grid.same_as(acq.image_grid)
    assert acq.image_grid.center_mm == pytest.approx((1.5, -20.0, 35.0))
    vol = read_volume(DATA / "volume_v1.h5")
    np.testing.assert_array_equal(vol.data, np.arange(24, dtype=np.float32).reshape(2, 3, 4))
    assert vol.grid == ImageGrid((2, 3, 4), (2.0, 3.0, 4.0), (-10.0, 20.5, 7.0))
    assert vol.unit == "Bq/mL" and vol.metadata == {"iterations": 4} and vol.frame_of_reference_uid == ""


@pytest.mark.parametrize("content", [b"", b"just some notes\n", b"\x89HDF\r\n\x1a\n" + b"\0" * 40])
def test_empty_text_and_broken_files_give_one_line_errors(tmp_path, content):
    path = tmp_path / "scan.h5"
    path.write_bytes(content)
    for reader in (read_volume, read_projections, read_mu_map):
        with pytest.raises(FileFormatError) as info:
            reader(path)
        message = str(info.value)
        assert "scan.h5" in message and "HDF5" in message and "\n" not in message
    with pytest.raises(FileNotFoundError):
        read_volume(tmp_path / "missing.h5")


def test_failed_write_leaves_nothing_and_overwrite_replaces(tmp_path, rng, monkeypatch):
    import recon.io.hdf5.volume as volume_module

    vol = Volume(np.ones((2, 2, 2)), ImageGrid((2, 2, 2), (1.0, 1.0, 1.0)))

    def broken(*_args):
        raise RuntimeError("disk full")

    monkeypatch.setattr(volume_module, "write_grid", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        write_volume(vol, tmp_path / "v.h5")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    path = write_volume(vol, tmp_path / "v.h5")
    write_volume(Volume(np.full((2, 2, 2), 3.0), vol.grid), path, overwrite=True)
    assert read_volume(path).data.max() == 3.0
    assert [p.name for p in tmp_path.iterdir()] == ["v.h5"]


def test_missing_parts_name_the_file(tmp_path, rng):
    path = write_projections(_acquisition(rng), tmp_path / "p.h5")
    with h5py.File(path, "a") as f:
        del f["geometry"].attrs["n_rows"]
    with pytest.raises(FileFormatError, match=r"p\.h5:/geometry: required attribute 'n_rows' missing"):
        read_projections(path)
