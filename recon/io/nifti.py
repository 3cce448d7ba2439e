"""NIfTI images (.nii, .nii.gz) through nibabel: masks and label images in, volumes out.

NIfTI indexes voxels (i, j, k) and maps them to RAS+ world millimetres (x grows
towards the patient's Right, y Anterior, z Superior) by the sform (sform_code >
0, preferred), else the qform (qform_code > 0), else by the voxel sizes alone
(NIfTI "method 1"). Our patient space is DICOM LPS (Left, Posterior,
Superior), so (x, y, z)_LPS = (-x, -y, z)_RAS, and our arrays are (z, y, x):
a Volume's voxel [k, j, i] is NIfTI voxel (i, j, k).

Resampling onto another grid is geometry and lives in :mod:`recon.physics.resample`.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError

from recon.data.grid import ImageGrid, Volume
from recon.io.atomic import atomic_output, check_writable_target
from recon.physics.resample import resample

__all__ = ["NiftiError", "NiftiImage", "check_nifti_suffix", "read_mask_on_grid", "read_nifti", "resample_to_grid", "write_nifti"]

logger = logging.getLogger(__name__)

RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
#: (k, j, i, 1) -> (i, j, k, 1): from our (z, y, x) index order to NIfTI's
_ZYX_TO_IJK = np.array([[0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]], dtype=np.float64)
_SUFFIXES = (".nii", ".nii.gz")


class NiftiError(ValueError):
    """The file is not a NIfTI image this reader understands."""


@dataclass(frozen=True)
class NiftiImage:
    """Voxel array indexed (i, j, k) (first volume of a 4-D image) and the 4x4 affine (i, j, k, 1) -> LPS mm."""

    data: np.ndarray
    affine_lps: np.ndarray
    transform_source: str  # "sform", "qform" or "pixdim"

    @property
    def affine_ras(self) -> np.ndarray:
        """The 4x4 affine to NIfTI's RAS+ world (mm)."""
        return RAS_TO_LPS @ self.affine_lps

    @property
    def affine_zyx_lps(self) -> np.ndarray:
        """The 4x4 affine from our (z, y, x, 1) = (k, j, i, 1) index order to LPS (x, y, z, 1) mm."""
        return self.affine_lps @ _ZYX_TO_IJK

    def to_zyx(self) -> np.ndarray:
        """The array reordered to (k, j, i), i.e. (z, y, x) when the affine is diagonal."""
        return np.ascontiguousarray(np.transpose(self.data, (2, 1, 0)))


def check_nifti_suffix(path: Path) -> None:
    """Raise NiftiError unless the name ends with .nii or .nii.gz."""
    if not path.name.endswith(_SUFFIXES):
        raise NiftiError(f"{path}: a NIfTI file name ends with .nii or .nii.gz")


