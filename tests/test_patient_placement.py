"""Patients placed where they are: a hand-built NM file with a known detector position and orientation.

The projections of an off-centre point source are written analytically (no projector of ours): in
the view at our angle theta the source at offset p from the rotation centre C lands on column
coordinate p . u(theta), u = (cos theta, sin theta), and row coordinate p_z; with a CT the counts are
attenuated by exp(-mu L) along the chord to the detector through a water cylinder. The reconstruction,
with or without attenuation correction, must put the source at C + p in patient coordinates (LPS);
a mirrored or unplaced axis misses by tens of mm. The same file carries weight, dose and injection
time: the SUV computed directly from the input equals the one read back through DICOM.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from recon.cli import main as recon_main
from recon.data.materials import linear_mu_per_mm
from recon.io.hdf5 import read_volume
from tests.test_dicom_ct import _write_ct

CENTRE = np.array([35.0, -62.0, 410.0])  # LPS mm: the rotation axis centre of the detector frames
OFFSET = np.array([30.0, -18.0, 21.0])  # the source, relative to CENTRE
N_VIEWS, N_ROWS, N_COLS, PIXEL = 60, 24, 48, 6.0
RADIUS_MM, BODY_RADIUS_MM = 250.0, 90.0
WEIGHT_KG, DOSE_BQ = 70.0, 500e6
SCAN_START = datetime(2026, 11, 25, 11, 30, 0)
INJECTION = SCAN_START - timedelta(hours=2)
FRAME_OF_REFERENCE = generate_uid()


def _our_theta(phi_deg: np.ndarray) -> np.ndarray:
    """Our angle from DICOM's, by the standard's words: the detector sits at p(phi) = (sin phi, cos phi)
    (0 = the patient's back), ours at n(theta) = (sin theta, -cos theta)."""
    phi = np.radians(phi_deg)
    return np.degrees(np.arctan2(np.sin(phi), -np.cos(phi)))


def _projections(attenuate: bool) -> np.ndarray:
    """(view, row, col) counts of the point source as stored in the file (first row superior)."""
    phi = -6.0 * np.arange(N_VIEWS)  # StartAngle 0, CW, 6 deg steps
    theta = np.radians(_our_theta(phi))
    px, py, pz = OFFSET
    cols = np.arange(N_COLS)
    rows_up = np.arange(N_ROWS)  # our row index, increasing towards +z
    mu = linear_mu_per_mm("water", 140.5)
    out = np.zeros((N_VIEWS, N_ROWS, N_COLS))
    sigma_px = 0.8
    for v, t in enumerate(theta):
        c = (px * np.cos(t) + py * np.sin(t)) / PIXEL + (N_COLS - 1) / 2.0
        r = pz / PIXEL + (N_ROWS - 1) / 2.0
        blob = np.exp(-((rows_up[:, None] - r) ** 2 + (cols[None, :] - c) ** 2) / (2 * sigma_px**2))
        factor = 1.0
        if attenuate:
            pn = px * np.sin(t) - py * np.cos(t)  # p . n(theta)
            chord = -pn + np.sqrt(pn**2 - (px**2 + py**2) + BODY_RADIUS_MM**2)
            factor = np.exp(-mu * chord)
        out[v] = 2000.0 * factor * blob[::-1]  # stored superior row first
    return out


def _hand_built_nm(path: Path, attenuate: bool) -> Path:
    frames = np.rint(_projections(attenuate)).astype(np.uint16)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.20"
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.20"
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.Modality, ds.Manufacturer = "NM", "SIEMENS NM"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "TOMO", "EMISSION"]
    ds.PatientName, ds.PatientID, ds.PatientSex = "Place^Test", "P1", "F"
    ds.PatientWeight = str(WEIGHT_KG)
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.FrameOfReferenceUID = FRAME_OF_REFERENCE
    ds.AcquisitionDate, ds.AcquisitionTime = SCAN_START.strftime("%Y%m%d"), SCAN_START.strftime("%H%M%S")
    ds.SeriesDate, ds.SeriesTime = ds.AcquisitionDate, ds.AcquisitionTime
    ds.Rows, ds.Columns = N_ROWS, N_COLS
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelSpacing = [PIXEL, PIXEL]
    ds.NumberOfFrames = N_VIEWS
    ds.FrameIncrementPointer = [0x00540010, 0x00540020, 0x00540050, 0x00540090]
    ds.EnergyWindowVector = [1] * N_VIEWS
    ds.DetectorVector = [1] * N_VIEWS
    ds.RotationVector = [1] * N_VIEWS
    ds.AngularViewVector = list(range(1, N_VIEWS + 1))
    ds.NumberOfEnergyWindows, ds.NumberOfDetectors, ds.NumberOfRotations = 1, 1, 1
    limits = Dataset()
    limits.EnergyWindowLowerLimit, limits.EnergyWindowUpperLimit = 126.0, 154.0
    window = Dataset()
    window.EnergyWindowName = "TC99M"
    window.EnergyWindowRangeSequence = Sequence([limits])
    ds.EnergyWindowInformationSequence = Sequence([window])
    # detector at DICOM 0 (posterior) is our 180: its columns run along u(180) = -x; rows point inferior
    row_dir = np.array([-1.0, 0.0, 0.0])
    col_dir = np.array([0.0, 0.0, -1.0])
    ipp = CENTRE - 0.5 * (N_COLS - 1) * PIXEL * row_dir - 0.5 * (N_ROWS - 1) * PIXEL * col_dir
    det = Dataset()
    det.StartAngle = 0.0
    det.CollimatorGridName = "LEHR"
    det.RadialPosition = [RADIUS_MM] * N_VIEWS
    det.ImagePositionPatient = [float(v) for v in ipp]
    det.ImageOrientationPatient = [float(v) for v in np.concatenate([row_dir, col_dir])]
    ds.DetectorInformationSequence = Sequence([det])
    rot = Dataset()
    rot.StartAngle, rot.AngularStep, rot.RotationDirection = 0.0, 6.0, "CW"
    rot.ScanArc, rot.NumberOfFramesInRotation, rot.ActualFrameDuration = 360.0, N_VIEWS, 20000
    ds.RotationInformationSequence = Sequence([rot])
    drug = Dataset()
    drug.RadionuclideTotalDose = str(DOSE_BQ)
    drug.RadiopharmaceuticalStartDateTime = INJECTION.strftime("%Y%m%d%H%M%S")
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "C-163A8", "SRT", "^99m^Technetium"
    drug.RadionuclideCodeSequence = Sequence([code])
    ds.RadiopharmaceuticalInformationSequence = Sequence([drug])
    ds.PixelData = frames.astype("<u2").tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def _water_ct(directory: Path, frame_of_reference: str = FRAME_OF_REFERENCE) -> None:
    """A water cylinder of radius BODY_RADIUS_MM around the rotation axis, 200 mm long (in the NM's frame
    unless another is given)."""
    nz, ny, nx, step = 51, 72, 72, 4.0
    corner = CENTRE - np.array([(nx - 1) / 2 * step, (ny - 1) / 2 * step, (nz - 1) / 2 * step])
    x = corner[0] + step * np.arange(nx) - CENTRE[0]
    y = corner[1] + step * np.arange(ny) - CENTRE[1]
    inside = np.hypot(x[None, :], y[:, None]) <= BODY_RADIUS_MM
    hu = np.where(inside, 0, -1000)[None].repeat(nz, axis=0).astype(np.int32)
    _write_ct(directory, hu, (step, step, step), tuple(corner), frame_of_reference=frame_of_reference)


