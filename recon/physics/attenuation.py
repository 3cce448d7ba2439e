"""CT numbers (HU) to linear attenuation coefficients (1/mm) at any photon energy: the bilinear model.

A voxel at or below the break point HU_b (default 0 HU) is a mixture of water
and air, one above it a mixture of water and cortical bone (Blankespoor et al.
1996; Brown et al. 2008; for 511 keV the same construction as Kinahan et al.
1998 and Burger et al. 2002)::

    HU <= HU_b:  mu(E) = mu_w(E) * (1 + HU / 1000)
    HU >  HU_b:  mu(E) = mu(HU_b) + (HU - HU_b) * (mu_bone(E) - mu(HU_b)) / (HU_bone - HU_b)

with mu_w(E), mu_bone(E) the linear attenuation coefficients of water and
cortical bone at the emission energy E (140.5 keV for Tc-99m, 511 keV for PET,
...), and HU_bone the CT number of cortical bone at the CT beam's effective
energy E_CT::

    HU_bone = 1000 * (mu_bone(E_CT) / mu_w(E_CT) - 1)

E_CT comes from the tube voltage by the rule of thumb E_CT = 10 keV + kVp / 2
(70 keV at 120 kVp, 50 keV at 80 kVp, 80 keV at 140 kVp; a filtered
tungsten-anode beam's mean energy is about a third to a half of its peak), or is
given; a scanner's own bone calibration (``bone_hu``) beats both. The segments
meet at HU_b; results below -1000 HU are clipped to 0.

References:
    S. C. Blankespoor et al., IEEE Trans. Nucl. Sci. 43 (1996) 2263-2274.
    S. Brown, D. L. Bailey, K. Willowson, C. Baldock, Appl. Radiat. Isot. 66 (2008) 1206-1212.
    P. E. Kinahan, D. W. Townsend, T. Beyer, D. Sashin, Med. Phys. 25 (1998) 2046-2053.
    C. Burger et al., Eur. J. Nucl. Med. 29 (2002) 922-927.

Attenuation data: :mod:`recon.data.materials` (NIST XCOM / SRD 126 tables, 50-600 keV).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from recon.data.grid import ImageGrid, Volume
from recon.data.materials import linear_mu_per_mm
from recon.physics.resample import grid_affine, resample, shift_affine, source_footprint

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_CT_EFFECTIVE_ENERGY_KEV",
    "BilinearHUModel",
    "CTCoverageError",
    "bilinear_model",
    "cortical_bone_hu",
    "ct_effective_energy_kev",
    "ct_to_mu_map",
    "hu_to_mu",
]

#: Effective energy (keV) of a filtered 120 kVp CT beam, used when neither kVp nor an energy is known.
DEFAULT_CT_EFFECTIVE_ENERGY_KEV: float = 70.0
_TABLE_MIN_KEV = 50.0


class CTCoverageError(ValueError):
    """The CT does not cover the emission grid where it must."""


def ct_effective_energy_kev(kvp: float | None) -> float:
    """Effective energy (keV) of a CT beam of tube voltage ``kvp``: 10 keV + kVp / 2 (rule of thumb).

    None gives :data:`DEFAULT_CT_EFFECTIVE_ENERGY_KEV`; results below the
    tables' 50 keV are raised to 50 keV (logged).
    """
    return _effective_energy_from_kvp(kvp)


def _effective_energy_from_kvp(kvp: float | None) -> float:
    if kvp is None:
        return DEFAULT_CT_EFFECTIVE_ENERGY_KEV
    v = float(kvp)
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"CT tube voltage must be positive (kVp), got {kvp}")
    e = 10.0 + v / 2.0
    if e < _TABLE_MIN_KEV:
        logger.warning("CT at %g kVp: effective energy %.0f keV is below the attenuation tables; using %.0f keV",
                       v, e, _TABLE_MIN_KEV)
        e = _TABLE_MIN_KEV
    return e


@dataclass(frozen=True)
class BilinearHUModel:
    """The bilinear HU -> mu model's numbers at one emission energy (mu in 1/mm, CT numbers in HU)."""

    energy_kev: float
    mu_water_per_mm: float
    mu_bone_per_mm: float
    bone_hu: float
    break_hu: float = 0.0

    def __post_init__(self) -> None:
        if not self.mu_water_per_mm > 0 or not self.mu_bone_per_mm > 0:
            raise ValueError("water and bone attenuation coefficients must be positive (1/mm)")
        if not -1000.0 < self.break_hu < self.bone_hu:
            raise ValueError(
                f"break point {self.break_hu} HU must lie between -1000 HU and the bone CT number {self.bone_hu} HU"
            )

    @property
    def mu_at_break_per_mm(self) -> float:
        """mu (1/mm) at the break point, where the two segments meet."""
        return self.mu_water_per_mm * (1.0 + self.break_hu / 1000.0)

    @property
    def bone_slope_per_mm_hu(self) -> float:
        """Slope of the upper segment, (1/mm) per HU."""
        return (self.mu_bone_per_mm - self.mu_at_break_per_mm) / (self.bone_hu - self.break_hu)

    def __call__(self, hu: Any) -> np.ndarray:
        """mu (1/mm, float32) of CT numbers ``hu`` (HU), any shape; the input is not modified."""
        h = np.asarray(hu, dtype=np.float64)
        low = self.mu_water_per_mm * (1.0 + h / 1000.0)
        high = self.mu_at_break_per_mm + (h - self.break_hu) * self.bone_slope_per_mm_hu
        mu = np.where(h <= self.break_hu, low, high)
        return np.maximum(mu, 0.0).astype(np.float32)


