"""Multi-bed SPECT: each bed reconstructed on its own grid, then stitched in patient space.

Stitching (``docs/multibed.md``). The beds must share the transaxial grid (x, y
origin and spacing within 0.1 voxel) and the voxel spacing; their z positions
need not fall on one lattice. The stitched grid has the first bed's x, y and
spacing and covers every bed along z; each bed is interpolated linearly along
z onto it. A stitched slice is the weighted mean

    x(z) = sum_b w_b(z) x_b(z) / sum_b w_b(z)          (0 where every w_b is 0)

with w_b(z) = a_b(z) t_b(z):

* a_b(z), the bed's axial sensitivity: 1 on the detector rows its
  reconstruction modelled as fully sensitive (:func:`row_mask`: rows outside the
  useful field of view, which hold only stray counts, and the partially shielded
  rows at its edge are 0; the GE 670's 128 rows hold counts on 18-109, fully on
  21-106) and 0 outside the bed; interpolated linearly along z;
* t_b(z), a linear taper over each overlap of the active ranges of two beds,
  less ``EDGE_SLICES`` (3) end slices of each bed on that side (fewer when the
  overlap is short: at least a third of it remains), whose values carry the
  axial truncation of the collimator response and of the scatter (measured on
  the GE study: the end slices of a bed are 0 or overshoot up to 2x):
  across the overlap [lo, hi] (slice centres) the upper bed's weight rises as
  (z - lo + dz/2) / (hi - lo + dz) and the lower bed's is 1 minus that, so the
  weights of the two beds add to one and neither is exactly zero inside the
  overlap; 1 away from any overlap.

Away from the overlaps the stitched volume equals the one bed there (exactly,
where the stitched slices fall on that bed's slices). The beds must be in one
unit and refer to one time: the caller calibrates them to one decay reference
(or scales counts to one frame duration) first.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from recon.data.grid import ImageGrid, Volume
from recon.spect.detector_rows import active_rows, row_mask

logger = logging.getLogger(__name__)

EDGE_SLICES = 3  # end slices of a bed next to another bed left out: about the collimator response's width

__all__ = ["active_rows", "bed_weights", "overlap_agreement", "row_mask", "stitch_beds", "stitched_grid"]


def stitched_grid(grids: Sequence[ImageGrid]) -> ImageGrid:
    """The grid covering every bed along z, with the first bed's x, y and spacing; refuses beds whose
    transaxial grids or spacing differ."""
    first = grids[0]
    dz, dy, dx = first.spacing_mm
    for b, g in enumerate(grids[1:], start=2):
        if g.shape[1:] != first.shape[1:] or not np.allclose(g.spacing_mm, first.spacing_mm, rtol=0, atol=1e-3):
            raise ValueError(f"bed {b}: grid {g.shape} with spacing {g.spacing_mm} mm differs from bed 1's "
                             f"{first.shape}, {first.spacing_mm} mm; beds must share the detector matrix and pixel size")
        if abs(g.origin_mm[0] - first.origin_mm[0]) > 0.1 * dx or abs(g.origin_mm[1] - first.origin_mm[1]) > 0.1 * dy:
            raise ValueError(f"bed {b}: transaxial origin ({g.origin_mm[0]:.1f}, {g.origin_mm[1]:.1f}) mm differs from "
                             f"bed 1's ({first.origin_mm[0]:.1f}, {first.origin_mm[1]:.1f}) mm by more than 0.1 voxel")
    z_lo = min(g.origin_mm[2] for g in grids)
    z_hi = max(g.origin_mm[2] + (g.shape[0] - 1) * g.spacing_mm[0] for g in grids)
    # anchor the lattice on bed 1's slices: its slices are copied, not interpolated
    k_lo = int(np.floor((z_lo - first.origin_mm[2]) / dz + 1e-6))
    k_hi = int(np.ceil((z_hi - first.origin_mm[2]) / dz - 1e-6))
    origin = (first.origin_mm[0], first.origin_mm[1], first.origin_mm[2] + k_lo * dz)
    return ImageGrid((k_hi - k_lo + 1, first.shape[1], first.shape[2]), first.spacing_mm, origin)


def _interp_along_z(values: np.ndarray, grid: ImageGrid, z: np.ndarray) -> np.ndarray:
    """``values`` (a per-slice profile or a volume on ``grid``) linearly interpolated at ``z`` (mm); 0 outside."""
    f = (z - grid.origin_mm[2]) / grid.spacing_mm[0]
    inside = (f > -1e-6) & (f < grid.shape[0] - 1 + 1e-6)
    f = np.clip(f, 0.0, grid.shape[0] - 1)
    k0 = np.minimum(np.floor(f + 1e-9).astype(np.int64), grid.shape[0] - 1)
    k1 = np.minimum(k0 + 1, grid.shape[0] - 1)
    t = np.where(k1 > k0, f - k0, 0.0)
    shape = (-1,) + (1,) * (values.ndim - 1)
    out = values[k0] * (1.0 - t).reshape(shape) + values[k1] * t.reshape(shape)
    return np.where(inside.reshape(shape), out, 0.0)


def _active_range(profile: np.ndarray, z: np.ndarray) -> tuple[float, float] | None:
    on = np.nonzero(profile > 0)[0]
    return (float(z[on[0]]), float(z[on[-1]])) if on.size else None


def bed_weights(grids: Sequence[ImageGrid], profiles: Sequence[np.ndarray], target: ImageGrid,
                edge_slices: int = EDGE_SLICES) -> np.ndarray:
    """(n_beds, nz) stitching weights on ``target``'s slices: axial sensitivity x linear overlap taper; on the
    side facing another bed, ``edge_slices`` end slices get no weight (fewer when the overlap is short)."""
    z = target.axis_mm("z")
    dz = target.spacing_mm[0]
    a = np.stack([_interp_along_z(np.asarray(p, dtype=np.float64), g, z) for g, p in zip(grids, profiles)])
    ranges = [_active_range(p, z) for p in a]
    w = a.copy()
    for b, rb in enumerate(ranges):
        for c, rc in enumerate(ranges):
            if b == c or rb is None or rc is None:
                continue
            lo, hi = max(rb[0], rc[0]), min(rb[1], rc[1])
            if hi < lo:
                continue
            e = dz * min(edge_slices, max(0, int((hi - lo) / dz) // 2 - 1))
            lo, hi = lo + e, hi - e  # the bed-facing end slices of both beds carry axial-truncation errors
            up = np.clip((z - lo + dz / 2) / (hi - lo + dz), 0.0, 1.0)
            up[up < 1e-9], up[up > 1.0 - 1e-9] = 0.0, 1.0  # exact 0 and 1 outside the overlap
            b_is_upper = (rb[0] + rb[1]) > (rc[0] + rc[1]) or ((rb[0] + rb[1]) == (rc[0] + rc[1]) and b > c)
            w[b] *= up if b_is_upper else 1.0 - up
    return w


def stitch_beds(volumes: Sequence[Volume], profiles: Sequence[np.ndarray]) -> tuple[Volume, np.ndarray]:
    """One volume over all beds (module docstring) and the (n_beds, nz) weights used; the beds' unit and
    frame of reference must agree."""
    if len(volumes) != len(profiles) or not volumes:
        raise ValueError("stitch_beds needs one axial profile per bed volume")
    units = {v.unit for v in volumes}
    if len(units) > 1:
        raise ValueError(f"beds are in different units {sorted(units)}; calibrate them alike first")
    frames = {v.frame_of_reference_uid for v in volumes if v.frame_of_reference_uid}
    if len(frames) > 1:
        logger.warning("beds carry different frames of reference %s: stitched by patient coordinates",
                       sorted(frames))
    grids = [v.grid for v in volumes]
    target = stitched_grid(grids)
    z = target.axis_mm("z")
    w = bed_weights(grids, profiles, target)
    num = np.zeros(target.shape, dtype=np.float64)
    for b, v in enumerate(volumes):
        data = np.asarray(v.to_host().data, dtype=np.float64)
        num += w[b][:, None, None] * _interp_along_z(data, v.grid, z)
    total = w.sum(axis=0)
    out = np.where(total[:, None, None] > 0, num / np.where(total > 0, total, 1.0)[:, None, None], 0.0)
    meta = dict(volumes[0].metadata)
    meta["beds"] = len(volumes)
    meta["stitching"] = "axial sensitivity x linear overlap taper (recon.spect.multibed)"
    return (Volume(out.astype(np.float32), target, unit=volumes[0].unit, metadata=meta,
                   frame_of_reference_uid=volumes[0].frame_of_reference_uid), w)


def _smooth(v: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian smoothing (sigma in voxels), edges reflected; slices that are all 0 (not
    reconstructed: outside the detector's fully sensitive rows) are left out (normalised convolution)."""
    valid = (v != 0).any(axis=tuple(range(1, v.ndim))).astype(np.float64)
    if v.ndim > 1 and 0 < valid.sum() < valid.size:
        m = valid.reshape((-1,) + (1,) * (v.ndim - 1))
        den = _smooth_plain(np.broadcast_to(m, v.shape).copy(), sigma)
        return np.where(m > 0, _smooth_plain(v * m, sigma) / np.maximum(den, 1e-12), 0.0)
    return _smooth_plain(v, sigma)


