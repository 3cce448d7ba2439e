"""A small NIfTI-1 reader (.nii, .nii.gz) for masks and label images.

NIfTI stores voxels with the first index i fastest (Fortran order) and maps
index (i, j, k) to RAS+ world millimetres by the sform (sform_code > 0,
preferred) or the qform quaternion (qform_code > 0), else by the voxel sizes
alone. In RAS+, x grows towards the patient's Right, y Anterior, z Superior;
DICOM LPS grows towards Left, Posterior, Superior, so
(x, y, z)_LPS = (-x, -y, z)_RAS.

Only what masks need is supported: NIfTI-1 single files, integer and float
datatypes, scl_slope/scl_inter; NIfTI-2 and .hdr/.img pairs are refused with a
clear error.
"""
from __future__ import annotations

import gzip
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recon.data.grid import ImageGrid

__all__ = ["NiftiImage", "NiftiError", "read_nifti", "resample_to_grid"]

_DTYPES: dict[int, str] = {
    2: "u1", 4: "i2", 8: "i4", 16: "f4", 64: "f8", 256: "i1", 512: "u2", 768: "u4", 1024: "i8", 1280: "u8",
}
_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


class NiftiError(ValueError):
    """The file is not a NIfTI-1 image this reader understands."""


@dataclass(frozen=True)
class NiftiImage:
    """Voxel array indexed (i, j, k[, ...]) and the 4x4 affine from (i, j, k, 1) to LPS mm."""

    data: np.ndarray
    affine_lps: np.ndarray
    transform_source: str  # "sform", "qform" or "pixdim"

    @property
    def affine_ras(self) -> np.ndarray:
        """The 4x4 affine to NIfTI's RAS+ world (mm)."""
        return _RAS_TO_LPS @ self.affine_lps

    def to_zyx(self) -> np.ndarray:
        """The first three axes reordered to (k, j, i), i.e. (z, y, x) when the affine is diagonal."""
        return np.ascontiguousarray(np.transpose(self.data[..., 0] if self.data.ndim == 4 else self.data, (2, 1, 0)))


def _qform_affine(b: float, c: float, d: float, qx: float, qy: float, qz: float,
                  pixdim: tuple[float, ...]) -> np.ndarray:
    a2 = 1.0 - (b * b + c * c + d * d)
    a = math.sqrt(a2) if a2 > 0 else 0.0
    r = np.array([
        [a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
        [2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b)],
        [2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - c * c - b * b],
    ])
    qfac = -1.0 if pixdim[0] < 0 else 1.0
    m = np.eye(4)
    m[:3, :3] = r @ np.diag([pixdim[1], pixdim[2], qfac * pixdim[3]])
    m[:3, 3] = (qx, qy, qz)
    return m


def read_nifti(path: str | os.PathLike[str]) -> NiftiImage:
    """Read a NIfTI-1 ``.nii`` or ``.nii.gz`` file; data keep NIfTI index order (i, j, k, ...)."""
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 348:
        raise NiftiError(f"{path}: too short for a NIfTI header ({len(raw)} bytes)")
    for endian in ("<", ">"):
        size = struct.unpack(endian + "i", raw[:4])[0]
        if size in (348, 540):
            break
    else:
        raise NiftiError(f"{path}: not a NIfTI file (sizeof_hdr is neither 348 nor 540)")
    if size == 540:
        raise NiftiError(f"{path}: NIfTI-2 is not supported; save the mask as NIfTI-1")
    magic = raw[344:348]
    if magic != b"n+1\x00":
        raise NiftiError(f"{path}: magic {magic!r} is not a single-file NIfTI-1 ('n+1'); .hdr/.img pairs are not supported")
    e = endian
    dim = struct.unpack(e + "8h", raw[40:56])
    datatype = struct.unpack(e + "h", raw[70:72])[0]
    pixdim = struct.unpack(e + "8f", raw[76:108])
    vox_offset = int(struct.unpack(e + "f", raw[108:112])[0])
    scl_slope, scl_inter = struct.unpack(e + "2f", raw[112:120])
    qform_code, sform_code = struct.unpack(e + "2h", raw[252:256])
    quat = struct.unpack(e + "6f", raw[256:280])
    srow = np.array(struct.unpack(e + "12f", raw[280:328]), dtype=np.float64).reshape(3, 4)
    ndim = dim[0]
    if not 1 <= ndim <= 7:
        raise NiftiError(f"{path}: dim[0] = {ndim} is not in 1..7")
    shape = tuple(int(d) for d in dim[1 : ndim + 1])
    if datatype not in _DTYPES:
        raise NiftiError(f"{path}: NIfTI datatype {datatype} is not supported (supported: {sorted(_DTYPES)})")
    dtype = np.dtype(e + _DTYPES[datatype])
    count = int(np.prod(shape))
    need = vox_offset + count * dtype.itemsize
    if len(raw) < need:
        raise NiftiError(f"{path}: data truncated ({len(raw)} bytes, need {need})")
    data = np.frombuffer(raw, dtype=dtype, count=count, offset=vox_offset).reshape(shape, order="F")
    data = data.astype(dtype.newbyteorder("="))
    if scl_slope not in (0.0, 1.0) or scl_inter != 0.0:
        if math.isfinite(scl_slope) and scl_slope != 0.0:
            data = data.astype(np.float64) * scl_slope + scl_inter
    while data.ndim < 3:
        data = data[..., np.newaxis]

    if sform_code > 0:
        aff_ras = np.eye(4)
        aff_ras[:3, :] = srow
        source = "sform"
    elif qform_code > 0:
        aff_ras = _qform_affine(*quat, pixdim=pixdim)
        source = "qform"
    else:
        aff_ras = np.diag([pixdim[1] or 1.0, pixdim[2] or 1.0, pixdim[3] or 1.0, 1.0])
        source = "pixdim"
    return NiftiImage(data, _RAS_TO_LPS @ aff_ras, source)


def resample_to_grid(image: NiftiImage, grid: ImageGrid, *, fill: float = 0.0) -> np.ndarray:
    """Nearest-neighbour values of ``image`` at the voxel centres of ``grid``, as a (z, y, x) array.

    Each grid voxel centre (LPS mm) is mapped through the inverse affine to a
    NIfTI index and rounded; points outside the image get ``fill``.
    """
    vol = image.data[..., 0] if image.data.ndim == 4 else image.data
    if vol.ndim != 3:
        raise NiftiError(f"expected a 3-D image, got shape {image.data.shape}")
    inv = np.linalg.inv(image.affine_lps)
    x, y, z = grid.axis_mm("x"), grid.axis_mm("y"), grid.axis_mm("z")
    # index = inv[:3,:3] @ (x, y, z) + inv[:3, 3], evaluated separably then broadcast (z, y, x)
    out_idx = []
    for r in range(3):
        ijk = (inv[r, 0] * x[np.newaxis, np.newaxis, :] + inv[r, 1] * y[np.newaxis, :, np.newaxis]
               + inv[r, 2] * z[:, np.newaxis, np.newaxis] + inv[r, 3])
        out_idx.append(np.rint(ijk).astype(np.int64))
    i, j, k = np.broadcast_arrays(*out_idx)
    inside = (i >= 0) & (i < vol.shape[0]) & (j >= 0) & (j < vol.shape[1]) & (k >= 0) & (k < vol.shape[2])
    out = np.full(grid.shape, fill, dtype=np.result_type(vol.dtype, np.float32) if fill != 0 else vol.dtype)
    out[inside] = vol[i[inside], j[inside], k[inside]]
    return out
