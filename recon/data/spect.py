"""SPECT acquisitions: energy windows, orbit geometry and multi-window projections.

Projections are float32 arrays ordered (view, row, column), one per energy
window. Rows run along the patient's axis (row index increasing with +z,
superior); columns run across.

Angle convention (documented once, here): a view at angle theta (deg) has its
detector face normal pointing from the rotation axis towards

    n(theta) = (x, y) = (sin theta, -cos theta)     (DICOM LPS)

so theta = 0 is anterior (the detector above a supine patient), theta = 90
is the patient's left. Increasing theta turns the detector from anterior to
the patient's left: clockwise when the patient is seen from the feet
(counter-clockwise seen from the head). DICOM's StartAngle phi (0 = posterior,
increasing counter-clockwise from the feet) maps as theta = (180 - phi) mod 360
(see :mod:`recon.io.dicom.nm_geometry`). The column axis at angle theta points along
u(theta) = (cos theta, sin theta). Readers map DICOM's StartAngle,
AngularStep and RotationDirection onto this convention.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recon.data.collimator import Collimator
from recon.data.grid import ImageGrid
from recon.data.study import AcquisitionInfo, DoseInfo, PatientInfo


@dataclass(frozen=True)
class EnergyWindow:
    """An acquisition energy window, [lower_kev, upper_kev]."""

    name: str
    lower_kev: float
    upper_kev: float

    def __post_init__(self) -> None:
        if not (np.isfinite(self.lower_kev) and np.isfinite(self.upper_kev)) or self.lower_kev < 0:
            raise ValueError(f"energy window {self.name!r}: bounds must be finite and >= 0")
        if self.upper_kev <= self.lower_kev:
            raise ValueError(
                f"energy window {self.name!r}: upper bound {self.upper_kev} keV must exceed lower bound {self.lower_kev} keV"
            )

    @property
    def width_kev(self) -> float:
        """Window width in keV."""
        return float(self.upper_kev - self.lower_kev)

    @property
    def center_kev(self) -> float:
        """Window centre in keV."""
        return float(0.5 * (self.upper_kev + self.lower_kev))


@dataclass(frozen=True)
class SPECTGeometry:
    """Orbit and detector: per-view angle (deg) and radius of rotation (mm), pixel size (mm), matrix.

    ``radius_mm`` is the distance from the rotation axis to the collimator face
    for each view (non-circular orbits have one value per view).
    """

    angles_deg: np.ndarray
    radius_mm: np.ndarray
    n_rows: int
    n_cols: int
    pixel_size_mm: float
    slice_thickness_mm: float | None = None

    def __post_init__(self) -> None:
        angles = np.array(self.angles_deg, dtype=np.float64).reshape(-1)
        if angles.size == 0:
            raise ValueError("SPECT geometry has zero views")
        radius = np.array(self.radius_mm, dtype=np.float64).reshape(-1)
        if radius.size == 1:
            radius = np.full(angles.size, radius[0])
        if radius.size != angles.size:
            raise ValueError(f"radius_mm has {radius.size} entries for {angles.size} views")
        if not (np.isfinite(angles).all() and np.isfinite(radius).all()):
            raise ValueError("SPECT geometry: angles and radii must be finite")
        if (radius <= 0).any():
            raise ValueError(f"radius of rotation must be positive (mm), got min {radius.min()}")
        if int(self.n_rows) < 1 or int(self.n_cols) < 1:
            raise ValueError(f"detector matrix must be at least 1x1, got {self.n_rows}x{self.n_cols}")
        if not np.isfinite(self.pixel_size_mm) or self.pixel_size_mm <= 0:
            raise ValueError(f"pixel_size_mm must be positive, got {self.pixel_size_mm}")
        thickness = self.pixel_size_mm if self.slice_thickness_mm is None else float(self.slice_thickness_mm)
        if not np.isfinite(thickness) or thickness <= 0:
            raise ValueError(f"slice_thickness_mm must be positive, got {thickness}")
        angles.setflags(write=False)
        radius.setflags(write=False)
        object.__setattr__(self, "angles_deg", angles)
        object.__setattr__(self, "radius_mm", radius)
        object.__setattr__(self, "n_rows", int(self.n_rows))
        object.__setattr__(self, "n_cols", int(self.n_cols))
        object.__setattr__(self, "pixel_size_mm", float(self.pixel_size_mm))
        object.__setattr__(self, "slice_thickness_mm", thickness)

    @property
    def n_views(self) -> int:
        """Number of views."""
        return int(self.angles_deg.size)

    def image_grid(self) -> ImageGrid:
        """The reconstruction grid these projections define: (rows, cols, cols) voxels of pixel size,
        centred on the rotation axis (x-y) and on the detector's axial centre (z)."""
        return ImageGrid.centered(
            (self.n_rows, self.n_cols, self.n_cols), (self.slice_thickness_mm, self.pixel_size_mm, self.pixel_size_mm)
        )


