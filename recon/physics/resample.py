"""Resampling in patient coordinates: one interpolator for every source geometry.

A source array is indexed (z, y, x) [its axes (0, 1, 2)] and placed in patient
space by a 4x4 affine ``A`` from (k, j, i, 1) to LPS (x, y, z, 1) in mm; an
:class:`ImageGrid` is the axis-aligned special case (:func:`grid_affine`), a
NIfTI image or an oblique series give a general ``A``. Each target voxel centre
p (LPS mm) is mapped to fractional source indices f = A^-1 p and interpolated:

* ``"linear"``: trilinear over the 8 neighbours; a point within the source's
  outer half voxel takes the edge value; beyond that it gets ``fill``;
* ``"nearest"``: the voxel f rounds to (``fill`` outside the source).

Geometry only, no file I/O and no physics choices.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from recon.data.grid import ImageGrid

__all__ = ["grid_affine", "resample", "resample_grid", "shift_affine", "source_footprint"]

_METHODS = ("linear", "nearest")
_EDGE_TOL = 1e-6  # fractional-index slack for points that sit on the outer half-voxel edge


def grid_affine(grid: ImageGrid) -> np.ndarray:
    """The 4x4 affine from (z, y, x, 1) voxel indices to LPS (x, y, z, 1) mm of ``grid``."""
    dz, dy, dx = grid.spacing_mm
    ox, oy, oz = grid.origin_mm
    a = np.zeros((4, 4))
    a[0, 2], a[1, 1], a[2, 0] = dx, dy, dz
    a[:3, 3] = (ox, oy, oz)
    a[3, 3] = 1.0
    return a


def _check_affine(affine: Any) -> np.ndarray:
    a = np.asarray(affine, dtype=np.float64)
    if a.shape != (4, 4) or not np.isfinite(a).all():
        raise ValueError(f"source affine must be a finite 4x4 matrix, got shape {a.shape}")
    if abs(np.linalg.det(a[:3, :3])) < 1e-12:
        raise ValueError("source affine is singular (zero voxel size or degenerate axes)")
    return a


def _source_index_planes(inv: np.ndarray, target: ImageGrid, k: int) -> list[np.ndarray]:
    """Fractional source indices (fz, fy, fx), each (ny, nx), of target slice ``k``'s voxel centres."""
    x = target.axis_mm("x")[np.newaxis, :]
    y = target.axis_mm("y")[:, np.newaxis]
    z = float(target.axis_mm("z")[k])
    return [inv[r, 0] * x + inv[r, 1] * y + (inv[r, 2] * z + inv[r, 3]) for r in range(3)]


