"""CT (HU) -> mu-map on a SPECT grid, kept here temporarily for ``recon spect --ct`` and its tests.

# MERGE: use recon.physics: this whole module is the former recon.io.dicom_ct.ct_to_mu_map /
# resample_trilinear, moved out of recon.io (I/O runs no physics); recon.physics.attenuation
# (ct_to_mu_map) and recon.physics.resample replace it at merge, and this module goes.

HU -> mu by the bilinear model of :mod:`recon.spect.mu_map`, then trilinear
resampling by patient coordinates (mm) onto the target grid.
"""
from __future__ import annotations

import logging

import numpy as np

from recon.data.grid import ImageGrid, Volume
from recon.spect.mu_map import DEFAULT_CT_EFFECTIVE_ENERGY_KEV, bilinear_model

logger = logging.getLogger(__name__)

__all__ = ["ct_to_mu_map", "resample_trilinear"]


def _axis_weights(
    src_origin: float, src_spacing: float, n_src: int, target: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear-interpolation lower index, upper weight and inside-mask for target coordinates (mm).

    A target inside the source's outer half voxels takes the edge value.
    """
    f = (target - src_origin) / src_spacing
    inside = (f >= -0.5 - 1e-9) & (f <= n_src - 0.5 + 1e-9)
    f = np.clip(f, 0.0, n_src - 1.0)
    if n_src == 1:
        return np.zeros(f.shape, dtype=np.int64), np.zeros(f.shape), inside
    i0 = np.minimum(np.floor(f).astype(np.int64), n_src - 2)
    return i0, f - i0, inside


def resample_trilinear(data: np.ndarray, source: ImageGrid, target: ImageGrid, fill: float = 0.0) -> np.ndarray:
    """Trilinear resampling of ``data`` (z, y, x) on ``source`` at the voxel centres of ``target`` (float32).

    Positions are patient coordinates (mm); target voxels outside the source
    (beyond its outer half voxels) get ``fill``.
    """
    arr = np.asarray(data)
    if arr.shape != source.shape:
        raise ValueError(f"data shape {arr.shape} does not match source grid {source.shape}")
    out = arr
    masks = []
    for axis, name in ((0, "z"), (1, "y"), (2, "x")):
        spacing = source.spacing_mm[axis]
        origin = source.origin_mm[2 - axis]
        i0, w, inside = _axis_weights(origin, spacing, source.shape[axis], target.axis_mm(name))
        lo = np.take(out, i0, axis=axis)
        hi = np.take(out, np.minimum(i0 + 1, source.shape[axis] - 1), axis=axis)
        shape = [1, 1, 1]
        shape[axis] = -1
        wv = w.reshape(shape).astype(np.float32)
        out = (lo * (1.0 - wv) + hi * wv).astype(np.float32)
        masks.append(inside)
    mz, my, mx = masks
    inside_all = mz[:, None, None] & my[None, :, None] & mx[None, None, :]
    return np.where(inside_all, out, np.float32(fill)).astype(np.float32)


def ct_to_mu_map(
    ct_volume: Volume,
    target_grid: ImageGrid,
    energy_kev: float,
    *,
    break_hu: float = 0.0,
    bone_hu: float | None = None,
    ct_effective_energy_kev: float | None = None,
    outside_xy: str = "air",
) -> Volume:
    """mu-map (1/mm) at ``energy_kev`` (keV) on ``target_grid`` from a CT Volume in HU.

    HU -> mu by the bilinear model (recon.spect.mu_map), then trilinear
    resampling by patient coordinates. The CT must cover the target grid
    along z (ValueError otherwise); target voxels outside the CT in x/y
    are air (mu = 0, logged) with ``outside_xy="air"``, an error with ``"error"``.
    """
    if outside_xy not in ("air", "error"):
        raise ValueError(f"outside_xy must be 'air' or 'error', got {outside_xy!r}")
    if ct_volume.unit.upper() != "HU":
        raise ValueError(f"ct_to_mu_map needs a CT volume in HU, got unit {ct_volume.unit!r}")
    src = ct_volume.grid
    kvp = ct_volume.metadata.get("kvp")
    if bone_hu is None and ct_effective_energy_kev is None and kvp is not None and not 110.0 <= float(kvp) <= 140.0:
        logger.warning(
            "CT at %g kVp: the bone segment assumes a %g keV effective beam energy (about 120 kVp); "
            "pass bone_hu= or ct_effective_energy_kev= for this scanner",
            float(kvp),
            DEFAULT_CT_EFFECTIVE_ENERGY_KEV,
        )
    model = bilinear_model(
        energy_kev,
        break_hu=break_hu,
        bone_hu=bone_hu,
        ct_effective_energy_kev=ct_effective_energy_kev or DEFAULT_CT_EFFECTIVE_ENERGY_KEV,
    )

    # coverage along z: every target slice centre inside the CT's slab extent
    nz, _, _ = src.shape
    dz = src.spacing_mm[0]
    ct_lo, ct_hi = src.origin_mm[2] - dz / 2, src.origin_mm[2] + (nz - 0.5) * dz
    tz = target_grid.axis_mm("z")
    if tz.min() < ct_lo - 1e-6 or tz.max() > ct_hi + 1e-6:
        raise ValueError(
            f"the CT does not cover the SPECT field of view along z: CT spans z = {ct_lo:.1f} to {ct_hi:.1f} mm, "
            f"the SPECT grid's slice centres span {tz.min():.1f} to {tz.max():.1f} mm; "
            "crop the SPECT grid or supply a longer CT"
        )
    for name, axis in (("y", 1), ("x", 2)):
        t = target_grid.axis_mm(name)
        o, d, n = src.origin_mm[2 - axis], src.spacing_mm[axis], src.shape[axis]
        lo, hi = o - d / 2, o + (n - 0.5) * d
        outside = int(((t < lo - 1e-6) | (t > hi + 1e-6)).sum())
        if outside:
            msg = (
                f"the CT covers {name} = {lo:.1f} to {hi:.1f} mm; {outside} of {t.size} SPECT voxel columns "
                f"along {name} "
                f"({t.min():.1f} to {t.max():.1f} mm) lie outside it"
            )
            if outside_xy == "error":
                raise ValueError(f"the CT does not cover the SPECT field of view: {msg}")
            logger.warning("%s; they are set to air (mu = 0)", msg)

    # convert only the CT slices the z interpolation touches
    i0, _, _ = _axis_weights(src.origin_mm[2], dz, nz, tz)
    needed = np.unique(np.concatenate([i0, np.minimum(i0 + 1, nz - 1)]))
    ct_data = ct_volume.data if isinstance(ct_volume.data, np.ndarray) else ct_volume.to_host().data
    sub = model(ct_data[needed])
    full_index = np.full(nz, -1, dtype=np.int64)  # CT slice -> its row in ``sub``
    full_index[needed] = np.arange(needed.size)
    mu = _resample_gathered(sub, full_index, src, target_grid)
    metadata = {
        "energy_kev": float(energy_kev),
        "model": "bilinear HU->mu",
        "break_hu": model.break_hu,
        "bone_hu": model.bone_hu,
        "mu_water_per_mm": model.mu_water_per_mm,
        "mu_bone_per_mm": model.mu_bone_per_mm,
    }
    return Volume(mu, target_grid, unit="1/mm", metadata=metadata,
                  frame_of_reference_uid=ct_volume.frame_of_reference_uid)


def _resample_gathered(sub: np.ndarray, full_index: np.ndarray, src: ImageGrid, target: ImageGrid) -> np.ndarray:
    """Trilinear resampling where only the CT slices named in ``full_index`` (>= 0) are held in ``sub``."""
    nz = src.shape[0]
    i0, w, _ = _axis_weights(src.origin_mm[2], src.spacing_mm[0], nz, target.axis_mm("z"))
    lo = sub[full_index[i0]]
    hi = sub[full_index[np.minimum(i0 + 1, nz - 1)]]
    wz = w.reshape(-1, 1, 1).astype(np.float32)
    zgrid_data = (lo * (1.0 - wz) + hi * wz).astype(np.float32)
    # the z axis is done: resample y and x on a grid whose z axis already is the target's
    mid = ImageGrid(
        (target.shape[0], src.shape[1], src.shape[2]),
        (target.spacing_mm[0], src.spacing_mm[1], src.spacing_mm[2]),
        (src.origin_mm[0], src.origin_mm[1], target.origin_mm[2]),
    )
    return resample_trilinear(zgrid_data, mid, target, fill=0.0)