def _smooth_plain(v: np.ndarray, sigma: float) -> np.ndarray:
    r = int(np.ceil(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    for axis in range(v.ndim):
        pad = [(0, 0)] * v.ndim
        pad[axis] = (r, r)
        padded = np.pad(v, pad, mode="reflect")
        v = sum(k[i] * np.take(padded, np.arange(i, i + v.shape[axis]), axis=axis) for i in range(k.size))
    return v


def overlap_agreement(a: Volume, b: Volume, wa: np.ndarray, wb: np.ndarray, target: ImageGrid,
                      min_fraction: float = 0.1, smooth_voxels: float = 1.5) -> dict[str, float]:
    """Agreement of two beds where both have weight on ``target``'s slices: Pearson correlation and ratio of
    means over voxels above ``min_fraction`` of the overlap's maximum, voxel by voxel and after Gaussian
    smoothing of each bed (sigma ``smooth_voxels``: independent noise removed), and the overlap's extent."""
    z = target.axis_mm("z")
    both = (wa > 0) & (wb > 0)
    out = {"n_slices": float(both.sum()), "overlap_mm": float(both.sum() * target.spacing_mm[0])}
    if not both.any():
        return {**out, "correlation": float("nan"), "mean_ratio": float("nan")}
    da, db = (np.asarray(v.to_host().data, np.float64) for v in (a, b))
    for tag, (xa, xb) in (("", (da, db)), ("_smoothed", (_smooth(da, smooth_voxels), _smooth(db, smooth_voxels)))):
        va = _interp_along_z(xa, a.grid, z)[both]
        vb = _interp_along_z(xb, b.grid, z)[both]
        mask = np.maximum(va, vb) > min_fraction * max(va.max(), vb.max())
        out[f"correlation{tag}"] = float(np.corrcoef(va[mask], vb[mask])[0, 1])
        out[f"mean_ratio{tag}"] = float(va[mask].mean() / vb[mask].mean())
        out[f"n_voxels{tag}"] = float(mask.sum())
    return out
