"""HDF5 PET sinogram and list-mode schemas: round trips and clear refusals."""
import dataclasses
from datetime import datetime, timedelta, timezone

import h5py
import numpy as np
import pytest

from recon.data.grid import ImageGrid
from recon.data.pet import ListModeAcquisition, ListModeEvents, PETSinogram, ScannerPlacement, SinogramCorrections
from recon.data.pet_presets import get_pet_scanner
from recon.data.pet_sinogram import SinogramLayout
from recon.data.study import AcquisitionInfo, DoseInfo, PatientInfo
from recon.io.hdf5 import FileFormatError, read_pet_listmode, read_pet_sinogram, write_pet_listmode, write_pet_sinogram

START = datetime(2026, 3, 4, 10, 30, tzinfo=timezone.utc)
INFO = AcquisitionInfo(frame_of_reference_uid="1.2.3", start_time=START, patient_position="HFS", model="test")
PATIENT = PatientInfo(weight_kg=72.5, height_m=1.78, sex="M", patient_id="P1")
DOSE = DoseInfo(radionuclide="F-18", injected_activity_bq=3.1e8, injection_time=START - timedelta(minutes=60),
                radiopharmaceutical="NaF", half_life_s=6586.2)


def _sinogram(tof=True, seed=1):
    sc = dataclasses.replace(get_pet_scanner("small_test"), first_crystal_angle_deg=1.40625)
    layout = SinogramLayout(sc, n_radial=31, span=3, max_ring_difference=5, tof=tof)
    rng = np.random.default_rng(seed)
    prompts = rng.poisson(2.0, layout.shape).astype(np.float32)
    delayed = rng.poisson(0.5, layout.shape[:3]).astype(np.float32)
    sino = PETSinogram(layout, prompts, frame_duration_s=120.0, frame_start_s=60.0, delayed=delayed,
                       placement=ScannerPlacement("FFS", (1.0, -2.0, 300.0)), info=INFO, patient=PATIENT, dose=DOSE,
                       image_grid=ImageGrid((8, 64, 64), (4.0, 3.0, 3.0), (-94.5, -94.5, 286.0)))
    corr = SinogramCorrections(layout, randoms=np.full(layout.shape[:3], 0.4, np.float32),
                               normalisation=rng.uniform(0.8, 1.2, layout.shape[:3]).astype(np.float32),
                               attenuation_factors=rng.uniform(0.05, 1.0, layout.shape[:3]).astype(np.float32))
    return sino, corr


@pytest.mark.parametrize("tof", [False, True])
def test_sinogram_round_trip(tmp_path, tof):
    sino, corr = _sinogram(tof)
    path = write_pet_sinogram(sino, tmp_path / "s.h5", corr, metadata={"note": "x"})
    back, corr_back, meta = read_pet_sinogram(path)
    assert back.layout == sino.layout and back.layout.scanner == sino.layout.scanner
    assert back.layout.scanner.first_crystal_angle_deg == 1.40625
    np.testing.assert_array_equal(back.prompts, sino.prompts)
    np.testing.assert_array_equal(back.delayed, sino.delayed)
    for name in ("randoms", "normalisation", "attenuation_factors"):
        np.testing.assert_array_equal(getattr(corr_back, name), getattr(corr, name))
    assert (back.frame_start_s, back.frame_duration_s) == (60.0, 120.0)
    assert back.placement == sino.placement
    assert (back.info, back.patient, back.dose) == (INFO, PATIENT, DOSE)
    assert back.image_grid == sino.image_grid
    assert meta == {"note": "x"}


def test_sinogram_without_optional_parts(tmp_path):
    sc = get_pet_scanner("small_test")
    layout = SinogramLayout(sc, n_radial=11)
    sino = PETSinogram(layout, np.ones(layout.shape, np.float32), frame_duration_s=10.0)
    back, corr, _ = read_pet_sinogram(write_pet_sinogram(sino, tmp_path / "s.h5"))
    assert back.delayed is None and corr.empty and back.image_grid is None
    assert back.placement == ScannerPlacement() and back.dose == DoseInfo()


def _tamper(path, edit):
    with h5py.File(path, "r+") as f:
        edit(f)


