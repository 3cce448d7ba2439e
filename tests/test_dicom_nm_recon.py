"""NM multi-frame reconstructions (ImageType ... RECON TOMO, one file): placement, slice order, rescale, header.

Truth: every stored voxel (k, r, c) holds f(P) of its own patient position
P = IPP + c dc row + r dr col + k ds normal, computed here from the DICOM
definitions; after reading, each voxel of the volume must hold f of the
position its grid gives it. f is linear with distinct coefficients along x,
y and z, so any flipped, swapped or shifted axis fails.
"""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from recon.io.dicom import DicomFormatError, read_nm_recon
from recon.quant.suv import suv_volume

NM_STORAGE = "1.2.840.10008.5.1.4.1.1.20"
SLOPE = 0.5


def f_of(p: np.ndarray) -> np.ndarray:
    """The test pattern at LPS positions (..., 3) mm: positive, distinct slope per axis."""
    return 2000.0 + 3.0 * p[..., 0] + 7.0 * p[..., 1] + 13.0 * p[..., 2]


def _write(path: Path, *, ipp, iop, pixel_spacing=(2.0, 3.0), spacing=4.0, shape=(5, 4, 6),
           in_detector_sequence=False, slice_vector_perm=None, number_of_slices=None, units="BQML") -> np.ndarray:
    """Write a RECON TOMO file; returns the (k, r, c) stack of true values in slice order."""
    n, rows, cols = shape
    row_dir, col_dir = np.asarray(iop[:3], float), np.asarray(iop[3:], float)
    normal = np.cross(row_dir, col_dir)
    k, r, c = np.meshgrid(np.arange(n), np.arange(rows), np.arange(cols), indexing="ij")
    pos = (np.asarray(ipp, float) + c[..., None] * pixel_spacing[1] * row_dir
           + r[..., None] * pixel_spacing[0] * col_dir + k[..., None] * spacing * normal)
    truth = f_of(pos)
    stored = np.round(truth / SLOPE).astype(np.uint16)
    perm = np.arange(n) if slice_vector_perm is None else np.asarray(slice_vector_perm)
    frames = stored[perm]  # frame j holds slice perm[j]

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = NM_STORAGE
    ds.SOPClassUID = NM_STORAGE
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.Modality = "NM"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "RECON TOMO", "EMISSION"]
    ds.SeriesInstanceUID, ds.StudyInstanceUID, ds.FrameOfReferenceUID = generate_uid(), generate_uid(), "1.2.3.4"
    ds.SeriesDate, ds.SeriesTime = "20261125", "110000"
    ds.PatientWeight = "70"
    if units:
        ds.Units = units
    ds.DecayCorrection = "START"
    rp = Dataset()
    rp.RadionuclideTotalDose = "740000000"
    rp.RadionuclideHalfLife = "21624.0"
    rp.RadiopharmaceuticalStartDateTime = "20261125080000"
    ds.RadiopharmaceuticalInformationSequence = Sequence([rp])
    ds.NumberOfFrames = n
    ds.NumberOfSlices = n if number_of_slices is None else number_of_slices
    ds.SliceVector = [int(p) + 1 for p in perm]
    ds.Rows, ds.Columns = rows, cols
    ds.PixelSpacing = list(pixel_spacing)
    ds.SpacingBetweenSlices = spacing
    ds.SliceThickness = abs(spacing)
    place = Dataset() if in_detector_sequence else ds
    place.ImagePositionPatient = list(ipp)
    place.ImageOrientationPatient = list(iop)
    if in_detector_sequence:
        ds.DetectorInformationSequence = Sequence([place])
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.RescaleSlope, ds.RescaleIntercept = str(SLOPE), "0"
    ds.PixelData = frames.astype("<u2").tobytes()
    ds.save_as(path, enforce_file_format=True)
    return stored[...].astype(np.float64) * SLOPE


def _check_positions(series) -> None:
    vol = series.volume
    idx = np.stack(np.meshgrid(*(np.arange(s) for s in vol.grid.shape), indexing="ij"), axis=-1)
    expected = f_of(vol.grid.index_to_mm(idx))
    np.testing.assert_allclose(vol.data, expected, atol=SLOPE)