def _nearest(flat: np.ndarray, shape: tuple[int, ...], f: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(inside mask, values there) of the voxels the fractional indices ``f`` round to."""
    idx = [np.rint(fa).astype(np.int64) for fa in f]
    inside = np.ones(idx[0].shape, dtype=bool)
    for a in range(3):
        inside &= (idx[a] >= 0) & (idx[a] < shape[a])
    lin = (idx[0][inside] * shape[1] + idx[1][inside]) * shape[2] + idx[2][inside]
    return inside, flat[lin]


def _trilinear(flat: np.ndarray, shape: tuple[int, ...], f: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(inside mask, trilinear values there) at fractional indices ``f``; the outer half voxel takes the edge."""
    inside = np.ones(f[0].shape, dtype=bool)
    for a in range(3):
        inside &= (f[a] >= -0.5 - _EDGE_TOL) & (f[a] <= shape[a] - 0.5 + _EDGE_TOL)
    lo, hi, w = [], [], []
    for a in range(3):
        n = shape[a]
        fa = np.clip(f[a][inside], 0.0, n - 1.0)
        i0 = np.zeros(fa.shape, dtype=np.int64) if n == 1 else np.minimum(np.floor(fa).astype(np.int64), n - 2)
        lo.append(i0)
        hi.append(np.minimum(i0 + 1, n - 1))
        w.append(fa - i0)
    acc = np.zeros(lo[0].shape, dtype=np.float64)
    for bz in (0, 1):
        iz, wz = (hi[0], w[0]) if bz else (lo[0], 1.0 - w[0])
        for by in (0, 1):
            iy, wy = (hi[1], w[1]) if by else (lo[1], 1.0 - w[1])
            for bx in (0, 1):
                ix, wx = (hi[2], w[2]) if bx else (lo[2], 1.0 - w[2])
                acc += (wz * wy * wx) * flat[(iz * shape[1] + iy) * shape[2] + ix]
    return inside, acc


def resample(data: Any, source_affine: Any, target: ImageGrid, *, method: str = "linear",
             fill: float = 0.0) -> np.ndarray:
    """Values of ``data`` (z, y, x) placed by ``source_affine`` at the voxel centres of ``target``.

    ``source_affine``: 4x4 from (z, y, x, 1) source indices to LPS (x, y, z, 1) mm.
    ``method`` ``"linear"`` returns float32; ``"nearest"`` keeps the source dtype
    (float32 when ``fill`` is not 0). Points outside the source get ``fill``.
    Works one target slice at a time, so memory stays at a few slices.
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    arr = np.asarray(data)
    if arr.ndim != 3:
        raise ValueError(f"source data must be 3-D (z, y, x), got shape {arr.shape}")
    inv = np.linalg.inv(_check_affine(source_affine))
    flat = arr.reshape(-1)
    if method == "nearest":
        dtype, sample = (arr.dtype if fill == 0 else np.result_type(arr.dtype, np.float32)), _nearest
    else:
        dtype, sample = np.dtype(np.float32), _trilinear
    out = np.full(target.shape, fill, dtype=dtype)
    for k in range(target.shape[0]):
        inside, values = sample(flat, arr.shape, _source_index_planes(inv, target, k))
        out[k][inside] = values
    return out


def resample_grid(data: Any, source: ImageGrid, target: ImageGrid, *, method: str = "linear",
                  fill: float = 0.0) -> np.ndarray:
    """:func:`resample` for a source on an :class:`ImageGrid` (``data`` must have its shape)."""
    arr = np.asarray(data)
    if arr.shape != source.shape:
        raise ValueError(f"data shape {arr.shape} does not match source grid {source.shape}")
    return resample(arr, grid_affine(source), target, method=method, fill=fill)


def source_footprint(source_shape: tuple[int, int, int], source_affine: Any,
                     target: ImageGrid) -> tuple[slice, slice, slice]:
    """The index box of the source that linear interpolation at ``target``'s voxel centres touches.

    Lets a caller convert only that block (e.g. HU -> mu) and resample it with
    the affine shifted by the box's start (:func:`shift_affine`); the result is
    the same as resampling the whole source. No overlap gives a 1-voxel box at
    the nearest edge.
    """
    inv = np.linalg.inv(_check_affine(source_affine))
    nz, ny, nx = target.shape
    corners = np.array([[k, j, i] for k in (0, nz - 1) for j in (0, ny - 1) for i in (0, nx - 1)], dtype=float)
    lps = target.index_to_mm(corners)  # (8, 3) x, y, z
    f = (inv[:3, :3] @ lps.T).T + inv[:3, 3]
    out = []
    for a in range(3):
        n = int(source_shape[a])
        lo = int(np.clip(np.floor(f[:, a].min()), 0, n - 1))
        hi = int(np.clip(np.floor(f[:, a].max()) + 1, lo, n - 1))
        out.append(slice(lo, hi + 1))
    return tuple(out)  # type: ignore[return-value]


def shift_affine(source_affine: Any, start_zyx: tuple[int, int, int]) -> np.ndarray:
    """The affine of the sub-array that starts at index ``start_zyx`` of a source placed by ``source_affine``."""
    a = _check_affine(source_affine).copy()
    a[:3, 3] = a[:3, 3] + a[:3, :3] @ np.asarray(start_zyx, dtype=np.float64)
    return a

