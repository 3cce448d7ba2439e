"""VOI statistics and lesion measures on (z, y, x) volumes with an ImageGrid.

Definitions (values in the volume's unit, usually SUV):

* SUVmax, SUVmean, SUVmin, SUVmedian over the voxels of a VOI.
* volume (mL) = number of voxels x voxel volume; total uptake = sum of values x
  voxel volume (SUV.mL for SUV images, "total lesion uptake"; Bq for Bq/mL).
* SUVpeak: mean inside a sphere of 1 mL (radius (3/(4 pi))^(1/3) cm = 6.20 mm)
  with partial-voxel weights (each voxel weighted by the fraction of its
  volume inside the sphere, by supersampling). Two definitions, both named:

  - ``"max_centred"``: the sphere centred on the VOI's maximum voxel;
  - ``"search"``: the highest sphere mean over all sphere centres at voxel
    centres inside the VOI (PERCIST-style search). The sphere averages image
    voxels whether or not they belong to the VOI; near the image border the
    mean is over the part of the sphere inside the image.

* Segmentation: a fixed threshold, or a percentage of each lesion's local
  maximum (e.g. 41 %): starting from the components above a seed threshold,
  the lesion is the connected region >= p x its maximum that contains that
  maximum. Connected components are labelled here (union-find in NumPy;
  6-, 18- or 26-connectivity), no SciPy needed.
* Classification against user cut-offs (defaults 7.40 and 11.26, published
  for Tc-99m bone SPECT/CT SUVmax) is reported as "above cut-off" / "below
  cut-off" (a value equal to the cut-off counts as above). It is a comparison
  with numbers the user chose, never a diagnosis.
"""
from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from recon.data.grid import ImageGrid, Volume

logger = logging.getLogger(__name__)

__all__ = [
    "BONE_SPECT_TC99M_CUTOFFS",
    "CUTOFF_DISCLAIMER",
    "SUVPEAK_DEFINITIONS",
    "VOIStats",
    "LesionRecord",
    "sphere_kernel",
    "sphere_mean_at",
    "suv_peak",
    "voi_statistics",
    "connected_components",
    "threshold_segment",
    "percent_of_max_segment",
    "segment_lesions",
    "lesion_table",
    "classify_cutoffs",
]

BONE_SPECT_TC99M_CUTOFFS: tuple[float, ...] = (7.40, 11.26)
"""Default SUVmax cut-offs for Tc-99m bone SPECT/CT (published values the seed use case quotes)."""
CUTOFF_DISCLAIMER = "comparison with user-set cut-offs; not a diagnosis"
SUVPEAK_DEFINITIONS: tuple[str, ...] = ("max_centred", "search")


# --------------------------------------------------------------------------- SUVpeak kernel

