"""Analytic shapes in patient space and their rasterisation onto an :class:`ImageGrid`.

Every shape answers three questions exactly:

* ``contains(x, y, z)``: which points (LPS mm arrays, broadcast together) lie inside
  (the surface counts as inside);
* ``bounds_mm()``: its axis-aligned bounding box ``((x0, x1), (y0, y1), (z0, z1))`` in mm;
* ``volume_ml``: its analytic volume in mL (1 mL = 1000 mm^3).

:func:`voxel_fractions` turns a shape into the fraction of each voxel it covers by
sampling ``n^3`` regularly spaced points per voxel (the midpoint rule on an ``n``-times
finer lattice; n defaults to 4 and is raised for shapes less than ~6 voxels across),
evaluated only over the voxels of the shape's bounding box and in bounded chunks so
that memory stays small whatever the grid. Shapes that are z-extrusions (cylinders
along z, boxes, the IEC body) are sampled in-plane on at least a 16 x 16 lattice and
multiplied by the exact axial overlap of each voxel.

Shapes: :class:`Sphere`, :class:`Ellipsoid` (optionally rotated, see
:func:`rotation_matrix`), :class:`EllipticCylinder` (axis along z), :class:`Box`.
"""
from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from recon.data.grid import ImageGrid

logger = logging.getLogger(__name__)

Bounds = tuple[tuple[float, float], tuple[float, float], tuple[float, float]]

#: Largest number of sub-sample points evaluated at once by the rasteriser.
MAX_POINTS_PER_CHUNK = 1 << 22
#: Default minimum number of sub-samples across a shape's smallest half-dimension.
SAMPLES_PER_HALF_SIZE = 12
#: Upper bound on sub-samples per voxel edge, and on sample points per shape.
MAX_SUBSAMPLES = 32
MAX_POINTS_PER_SHAPE = 1 << 27
#: In-plane sub-samples per voxel edge (at least) for z-extrusions, whose sampling is 2-D and cheap.
EXTRUSION_MIN_SUBSAMPLES = 16


def _triple(name: str, value: Any, *, positive: bool = False) -> tuple[float, float, float]:
    try:
        t = tuple(float(v) for v in value)
    except TypeError as exc:
        raise ValueError(f"{name} must be a sequence of 3 numbers, got {value!r}") from exc
    if len(t) != 3:
        raise ValueError(f"{name} must have 3 entries, got {len(t)}")
    if not all(math.isfinite(v) for v in t):
        raise ValueError(f"{name} must be finite, got {t}")
    if positive and any(v <= 0 for v in t):
        raise ValueError(f"{name} must be positive (mm), got {t}")
    return t  # type: ignore[return-value]


def _positive(name: str, value: float) -> float:
    v = float(value)
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a positive finite number (mm), got {value!r}")
    return v


def rotation_matrix(z_deg: float = 0.0, y_deg: float = 0.0, x_deg: float = 0.0) -> np.ndarray:
    """Right-handed rotation R = Rz(z_deg) @ Ry(y_deg) @ Rx(x_deg) (angles in degrees).

    Used as a shape's orientation: the columns of R are the shape's local axes
    expressed in LPS, so a local point p maps to ``center + R @ p``.
    """
    az, ay, ax = (math.radians(float(a)) for a in (z_deg, y_deg, x_deg))
    cz, sz, cy, sy, cx, sx = math.cos(az), math.sin(az), math.cos(ay), math.sin(ay), math.cos(ax), math.sin(ax)
    rz = np.array([[cz, -sz, 0.0], [sz, cz, 0.0], [0.0, 0.0, 1.0]])
    ry = np.array([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]])
    rx = np.array([[1.0, 0.0, 0.0], [0.0, cx, -sx], [0.0, sx, cx]])
    return rz @ ry @ rx


class Shape(ABC):
    """An analytic solid in LPS mm with an exact inside test and an analytic volume."""

    @abstractmethod
    def contains(self, x: Any, y: Any, z: Any) -> np.ndarray:
        """Boolean array: True where the point (x, y, z) (LPS mm, broadcast) is inside."""

    @abstractmethod
    def bounds_mm(self) -> Bounds:
        """Axis-aligned bounding box ((x0, x1), (y0, y1), (z0, z1)) in mm."""

    @property
    @abstractmethod
    def volume_ml(self) -> float:
        """Analytic volume in mL."""

    @property
    @abstractmethod
    def center_mm(self) -> tuple[float, float, float]:
        """Reference point (x, y, z) in mm: the centre of symmetry."""

    @property
    @abstractmethod
    def min_half_size_mm(self) -> float:
        """Smallest half-dimension (radius, semi-axis, half-side) in mm; sets the sampling density."""