def _source_position(path: Path) -> tuple[np.ndarray, np.ndarray, float]:
    """LPS position of the hottest voxel and the intensity-weighted centroid around it; voxel size."""
    vol = read_volume(path)
    data = vol.data
    peak = np.unravel_index(int(np.argmax(data)), data.shape)
    box = tuple(slice(max(i - 2, 0), i + 3) for i in peak)
    weights = data[box]
    idx = np.stack(np.meshgrid(*[np.arange(s.start, s.stop) for s in box], indexing="ij"), axis=-1)
    centroid = (idx * weights[..., None]).sum(axis=(0, 1, 2)) / weights.sum()
    return vol.grid.index_to_mm(np.asarray(peak)), vol.grid.index_to_mm(centroid), max(vol.grid.spacing_mm)


RECON = ["--iterations", "3", "--subsets", "6", "--no-psf", "--scatter", "none", "--device", "cpu"]


def test_point_source_lands_at_its_patient_position_without_attenuation(tmp_path: Path) -> None:
    nm = _hand_built_nm(tmp_path / "nm.dcm", attenuate=False)
    out = tmp_path / "r.h5"
    assert recon_main(["-q", "spect", str(nm), "-o", str(out), "--no-attenuation", *RECON]) == 0
    vol = read_volume(out)
    np.testing.assert_allclose(vol.grid.center_mm, CENTRE, atol=1e-6)
    assert vol.frame_of_reference_uid == FRAME_OF_REFERENCE
    peak, centroid, voxel = _source_position(out)
    truth = CENTRE + OFFSET
    assert np.all(np.abs(peak - truth) <= voxel), (peak, truth)
    assert np.all(np.abs(centroid - truth) <= 0.5 * voxel), (centroid, truth)