def sphere_kernel(spacing_mm: Sequence[float], volume_ml: float = 1.0, supersample: int = 11) -> np.ndarray:
    """Weights (odd-sized (z, y, x) array, sum 1) of a sphere of ``volume_ml`` centred on a voxel.

    Each weight is proportional to the fraction of that voxel inside the
    sphere, estimated on a ``supersample``^3 sub-grid.
    """
    if volume_ml <= 0:
        raise ValueError(f"sphere volume must be positive (mL), got {volume_ml}")
    d = np.asarray(spacing_mm, dtype=np.float64)
    if d.shape != (3,) or np.any(d <= 0):
        raise ValueError(f"spacing_mm must be 3 positive numbers (dz, dy, dx), got {spacing_mm}")
    r = (3.0 * volume_ml * 1000.0 / (4.0 * math.pi)) ** (1.0 / 3.0)  # mm
    half = np.ceil(r / d + 0.5).astype(int)
    s = int(supersample)
    sub = (np.arange(s) + 0.5) / s - 0.5  # sub-voxel offsets in voxel units
    axes = []
    for ax in range(3):
        centres = np.arange(-half[ax], half[ax] + 1)
        axes.append(((centres[:, None] + sub[None, :]) * d[ax]) ** 2)  # (n, s) squared distance
    z2, y2, x2 = axes
    inside = (z2[:, None, None, :, None, None] + y2[None, :, None, None, :, None]
              + x2[None, None, :, None, None, :]) <= r * r
    w = inside.mean(axis=(3, 4, 5))
    # trim empty border planes
    nz = np.argwhere(w > 0)
    lo, hi = nz.min(axis=0), nz.max(axis=0) + 1
    w = w[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    return w / w.sum()


def _as_host(values: Any) -> np.ndarray:
    from recon.backend import to_host  # noqa: PLC0415

    return np.asarray(to_host(values), dtype=np.float64)


def _sphere_mean_box(values: np.ndarray, kernel: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Kernel-weighted means centred on every voxel of the box [lo, hi) (dense, by shifted slices)."""
    half = np.array(kernel.shape) // 2
    shape = np.array(values.shape)
    src_lo, src_hi = lo - half, hi + half
    pad_lo, pad_hi = np.maximum(-src_lo, 0), np.maximum(src_hi - shape, 0)
    clo, chi = np.maximum(src_lo, 0), np.minimum(src_hi, shape)
    crop = values[clo[0]:chi[0], clo[1]:chi[1], clo[2]:chi[2]]
    padded = np.pad(crop, list(zip(pad_lo, pad_hi)))
    border = bool(np.any(pad_lo) or np.any(pad_hi))
    valid = np.pad(np.ones(crop.shape), list(zip(pad_lo, pad_hi))) if border else None
    bz, by, bx = (hi - lo).tolist()
    acc = np.zeros((bz, by, bx))
    norm = np.zeros((bz, by, bx)) if border else None
    for (oz, oy, ox), w in zip(np.argwhere(kernel > 0), kernel[kernel > 0]):
        acc += w * padded[oz:oz + bz, oy:oy + by, ox:ox + bx]
        if valid is not None:
            norm += w * valid[oz:oz + bz, oy:oy + by, ox:ox + bx]  # type: ignore[operator]
    return acc / norm if norm is not None else acc


def sphere_mean_at(values: Any, grid: ImageGrid, index_zyx: Sequence[int], volume_ml: float = 1.0) -> float:
    """Mean of ``values`` in a ``volume_ml`` sphere centred on voxel ``index_zyx``."""
    v = _as_host(values)
    k = sphere_kernel(grid.spacing_mm, volume_ml)
    lo = np.asarray(index_zyx, dtype=np.int64)
    return float(_sphere_mean_box(v, k, lo, lo + 1)[0, 0, 0])


def _search_peak(v: np.ndarray, k: np.ndarray, m: np.ndarray) -> tuple[float, tuple[int, int, int]]:
    """Highest sphere mean over centres in ``m``, by z-slabs of the mask's bounding box."""
    idx = np.argwhere(m)
    lo, hi = idx.min(axis=0), idx.max(axis=0) + 1
    plane = int((hi[1] - lo[1]) * (hi[2] - lo[2]))
    slab = max(1, 4_000_000 // max(plane, 1))
    best, best_c = -np.inf, (0, 0, 0)
    for z0 in range(int(lo[0]), int(hi[0]), slab):
        z1 = min(z0 + slab, int(hi[0]))
        sub_m = m[z0:z1, lo[1]:hi[1], lo[2]:hi[2]]
        if not sub_m.any():
            continue
        means = _sphere_mean_box(v, k, np.array([z0, lo[1], lo[2]]), np.array([z1, hi[1], hi[2]]))
        means = np.where(sub_m, means, -np.inf)
        j = int(np.argmax(means))
        if means.flat[j] > best:
            best = float(means.flat[j])
            c = np.unravel_index(j, means.shape)
            best_c = (z0 + int(c[0]), int(lo[1]) + int(c[1]), int(lo[2]) + int(c[2]))
    return best, best_c


def suv_peak(
    values: Any, grid: ImageGrid, mask: np.ndarray, definition: str = "search", volume_ml: float = 1.0
) -> tuple[float, tuple[int, int, int]]:
    """SUVpeak of the VOI ``mask`` by ``definition`` (``"max_centred"`` or ``"search"``) and its centre voxel."""
    v = _as_host(values)
    m = np.asarray(mask, dtype=bool)
    if m.shape != v.shape:
        raise ValueError(f"mask shape {m.shape} differs from volume shape {v.shape}")
    if not m.any():
        raise ValueError("the VOI mask is empty")
    k = sphere_kernel(grid.spacing_mm, volume_ml)
    if definition == "max_centred":
        flat = np.flatnonzero(m)
        c = np.array(np.unravel_index(flat[np.argmax(v.ravel()[flat])], v.shape))
        return float(_sphere_mean_box(v, k, c, c + 1)[0, 0, 0]), tuple(int(i) for i in c)  # type: ignore[return-value]
    if definition == "search":
        return _search_peak(v, k, m)
    raise ValueError(f"SUVpeak definition must be one of {SUVPEAK_DEFINITIONS}, got {definition!r}")


# --------------------------------------------------------------------------- VOI statistics

@dataclass(frozen=True)
class VOIStats:
    """Statistics of one VOI; values in ``unit``, positions LPS (x, y, z) mm."""

    n_voxels: int
    volume_ml: float
    max: float
    mean: float
    min: float
    median: float
    std: float
    peak_max_centred: float
    peak_search: float
    total_uptake: float
    max_position_mm: tuple[float, float, float]
    peak_search_position_mm: tuple[float, float, float]
    unit: str
    peak_volume_ml: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict."""
        return asdict(self)


def voi_statistics(volume: Volume, mask: np.ndarray, *, peak_volume_ml: float = 1.0) -> VOIStats:
    """Max, mean, min, median, std, both SUVpeaks, volume (mL) and total uptake inside ``mask``."""
    v = _as_host(volume.data)
    m = np.asarray(mask, dtype=bool)
    if m.shape != v.shape:
        raise ValueError(f"mask shape {m.shape} differs from volume shape {v.shape}")
    if not m.any():
        raise ValueError("the VOI mask is empty")
    vals = v[m]
    flat = np.flatnonzero(m)
    imax = np.array(np.unravel_index(flat[np.argmax(v.ravel()[flat])], v.shape))
    p_c, _ = suv_peak(v, volume.grid, m, "max_centred", peak_volume_ml)
    p_s, c_s = suv_peak(v, volume.grid, m, "search", peak_volume_ml)
    vml = volume.grid.voxel_volume_ml
    return VOIStats(
        n_voxels=int(m.sum()),
        volume_ml=float(m.sum() * vml),
        max=float(vals.max()),
        mean=float(vals.mean()),
        min=float(vals.min()),
        median=float(np.median(vals)),
        std=float(vals.std()),
        peak_max_centred=p_c,
        peak_search=p_s,
        total_uptake=float(vals.sum() * vml),
        max_position_mm=tuple(float(x) for x in volume.grid.index_to_mm(imax)),  # type: ignore[arg-type]
        peak_search_position_mm=tuple(float(x) for x in volume.grid.index_to_mm(c_s)),  # type: ignore[arg-type]
        unit=volume.unit,
        peak_volume_ml=peak_volume_ml,
    )


# --------------------------------------------------------------------------- components

def _offsets(connectivity: int) -> list[tuple[int, int, int]]:
    if connectivity not in (6, 18, 26):
        raise ValueError(f"connectivity must be 6, 18 or 26, got {connectivity}")
    out = []
    for dz in (-1, 0, 1):
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                n = abs(dz) + abs(dy) + abs(dx)
                if n == 0 or (connectivity == 6 and n > 1) or (connectivity == 18 and n > 2):
                    continue
                if (dz, dy, dx) > (0, 0, 0):  # half the neighbourhood: each edge once
                    out.append((dz, dy, dx))
    return out


def connected_components(mask: np.ndarray, connectivity: int = 26) -> tuple[np.ndarray, int]:
    """Label the connected components of a 3-D boolean mask.

    Returns (labels, n): int32 labels 1..n (0 = background), numbered in
    order of each component's first voxel in C order.
    """
    m = np.asarray(mask, dtype=bool)
    if m.ndim != 3:
        raise ValueError(f"mask must be 3-D, got {m.ndim}-D")
    labels = np.zeros(m.shape, dtype=np.int32)
    fg = np.flatnonzero(m)
    if fg.size == 0:
        return labels, 0
    index = np.full(m.size, -1, dtype=np.int64)
    index[fg] = np.arange(fg.size)
    index = index.reshape(m.shape)
    us, vs = [], []
    nz, ny, nx = m.shape
    for dz, dy, dx in _offsets(connectivity):
        a = index[max(0, -dz):nz - max(0, dz), max(0, -dy):ny - max(0, dy), max(0, -dx):nx - max(0, dx)]
        b = index[max(0, dz):nz - max(0, -dz), max(0, dy):ny - max(0, -dy), max(0, dx):nx - max(0, -dx)]
        both = (a >= 0) & (b >= 0)
        us.append(a[both])
        vs.append(b[both])
    u = np.concatenate(us) if us else np.zeros(0, np.int64)
    v = np.concatenate(vs) if vs else np.zeros(0, np.int64)
    parent = np.arange(fg.size, dtype=np.int64)
    while True:
        pu, pv = parent[u], parent[v]
        diff = pu != pv
        if not diff.any():
            break
        lo = np.minimum(pu[diff], pv[diff])
        hi = np.maximum(pu[diff], pv[diff])
        np.minimum.at(parent, hi, lo)  # hook the larger root under the smaller one
        while True:  # pointer jumping until every node points at its root
            nxt = parent[parent]
            if np.array_equal(nxt, parent):
                break
            parent = nxt
    roots, comp = np.unique(parent, return_inverse=True)
    labels.ravel()[fg] = comp.astype(np.int32) + 1
    return labels, int(roots.size)


def threshold_segment(values: Any, threshold: float, within: np.ndarray | None = None) -> np.ndarray:
    """Boolean mask of voxels >= ``threshold`` (optionally only inside ``within``)."""
    v = _as_host(values)
    m = v >= float(threshold)
    if within is not None:
        m &= np.asarray(within, dtype=bool)
    return m


def percent_of_max_segment(
    values: Any, seed_index: Sequence[int], percent: float = 41.0, within: np.ndarray | None = None,
    connectivity: int = 26,
) -> np.ndarray:
    """The connected region >= ``percent``% of the value at ``seed_index`` that contains it."""
    if not 0 < percent <= 100:
        raise ValueError(f"percent must be in (0, 100], got {percent}")
    v = _as_host(values)
    seed = tuple(int(i) for i in seed_index)
    m = threshold_segment(v, v[seed] * percent / 100.0, within)
    labels, _ = connected_components(m, connectivity)
    lab = labels[seed]
    if lab == 0:
        return np.zeros(v.shape, dtype=bool)
    return labels == lab


def segment_lesions(
    volume: Volume,
    *,
    threshold: float | None = None,
    percent_of_max: float | None = None,
    seed_threshold: float | None = None,
    within: np.ndarray | None = None,
    min_volume_ml: float = 0.0,
    connectivity: int = 26,
) -> tuple[np.ndarray, int]:
    """Label lesions (int32, 0 = background) and return (labels, n).

    * ``threshold`` only: components of voxels >= threshold.
    * ``percent_of_max`` (e.g. 41): seeds are the components >= ``seed_threshold``
      (default ``threshold``, required one way or the other); each lesion is the
      connected region >= percent x its seed's maximum containing that maximum.
      Seeds are processed from the hottest down; a seed whose maximum already
      lies in a lesion is merged into it, and no voxel is relabelled.

    Lesions smaller than ``min_volume_ml`` are dropped; labels are renumbered
    by decreasing maximum.
    """
    v = _as_host(volume.data)
    within_m = None if within is None else np.asarray(within, dtype=bool)
    seed_t = seed_threshold if seed_threshold is not None else threshold
    if seed_t is None:
        raise ValueError("give threshold (and/or seed_threshold for percent-of-max segmentation)")
    seeds, n_seeds = connected_components(threshold_segment(v, seed_t, within_m), connectivity)
    if percent_of_max is None:
        regions = [seeds == i for i in range(1, n_seeds + 1)]
    else:
        maxima = []
        for i in range(1, n_seeds + 1):
            flat = np.flatnonzero(seeds == i)
            j = flat[np.argmax(v.ravel()[flat])]
            maxima.append((v.ravel()[j], np.unravel_index(j, v.shape)))
        maxima.sort(key=lambda t: -t[0])
        taken = np.zeros(v.shape, dtype=bool)
        regions = []
        for _, idx in maxima:
            if taken[idx]:
                continue
            r = percent_of_max_segment(v, idx, percent_of_max, within_m, connectivity) & ~taken
            taken |= r
            regions.append(r)
    vml = volume.grid.voxel_volume_ml
    regions = [r for r in regions if r.sum() * vml >= min_volume_ml and r.any()]
    regions.sort(key=lambda r: -v[r].max())
    labels = np.zeros(v.shape, dtype=np.int32)
    for i, r in enumerate(regions, start=1):
        labels[r] = i
    return labels, len(regions)


# --------------------------------------------------------------------------- lesion table

def classify_cutoffs(value: float, cutoffs: Sequence[float] = BONE_SPECT_TC99M_CUTOFFS) -> list[dict[str, Any]]:
    """``[{"cutoff": c, "relation": "above cut-off" | "below cut-off"}, ...]`` (equal counts as above)."""
    return [{"cutoff": float(c), "relation": "above cut-off" if value >= c else "below cut-off"}
            for c in sorted(cutoffs)]


@dataclass(frozen=True)
class LesionRecord:
    """One lesion: label, statistics, positions (LPS mm) and cut-off comparisons of its max."""

    label: int
    stats: VOIStats
    centroid_mm: tuple[float, float, float]
    cutoffs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def max_position_mm(self) -> tuple[float, float, float]:
        """LPS position (x, y, z) mm of the maximum voxel."""
        return self.stats.max_position_mm

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (statistics flattened)."""
        d = {"label": self.label, "centroid_mm": list(self.centroid_mm)}
        d.update(self.stats.to_dict())
        d["cutoffs"] = self.cutoffs
        d["cutoff_note"] = CUTOFF_DISCLAIMER
        return d


def lesion_table(
    volume: Volume, labels: np.ndarray, *, cutoffs: Sequence[float] | None = BONE_SPECT_TC99M_CUTOFFS,
    peak_volume_ml: float = 1.0,
) -> list[LesionRecord]:
    """Per-lesion statistics for labels 1..max(labels); cut-offs compare each lesion's max."""
    lab = np.asarray(labels)
    if lab.shape != volume.grid.shape:
        raise ValueError(f"labels shape {lab.shape} differs from volume shape {volume.grid.shape}")
    out = []
    for i in range(1, int(lab.max(initial=0)) + 1):
        m = lab == i
        if not m.any():
            continue
        st = voi_statistics(volume, m, peak_volume_ml=peak_volume_ml)
        centroid = volume.grid.index_to_mm(np.argwhere(m).mean(axis=0))
        out.append(LesionRecord(
            label=i, stats=st, centroid_mm=tuple(float(x) for x in centroid),  # type: ignore[arg-type]
            cutoffs=classify_cutoffs(st.max, cutoffs) if cutoffs else [],
        ))
    return out