def test_axial_top_level_placement(tmp_path: Path) -> None:
    truth = _write(tmp_path / "r.dcm", ipp=(-50.0, -30.0, 100.0), iop=(1, 0, 0, 0, 1, 0))
    s = read_nm_recon(tmp_path / "r.dcm")
    assert s.volume.grid.shape == (5, 4, 6)
    assert s.volume.grid.spacing_mm == (4.0, 2.0, 3.0)
    assert s.volume.grid.origin_mm == (-50.0, -30.0, 100.0)
    np.testing.assert_allclose(s.volume.data, truth, atol=1e-4)  # identity layout: no transpose, no flip
    _check_positions(s)
    assert s.volume.unit == "Bq/mL" and s.volume.frame_of_reference_uid == "1.2.3.4"
    assert s.header.dose_bq == pytest.approx(740e6) and s.header.weight_kg == pytest.approx(70.0)
    assert s.header.injection_datetime == datetime(2026, 11, 25, 8, 0)


def test_coronal_in_detector_sequence_with_scrambled_slice_vector(tmp_path: Path) -> None:
    # rows along +x, columns towards the feet (-z): normal = x cross -z = +y (posterior)
    _write(tmp_path / "r.dcm", ipp=(10.0, -40.0, 60.0), iop=(1, 0, 0, 0, 0, -1), in_detector_sequence=True,
           slice_vector_perm=[3, 0, 4, 1, 2])
    s = read_nm_recon(tmp_path / "r.dcm")
    # volume (z, y, x): z from the 4 rows (2 mm), y from the 5 slices (4 mm), x from the 6 columns (3 mm)
    assert s.volume.grid.shape == (4, 5, 6)
    assert s.volume.grid.spacing_mm == (2.0, 4.0, 3.0)
    assert s.volume.grid.origin_mm == pytest.approx((10.0, -40.0, 60.0 - 3 * 2.0))
    _check_positions(s)
    assert s.slice_axis == 1


def test_negative_spacing_runs_against_the_normal(tmp_path: Path) -> None:
    _write(tmp_path / "r.dcm", ipp=(0.0, 0.0, 50.0), iop=(1, 0, 0, 0, 1, 0), spacing=-4.0)
    s = read_nm_recon(tmp_path / "r.dcm")
    assert s.volume.grid.origin_mm == pytest.approx((0.0, 0.0, 50.0 - 4 * 4.0))
    _check_positions(s)


def test_suv_of_a_single_file_uses_one_factor(tmp_path: Path) -> None:
    _write(tmp_path / "r.dcm", ipp=(0.0, 0.0, 0.0), iop=(1, 0, 0, 0, 1, 0))
    s = read_nm_recon(tmp_path / "r.dcm")
    vol, conv = suv_volume(s.volume, s.header, "bw", slice_axis=s.slice_axis, slice_order=s.slice_order)
    # closed form: SUVbw = C W / (D 2^(-dt / T)), dt = 3 h from injection to the series time, T = 6.007 h
    factor = 70.0e3 / (740e6 * 0.5 ** (3 * 3600.0 / 21624.0))
    np.testing.assert_allclose(vol.data, s.volume.data * factor, rtol=1e-5)


def test_number_of_slices_must_match_frames(tmp_path: Path) -> None:
    _write(tmp_path / "r.dcm", ipp=(0.0, 0.0, 0.0), iop=(1, 0, 0, 0, 1, 0), number_of_slices=7)
    with pytest.raises(DicomFormatError, match=r"r\.dcm: NumberOfSlices \(0054,0081\) is 7 but NumberOfFrames"):
        read_nm_recon(tmp_path / "r.dcm")


def test_projections_are_not_a_reconstruction(tmp_path: Path) -> None:
    _write(tmp_path / "r.dcm", ipp=(0.0, 0.0, 0.0), iop=(1, 0, 0, 0, 1, 0))
    import pydicom

    ds = pydicom.dcmread(tmp_path / "r.dcm")
    ds.ImageType = ["ORIGINAL", "PRIMARY", "TOMO", "EMISSION"]
    ds.save_as(tmp_path / "p.dcm")
    with pytest.raises(DicomFormatError, match="not a reconstruction"):
        read_nm_recon(tmp_path / "p.dcm")


def test_cli_suv_reads_one_nm_recon_file(tmp_path: Path) -> None:
    import json

    from recon.cli import main as recon_main

    _write(tmp_path / "r.dcm", ipp=(0.0, 0.0, 0.0), iop=(1, 0, 0, 0, 1, 0))
    s = read_nm_recon(tmp_path / "r.dcm")
    assert recon_main(["-q", "suv", str(tmp_path / "r.dcm"), "--json", str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    factor = 70.0e3 / (740e6 * 0.5 ** (3 * 3600.0 / 21624.0))
    assert report["voi"]["mean"] == pytest.approx(float(s.volume.data.mean()) * factor, rel=1e-5)