class ZExtrusion(Shape):
    """A shape that is a 2-D region in (x, y) swept along z between ``z_range_mm()``.

    The rasteriser uses this: the fraction of a voxel is (in-plane area fraction,
    sampled on a fine 2-D lattice) x (exact overlap of the voxel's z extent), so flat
    end faces carry no sampling error.
    """

    @abstractmethod
    def contains_xy(self, x: Any, y: Any) -> np.ndarray:
        """Boolean array: True where (x, y) (mm, broadcast) lies in the cross-section."""

    @abstractmethod
    def z_range_mm(self) -> tuple[float, float]:
        """(z0, z1) mm between which the cross-section is swept."""

    def contains(self, x: Any, y: Any, z: Any) -> np.ndarray:
        z0, z1 = self.z_range_mm()
        zz = np.asarray(z)
        return self.contains_xy(x, y) & (zz >= z0) & (zz <= z1)


@dataclass(frozen=True)
class Sphere(Shape):
    """Sphere of ``radius_mm`` centred at ``center`` (x, y, z) mm."""

    center: tuple[float, float, float]
    radius_mm: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "center", _triple("sphere center", self.center))
        object.__setattr__(self, "radius_mm", _positive("sphere radius_mm", self.radius_mm))

    def contains(self, x: Any, y: Any, z: Any) -> np.ndarray:
        cx, cy, cz = self.center
        return (np.subtract(x, cx) ** 2 + np.subtract(y, cy) ** 2) + np.subtract(z, cz) ** 2 <= self.radius_mm**2

    def bounds_mm(self) -> Bounds:
        r = self.radius_mm
        return tuple((c - r, c + r) for c in self.center)  # type: ignore[return-value]

    @property
    def volume_ml(self) -> float:
        return 4.0 / 3.0 * math.pi * self.radius_mm**3 / 1000.0

    @property
    def center_mm(self) -> tuple[float, float, float]:
        return self.center

    @property
    def min_half_size_mm(self) -> float:
        return self.radius_mm


@dataclass(frozen=True)
class Ellipsoid(Shape):
    """Ellipsoid with semi-axes (a, b, c) mm along its local axes, optionally rotated.

    ``rotation`` is a 3x3 orthonormal matrix whose columns are the local axes in LPS
    (see :func:`rotation_matrix`); ``None`` aligns the semi-axes with x, y, z.
    """

    center: tuple[float, float, float]
    semi_axes_mm: tuple[float, float, float]
    rotation: Any = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "center", _triple("ellipsoid center", self.center))
        object.__setattr__(self, "semi_axes_mm", _triple("ellipsoid semi_axes_mm", self.semi_axes_mm, positive=True))
        if self.rotation is not None:
            r = np.asarray(self.rotation, dtype=np.float64)
            if r.shape != (3, 3) or not np.allclose(r.T @ r, np.eye(3), atol=1e-9):
                raise ValueError("ellipsoid rotation must be a 3x3 orthonormal matrix")
            object.__setattr__(self, "rotation", tuple(tuple(float(v) for v in row) for row in r))

    def _matrix(self) -> np.ndarray:
        return np.eye(3) if self.rotation is None else np.asarray(self.rotation, dtype=np.float64)

    def contains(self, x: Any, y: Any, z: Any) -> np.ndarray:
        cx, cy, cz = self.center
        dx, dy, dz = np.subtract(x, cx), np.subtract(y, cy), np.subtract(z, cz)
        if self.rotation is None:
            a, b, c = self.semi_axes_mm
            return ((dx / a) ** 2 + (dy / b) ** 2) + (dz / c) ** 2 <= 1.0
        r = self._matrix()
        total: Any = 0.0
        for i, s in enumerate(self.semi_axes_mm):
            # local coordinate along axis i: column i of R dotted with the offset
            total = total + ((r[0, i] / s) * dx + (r[1, i] / s) * dy + (r[2, i] / s) * dz) ** 2
        return total <= 1.0

    def bounds_mm(self) -> Bounds:
        r = self._matrix()
        s = np.asarray(self.semi_axes_mm)
        half = np.sqrt(((r * s[None, :]) ** 2).sum(axis=1))
        return tuple((c - h, c + h) for c, h in zip(self.center, half))  # type: ignore[return-value]

    @property
    def volume_ml(self) -> float:
        a, b, c = self.semi_axes_mm
        return 4.0 / 3.0 * math.pi * a * b * c / 1000.0

    @property
    def center_mm(self) -> tuple[float, float, float]:
        return self.center

    @property
    def min_half_size_mm(self) -> float:
        return min(self.semi_axes_mm)


