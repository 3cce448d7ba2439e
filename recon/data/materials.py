"""Photon attenuation of body materials: linear attenuation coefficients in 1/mm.

Mass attenuation coefficients (total, with coherent scattering, cm^2/g) from
the NIST X-ray mass attenuation coefficient tables (Hubbell & Seltzer, NIST
Standard Reference Database 126), compositions per ICRU Report 44; interpolated
log-log in energy. Densities in g/cm^3.
"""
from __future__ import annotations

import numpy as np

_ENERGY_KEV = np.array([50.0, 60.0, 80.0, 100.0, 150.0, 200.0, 300.0, 400.0, 500.0, 600.0])

# material -> (density g/cm^3, mass attenuation cm^2/g at _ENERGY_KEV)
MATERIALS: dict[str, tuple[float, np.ndarray]] = {
    "water": (1.000, np.array([0.2269, 0.2059, 0.1837, 0.1707, 0.1505, 0.1370, 0.1186, 0.1061, 0.09687, 0.08956])),
    "soft_tissue": (1.060, np.array([0.2264, 0.2048, 0.1823, 0.1693, 0.1492, 0.1358, 0.1176, 0.1052, 0.09606, 0.08879])),
    "cortical_bone": (1.920, np.array([0.4242, 0.3148, 0.2229, 0.1855, 0.1480, 0.1309, 0.1113, 0.09908, 0.09022, 0.08332])),
    # inflated lung: soft-tissue composition at a typical density of 0.30 g/cm^3
    "lung": (0.300, np.array([0.2264, 0.2048, 0.1823, 0.1693, 0.1492, 0.1358, 0.1176, 0.1052, 0.09606, 0.08879])),
    "air": (0.001205, np.array([0.2080, 0.1875, 0.1662, 0.1541, 0.1356, 0.1233, 0.1067, 0.09549, 0.08712, 0.08055])),
}


def linear_mu_per_mm(material: str, energy_kev: float) -> float:
    """Linear attenuation coefficient (1/mm) of ``material`` at ``energy_kev`` (50-600 keV)."""
    if material not in MATERIALS:
        raise ValueError(f"unknown material {material!r}; known: {', '.join(sorted(MATERIALS))}")
    if not _ENERGY_KEV[0] <= energy_kev <= _ENERGY_KEV[-1]:
        raise ValueError(f"attenuation tables cover {_ENERGY_KEV[0]:.0f}-{_ENERGY_KEV[-1]:.0f} keV, got {energy_kev} keV")
    density, mass_att = MATERIALS[material]
    log_mass = np.interp(np.log(energy_kev), np.log(_ENERGY_KEV), np.log(mass_att))
    return float(np.exp(log_mass) * density / 10.0)  # cm^-1 -> mm^-1
