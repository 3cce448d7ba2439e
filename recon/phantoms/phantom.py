"""Phantoms: activity concentration, attenuation map and named regions with their truth.

A :class:`PhantomBuilder` paints shapes in order (painter's composition): a shape
covering fraction f of a voxel replaces that much of whatever was there,

    value = (1 - f) * old + f * new,

for the activity concentration (Bq/mL), the linear attenuation coefficient (1/mm)
and the region weights alike. Each region's weight is therefore the fraction of the
voxel it still owns after everything painted later, and at every voxel

    activity = sum_r weight_r * concentration_r,   sum_r weight_r <= 1

(the remainder is the surrounding medium, mu = 0 by default). Each region also keeps
its *true* concentration and its analytic *true* volume: the sum of its shapes'
volumes minus the volumes of later shapes declared (``carve_from``) to lie wholly
inside it. Region weights are stored over their bounding box only.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recon.data.grid import ImageGrid, Volume
from recon.data.materials import linear_mu_per_mm
from recon.phantoms.shapes import SAMPLES_PER_HALF_SIZE, Shape, voxel_fractions

logger = logging.getLogger(__name__)

ACTIVITY_UNIT = "Bq/mL"
MU_UNIT = "1/mm"


class RegionFractions(Mapping[str, np.ndarray]):
    """Region name -> full-grid float32 (z, y, x) weights (0..1), stored over each region's bounding box.

    Indexing builds the full-grid array on demand (a fresh copy each time), so a phantom
    with many small regions stays small in memory; :meth:`bbox` and :meth:`block` give
    the compact storage itself.
    """

    def __init__(self, grid: ImageGrid, blocks: Mapping[str, tuple[tuple[slice, slice, slice], np.ndarray]]) -> None:
        self.grid = grid
        self._blocks = dict(blocks)

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._blocks:
            raise KeyError(f"no region {name!r}; known: {', '.join(self._blocks)}")
        sl, w = self._blocks[name]
        out = np.zeros(self.grid.shape, dtype=np.float32)
        out[sl] = w
        return out

    def __contains__(self, name: object) -> bool:
        return name in self._blocks

    def __iter__(self) -> Iterator[str]:
        return iter(self._blocks)

    def __len__(self) -> int:
        return len(self._blocks)

    def __repr__(self) -> str:
        return f"RegionFractions({', '.join(self._blocks)})"

    def bbox(self, name: str) -> tuple[slice, slice, slice]:
        """(z, y, x) slices of the grid that hold every voxel of region ``name``."""
        return self._blocks[name][0]

    def block(self, name: str) -> np.ndarray:
        """The region's weights over :meth:`bbox` (read-only view)."""
        w = self._blocks[name][1].view()
        w.flags.writeable = False
        return w

    def rasterised_volume_ml(self, name: str) -> float:
        """Sum of the region's voxel weights times the voxel volume, mL."""
        return float(self._blocks[name][1].sum(dtype=np.float64)) * self.grid.voxel_volume_ml

    def mask(self, name: str, threshold: float = 0.5) -> np.ndarray:
        """Full-grid boolean mask of the voxels whose weight in ``name`` is at least ``threshold``."""
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        sl, w = self._blocks[name]
        out = np.zeros(self.grid.shape, dtype=bool)
        out[sl] = w >= threshold
        return out


@dataclass(frozen=True)
class Phantom:
    """Rasterised phantom and its truth.

    ``activity``: concentration Volume (Bq/mL); ``mu_map``: linear attenuation Volume
    (1/mm at ``energy_kev``); ``regions``: name -> voxel weights (see
    :class:`RegionFractions`); ``concentration_bq_ml`` and ``volume_ml``: each region's
    true concentration (Bq/mL) and analytic true volume (mL); ``shapes`` and
    ``materials``: what each region was painted from.
    """

    activity: Volume
    mu_map: Volume
    regions: RegionFractions
    concentration_bq_ml: dict[str, float]
    volume_ml: dict[str, float]
    energy_kev: float
    metadata: dict[str, Any] = field(default_factory=dict)
    shapes: dict[str, tuple[Shape, ...]] = field(default_factory=dict)
    materials: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.activity.grid.same_as(self.mu_map.grid):
            raise ValueError("phantom activity and mu-map must share one grid")
        if self.activity.unit != ACTIVITY_UNIT or self.mu_map.unit != MU_UNIT:
            raise ValueError(f"phantom units must be {ACTIVITY_UNIT!r} (activity) and {MU_UNIT!r} (mu-map)")

    @property
    def grid(self) -> ImageGrid:
        """The grid both volumes live on."""
        return self.activity.grid

    def activity_bq(self, name: str) -> float:
        """True activity of region ``name``, Bq (concentration x true volume)."""
        self._check(name)
        return self.concentration_bq_ml[name] * self.volume_ml[name]

    @property
    def total_activity_bq(self) -> float:
        """True total activity, Bq (sum over regions of concentration x true volume)."""
        return float(sum(self.concentration_bq_ml[n] * self.volume_ml[n] for n in self.regions))

    def suv_bw(self, concentration_bq_ml: float) -> float:
        """Body-weight SUV of a concentration: C / (A / W), with A = ``metadata["injected_activity_bq"]``
        (Bq, referred to the acquisition start) and W = ``metadata["body_weight_kg"]`` in g."""
        try:
            a_bq = float(self.metadata["injected_activity_bq"])
            w_g = float(self.metadata["body_weight_kg"]) * 1000.0
        except KeyError as exc:
            raise ValueError(f"phantom metadata lack {exc.args[0]!r}; SUV needs activity and body weight") from exc
        return float(concentration_bq_ml) / (a_bq / w_g)

    def region_suv(self, name: str) -> float:
        """Body-weight SUV of region ``name``'s true concentration (see :meth:`suv_bw`)."""
        self._check(name)
        return self.suv_bw(self.concentration_bq_ml[name])

    def _check(self, name: str) -> None:
        if name not in self.regions:
            raise ValueError(f"no region {name!r} in phantom; known: {', '.join(self.regions)}")


