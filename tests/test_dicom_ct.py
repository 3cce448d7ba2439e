"""CT series -> HU Volume -> mu-map on a SPECT grid: values, geometry, coverage errors."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from recon.data.grid import ImageGrid, Volume
from recon.data.materials import linear_mu_per_mm
from recon.io.dicom import DicomFormatError, read_ct_series
from recon.physics.attenuation import bilinear_model, ct_to_mu_map, cortical_bone_hu, hu_to_mu
from recon.physics.resample import resample_grid as resample_trilinear

CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def _write_ct(
    directory: Path,
    hu: np.ndarray,
    spacing_zyx: tuple[float, float, float],
    corner_xyz: tuple[float, float, float],
    *,
    flip_x: bool = False,
    skip_slice: int | None = None,
    frame_of_reference: str | None = None,
) -> str:
    """Write ``hu`` (z, y, x; index increasing with +x, +y, +z) as a CT series, files in scrambled order.

    ``corner_xyz`` is the LPS centre of voxel [0, 0, 0]. With ``flip_x`` the rows run along -x.
    """
    directory.mkdir(parents=True, exist_ok=True)
    nz, ny, nx = hu.shape
    dz, dy, dx = spacing_zyx
    series, study, frame = generate_uid(), generate_uid(), frame_of_reference or generate_uid()
    order = np.random.default_rng(11).permutation(nz)
    for n, k in enumerate(order):
        if k == skip_slice:
            continue
        img = hu[k][:, ::-1] if flip_x else hu[k]
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = CT_STORAGE
        ds.SOPClassUID = CT_STORAGE
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.Modality = "CT"
        ds.SeriesInstanceUID, ds.StudyInstanceUID, ds.FrameOfReferenceUID = series, study, frame
        ds.KVP = 120
        ds.Rows, ds.Columns = ny, nx
        ds.PixelSpacing = [dy, dx]
        ds.SliceThickness = dz
        x0 = corner_xyz[0] + (nx - 1) * dx if flip_x else corner_xyz[0]
        ds.ImagePositionPatient = [x0, corner_xyz[1], corner_xyz[2] + k * dz]
        ds.ImageOrientationPatient = [-1 if flip_x else 1, 0, 0, 0, 1, 0]
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
        ds.PixelData = (np.asarray(img) + 1024).astype("<u2").tobytes()
        ds.save_as(directory / f"ct_{n:03d}.dcm", enforce_file_format=True)
    (directory / "notes.txt").write_text("not DICOM")
    return frame


def test_water_gives_water_mu_at_tc99m(tmp_path: Path) -> None:
    hu = np.zeros((6, 8, 8), dtype=np.int32)
    _write_ct(tmp_path / "ct", hu, (5.0, 4.0, 4.0), (-14.0, -14.0, -12.5))
    ct = read_ct_series(tmp_path / "ct")
    assert ct.unit == "HU" and ct.grid.shape == (6, 8, 8)
    np.testing.assert_array_equal(ct.data, 0.0)
    target = ImageGrid.centered((4, 5, 5), (4.0, 4.0, 4.0))
    mu = ct_to_mu_map(ct, target, 140.5)
    # NIST XCOM water, 140.5 keV: mu/rho ~ 0.1536 cm^2/g -> 0.01536 /mm
    assert mu.unit == "1/mm"
    np.testing.assert_allclose(mu.data, linear_mu_per_mm("water", 140.5), rtol=5e-3)
    np.testing.assert_allclose(mu.data, 0.01536, rtol=5e-3)


def test_bilinear_model_segments() -> None:
    model = bilinear_model(140.5)
    hu = np.array([-2000.0, -1000.0, -500.0, 0.0, model.bone_hu, 2 * model.bone_hu])
    mu = model(hu)
    mw, mb = linear_mu_per_mm("water", 140.5), linear_mu_per_mm("cortical_bone", 140.5)
    np.testing.assert_allclose(mu[:5], [0.0, 0.0, mw / 2, mw, mb], rtol=1e-6)
    assert mu[5] > mb
    # cortical bone at a 120 kVp beam is of the order of 1500-2000 HU
    assert 1200 < cortical_bone_hu() < 2200
    # continuity at a non-zero break point
    b = bilinear_model(140.5, break_hu=50.0)
    lo, hi = b(np.array([50.0 - 1e-6, 50.0 + 1e-6]))
    assert abs(float(lo) - float(hi)) < 1e-7
    h = np.array([[-100.0, 0.0]])
    h_copy = h.copy()
    hu_to_mu(h, 140.5)
    np.testing.assert_array_equal(h, h_copy)


@pytest.mark.parametrize("flip_x", [False, True])
def test_cube_lands_at_its_patient_position(tmp_path: Path, flip_x: bool) -> None:
    # CT: 2 mm voxels, air background, a water cube whose centre is at (x, y, z) = (30, -20, 15) mm
    dz, dy, dx = 2.0, 2.0, 2.0
    corner = (-63.0, -63.0, -40.0)  # voxel centres: x, y odd, z even -> a 20 mm cube, 10 voxels a side
    nz, ny, nx = 48, 64, 64
    hu = np.full((nz, ny, nx), -1000, dtype=np.int32)
    x = corner[0] + dx * np.arange(nx)
    y = corner[1] + dy * np.arange(ny)
    z = corner[2] + dz * np.arange(nz)
    inside = (
        (np.abs(z - 15.0) < 10.0)[:, None, None]
        & (np.abs(y + 20.0) < 10.0)[None, :, None]
        & (np.abs(x - 30.0) < 10.0)[None, None, :]
    )
    hu[inside] = 0
    _write_ct(tmp_path / "ct", hu, (dz, dy, dx), corner, flip_x=flip_x)
    ct = read_ct_series(tmp_path / "ct")
    np.testing.assert_allclose(ct.grid.origin_mm, corner)
    np.testing.assert_array_equal(ct.data, hu)

    # target samples placed symmetrically about the cube centre, so point sampling cannot bias the centroid
    target = ImageGrid((16, 24, 24), (4.0, 4.0, 4.0), (-46.0, -46.0, -29.0))
    mu = ct_to_mu_map(ct, target, 140.5).data
    mw = linear_mu_per_mm("water", 140.5)
    zz, yy, xx = np.meshgrid(target.axis_mm("z"), target.axis_mm("y"), target.axis_mm("x"), indexing="ij")
    total = mu.sum()
    centroid = [(mu * c).sum() / total for c in (xx, yy, zz)]
    np.testing.assert_allclose(centroid, (30.0, -20.0, 15.0), atol=0.5)
    # a target voxel at the cube's centre is water, one far away air
    iz, iy, ix = (int(np.argmin(np.abs(target.axis_mm(a) - c))) for a, c in (("z", 15.0), ("y", -20.0), ("x", 30.0)))
    assert abs(mu[iz, iy, ix] - mw) < 1e-6
    assert mu[0, 0, 0] == 0.0
    # the cube's volume is preserved: 20 mm cube -> 8 mL of water-equivalent mu
    assert abs(total * 64.0 / mw - 8000.0) < 0.02 * 8000.0


def test_fov_not_covered_along_z(tmp_path: Path) -> None:
    hu = np.zeros((10, 8, 8), dtype=np.int32)
    _write_ct(tmp_path / "ct", hu, (3.0, 4.0, 4.0), (-14.0, -14.0, 0.0))
    ct = read_ct_series(tmp_path / "ct")  # covers z = -1.5 .. 28.5 mm
    inside = ImageGrid((6, 4, 4), (4.0, 4.0, 4.0), (-6.0, -6.0, 2.0))
    ct_to_mu_map(ct, inside, 140.5)
    too_long = ImageGrid((10, 4, 4), (4.0, 4.0, 4.0), (-6.0, -6.0, 2.0))
    with pytest.raises(ValueError, match=r"does not cover the emission field of view along z"):
        ct_to_mu_map(ct, too_long, 140.5, outside_z="error")
    padded = ct_to_mu_map(ct, too_long, 140.5)  # a CT shorter than the emission grid: air beyond it
    assert (padded.data[:7] > 0).all() and (padded.data[7:] == 0).all()


def test_fov_outside_xy_is_air_or_error(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    hu = np.zeros((4, 8, 8), dtype=np.int32)
    _write_ct(tmp_path / "ct", hu, (4.0, 4.0, 4.0), (-14.0, -14.0, -6.0))
    ct = read_ct_series(tmp_path / "ct")
    wide = ImageGrid.centered((2, 12, 12), (4.0, 4.0, 4.0))
    with caplog.at_level(logging.WARNING):
        mu = ct_to_mu_map(ct, wide, 140.5).data
    assert "set to air" in caplog.text
    assert mu[0, 0, 0] == 0.0 and mu[0, 6, 6] > 0.0
    with pytest.raises(ValueError, match="does not cover"):
        ct_to_mu_map(ct, wide, 140.5, outside_xy="error")


def test_missing_slice_is_an_error(tmp_path: Path) -> None:
    hu = np.zeros((6, 4, 4), dtype=np.int32)
    _write_ct(tmp_path / "ct", hu, (3.0, 4.0, 4.0), (0.0, 0.0, 0.0), skip_slice=3)
    with pytest.raises(DicomFormatError, match="not uniform"):
        read_ct_series(tmp_path / "ct")


def test_resample_identity_and_shift() -> None:
    rng = np.random.default_rng(2)
    data = rng.random((5, 6, 7)).astype(np.float32)
    grid = ImageGrid((5, 6, 7), (2.0, 3.0, 4.0), (1.0, 2.0, 3.0))
    np.testing.assert_allclose(resample_trilinear(data, grid, grid), data, atol=1e-6)
    shifted = ImageGrid((5, 6, 6), (2.0, 3.0, 4.0), (3.0, 2.0, 3.0))  # half a voxel along x
    expected = 0.5 * (data[..., :-1] + data[..., 1:])
    np.testing.assert_allclose(resample_trilinear(data, grid, shifted), expected, atol=1e-6)
    vol = Volume(data, grid, unit="HU")
    assert vol.unit == "HU"
