"""Image grids and volumes with physical geometry.

Arrays are ordered (z, y, x), C-contiguous float32. Positions are in the DICOM
patient coordinate system (LPS, mm): +x towards the patient's left, +y
posterior, +z superior (head). ``origin_mm`` is the position (x, y, z) of the
centre of voxel [0, 0, 0]; ``spacing_mm`` is (dz, dy, dx).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


def _as_float_triple(name: str, value: Any) -> tuple[float, float, float]:
    t = tuple(float(v) for v in value)
    if len(t) != 3:
        raise ValueError(f"{name} must have 3 entries, got {len(t)}")
    if not all(np.isfinite(t)):
        raise ValueError(f"{name} must be finite, got {t}")
    return t  # type: ignore[return-value]


@dataclass(frozen=True)
class ImageGrid:
    """Shape (nz, ny, nx), voxel spacing (dz, dy, dx) in mm and LPS origin (x, y, z) in mm."""

    shape: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    origin_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        shape = tuple(int(s) for s in self.shape)
        if len(shape) != 3 or any(s < 1 for s in shape):
            raise ValueError(f"grid shape must be 3 positive integers (nz, ny, nx), got {self.shape}")
        spacing = _as_float_triple("spacing_mm", self.spacing_mm)
        if any(s <= 0 for s in spacing):
            raise ValueError(f"voxel spacing must be positive (mm), got {spacing}")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "spacing_mm", spacing)
        object.__setattr__(self, "origin_mm", _as_float_triple("origin_mm", self.origin_mm))

    @classmethod
    def centered(cls, shape: tuple[int, int, int], spacing_mm: tuple[float, float, float]) -> "ImageGrid":
        """A grid whose geometric centre sits at the patient-space origin."""
        nz, ny, nx = (int(s) for s in shape)
        dz, dy, dx = (float(s) for s in spacing_mm)
        origin = (-(nx - 1) * dx / 2.0, -(ny - 1) * dy / 2.0, -(nz - 1) * dz / 2.0)
        return cls((nz, ny, nx), (dz, dy, dx), origin)

    def recentred(self, center_mm: tuple[float, float, float]) -> "ImageGrid":
        """The same shape and spacing with its geometric centre at ``center_mm`` (LPS x, y, z, mm)."""
        nz, ny, nx = self.shape
        dz, dy, dx = self.spacing_mm
        cx, cy, cz = _as_float_triple("center_mm", center_mm)
        return ImageGrid(self.shape, self.spacing_mm,
                         (cx - (nx - 1) * dx / 2.0, cy - (ny - 1) * dy / 2.0, cz - (nz - 1) * dz / 2.0))

    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one voxel in mL (1 mL = 1000 mm^3)."""
        dz, dy, dx = self.spacing_mm
        return dz * dy * dx / 1000.0

    @property
    def center_mm(self) -> tuple[float, float, float]:
        """LPS position (x, y, z) of the grid's geometric centre, mm."""
        nz, ny, nx = self.shape
        dz, dy, dx = self.spacing_mm
        ox, oy, oz = self.origin_mm
        return (ox + (nx - 1) * dx / 2.0, oy + (ny - 1) * dy / 2.0, oz + (nz - 1) * dz / 2.0)

    def axis_mm(self, axis: str) -> np.ndarray:
        """Voxel-centre coordinates (mm) along ``"x"``, ``"y"`` or ``"z"``."""
        nz, ny, nx = self.shape
        dz, dy, dx = self.spacing_mm
        ox, oy, oz = self.origin_mm
        table = {"x": (nx, dx, ox), "y": (ny, dy, oy), "z": (nz, dz, oz)}
        if axis not in table:
            raise ValueError(f"axis must be 'x', 'y' or 'z', got {axis!r}")
        n, d, o = table[axis]
        return o + d * np.arange(n, dtype=np.float64)

    def index_to_mm(self, index_zyx: Any) -> np.ndarray:
        """LPS positions (..., 3) as (x, y, z) mm of (possibly fractional) indices (..., 3) in (z, y, x)."""
        idx = np.asarray(index_zyx, dtype=np.float64)
        dz, dy, dx = self.spacing_mm
        ox, oy, oz = self.origin_mm
        return np.stack([ox + idx[..., 2] * dx, oy + idx[..., 1] * dy, oz + idx[..., 0] * dz], axis=-1)

    def same_as(self, other: "ImageGrid", tol_mm: float = 1e-3) -> bool:
        """True when shapes match and spacing and origin agree within ``tol_mm``."""
        return (
            self.shape == other.shape
            and np.allclose(self.spacing_mm, other.spacing_mm, atol=tol_mm, rtol=0)
            and np.allclose(self.origin_mm, other.origin_mm, atol=tol_mm, rtol=0)
        )


@dataclass(frozen=True)
class Volume:
    """A float32 (z, y, x) array on an :class:`ImageGrid`, with its unit (e.g. ``"counts"``, ``"Bq/mL"``).

    ``frame_of_reference_uid`` names the patient coordinate system the grid is in
    (DICOM Frame of Reference UID; ``""`` when unknown).

    The array is copied on construction (host arrays become C-contiguous
    float32), so a Volume never aliases the caller's data.
    """

    data: Any
    grid: ImageGrid
    unit: str = "counts"
    metadata: dict[str, Any] = field(default_factory=dict)
    frame_of_reference_uid: str = ""

    def __post_init__(self) -> None:
        from recon.backend import array_module  # noqa: PLC0415 - avoids a cycle at import

        xp = array_module(self.data)
        arr = xp.array(self.data, dtype=xp.float32, order="C", copy=True)
        if arr.ndim != 3:
            raise ValueError(f"volume data must be 3-D (z, y, x), got {arr.ndim}-D")
        if tuple(arr.shape) != self.grid.shape:
            raise ValueError(f"volume data shape {tuple(arr.shape)} does not match grid shape {self.grid.shape}")
        if not bool(xp.isfinite(arr).all()):
            raise ValueError("volume data contain NaN or infinite values")
        object.__setattr__(self, "data", arr)
        object.__setattr__(self, "metadata", dict(self.metadata))

    def to_host(self) -> "Volume":
        """The same volume with its data as a NumPy array."""
        from recon.backend import to_host  # noqa: PLC0415

        return Volume(to_host(self.data), self.grid, self.unit, self.metadata, self.frame_of_reference_uid)
