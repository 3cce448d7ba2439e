"""Image-plane geometry: from DICOM orientation and positions to an axis-aligned LPS (z, y, x) grid.

Voxel (k, r, c) of a stack of slices sits at

    P_0 + c * PixelSpacing[1] * row_dir + r * PixelSpacing[0] * col_dir + k * step * normal

with P_0 the Image Position (Patient) of slice 0 (centre of its first
voxel), row_dir / col_dir the two halves of Image Orientation (Patient)
(0020,0037) and normal = row_dir x col_dir. :class:`ImageGrid` has no
rotation, so the stack is transposed and flipped until its axes run along
+z, +y, +x; oblique orientations are refused.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from recon.data.grid import ImageGrid
from recon.io.dicom.values import DicomFormatError

__all__ = ["PlacedStack", "orientation", "place_stack", "vector"]


def vector(ds: Any, keyword: str, n: int, where: str) -> np.ndarray:
    """``keyword`` of ``ds`` as ``n`` finite floats; DicomFormatError naming the file/tag otherwise."""
    v = ds.get(keyword) if ds is not None else None
    if v is None or v == "":
        raise DicomFormatError(f"{where}{keyword} is missing")
    try:
        a = np.array([float(x) for x in v], dtype=np.float64)
    except (TypeError, ValueError):
        raise DicomFormatError(f"{where}{keyword} must hold {n} numbers, got {v!r}") from None
    if a.shape != (n,) or not np.all(np.isfinite(a)):
        raise DicomFormatError(f"{where}{keyword} must hold {n} finite numbers, got {list(v)}")
    return a


def orientation(iop: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row direction, column direction and slice normal (row x col) of an ImageOrientationPatient."""
    row_dir, col_dir = iop[:3], iop[3:]
    if abs(np.dot(row_dir, col_dir)) > 1e-3 or not np.allclose(
        [np.linalg.norm(row_dir), np.linalg.norm(col_dir)], 1.0, atol=1e-3
    ):
        raise DicomFormatError(f"ImageOrientationPatient {iop.tolist()} is not two orthonormal directions")
    return row_dir, col_dir, np.cross(row_dir, col_dir)


@dataclass(frozen=True)
class PlacedStack:
    """A (slice, row, column) stack mapped onto an LPS grid: ``data`` (z, y, x) float32, ``grid``,
    ``slice_axis`` (volume axis the slices lie along) and ``slice_order`` (stack index of volume index i)."""

    data: np.ndarray
    grid: ImageGrid
    slice_axis: int
    slice_order: tuple[int, ...]


def place_stack(
    stack: np.ndarray, first_position: np.ndarray, iop: np.ndarray, step_mm: float, pixel_spacing: np.ndarray
) -> PlacedStack:
    """Transpose/flip a (k, r, c) stack so its axes run along +z, +y, +x (LPS); the grid of the result.

    ``first_position`` is the LPS centre (mm) of voxel (0, 0, 0), ``step_mm``
    the signed distance between slices along the normal, ``pixel_spacing``
    (between rows, between columns) in mm.
    """
    row_dir, col_dir, normal = orientation(iop)
    if step_mm < 0:  # slices run against the normal
        normal, step_mm = -normal, -step_mm
    vectors = [normal, col_dir, row_dir]  # stack axes (k, r, c)
    spacings = [float(step_mm), float(pixel_spacing[0]), float(pixel_spacing[1])]
    lps_axis, signs = [], []
    for v in vectors:
        a = int(np.argmax(np.abs(v)))
        if abs(abs(v[a]) - 1.0) > 1e-3:
            raise DicomFormatError(
                f"oblique ImageOrientationPatient {iop.tolist()}: only axis-aligned series map onto ImageGrid"
            )
        lps_axis.append(a)
        signs.append(1.0 if v[a] > 0 else -1.0)
    if sorted(lps_axis) != [0, 1, 2]:
        raise DicomFormatError(f"ImageOrientationPatient {iop.tolist()} does not span three axes")
    vol_axis_of_stack = [2 - a for a in lps_axis]  # LPS x->2, y->1, z->0
    perm = [vol_axis_of_stack.index(j) for j in range(3)]  # stack axis feeding volume axis j
    data = np.transpose(stack, perm)
    origin = np.asarray(first_position, dtype=np.float64).copy()
    for s_ax in range(3):
        if signs[s_ax] < 0:
            origin += (stack.shape[s_ax] - 1) * spacings[s_ax] * vectors[s_ax]
            data = np.flip(data, axis=vol_axis_of_stack[s_ax])
    spacing_zyx = tuple(spacings[perm[j]] for j in range(3))
    origin_xyz = (float(origin[0]), float(origin[1]), float(origin[2]))
    grid = ImageGrid(tuple(data.shape), spacing_zyx, origin_xyz)  # type: ignore[arg-type]
    n = stack.shape[0]
    order = tuple(range(n)) if signs[0] > 0 else tuple(range(n - 1, -1, -1))
    return PlacedStack(np.ascontiguousarray(data, dtype=np.float32), grid, vol_axis_of_stack[0], order)