def test_point_source_lands_at_its_patient_position_with_ct(tmp_path: Path) -> None:
    from recon.commands.spect import load_input

    nm = _hand_built_nm(tmp_path / "nm.dcm", attenuate=True)
    _water_ct(tmp_path / "ct")
    out = tmp_path / "r.h5"
    assert recon_main(["-q", "spect", str(nm), "-o", str(out), "--ct", str(tmp_path / "ct"), *RECON]) == 0
    peak, centroid, voxel = _source_position(out)
    truth = CENTRE + OFFSET
    assert np.all(np.abs(peak - truth) <= voxel), (peak, truth)
    assert np.all(np.abs(centroid - truth) <= 0.5 * voxel), (centroid, truth)
    # the mu-map covers the body: water inside the cylinder, air well outside it
    acq, mu = load_input(nm, tmp_path / "ct", None)
    assert mu is not None and mu.grid.same_as(acq.image_grid)
    xyz = mu.grid.index_to_mm(np.stack(np.indices(mu.grid.shape), axis=-1))
    r = np.hypot(xyz[..., 0] - CENTRE[0], xyz[..., 1] - CENTRE[1])
    water = linear_mu_per_mm("water", acq.photon_energy_kev)
    np.testing.assert_allclose(mu.data[r < BODY_RADIUS_MM - 8], water, rtol=0.02)
    assert float(np.abs(mu.data[r > BODY_RADIUS_MM + 8]).max()) < 0.05 * water


@pytest.mark.parametrize("reference", [None, INJECTION, SCAN_START + timedelta(hours=1)],
                         ids=["scan-start", "injection", "after-scan"])
def test_suv_from_the_input_equals_the_dicom_round_trip(tmp_path: Path, reference: datetime | None) -> None:
    """Whatever time the values are decay-corrected to, the SUV factor computed from the input and the one
    read back from our DICOM series agree to 1e-6, and equal the closed form."""
    from recon.io.dicom import read_image_series
    from recon.quant.suv import suv_volume

    nm = _hand_built_nm(tmp_path / "nm.dcm", attenuate=False)
    out, series = tmp_path / "r.h5", tmp_path / "series"
    extra = [] if reference is None else ["--reference-time", reference.isoformat()]
    assert recon_main(["-q", "spect", str(nm), "-o", str(out), "--no-attenuation", *RECON, "--calibration", "91",
                       "--dicom-out", str(series), *extra]) == 0
    bqml = read_volume(out)
    direct = read_volume(tmp_path / "r_suvbw.h5")
    assert direct.unit == "SUVbw (g/mL)"
    hot = bqml.data > 0.05 * bqml.data.max()
    factor_direct = float(np.median(direct.data[hot] / bqml.data[hot]))
    read_back = read_image_series(series / "nm_recon.dcm")
    suv_rt, conversion = suv_volume(read_back.volume, read_back.header, "bw", slice_axis=read_back.slice_axis,
                                    slice_order=read_back.slice_order)
    np.testing.assert_allclose(conversion.factors, factor_direct, rtol=1e-6)
    # by hand: SUV = C(t_ref) / (dose decayed from the injection to t_ref / weight in g)
    half_life = 6.0067 * 3600.0
    t_ref = SCAN_START if reference is None else reference
    expected = WEIGHT_KG * 1000.0 / (DOSE_BQ * 0.5 ** ((t_ref - INJECTION).total_seconds() / half_life))
    assert factor_direct == pytest.approx(expected, rel=1e-3)
    # the maps agree within the DICOM stored precision (uint16, one slope per file)
    step = np.abs(suv_rt.data).max() / 65535.0
    assert np.all(np.abs(suv_rt.data - direct.data) <= step + 1e-6)
    suv_dicom = read_image_series(series / "nm_suvbw.dcm")  # the SUV map's own NM object
    assert suv_dicom.header.units == "GML"
    assert np.all(np.abs(suv_dicom.volume.data - direct.data) <= direct.data.max() / 65535.0 * 0.5 * (1 + 1e-6))


def test_injection_after_the_scan_is_refused_before_compute(tmp_path: Path, capsys) -> None:
    nm = _hand_built_nm(tmp_path / "nm.dcm", attenuate=False)
    from pydicom import dcmread

    ds = dcmread(nm)
    late = SCAN_START + timedelta(minutes=50)
    ds.RadiopharmaceuticalInformationSequence[0].RadiopharmaceuticalStartDateTime = late.strftime("%Y%m%d%H%M%S")
    ds.save_as(nm)
    out = tmp_path / "r.h5"
    assert recon_main(["-q", "spect", str(nm), "-o", str(out), "--no-attenuation", *RECON,
                       "--calibration", "91"]) == 2
    assert "after the decay reference time" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [nm]


def test_dicom_output_keeps_the_volume_frame_when_the_ct_has_another(tmp_path: Path, caplog) -> None:
    import pydicom

    nm = _hand_built_nm(tmp_path / "nm.dcm", attenuate=True)
    _water_ct(tmp_path / "ct", frame_of_reference=generate_uid())
    series = tmp_path / "series"
    assert recon_main(["-q", "spect", str(nm), "-o", str(tmp_path / "r.h5"), "--ct", str(tmp_path / "ct"), *RECON,
                       "--dicom-out", str(series)]) == 0
    assert "different frames of reference" in caplog.text
    frames = {str(pydicom.dcmread(p, stop_before_pixels=True).FrameOfReferenceUID) for p in series.glob("*.dcm")}
    assert frames == {FRAME_OF_REFERENCE} == {read_volume(tmp_path / "r.h5").frame_of_reference_uid}