@dataclass(frozen=True)
class SPECTAcquisition:
    """Projections of one SPECT study, all energy windows, with geometry, collimator, timing and placement.

    ``counts`` maps window name -> float32 (view, row, col) array of counts.
    ``frame_duration_s`` is the acquisition time per view (s); ``n_detectors``
    heads acquire views at the same time (views are split evenly between them).
    ``center_mm`` is the patient-space (LPS, mm) position of the reconstruction
    grid's centre (on the rotation axis, at the detector's axial centre), as the
    input gives it; ``None`` when the input does not place the study (the grid
    is then centred on the origin). ``info``, ``patient`` and ``dose`` are the
    typed study metadata; ``metadata`` holds only opaque pass-through items
    (e.g. the source DICOM header for writers).
    """

    counts: dict[str, np.ndarray]
    windows: tuple[EnergyWindow, ...]
    photopeak: str
    geometry: SPECTGeometry
    collimator: Collimator
    frame_duration_s: float
    photon_energy_kev: float = 140.5
    radionuclide: str = "Tc-99m"
    metadata: dict[str, Any] = field(default_factory=dict)
    n_detectors: int = 1
    center_mm: tuple[float, float, float] | None = None
    info: AcquisitionInfo = field(default_factory=AcquisitionInfo)
    patient: PatientInfo = field(default_factory=PatientInfo)
    dose: DoseInfo = field(default_factory=DoseInfo)

    def __post_init__(self) -> None:
        windows = tuple(self.windows)
        names = [w.name for w in windows]
        if len(set(names)) != len(names):
            raise ValueError(f"energy window names must be unique, got {names}")
        if set(names) != set(self.counts):
            raise ValueError(f"counts windows {sorted(self.counts)} do not match energy windows {sorted(names)}")
        if self.photopeak not in names:
            raise ValueError(f"photopeak window {self.photopeak!r} is not among {names}")
        g = self.geometry
        expected = (g.n_views, g.n_rows, g.n_cols)
        counts: dict[str, np.ndarray] = {}
        for name, arr in self.counts.items():
            a = np.array(arr, dtype=np.float32, order="C", copy=True)
            if a.shape != expected:
                raise ValueError(
                    f"window {name!r}: projections shape {a.shape} does not match geometry (views, rows, cols) {expected}"
                )
            if not np.isfinite(a).all():
                raise ValueError(f"window {name!r}: projections contain NaN or infinite values")
            if (a < 0).any():
                raise ValueError(f"window {name!r}: projections contain negative counts (min {a.min()})")
            a.setflags(write=False)
            counts[name] = a
        if not np.isfinite(self.frame_duration_s) or self.frame_duration_s <= 0:
            raise ValueError(f"frame_duration_s must be positive, got {self.frame_duration_s}")
        if not np.isfinite(self.photon_energy_kev) or self.photon_energy_kev <= 0:
            raise ValueError(f"photon_energy_kev must be positive, got {self.photon_energy_kev}")
        n_det = int(self.n_detectors)
        if n_det < 1 or g.n_views % n_det:
            raise ValueError(f"n_detectors must be >= 1 and divide the {g.n_views} views, got {self.n_detectors}")
        if self.center_mm is not None:
            centre = tuple(float(c) for c in self.center_mm)
            if len(centre) != 3 or not all(np.isfinite(centre)):
                raise ValueError(f"center_mm must be 3 finite LPS coordinates (x, y, z) in mm, got {self.center_mm}")
            object.__setattr__(self, "center_mm", centre)
        object.__setattr__(self, "n_detectors", n_det)
        object.__setattr__(self, "windows", windows)
        object.__setattr__(self, "counts", counts)
        object.__setattr__(self, "metadata", dict(self.metadata))

    @property
    def acquisition_duration_s(self) -> float:
        """Wall time of the whole acquisition (s): views per detector x time per view."""
        return self.geometry.n_views / self.n_detectors * self.frame_duration_s

    @property
    def image_grid(self) -> ImageGrid:
        """The reconstruction grid placed in patient space (LPS, mm): the geometry's grid, centred on
        :attr:`center_mm` (on the origin when the input gives no position)."""
        base = self.geometry.image_grid()
        if self.center_mm is None:
            return base
        return base.recentred(self.center_mm)

    def window(self, name: str) -> EnergyWindow:
        """The energy window called ``name``."""
        for w in self.windows:
            if w.name == name:
                return w
        raise KeyError(f"no energy window {name!r}; have {[w.name for w in self.windows]}")

    @property
    def photopeak_counts(self) -> np.ndarray:
        """Photopeak projections (view, row, col), read-only."""
        return self.counts[self.photopeak]