@pytest.mark.parametrize(("edit", "match"), [
    (lambda f: (f["sinogram"].__delitem__("prompts"), f["sinogram"].create_dataset("prompts", data=np.zeros((3, 3, 3), np.float32))),
     "prompts has shape"),
    (lambda f: (f["sinogram"].__delitem__("prompts"),
                f["sinogram"].create_dataset("prompts", data=np.zeros((64, 36, 31, 7), np.float32))),
     "prompts has 7 TOF bins; scanner 'small_test' has 21"),
    (lambda f: f["sinogram/delayed"].__setitem__((0, 0, 0), np.nan), "delayed sinogram contains NaN"),
    (lambda f: f["sinogram/prompts"].__setitem__((0, 0, 0, 0), -1.0), "prompts sinogram contains negative"),
    (lambda f: f["sinogram/attenuation_factors"].__setitem__((0, 0, 0), 2.0), "above 1"),
    (lambda f: f["scanner"].attrs.__delitem__("n_rings"), "required attribute 'n_rings' missing"),
    (lambda f: f["layout"].attrs.__setitem__("span", 2), "invalid sinogram layout"),
    (lambda f: f.attrs.__setitem__("format_version", 9), "format version 9 is not supported"),
])
def test_sinogram_bad_files_are_refused_in_one_line(tmp_path, edit, match):
    sino, corr = _sinogram(tof=True)
    path = write_pet_sinogram(sino, tmp_path / "s.h5", corr)
    _tamper(path, edit)
    with pytest.raises(FileFormatError, match=match) as info:
        read_pet_sinogram(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_sinogram_writer_is_atomic_and_never_overwrites(tmp_path):
    sino, _ = _sinogram()
    path = write_pet_sinogram(sino, tmp_path / "s.h5")
    with pytest.raises(FileExistsError):
        write_pet_sinogram(sino, path)
    write_pet_sinogram(sino, path, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.h5"]


def _listmode(n=3000, seed=2):
    sc = get_pet_scanner("small_test")
    rng = np.random.default_rng(seed)
    ev = ListModeEvents(sc.name, rng.integers(0, sc.n_crystals, n).astype(np.int32),
                        rng.integers(0, sc.n_crystals, n).astype(np.int32), np.sort(rng.uniform(0, 30.0, n)), 30.0,
                        tof_bin=rng.integers(0, sc.n_tof_bins, n).astype(np.int16), delayed=rng.random(n) < 0.1)
    return ListModeAcquisition(sc, ev, ScannerPlacement("HFS", (0, 0, 120.0)), INFO, PATIENT, DOSE,
                               time_blocks_s=np.array([[0.0, 15.0], [15.0, 30.0]]))


def test_listmode_round_trip(tmp_path):
    acq = _listmode()
    back, meta = read_pet_listmode(write_pet_listmode(acq, tmp_path / "l.h5", metadata={"source": "sim"}))
    assert back.scanner == acq.scanner and meta == {"source": "sim"}
    for name in ("detector_a", "detector_b", "tof_bin", "time_s", "delayed"):
        np.testing.assert_array_equal(getattr(back.events, name), getattr(acq.events, name))
    assert back.events.detector_a.dtype == np.int32 and back.events.tof_bin.dtype == np.int16
    assert back.events.acquisition_duration_s == 30.0
    assert (back.placement, back.info, back.patient, back.dose) == (acq.placement, INFO, PATIENT, DOSE)
    np.testing.assert_array_equal(back.time_blocks_s, acq.time_blocks_s)


def test_listmode_without_tof_or_delayed(tmp_path):
    sc = get_pet_scanner("small_test")
    ev = ListModeEvents(sc.name, np.array([1, 2], np.int32), np.array([70, 80], np.int32), np.array([0.0, 1.0]), 1.0)
    back, _ = read_pet_listmode(write_pet_listmode(ListModeAcquisition(sc, ev), tmp_path / "l.h5"))
    assert back.events.tof_bin is None and back.events.delayed is None and back.events.n_events == 2


@pytest.mark.parametrize(("edit", "match"), [
    (lambda f: f["events/detector_b"].__setitem__(5, 10 ** 6), "detector_b ids out of range"),
    (lambda f: f["events/tof_bin"].__setitem__(0, 30), "do not match scanner 'small_test', which has 21"),
    (lambda f: f["events/time_s"].__setitem__(3, np.nan), "event times contain 1 NaN"),
    (lambda f: f["events/time_s"].__setitem__(3, 31.0), "event times must lie within the acquisition"),
    (lambda f: (f["events"].__delitem__("time_s"), f["events"].create_dataset("time_s", data=np.zeros(5))),
     "time_s has shape"),
])
def test_listmode_bad_files_are_refused_in_one_line(tmp_path, edit, match):
    path = write_pet_listmode(_listmode(), tmp_path / "l.h5")
    _tamper(path, edit)
    with pytest.raises(FileFormatError, match=match) as info:
        read_pet_listmode(path)
    assert "\n" not in str(info.value)


def test_listmode_acquisition_refuses_ids_beyond_the_scanner():
    sc = get_pet_scanner("small_test")
    ev = ListModeEvents(sc.name, np.array([sc.n_crystals]), np.array([0]), np.array([0.0]), 1.0)
    with pytest.raises(ValueError, match="detector_a ids out of range"):
        ListModeAcquisition(sc, ev)
