"""The PET energy window with the detector's energy resolution, and water's attenuation vs energy."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from kernels.compton_math import window_efficiency
from recon.data.materials import linear_mu_per_mm


@dataclass(frozen=True)
class PETEnergyWindow:
    """Coincidence energy window [lower_kev, upper_kev] and the energy resolution at 511 keV
    (``resolution_fwhm``: FWHM as a fraction of 511 keV; it scales as sqrt(E), see
    :mod:`kernels.compton_math`). Defaults: 435-650 keV, 11.5 % (LSO-like)."""

    lower_kev: float = 435.0
    upper_kev: float = 650.0
    resolution_fwhm: float = 0.115

    def __post_init__(self) -> None:
        lo, hi, f = float(self.lower_kev), float(self.upper_kev), float(self.resolution_fwhm)
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo < 0 or hi <= lo:
            raise ValueError(f"energy window must satisfy 0 <= lower < upper (keV), got {self.lower_kev}-{self.upper_kev}")
        if lo > 511.0 or hi < 511.0:
            raise ValueError(f"a PET energy window must contain 511 keV, got {lo}-{hi} keV")
        if not math.isfinite(f) or not 0.0 < f < 1.0:
            raise ValueError(f"resolution_fwhm is a fraction of 511 keV in (0, 1), got {self.resolution_fwhm}")

    def efficiency(self, energy_kev: float) -> float:
        """Probability that a photon of ``energy_kev`` is recorded inside the window."""
        return window_efficiency(float(energy_kev), float(self.lower_kev), float(self.upper_kev),
                                 float(self.resolution_fwhm))

    def cutoff_kev(self, n_sigma: float = 6.0) -> float:
        """Energy below which a photon cannot reach the window (``n_sigma`` of blur below its lower edge)."""
        s = self.resolution_fwhm * 511.0 * math.sqrt(self.lower_kev / 511.0) / 2.3548
        return max(0.0, self.lower_kev - n_sigma * s)


def water_mu_table_per_mm(max_kev: int = 511) -> np.ndarray:
    """(max_kev + 1,) float64: water's linear attenuation (1/mm) at 0, 1, ..., max_kev keV
    (NIST tables, :mod:`recon.data.materials`; held at the 50 keV value below 50 keV)."""
    e = np.clip(np.arange(max_kev + 1, dtype=np.float64), 50.0, 600.0)
    return np.array([linear_mu_per_mm("water", float(v)) for v in e])
