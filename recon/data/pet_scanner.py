"""Cylindrical multi-ring PET scanners described by physical numbers, and presets.

Scanner frame (mm): origin at the centre of the axial field of view on the scanner axis,
+z along the axis from the first ring (index 0) to the last, x and y transaxial. For a
head-first supine patient at table offset 0 this frame coincides with DICOM LPS (see
:mod:`recon.data.pet_sinogram` for the mapping to patient space).

Crystal ``c`` of a ring sits at the angle ``first_crystal_angle_deg + 360*c / crystals_per_ring``
(degrees) measured from +x towards +y (``first_crystal_angle_deg`` is 0 for the presets; a
scanner read from a file, e.g. PETSIRD, keeps the angle of its first crystal). Block gaps are modelled as virtual crystals: each transaxial block holds
``crystals_per_block`` real crystals followed by ``gap_crystals_per_block`` virtual ones,
which have no detector behind them (``crystal_present`` is False; their LORs carry zero
sensitivity). Lines of response end at the mean depth of interaction, ``mean_doi_mm``
behind the crystal face.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SPEED_OF_LIGHT_MM_PER_PS = 0.299792458
"""c in mm/ps; a coincidence time difference dt moves the annihilation point by c*dt/2."""

FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


def _positive(name: str, value: float) -> float:
    v = float(value)
    if not np.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return v


def _count(name: str, value: int, minimum: int = 1) -> int:
    if isinstance(value, bool) or int(value) != value or int(value) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class PETScanner:
    """A cylindrical multi-ring PET scanner.

    ``tof_fwhm_ps`` of 0 means a scanner without time of flight; then ``n_tof_bins`` is 1.
    TOF bin ``k`` of ``n_tof_bins`` is centred at ``(k - (n_tof_bins - 1) / 2) * tof_bin_width_mm``
    from the LOR's midpoint towards its *second* detector (see ``pet_sinogram``).
    """

    name: str
    ring_diameter_mm: float  # detector-face diameter
    n_rings: int
    crystals_per_block: int  # real crystals per transaxial block
    blocks_per_ring: int
    crystal_transaxial_mm: float
    crystal_axial_mm: float
    crystal_depth_mm: float
    ring_spacing_mm: float  # axial pitch between ring centres (crystal + axial gap share)
    gap_crystals_per_block: int = 0
    mean_doi_mm: float = 0.0
    tof_fwhm_ps: float = 0.0
    tof_bin_width_ps: float = 0.0
    n_tof_bins: int = 1
    coincidence_window_ns: float = 4.0
    max_ring_difference: int | None = None
    spatial_resolution_fwhm_mm: float = 4.0  # system resolution at the centre, for the image-space PSF
    source: str = ""  # where the numbers come from
    first_crystal_angle_deg: float = 0.0  # angle of crystal 0 from +x towards +y (deg)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError("scanner name must be a non-empty string")
        _positive("ring_diameter_mm", self.ring_diameter_mm)
        _count("n_rings", self.n_rings)
        _count("crystals_per_block", self.crystals_per_block)
        _count("blocks_per_ring", self.blocks_per_ring)
        _count("gap_crystals_per_block", self.gap_crystals_per_block, minimum=0)
        for name in ("crystal_transaxial_mm", "crystal_axial_mm", "crystal_depth_mm", "ring_spacing_mm",
                     "coincidence_window_ns", "spatial_resolution_fwhm_mm"):
            _positive(name, getattr(self, name))
        if self.ring_spacing_mm < self.crystal_axial_mm - 1e-6:
            raise ValueError(f"ring_spacing_mm {self.ring_spacing_mm} is smaller than the crystal's axial size "
                             f"{self.crystal_axial_mm} mm")
        if not (0.0 <= float(self.mean_doi_mm) <= float(self.crystal_depth_mm)):
            raise ValueError(f"mean_doi_mm must lie within the crystal depth 0..{self.crystal_depth_mm} mm, "
                             f"got {self.mean_doi_mm}")
        if self.crystals_per_ring % 2:
            raise ValueError(f"crystals per ring (with gap crystals) must be even, got {self.crystals_per_ring}")
        _count("n_tof_bins", self.n_tof_bins)
        if float(self.tof_fwhm_ps) < 0 or not np.isfinite(self.tof_fwhm_ps):
            raise ValueError(f"tof_fwhm_ps must be >= 0, got {self.tof_fwhm_ps}")
        if self.tof_fwhm_ps > 0:
            _positive("tof_bin_width_ps", self.tof_bin_width_ps)
        elif self.n_tof_bins != 1:
            raise ValueError(f"a scanner without TOF (tof_fwhm_ps=0) has 1 TOF bin, got {self.n_tof_bins}")
        if not np.isfinite(float(self.first_crystal_angle_deg)):
            raise ValueError(f"first_crystal_angle_deg must be finite, got {self.first_crystal_angle_deg!r}")
        mrd = self.n_rings - 1 if self.max_ring_difference is None else int(self.max_ring_difference)
        if not 0 <= mrd <= self.n_rings - 1:
            raise ValueError(f"max_ring_difference must be in 0..{self.n_rings - 1}, got {self.max_ring_difference}")
        object.__setattr__(self, "max_ring_difference", mrd)

    # --- derived numbers -------------------------------------------------------------
    @property
    def crystals_per_ring(self) -> int:
        """Crystal positions per ring, the virtual gap crystals included."""
        return self.blocks_per_ring * (self.crystals_per_block + self.gap_crystals_per_block)

    @property
    def lor_radius_mm(self) -> float:
        """Radius at which LORs end: the detector face plus the mean depth of interaction (mm)."""
        return self.ring_diameter_mm / 2.0 + float(self.mean_doi_mm)

    @property
    def axial_fov_mm(self) -> float:
        """Axial extent of the crystal rings (mm)."""
        return (self.n_rings - 1) * self.ring_spacing_mm + self.crystal_axial_mm

    @property
    def has_tof(self) -> bool:
        return self.tof_fwhm_ps > 0

    @property
    def tof_sigma_mm(self) -> float:
        """Standard deviation of the TOF kernel along the LOR (mm); 0 without TOF."""
        return float(self.tof_fwhm_ps) * FWHM_TO_SIGMA * SPEED_OF_LIGHT_MM_PER_PS / 2.0

    @property
    def tof_bin_width_mm(self) -> float:
        """Width of one TOF bin along the LOR (mm); 0 without TOF."""
        return float(self.tof_bin_width_ps) * SPEED_OF_LIGHT_MM_PER_PS / 2.0

    @property
    def n_crystals(self) -> int:
        """Detector ids 0..n_crystals-1: ``ring * crystals_per_ring + crystal`` (gap crystals included)."""
        return self.n_rings * self.crystals_per_ring

    def crystal_present(self) -> np.ndarray:
        """(crystals_per_ring,) bool: False for the virtual crystals in block gaps."""
        period = self.crystals_per_block + self.gap_crystals_per_block
        return (np.arange(self.crystals_per_ring) % period) < self.crystals_per_block

    def crystal_xy_mm(self) -> np.ndarray:
        """(crystals_per_ring, 2) float64: transaxial LOR end positions (x, y) in the scanner frame (mm)."""
        angles = (np.deg2rad(float(self.first_crystal_angle_deg))
                  + 2.0 * np.pi * np.arange(self.crystals_per_ring) / self.crystals_per_ring)
        return self.lor_radius_mm * np.stack([np.cos(angles), np.sin(angles)], axis=1)

    def ring_z_mm(self) -> np.ndarray:
        """(n_rings,) float64: axial centre of each ring in the scanner frame (mm)."""
        return (np.arange(self.n_rings) - (self.n_rings - 1) / 2.0) * self.ring_spacing_mm

    def detector_positions_mm(self, detector_ids: np.ndarray) -> np.ndarray:
        """(..., 3) float64 scanner-frame positions (x, y, z, mm) of detector ids; refuses ids out of range."""
        ids = np.asarray(detector_ids)
        if ids.size and (not np.issubdtype(ids.dtype, np.integer)):
            raise ValueError(f"detector ids must be integers, got dtype {ids.dtype}")
        if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= self.n_crystals):
            raise ValueError(f"detector ids out of range 0..{self.n_crystals - 1} for scanner {self.name!r}: "
                             f"found {int(ids.min())}..{int(ids.max())}")
        ring, crystal = np.divmod(ids.astype(np.int64), self.crystals_per_ring)
        xy = self.crystal_xy_mm()[crystal]
        z = self.ring_z_mm()[ring]
        return np.concatenate([xy, z[..., None]], axis=-1)