def cortical_bone_hu(ct_effective_energy_kev: float = DEFAULT_CT_EFFECTIVE_ENERGY_KEV) -> float:
    """CT number (HU) of cortical bone at a CT beam's effective energy (keV): 1000 (mu_bone/mu_w - 1)."""
    mu_w = linear_mu_per_mm("water", ct_effective_energy_kev)
    mu_b = linear_mu_per_mm("cortical_bone", ct_effective_energy_kev)
    return 1000.0 * (mu_b / mu_w - 1.0)


def bilinear_model(
    energy_kev: float,
    *,
    break_hu: float = 0.0,
    bone_hu: float | None = None,
    ct_effective_energy_kev: float = DEFAULT_CT_EFFECTIVE_ENERGY_KEV,
) -> BilinearHUModel:
    """The bilinear model at emission energy ``energy_kev`` (keV, 50-600).

    ``bone_hu`` is the CT number of cortical bone on the CT used; when None it is
    computed from the attenuation tables at ``ct_effective_energy_kev``.
    """
    if not np.isfinite(energy_kev) or energy_kev <= 0:
        raise ValueError(f"photon energy must be positive (keV), got {energy_kev}")
    hu_bone = cortical_bone_hu(ct_effective_energy_kev) if bone_hu is None else float(bone_hu)
    return BilinearHUModel(
        energy_kev=float(energy_kev),
        mu_water_per_mm=linear_mu_per_mm("water", energy_kev),
        mu_bone_per_mm=linear_mu_per_mm("cortical_bone", energy_kev),
        bone_hu=hu_bone,
        break_hu=float(break_hu),
    )


def hu_to_mu(
    hu: Any,
    energy_kev: float,
    *,
    break_hu: float = 0.0,
    bone_hu: float | None = None,
    ct_effective_energy_kev: float = DEFAULT_CT_EFFECTIVE_ENERGY_KEV,
) -> np.ndarray:
    """Linear attenuation coefficients (1/mm, float32) of CT numbers ``hu`` at ``energy_kev`` (keV)."""
    model = bilinear_model(
        energy_kev, break_hu=break_hu, bone_hu=bone_hu, ct_effective_energy_kev=ct_effective_energy_kev
    )
    return model(hu)