@dataclass
class _RegionAcc:
    concentration: float
    volume_ml: float
    lo: np.ndarray  # (3,) int, inclusive start (z, y, x)
    hi: np.ndarray  # (3,) int, exclusive stop
    weights: np.ndarray
    shapes: list[Shape]
    materials: list[str]


def _box_slices(lo: np.ndarray, hi: np.ndarray) -> tuple[slice, slice, slice]:
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))  # type: ignore[return-value]


class PhantomBuilder:
    """Paints shapes onto a grid in order; later shapes replace earlier ones by fraction.

    ``energy_kev`` sets the photon energy of the mu-map; ``medium`` is the material
    outside every shape (None: mu = 0, as a CT-derived mu-map treats air);
    ``subsamples`` is the sub-sample count per voxel edge passed to the rasteriser
    (raised automatically for thin shapes, see :func:`effective_subsamples`).
    """

    def __init__(
        self,
        grid: ImageGrid,
        energy_kev: float = 140.5,
        medium: str | None = None,
        subsamples: int = 4,
        samples_per_half_size: int = SAMPLES_PER_HALF_SIZE,
    ) -> None:
        self.grid = grid
        self.energy_kev = float(energy_kev)
        self.subsamples = int(subsamples)
        if self.subsamples < 1 or self.subsamples != subsamples:
            raise ValueError(f"subsamples must be a positive integer, got {subsamples!r}")
        self.samples_per_half_size = int(samples_per_half_size)
        self._mu_cache: dict[str, float] = {}
        self.medium = medium
        self._activity = np.zeros(grid.shape, dtype=np.float32)
        self._mu = np.full(grid.shape, 0.0 if medium is None else self.mu_of(medium), dtype=np.float32)
        self._regions: dict[str, _RegionAcc] = {}

    def mu_of(self, material: str, density_scale: float = 1.0) -> float:
        """Linear attenuation coefficient (1/mm) of ``material`` at the builder's energy, density-scaled."""
        if material not in self._mu_cache:
            self._mu_cache[material] = linear_mu_per_mm(material, self.energy_kev)
        return self._mu_cache[material] * float(density_scale)

    def paint(
        self,
        region: str,
        shape: Shape,
        concentration_bq_ml: float,
        mu_per_mm: float | None = None,
        *,
        material: str | None = None,
        carve_from: Iterable[str] = (),
    ) -> None:
        """Paint ``shape`` into ``region`` with a concentration (Bq/mL) and either a material or a mu (1/mm).

        Painter's rule: value = (1 - f) old + f new where the shape covers fraction f.
        ``carve_from`` names earlier regions that wholly contain ``shape``: its analytic
        volume is subtracted from their true volumes. A region may be painted with several
        non-overlapping shapes (its true volume is their sum) but keeps one concentration.
        """
        if not region or not isinstance(region, str):
            raise ValueError(f"region name must be a non-empty string, got {region!r}")
        conc = float(concentration_bq_ml)
        if not math.isfinite(conc) or conc < 0:
            raise ValueError(
                f"concentration of region {region!r} must be finite and >= 0 Bq/mL, got {concentration_bq_ml!r}"
            )
        if (material is None) == (mu_per_mm is None):
            raise ValueError(f"region {region!r}: give exactly one of material or mu_per_mm")
        if material is not None:
            mu = self.mu_of(material)
            label = material
        else:
            mu = float(mu_per_mm)  # type: ignore[arg-type]
            if not math.isfinite(mu) or mu < 0:
                raise ValueError(f"region {region!r}: mu_per_mm must be finite and >= 0 (1/mm), got {mu_per_mm!r}")
            label = f"mu={mu:.6g}/mm"
        carve = tuple(carve_from)
        for name in carve:
            if name not in self._regions:
                raise ValueError(f"carve_from names {name!r}, which has not been painted before {region!r}")
            if name == region:
                raise ValueError(f"region {region!r} cannot carve from itself")
        acc = self._regions.get(region)
        if acc is not None and not math.isclose(acc.concentration, conc, rel_tol=1e-9, abs_tol=0.0):
            raise ValueError(
                f"region {region!r} already has concentration {acc.concentration} Bq/mL, cannot paint it with {conc}"
            )
        try:
            res = voxel_fractions(shape, self.grid, self.subsamples, False, self.samples_per_half_size)
        except ValueError as exc:
            raise ValueError(f"region {region!r}: {exc}") from exc
        assert res is not None
        sl, f = res
        lo = np.array([s.start for s in sl])
        hi = np.array([s.stop for s in sl])
        keep = 1.0 - f
        # activity and mu: painter's rule
        self._activity[sl] = keep * self._activity[sl] + f * np.float32(conc)
        self._mu[sl] = keep * self._mu[sl] + f * np.float32(mu)
        # earlier regions lose the fraction covered now (including this region's own earlier shapes,
        # which then regain it below: w = (1 - f) w + f)
        for acc_other in self._regions.values():
            ilo = np.maximum(lo, acc_other.lo)
            ihi = np.minimum(hi, acc_other.hi)
            if np.any(ihi <= ilo):
                continue
            overlap = keep[_box_slices(ilo - lo, ihi - lo)]
            acc_other.weights[_box_slices(ilo - acc_other.lo, ihi - acc_other.lo)] *= overlap
        if acc is None:
            acc = _RegionAcc(conc, 0.0, lo, hi, np.zeros(f.shape, dtype=np.float32), [], [])
            self._regions[region] = acc
        else:
            self._grow(acc, lo, hi)
        acc.weights[_box_slices(lo - acc.lo, hi - acc.lo)] += f
        acc.volume_ml += shape.volume_ml
        acc.shapes.append(shape)
        if label not in acc.materials:
            acc.materials.append(label)
        for name in carve:
            self._regions[name].volume_ml -= shape.volume_ml

    @staticmethod
    def _grow(acc: _RegionAcc, lo: np.ndarray, hi: np.ndarray) -> None:
        nlo, nhi = np.minimum(acc.lo, lo), np.maximum(acc.hi, hi)
        if np.array_equal(nlo, acc.lo) and np.array_equal(nhi, acc.hi):
            return
        w = np.zeros(tuple(int(v) for v in nhi - nlo), dtype=np.float32)
        w[_box_slices(acc.lo - nlo, acc.hi - nlo)] = acc.weights
        acc.lo, acc.hi, acc.weights = nlo, nhi, w

    def build(self, **metadata: Any) -> Phantom:
        """The finished :class:`Phantom` (arrays are copied; the builder may go on painting).

        Keyword arguments become the phantom's metadata. Logs a warning when a large
        region's rasterised volume differs from its analytic truth by more than 5 %
        (a sign of an overlap not declared with ``carve_from``).
        """
        meta = dict(metadata)
        meta.setdefault("energy_kev", self.energy_kev)
        meta.setdefault("medium", self.medium)
        blocks: dict[str, tuple[tuple[slice, slice, slice], np.ndarray]] = {}
        for name, acc in self._regions.items():
            if acc.volume_ml <= 0:
                raise ValueError(
                    f"region {name!r} has non-positive true volume {acc.volume_ml:.3f} mL (check carve_from)"
                )
            blocks[name] = (_box_slices(acc.lo, acc.hi), acc.weights.copy())
        regions = RegionFractions(self.grid, blocks)
        for name, acc in self._regions.items():
            rast = regions.rasterised_volume_ml(name)
            rel = rast / acc.volume_ml - 1.0
            big = acc.volume_ml > 10 * self.grid.voxel_volume_ml
            log = logger.warning if (big and abs(rel) > 0.05) else logger.debug
            log("region %s: true %.2f mL, rasterised %.2f mL (%+.1f%%)", name, acc.volume_ml, rast, 100 * rel)
        return Phantom(
            activity=Volume(self._activity, self.grid, ACTIVITY_UNIT, {"energy_kev": self.energy_kev}),
            mu_map=Volume(self._mu, self.grid, MU_UNIT, {"energy_kev": self.energy_kev}),
            regions=regions,
            concentration_bq_ml={n: a.concentration for n, a in self._regions.items()},
            volume_ml={n: a.volume_ml for n, a in self._regions.items()},
            energy_kev=self.energy_kev,
            metadata=meta,
            shapes={n: tuple(a.shapes) for n, a in self._regions.items()},
            materials={n: tuple(a.materials) for n, a in self._regions.items()},
        )
