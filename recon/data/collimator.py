"""Parallel-hole collimators: geometry and the distance-dependent resolution it implies.

Geometric resolution of a parallel-hole collimator (Anger; Cherry, Sorenson &
Phelps, *Physics in Nuclear Medicine*, ch. 14)::

    R_g(z) = d * (L_eff + z + b) / L_eff,     L_eff = L - 2 / mu_Pb(E)

with hole diameter d, hole length L, source-to-collimator-face distance z,
collimator-back-to-image-plane gap b, and the septal material's linear
attenuation mu_Pb at the photon energy (septal penetration shortens the
effective hole length). The system FWHM adds the detector's intrinsic
resolution in quadrature: R_s = sqrt(R_g^2 + R_i^2). All lengths in mm.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

FWHM_PER_SIGMA: float = 2.0 * math.sqrt(2.0 * math.log(2.0))

# Lead mass attenuation coefficient (cm^2/g) vs photon energy (keV), total with
# coherent scattering, NIST XCOM / NIST X-ray mass attenuation tables (Pb, Z=82);
# above the K edge (88.0 keV) only. Density 11.35 g/cm^3.
_PB_ENERGY_KEV = np.array([100.0, 150.0, 200.0, 300.0, 400.0, 500.0, 600.0])
_PB_MASS_ATT_CM2_G = np.array([5.549, 2.014, 0.9985, 0.4031, 0.2323, 0.1614, 0.1248])
_PB_DENSITY_G_CM3 = 11.35


def lead_mu_per_mm(energy_kev: float) -> float:
    """Linear attenuation coefficient of lead (1/mm) at ``energy_kev`` (100-600 keV), log-log interpolated."""
    if not 100.0 <= energy_kev <= 600.0:
        raise ValueError(f"lead attenuation table covers 100-600 keV, got {energy_kev} keV")
    log_mass = np.interp(np.log(energy_kev), np.log(_PB_ENERGY_KEV), np.log(_PB_MASS_ATT_CM2_G))
    return float(np.exp(log_mass) * _PB_DENSITY_G_CM3 / 10.0)


@dataclass(frozen=True)
class Collimator:
    """A parallel-hole collimator and the camera's intrinsic resolution (all mm)."""

    name: str
    hole_diameter_mm: float
    hole_length_mm: float
    septal_thickness_mm: float
    intrinsic_fwhm_mm: float
    back_gap_mm: float = 0.0
    hole_shape: str = "hexagonal"

    def __post_init__(self) -> None:
        for field_name in ("hole_diameter_mm", "hole_length_mm", "intrinsic_fwhm_mm"):
            value = float(getattr(self, field_name))
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"collimator {self.name!r}: {field_name} must be positive, got {value}")
        for field_name in ("septal_thickness_mm", "back_gap_mm"):
            value = float(getattr(self, field_name))
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"collimator {self.name!r}: {field_name} must be >= 0, got {value}")

    def effective_hole_length_mm(self, energy_kev: float) -> float:
        """L_eff = L - 2/mu_Pb(E) (mm)."""
        l_eff = self.hole_length_mm - 2.0 / lead_mu_per_mm(energy_kev)
        if l_eff <= 0:
            raise ValueError(f"collimator {self.name!r} is transparent at {energy_kev} keV (L_eff <= 0)")
        return l_eff

    def geometric_fwhm_mm(self, distance_mm: float | np.ndarray, energy_kev: float) -> np.ndarray:
        """Geometric resolution R_g (FWHM, mm) at ``distance_mm`` from the collimator face."""
        l_eff = self.effective_hole_length_mm(energy_kev)
        z = np.maximum(np.asarray(distance_mm, dtype=np.float64), 0.0)
        return self.hole_diameter_mm * (l_eff + z + self.back_gap_mm) / l_eff

    def system_fwhm_mm(self, distance_mm: float | np.ndarray, energy_kev: float) -> np.ndarray:
        """System resolution R_s = sqrt(R_g^2 + R_i^2) (FWHM, mm); negative distances count as 0."""
        r_g = self.geometric_fwhm_mm(distance_mm, energy_kev)
        return np.sqrt(r_g**2 + self.intrinsic_fwhm_mm**2)

    def system_sigma_mm(self, distance_mm: float | np.ndarray, energy_kev: float) -> np.ndarray:
        """Gaussian sigma (mm) of the system response at ``distance_mm``."""
        return self.system_fwhm_mm(distance_mm, energy_kev) / FWHM_PER_SIGMA


# Published geometry (hexagonal holes, diameter flat-to-flat) from the SIMIND Monte
# Carlo code's collimator table (collim.col, M. Ljungberg, Lund University; the codes
# below are its names), cross-checked against OpenGATE's Siemens Intevo and GE
# Discovery NM670 models. The intrinsic FWHM (140 keV, 3/8" NaI) is the typical
# vendor figure and was not confirmed from a data sheet: pass the measured value of
# your camera with dataclasses.replace(preset, intrinsic_fwhm_mm=...).
COLLIMATOR_PRESETS: dict[str, Collimator] = {
    c.name: c
    for c in (
        Collimator("SY-LEHR", 1.11, 24.05, 0.16, 3.8),  # Siemens Symbia / Intevo LEHR
        Collimator("SY-LEAP", 1.45, 24.05, 0.20, 3.8),  # Siemens LEAP
        Collimator("SY-ME", 2.94, 40.64, 1.14, 3.8),  # Siemens MELP
        Collimator("GI-LEHR", 1.50, 35.00, 0.20, 3.9),  # GE Infinia / Discovery 670 LEHR
        Collimator("GI-MEGP", 3.00, 58.00, 1.05, 3.9),  # GE MEGP
        Collimator("PB-LEHR", 1.22, 27.00, 0.152, 3.3),  # Philips BrightView LEHR
        Collimator("PB-MEGP", 3.40, 58.40, 0.86, 3.3),  # Philips BrightView MEGP
    )
}


def get_collimator(name: str) -> Collimator:
    """A preset by name (case-insensitive), e.g. ``"SY-LEHR"``; ValueError lists the known ones."""
    key = name.strip().upper()
    if key not in COLLIMATOR_PRESETS:
        raise ValueError(f"unknown collimator {name!r}; known presets: {', '.join(sorted(COLLIMATOR_PRESETS))}")
    return COLLIMATOR_PRESETS[key]