@dataclass(frozen=True)
class EllipticCylinder(ZExtrusion):
    """Elliptic cylinder with its axis along z: semi-axes (a along x, b along y) mm, ``length_mm`` along z."""

    center: tuple[float, float, float]
    semi_axes_mm: tuple[float, float]
    length_mm: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "center", _triple("cylinder center", self.center))
        ab = tuple(float(v) for v in self.semi_axes_mm)
        if len(ab) != 2 or not all(math.isfinite(v) and v > 0 for v in ab):
            raise ValueError(f"cylinder semi_axes_mm must be 2 positive numbers (mm), got {self.semi_axes_mm!r}")
        object.__setattr__(self, "semi_axes_mm", ab)
        object.__setattr__(self, "length_mm", _positive("cylinder length_mm", self.length_mm))

    @classmethod
    def circular(cls, center: Sequence[float], radius_mm: float, length_mm: float) -> "EllipticCylinder":
        """A right circular cylinder of ``radius_mm`` along z."""
        return cls(tuple(center), (radius_mm, radius_mm), length_mm)  # type: ignore[arg-type]

    def contains_xy(self, x: Any, y: Any) -> np.ndarray:
        cx, cy, _ = self.center
        a, b = self.semi_axes_mm
        return (np.subtract(x, cx) / a) ** 2 + (np.subtract(y, cy) / b) ** 2 <= 1.0

    def z_range_mm(self) -> tuple[float, float]:
        cz, h = self.center[2], self.length_mm / 2.0
        return (cz - h, cz + h)

    def bounds_mm(self) -> Bounds:
        cx, cy, cz = self.center
        a, b = self.semi_axes_mm
        h = self.length_mm / 2.0
        return ((cx - a, cx + a), (cy - b, cy + b), (cz - h, cz + h))

    @property
    def volume_ml(self) -> float:
        a, b = self.semi_axes_mm
        return math.pi * a * b * self.length_mm / 1000.0

    @property
    def center_mm(self) -> tuple[float, float, float]:
        return self.center

    @property
    def min_half_size_mm(self) -> float:
        return min(*self.semi_axes_mm, self.length_mm / 2.0)


@dataclass(frozen=True)
class Box(ZExtrusion):
    """Axis-aligned rectangular box of ``size_mm`` (x, y, z) centred at ``center``."""

    center: tuple[float, float, float]
    size_mm: tuple[float, float, float]

    def __post_init__(self) -> None:
        object.__setattr__(self, "center", _triple("box center", self.center))
        object.__setattr__(self, "size_mm", _triple("box size_mm", self.size_mm, positive=True))

    def contains_xy(self, x: Any, y: Any) -> np.ndarray:
        cx, cy, _ = self.center
        sx, sy, _ = self.size_mm
        return (np.abs(np.subtract(x, cx)) <= sx / 2.0) & (np.abs(np.subtract(y, cy)) <= sy / 2.0)

    def z_range_mm(self) -> tuple[float, float]:
        cz, h = self.center[2], self.size_mm[2] / 2.0
        return (cz - h, cz + h)

    def bounds_mm(self) -> Bounds:
        half = (s / 2.0 for s in self.size_mm)
        return tuple((c - h, c + h) for c, h in zip(self.center, half))  # type: ignore[return-value]

    @property
    def volume_ml(self) -> float:
        sx, sy, sz = self.size_mm
        return sx * sy * sz / 1000.0

    @property
    def center_mm(self) -> tuple[float, float, float]:
        return self.center

    @property
    def min_half_size_mm(self) -> float:
        return min(self.size_mm) / 2.0


# ----------------------------------------------------------------------------- rasteriser


def grid_extent_mm(grid: ImageGrid) -> Bounds:
    """Outer edges ((x0, x1), (y0, y1), (z0, z1)) of the grid's voxels, mm."""
    out = []
    for axis in ("x", "y", "z"):
        c = grid.axis_mm(axis)
        d = _spacing(grid, axis)
        out.append((float(c[0] - d / 2.0), float(c[-1] + d / 2.0)))
    return tuple(out)  # type: ignore[return-value]


def _spacing(grid: ImageGrid, axis: str) -> float:
    dz, dy, dx = grid.spacing_mm
    return {"x": dx, "y": dy, "z": dz}[axis]