def read_nifti(path: str | os.PathLike[str]) -> NiftiImage:
    """Read a NIfTI-1/2 ``.nii`` or ``.nii.gz`` image; scl_slope/scl_inter applied, index order (i, j, k)."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p} does not exist")
    check_nifti_suffix(p)
    try:
        img = nib.load(str(p))
    except (ImageFileError, OSError, EOFError, ValueError) as exc:
        raise NiftiError(f"{p}: not a readable NIfTI image ({exc})") from exc
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise NiftiError(f"{p}: not a single-file NIfTI image (got {type(img).__name__})")
    header = img.header
    try:
        data = np.asanyarray(img.dataobj)  # applies scl_slope / scl_inter when set
    except (OSError, EOFError, ValueError) as exc:
        raise NiftiError(f"{p}: cannot read the voxel data ({exc})") from exc
    if data.ndim > 3:
        if int(np.prod(data.shape[3:])) > 1:
            logger.warning("%s: image of shape %s; using its first 3-D volume", p, data.shape)
        data = data[(slice(None),) * 3 + (0,) * (data.ndim - 3)]
    while data.ndim < 3:
        data = data[..., np.newaxis]
    sform, sform_code = header.get_sform(coded=True)
    qform, qform_code = header.get_qform(coded=True)
    if sform is not None and int(sform_code) > 0:
        affine_ras, source = np.asarray(sform, dtype=np.float64), "sform"
    elif qform is not None and int(qform_code) > 0:
        affine_ras, source = np.asarray(qform, dtype=np.float64), "qform"
    else:
        zooms = [float(z) or 1.0 for z in header.get_zooms()[:3]] + [1.0] * (3 - len(header.get_zooms()[:3]))
        affine_ras, source = np.diag([*zooms, 1.0]), "pixdim"
    if not np.isfinite(affine_ras).all() or abs(np.linalg.det(affine_ras[:3, :3])) < 1e-12:
        raise NiftiError(f"{p}: the {source} affine is singular or not finite")
    return NiftiImage(np.ascontiguousarray(data), RAS_TO_LPS @ affine_ras, source)


def resample_to_grid(image: NiftiImage, grid: ImageGrid, *, method: str = "nearest",
                     fill: float = 0.0) -> np.ndarray:
    """Values of ``image`` at the voxel centres of ``grid`` as a (z, y, x) array (``fill`` outside).

    ``"nearest"`` keeps the image's dtype; ``"linear"`` (trilinear) gives float32.
    """
    return resample(image.to_zyx(), image.affine_zyx_lps, grid, method=method, fill=fill)


def read_mask_on_grid(path: str | os.PathLike[str], grid: ImageGrid, *, method: str = "nearest",
                      threshold: float = 0.5) -> np.ndarray:
    """A boolean (z, y, x) mask on ``grid`` from a NIfTI mask or label image (voxels > 0 are in).

    ``"nearest"``: the nearest NIfTI voxel is > 0. ``"linear"``: the trilinear
    interpolation of the (0/1) mask is at least ``threshold`` (a mask drawn on
    a finer grid). Points outside the image are out.
    """
    image = read_nifti(path)
    if method == "nearest":
        return resample_to_grid(image, grid, method="nearest") > 0
    inside = (image.to_zyx() > 0).astype(np.float32)
    return resample(inside, image.affine_zyx_lps, grid, method=method) >= threshold


def nifti_affine_ras(grid: ImageGrid) -> np.ndarray:
    """The NIfTI (i, j, k, 1) -> RAS+ (mm) affine of our grid, i = x index, j = y, k = z."""
    dz, dy, dx = grid.spacing_mm
    ox, oy, oz = grid.origin_mm
    lps = np.array([[dx, 0, 0, ox], [0, dy, 0, oy], [0, 0, dz, oz], [0, 0, 0, 1.0]])
    return RAS_TO_LPS @ lps


def write_nifti(volume: Volume, path: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """Write ``volume`` as a float32 NIfTI-1 image (.nii or .nii.gz) in RAS+, sform and qform set; returns the path.

    Written to a temporary file next to ``path`` and renamed, so a failed write
    leaves nothing; an existing file is refused unless ``overwrite``.
    """
    p = Path(path)
    check_nifti_suffix(p)
    check_writable_target(p, overwrite)
    host = volume.to_host()
    affine = nifti_affine_ras(host.grid)
    img = nib.Nifti1Image(np.transpose(host.data, (2, 1, 0)).astype(np.float32), affine)
    img.set_sform(affine, code=1)  # scanner-based anatomical coordinates
    img.set_qform(affine, code=1)
    img.header.set_xyzt_units("mm", "sec")
    img.header["descrip"] = f"recon unit={host.unit}"[:79].encode("ascii", "replace")
    suffix = ".nii.gz" if p.name.endswith(".nii.gz") else ".nii"
    with atomic_output(p, overwrite, suffix) as tmp:
        nib.save(img, str(tmp))
    logger.info("wrote %s (%s, %d x %d x %d voxels)", p, host.unit, *host.grid.shape)
    return p