def _check_coverage(src: ImageGrid, target: ImageGrid, outside_xy: str, outside_z: str) -> None:
    """Target voxels outside the CT are air (logged), or an error with ``outside_* = "error"``; a CT that
    reaches beyond the target along z is cropped to it (logged)."""
    for name, axis in (("z", 0), ("y", 1), ("x", 2)):
        o, d, n = src.origin_mm[2 - axis], src.spacing_mm[axis], src.shape[axis]
        lo, hi = o - d / 2, o + (n - 0.5) * d
        t = target.axis_mm(name)
        outside = int(((t < lo - 1e-6) | (t > hi + 1e-6)).sum())
        if name == "z" and (lo < t.min() - 1e-6 or hi > t.max() + 1e-6):
            logger.info("the CT spans z = %.1f to %.1f mm, beyond the emission grid's slices (%.1f to %.1f mm): "
                        "cropped to them", lo, hi, t.min(), t.max())
        if not outside:
            continue
        what = "slices" if name == "z" else f"voxel columns along {name}"
        msg = (f"the CT covers {name} = {lo:.1f} to {hi:.1f} mm; {outside} of {t.size} emission {what} "
               f"({t.min():.1f} to {t.max():.1f} mm) lie outside it")
        if (outside_z if name == "z" else outside_xy) == "error":
            raise CTCoverageError(f"the CT does not cover the emission field of view along {name}: {msg}")
        logger.warning("%s; they are set to air (mu = 0), so activity there is not attenuation-corrected", msg)


def ct_to_mu_map(
    ct_hu: Volume,
    target_grid: ImageGrid,
    energy_kev: float,
    *,
    kvp: float | None = None,
    break_hu: float = 0.0,
    bone_hu: float | None = None,
    ct_effective_energy_kev: float | None = None,
    outside_xy: str = "air",
    outside_z: str = "air",
) -> Volume:
    """mu-map (1/mm) at ``energy_kev`` (keV) on ``target_grid`` from a CT Volume in HU.

    HU -> mu by the bilinear model (module docstring) on the CT's own voxels,
    then trilinear resampling by patient coordinates (LPS mm). The CT energy is,
    first to last: ``bone_hu``, ``ct_effective_energy_kev``, the tube voltage
    ``kvp`` (else ``ct_hu.metadata["kvp"]``), the 120 kVp default. Target
    voxels outside the CT (a CT shorter than the emission field of view, or
    narrower) are air (mu = 0, logged) with ``outside_z`` / ``outside_xy``
    ``"air"``, a :class:`CTCoverageError` with ``"error"``; a longer CT is
    cropped to the target (logged). The result carries the CT's
    frame of reference.
    """
    for name, value in (("outside_xy", outside_xy), ("outside_z", outside_z)):
        if value not in ("air", "error"):
            raise ValueError(f"{name} must be 'air' or 'error', got {value!r}")
    if ct_hu.unit.upper() != "HU":
        raise ValueError(f"ct_to_mu_map needs a CT volume in HU, got unit {ct_hu.unit!r}")
    if kvp is None and ct_hu.metadata.get("kvp") not in (None, ""):
        kvp = float(ct_hu.metadata["kvp"])
    e_ct = ct_effective_energy_kev if ct_effective_energy_kev is not None else _effective_energy_from_kvp(kvp)
    model = bilinear_model(energy_kev, break_hu=break_hu, bone_hu=bone_hu, ct_effective_energy_kev=e_ct)
    src = ct_hu.grid
    _check_coverage(src, target_grid, outside_xy, outside_z)

    # convert only the block of CT voxels the interpolation touches, then resample it
    affine = grid_affine(src)
    box = source_footprint(src.shape, affine, target_grid)
    ct_data = ct_hu.data if isinstance(ct_hu.data, np.ndarray) else ct_hu.to_host().data
    mu_block = model(ct_data[box])
    mu = resample(mu_block, shift_affine(affine, tuple(s.start for s in box)), target_grid, fill=0.0)
    frame = ct_hu.frame_of_reference_uid or str(ct_hu.metadata.get("frame_of_reference_uid", "") or "")
    metadata = {
        "energy_kev": float(energy_kev),
        "model": "bilinear HU->mu",
        "break_hu": model.break_hu,
        "bone_hu": model.bone_hu,
        "ct_effective_energy_kev": None if bone_hu is not None else float(e_ct),
        "mu_water_per_mm": model.mu_water_per_mm,
        "mu_bone_per_mm": model.mu_bone_per_mm,
        "frame_of_reference_uid": frame,
    }
    return Volume(mu, target_grid, unit="1/mm", metadata=metadata, frame_of_reference_uid=frame)