def shape_fits(shape: Shape, grid: ImageGrid, margin_mm: float = 0.0) -> bool:
    """True when the shape's bounding box lies inside the grid's extent shrunk by ``margin_mm``."""
    for (lo, hi), (g0, g1) in zip(shape.bounds_mm(), grid_extent_mm(grid)):
        tol = 1e-6 * max(1.0, abs(g0), abs(g1))
        if lo < g0 + margin_mm - tol or hi > g1 - margin_mm + tol:
            return False
    return True


def bounding_slices(shape: Shape, grid: ImageGrid, allow_partial: bool = False) -> tuple[slice, slice, slice] | None:
    """(z, y, x) index slices of the voxels touched by the shape's bounding box.

    Raises ValueError when the box leaves the grid (unless ``allow_partial``); returns
    None when ``allow_partial`` and the shape misses the grid entirely.
    """
    if not allow_partial and not shape_fits(shape, grid):
        ext = grid_extent_mm(grid)
        raise ValueError(
            f"{type(shape).__name__} with bounds (x, y, z) {_fmt_bounds(shape.bounds_mm())} mm "
            f"does not fit inside the grid extent {_fmt_bounds(ext)} mm"
        )
    nz, ny, nx = grid.shape
    ox, oy, oz = grid.origin_mm
    dz, dy, dx = grid.spacing_mm
    slices: dict[str, slice] = {}
    for axis, (lo, hi), o, d, n in zip("xyz", shape.bounds_mm(), (ox, oy, oz), (dx, dy, dz), (nx, ny, nz)):
        # voxel i spans [o + (i - 1/2) d, o + (i + 1/2) d]; keep every voxel that meets [lo, hi]
        i0 = max(0, math.floor((lo - o) / d + 0.5))
        i1 = min(n - 1, math.ceil((hi - o) / d - 0.5))
        if i1 < i0:
            return None
        slices[axis] = slice(i0, i1 + 1)
    return slices["z"], slices["y"], slices["x"]


def _fmt_bounds(b: Bounds) -> str:
    return ", ".join(f"[{lo:.1f}, {hi:.1f}]" for lo, hi in b)


def _subsample_coords(start_mm: float, spacing_mm: float, first: int, count: int, n: int) -> np.ndarray:
    """Coordinates of the n regular sub-samples of each of ``count`` voxels starting at index ``first``."""
    centres = start_mm + spacing_mm * np.arange(first, first + count, dtype=np.float64)
    offsets = ((np.arange(n, dtype=np.float64) + 0.5) / n - 0.5) * spacing_mm
    return (centres[:, None] + offsets[None, :]).ravel()


def effective_subsamples(
    shape: Shape,
    grid: ImageGrid,
    subsamples: int = 4,
    samples_per_half_size: int = SAMPLES_PER_HALF_SIZE,
    voxel_count: int | None = None,
) -> int:
    """Sub-samples per voxel edge actually used for ``shape``: at least ``subsamples``.

    Small shapes get a finer lattice so that their smallest half-dimension spans at
    least ``samples_per_half_size`` sub-samples (a 2-voxel-radius sphere then keeps its
    volume within ~0.5 %, where 4^3 samples can miss by ~1 %), capped at
    ``MAX_SUBSAMPLES`` and at ``MAX_POINTS_PER_SHAPE`` points over the bounding box.
    """
    n = int(subsamples)
    if n < 1 or n != subsamples:
        raise ValueError(f"subsamples must be a positive integer, got {subsamples!r}")
    if samples_per_half_size <= 0:
        return n
    need = math.ceil(samples_per_half_size * max(grid.spacing_mm) / shape.min_half_size_mm)
    n_eff = min(max(n, need), max(n, MAX_SUBSAMPLES))
    if voxel_count is not None and voxel_count * n_eff**3 > MAX_POINTS_PER_SHAPE:
        n_eff = max(n, int((MAX_POINTS_PER_SHAPE / max(1, voxel_count)) ** (1.0 / 3.0)))
    return n_eff


