"""NIfTI through nibabel: RAS <-> LPS and (i, j, k) <-> (z, y, x) checked with asymmetric volumes, both ways."""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from recon.data.grid import ImageGrid, Volume
from recon.io.nifti import NiftiError, read_mask_on_grid, read_nifti, resample_to_grid, write_nifti

GRID = ImageGrid((5, 6, 7), (4.0, 3.0, 2.0), (-10.0, 25.0, -40.0))  # (z, y, x), origin LPS (x, y, z)
MARK_ZYX = (1, 4, 5)


def _marked_volume() -> Volume:
    data = np.zeros(GRID.shape, dtype=np.float32)
    data[MARK_ZYX] = 7.0
    data[0, 0, 0] = 1.0
    return Volume(data, GRID, "Bq/mL")


def test_written_file_puts_a_marked_voxel_where_the_patient_is(tmp_path: Path):
    path = write_nifti(_marked_volume(), tmp_path / "v.nii.gz")
    img = nib.load(str(path))  # read with nibabel itself, not through our reader
    arr = np.asanyarray(img.dataobj)
    assert arr.shape == (7, 6, 5)  # (i, j, k) = (x, y, z)
    ijk = np.argwhere(arr == 7.0)[0]
    np.testing.assert_array_equal(ijk, MARK_ZYX[::-1])
    ras = nib.affines.apply_affine(img.affine, ijk)
    lps = GRID.index_to_mm(MARK_ZYX)  # (x, y, z) = (-10 + 5*2, 25 + 4*3, -40 + 1*4) = (0, 37, -36)
    np.testing.assert_allclose(lps, (0.0, 37.0, -36.0))
    np.testing.assert_allclose(ras, (-lps[0], -lps[1], lps[2]))
    assert int(img.header["sform_code"]) == 1 and int(img.header["qform_code"]) == 1
    np.testing.assert_allclose(img.get_qform(), img.get_sform(), atol=1e-5)


def test_write_read_round_trip_is_exact(tmp_path: Path):
    vol = _marked_volume()
    img = read_nifti(write_nifti(vol, tmp_path / "v.nii"))
    assert img.transform_source == "sform"
    np.testing.assert_array_equal(img.to_zyx(), vol.data)
    np.testing.assert_array_equal(resample_to_grid(img, GRID), vol.data)
    np.testing.assert_allclose(img.affine_zyx_lps @ [*MARK_ZYX, 1], [*GRID.index_to_mm(MARK_ZYX), 1])


def test_never_overwrites_and_writes_atomically(tmp_path: Path):
    path = tmp_path / "v.nii.gz"
    path.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        write_nifti(_marked_volume(), path)
    assert path.read_bytes() == b"precious"
    write_nifti(_marked_volume(), path, overwrite=True)
    assert read_nifti(path).data.max() == 7.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.nii.gz"]  # no temporary file left
    with pytest.raises(NiftiError, match=".nii or .nii.gz"):
        write_nifti(_marked_volume(), tmp_path / "v.img")


def test_mask_written_by_nibabel_lands_on_our_grid(tmp_path: Path):
    # i runs towards the patient's Left (RAS -x), j Posterior (RAS -y), k Superior
    mask = np.zeros((7, 6, 5), dtype=np.uint8)  # (i, j, k)
    mask[5, 4, 1] = 1
    mask[0, 0, 0] = 2  # a second label
    affine = np.array([[-2.0, 0, 0, 10.0], [0, -3.0, 0, -25.0], [0, 0, 4.0, -40.0], [0, 0, 0, 1]])
    nib.save(nib.Nifti1Image(mask, affine), str(tmp_path / "m.nii.gz"))
    # that affine is exactly GRID's: LPS x = 2 i - 10, y = 3 j + 25, z = 4 k - 40
    on_grid = read_mask_on_grid(tmp_path / "m.nii.gz", GRID)
    assert on_grid.dtype == bool and on_grid.sum() == 2
    assert on_grid[MARK_ZYX] and on_grid[0, 0, 0]
    labels = resample_to_grid(read_nifti(tmp_path / "m.nii.gz"), GRID)
    assert labels.dtype == np.uint8 and labels[0, 0, 0] == 2 and labels[MARK_ZYX] == 1
    # the same mask read onto a grid shifted by one voxel along +x moves one index down in x
    shifted = ImageGrid(GRID.shape, GRID.spacing_mm, (GRID.origin_mm[0] + 2.0, *GRID.origin_mm[1:]))
    m2 = read_mask_on_grid(tmp_path / "m.nii.gz", shifted)
    assert m2[1, 4, 4] and m2.sum() == 1  # voxel (i=0) falls off the grid's low-x edge


def test_mask_with_permuted_axes_lands_on_our_grid(tmp_path: Path):
    # sagittal-style storage: i along z (superior), j along RAS -y, k along RAS -x; 4, 3, 2 mm
    mask = np.zeros((5, 6, 7), dtype=np.uint8)  # (i, j, k) = (z, y, x) indices of GRID
    mask[MARK_ZYX] = 1
    affine = np.array([[0, 0, -2.0, 10.0], [0, -3.0, 0, -25.0], [4.0, 0, 0, -40.0], [0, 0, 0, 1]])
    img = nib.Nifti1Image(mask, np.eye(4))
    img.set_qform(affine, code=1)  # qform only: sform_code 0
    img.set_sform(None, code=0)
    nib.save(img, str(tmp_path / "p.nii"))
    back = read_nifti(tmp_path / "p.nii")
    assert back.transform_source == "qform"
    on_grid = read_mask_on_grid(tmp_path / "p.nii", GRID)
    assert on_grid.sum() == 1 and on_grid[MARK_ZYX]


def test_scl_slope_is_applied_and_linear_mask_resampling(tmp_path: Path):
    data = np.zeros((4, 4, 4), dtype=np.int16)
    data[1:3, 1:3, 1:3] = 10
    img = nib.Nifti1Image(data, np.diag([-1.0, -1.0, 1.0, 1.0]))
    img.header.set_slope_inter(0.5, 1.0)
    nib.save(img, str(tmp_path / "s.nii"))
    back = read_nifti(tmp_path / "s.nii")
    assert back.data.max() == pytest.approx(6.0) and back.data.min() == pytest.approx(1.0)
    # a 2x coarser grid: each coarse voxel centre sits between fine voxels; the 2x2x2 block in the middle
    fine = ImageGrid((4, 4, 4), (1.0, 1.0, 1.0))
    coarse = ImageGrid((2, 2, 2), (2.0, 2.0, 2.0), (0.5, 0.5, 0.5))
    nib.save(nib.Nifti1Image((data > 0).astype(np.uint8), np.diag([-1.0, -1.0, 1.0, 1.0])), str(tmp_path / "b.nii"))
    m = read_mask_on_grid(tmp_path / "b.nii", coarse, method="linear", threshold=0.1)
    assert m.all()
    assert not read_mask_on_grid(tmp_path / "b.nii", coarse, method="linear", threshold=0.2).any()
    assert read_mask_on_grid(tmp_path / "b.nii", fine).sum() == 8


def test_bad_files_give_one_line_errors(tmp_path: Path):
    for name, content in (("empty.nii", b""), ("text.nii", b"hello"), ("zeros.nii.gz", b"\0" * 400)):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(NiftiError, match=name):
            read_nifti(tmp_path / name)
    with pytest.raises(FileNotFoundError):
        read_nifti(tmp_path / "missing.nii")
