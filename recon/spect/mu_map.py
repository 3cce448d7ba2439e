"""CT numbers (HU) to linear attenuation coefficients (1/mm) at a photon energy: the bilinear model.

A voxel at or below the break point (about 0 HU) is treated as a mixture of
water and air, one above it as a mixture of water and cortical bone
(Blankespoor et al. 1996; Brown et al. 2008)::

    HU <= HU_b:  mu(E) = mu_w(E) * (1 + HU / 1000)
    HU >  HU_b:  mu(E) = mu(HU_b) + (HU - HU_b) * (mu_bone(E) - mu(HU_b)) / (HU_bone - HU_b)

with HU_b the break point (default 0 HU), mu_w and mu_bone the linear
attenuation coefficients of water and cortical bone at the emission energy E,
and HU_bone the CT number of cortical bone at the CT beam's effective energy
E_CT: HU_bone = 1000 * (mu_bone(E_CT) / mu_w(E_CT) - 1). The two segments meet
at the break point, negative results (below -1000 HU) are clipped to 0.

References:
    S. C. Blankespoor et al., "Attenuation correction of SPECT using X-ray CT on
    an emission-transmission CT system: myocardial perfusion assessment",
    IEEE Trans. Nucl. Sci. 43 (1996) 2263-2274.
    S. Brown, D. L. Bailey, K. Willowson, C. Baldock, "Investigation of the
    relationship between linear attenuation coefficients and CT Hounsfield units
    using radionuclides for SPECT", Appl. Radiat. Isot. 66 (2008) 1206-1212.

Attenuation data come from :mod:`recon.data.materials` (NIST XCOM tables).
This module is pure array physics: no file I/O.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from recon.data.materials import linear_mu_per_mm

#: Typical effective energy (keV) of a filtered 120 kVp CT beam, used for HU_bone when no other is given.
DEFAULT_CT_EFFECTIVE_ENERGY_KEV: float = 70.0


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
        """mu (1/mm, float32) of CT numbers ``hu`` (HU), any shape."""
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
    """The bilinear model at emission energy ``energy_kev`` (keV).

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
    """Linear attenuation coefficients (1/mm, float32) of CT numbers ``hu`` at ``energy_kev`` (keV).

    Bilinear model, see the module docstring. The input is not modified.
    """
    model = bilinear_model(
        energy_kev, break_hu=break_hu, bone_hu=bone_hu, ct_effective_energy_kev=ct_effective_energy_kev
    )
    return model(hu)