def voxel_fractions(
    shape: Shape,
    grid: ImageGrid,
    subsamples: int = 4,
    allow_partial: bool = False,
    samples_per_half_size: int = SAMPLES_PER_HALF_SIZE,
) -> tuple[tuple[slice, slice, slice], np.ndarray] | None:
    """Fraction (0..1) of each voxel inside ``shape``, over the shape's bounding box only.

    Each voxel is sampled on a regular n x n x n lattice of points (n = ``subsamples``,
    raised for shapes thinner than the voxels, see :func:`effective_subsamples`;
    ``samples_per_half_size=0`` keeps exactly ``subsamples``). Returns the (z, y, x)
    slices of the box and a float32 block of that size, or None when the shape misses
    the grid (only possible with ``allow_partial``). Raises ValueError when the shape
    leaves the grid and ``allow_partial`` is False.
    """
    sl = bounding_slices(shape, grid, allow_partial=allow_partial)
    if sl is None:
        effective_subsamples(shape, grid, subsamples, samples_per_half_size)  # still validate
        return None
    sz, sy, sx = sl
    cz, cy, cx = sz.stop - sz.start, sy.stop - sy.start, sx.stop - sx.start
    n = effective_subsamples(shape, grid, subsamples, samples_per_half_size, voxel_count=cz * cy * cx)
    ox, oy, oz = grid.origin_mm
    dz, dy, dx = grid.spacing_mm
    if isinstance(shape, ZExtrusion):
        block = _extrusion_fractions(shape, grid, sl, max(n, EXTRUSION_MIN_SUBSAMPLES))
        logger.debug("rasterised %s on %d voxels as an extrusion", type(shape).__name__, cz * cy * cx)
        return sl, block
    block = np.empty((cz, cy, cx), dtype=np.float32)
    xs = _subsample_coords(ox, dx, sx.start, cx, n)[None, None, :]
    row_points = cx * n * n  # sub-samples in one (z, y) voxel row
    y_chunk = max(1, min(cy, MAX_POINTS_PER_CHUNK // max(1, row_points * n)))
    z_chunk = max(1, min(cz, MAX_POINTS_PER_CHUNK // max(1, row_points * y_chunk * n)))
    inv = 1.0 / n**3
    for z0 in range(0, cz, z_chunk):
        nzc = min(z_chunk, cz - z0)
        zs = _subsample_coords(oz, dz, sz.start + z0, nzc, n)[:, None, None]
        for y0 in range(0, cy, y_chunk):
            nyc = min(y_chunk, cy - y0)
            ys = _subsample_coords(oy, dy, sy.start + y0, nyc, n)[None, :, None]
            inside = np.broadcast_to(shape.contains(xs, ys, zs), (nzc * n, nyc * n, cx * n))
            counts = inside.reshape(nzc, n, nyc, n, cx, n).sum(axis=(1, 3, 5), dtype=np.int32)
            block[z0 : z0 + nzc, y0 : y0 + nyc, :] = counts * inv
    logger.debug("rasterised %s on %d voxels with %d^3 sub-samples", type(shape).__name__, cz * cy * cx, n)
    return sl, block


def _extrusion_fractions(shape: ZExtrusion, grid: ImageGrid, sl: tuple[slice, slice, slice], n: int) -> np.ndarray:
    """Voxel fractions of a z-extrusion: n x n in-plane sampling times the exact z overlap."""
    sz, sy, sx = sl
    cy, cx = sy.stop - sy.start, sx.stop - sx.start
    ox, oy, oz = grid.origin_mm
    dz, dy, dx = grid.spacing_mm
    xs = _subsample_coords(ox, dx, sx.start, cx, n)[None, :]
    area = np.empty((cy, cx), dtype=np.float64)
    y_chunk = max(1, MAX_POINTS_PER_CHUNK // max(1, cx * n * n))
    for y0 in range(0, cy, y_chunk):
        nyc = min(y_chunk, cy - y0)
        ys = _subsample_coords(oy, dy, sy.start + y0, nyc, n)[:, None]
        inside = np.broadcast_to(shape.contains_xy(xs, ys), (nyc * n, cx * n))
        area[y0 : y0 + nyc] = inside.reshape(nyc, n, cx, n).sum(axis=(1, 3)) / (n * n)
    z0, z1 = shape.z_range_mm()
    zc = oz + dz * np.arange(sz.start, sz.stop, dtype=np.float64)
    length = np.clip(np.minimum(zc + dz / 2.0, z1) - np.maximum(zc - dz / 2.0, z0), 0.0, None) / dz
    return (length[:, None, None] * area[None, :, :]).astype(np.float32)


def rasterize(
    shape: Shape,
    grid: ImageGrid,
    subsamples: int = 4,
    allow_partial: bool = False,
    samples_per_half_size: int = SAMPLES_PER_HALF_SIZE,
) -> np.ndarray:
    """Full-grid float32 (z, y, x) array of each voxel's fraction inside ``shape`` (see :func:`voxel_fractions`)."""
    out = np.zeros(grid.shape, dtype=np.float32)
    res = voxel_fractions(shape, grid, subsamples, allow_partial, samples_per_half_size)
    if res is not None:
        sl, block = res
        out[sl] = block
    return out
