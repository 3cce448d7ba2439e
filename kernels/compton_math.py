"""Per-element Compton physics for single scatter simulation: plain functions (Numba-compiled by
their users, reusable as CUDA device functions). Energies in keV, angles by their cosine.

* scattered energy ``E' = E / (1 + (E / 511) (1 - cos t))``;
* Klein-Nishina ``d sigma / d Omega = (r_e^2 / 2) P^2 (P + 1/P - sin^2 t)`` with ``P = E'/E``,
  here divided by the total cross-section ``sigma_KN(E)`` so the result (1/sr) integrates to 1
  over the sphere: the angular probability density of a Compton scatter;
* energy-window acceptance of a photon of energy ``E`` under Gaussian energy blurring with
  ``FWHM(E) = f * 511 * sqrt(E / 511)`` (``f`` the fractional FWHM at 511 keV; photon-statistics
  scaling): ``0.5 [erf((hi - E) / (sqrt 2 s)) - erf((lo - E) / (sqrt 2 s))]``, ``s = FWHM / 2.3548``.
"""
from __future__ import annotations

import math

ELECTRON_REST_KEV = 510.998950
FWHM_PER_SIGMA = 2.3548200450309493


def scattered_energy_kev(energy_kev: float, cos_theta: float) -> float:
    """Photon energy (keV) after a Compton scatter through the angle whose cosine is ``cos_theta``."""
    return energy_kev / (1.0 + (energy_kev / ELECTRON_REST_KEV) * (1.0 - cos_theta))


def klein_nishina_total(energy_kev: float) -> float:
    """Total Klein-Nishina cross-section per electron in units of r_e^2 (multiply by r_e^2 for area)."""
    k = energy_kev / ELECTRON_REST_KEV
    a = 1.0 + 2.0 * k
    lg = math.log(a)
    return 2.0 * math.pi * ((1.0 + k) / (k * k) * (2.0 * (1.0 + k) / a - lg / k) + lg / (2.0 * k) - (1.0 + 3.0 * k) / (a * a))


def klein_nishina_density(energy_kev: float, cos_theta: float, sigma_total: float) -> float:
    """Klein-Nishina angular density (1/sr): ``(d sigma/d Omega) / sigma_KN``; ``sigma_total`` from
    :func:`klein_nishina_total` at ``energy_kev``."""
    p = 1.0 / (1.0 + (energy_kev / ELECTRON_REST_KEV) * (1.0 - cos_theta))
    return 0.5 * p * p * (p + 1.0 / p - (1.0 - cos_theta * cos_theta)) / sigma_total


def window_efficiency(energy_kev: float, lower_kev: float, upper_kev: float, fwhm_fraction: float) -> float:
    """Probability that a photon of ``energy_kev`` is recorded inside [lower_kev, upper_kev] (module docstring)."""
    if energy_kev <= 0.0:
        return 0.0
    s = fwhm_fraction * ELECTRON_REST_KEV * math.sqrt(energy_kev / ELECTRON_REST_KEV) / FWHM_PER_SIGMA
    r = 1.0 / (math.sqrt(2.0) * s)
    return 0.5 * (math.erf((upper_kev - energy_kev) * r) - math.erf((lower_kev - energy_kev) * r))
