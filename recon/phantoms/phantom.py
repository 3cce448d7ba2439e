"""A phantom: activity (Bq/mL), mu-map (1/mm) and named regions, painted from analytic shapes.

Composition is a painter's algorithm on voxel fractions: painting a shape that
covers a fraction f of a voxel sets value = (1 - f) old + f new for activity and
mu alike, and scales every earlier region's fraction in that voxel by (1 - f).
Each region therefore keeps the fraction of each voxel that is still its own
material, and its true concentration and analytic volume are recorded.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recon.data.grid import ImageGrid, Volume
from recon.data.materials import linear_mu_per_mm
from recon.phantoms.shapes import Shape, voxel_fractions


@dataclass(frozen=True)
class Phantom:
    """Activity concentration (Bq/mL), mu-map (1/mm at ``energy_kev``) and regions with their truth."""

    activity: Volume
    mu_map: Volume
    regions: dict[str, np.ndarray]
    concentration_bq_ml: dict[str, float]
    volume_ml: dict[str, float]
    energy_kev: float
    metadata: dict[str, Any] = field(default_factory=dict)


class PhantomBuilder:
    """Paints shapes onto a grid in order; :meth:`build` returns the :class:`Phantom`."""

    def __init__(self, grid: ImageGrid, energy_kev: float, subsamples: int = 4) -> None:
        self.grid = grid
        self.energy_kev = float(energy_kev)
        self.subsamples = int(subsamples)
        self._activity = np.zeros(grid.shape, dtype=np.float32)
        self._mu = np.zeros(grid.shape, dtype=np.float32)
        self._regions: dict[str, tuple[tuple[slice, slice, slice], np.ndarray]] = {}
        self._concentration: dict[str, float] = {}
        self._volume: dict[str, float] = {}

    def mu_of(self, material: str, density_scale: float = 1.0) -> float:
        """Linear attenuation (1/mm) of a material at the phantom's energy, optionally density-scaled."""
        return linear_mu_per_mm(material, self.energy_kev) * density_scale

    def paint(self, name: str, shape: Shape, concentration_bq_ml: float, mu_per_mm: float) -> None:
        """Fill ``shape`` with ``concentration_bq_ml`` and ``mu_per_mm``; it becomes region ``name``."""
        if name in self._regions:
            raise ValueError(f"region {name!r} painted twice")
        if concentration_bq_ml < 0 or mu_per_mm < 0:
            raise ValueError(f"region {name!r}: concentration and mu must be >= 0")
        sl, f = voxel_fractions(shape, self.grid, subsamples=self.subsamples)  # raises if it leaves the grid
        keep = 1.0 - f
        self._activity[sl] = keep * self._activity[sl] + f * concentration_bq_ml
        self._mu[sl] = keep * self._mu[sl] + f * mu_per_mm
        for other_sl, other in self._regions.values():
            _scale_overlap(other_sl, other, sl, keep)
        self._regions[name] = (sl, f.copy())
        self._concentration[name] = float(concentration_bq_ml)
        self._volume[name] = shape.volume_ml

    def build(self, **metadata: Any) -> Phantom:
        """The phantom; regions as full-grid fraction arrays."""
        regions = {}
        for name, (sl, f) in self._regions.items():
            full = np.zeros(self.grid.shape, dtype=np.float32)
            full[sl] = f
            regions[name] = full
        return Phantom(
            activity=Volume(self._activity, self.grid, "Bq/mL"),
            mu_map=Volume(self._mu, self.grid, "1/mm"),
            regions=regions,
            concentration_bq_ml=dict(self._concentration),
            volume_ml=dict(self._volume),
            energy_kev=self.energy_kev,
            metadata=dict(metadata),
        )


def _scale_overlap(a_sl: tuple[slice, slice, slice], a: np.ndarray, b_sl: tuple[slice, slice, slice],
                   keep_b: np.ndarray) -> None:
    """a[overlap] *= keep_b[overlap], for two blocks placed on one grid by their slices."""
    lo = [max(x.start, y.start) for x, y in zip(a_sl, b_sl)]
    hi = [min(x.stop, y.stop) for x, y in zip(a_sl, b_sl)]
    if any(h <= l for l, h in zip(lo, hi)):
        return
    ia = tuple(slice(l - s.start, h - s.start) for l, h, s in zip(lo, hi, a_sl))
    ib = tuple(slice(l - s.start, h - s.start) for l, h, s in zip(lo, hi, b_sl))
    a[ia] *= keep_b[ib]
