"""PET data objects: where the scanner sits in patient space, sinograms and list-mode events.

Scanner frame -> patient LPS (mm). The scanner frame (see :mod:`recon.data.pet_scanner`) is
rotated by the patient position and shifted by ``table_position_mm``, the LPS position of the
scanner-frame origin (the centre of the axial field of view):

* HFS: ( x,  y,  z)    head first supine, the identity;
* HFP: (-x, -y,  z)    head first prone;
* FFS: (-x,  y, -z)    feet first supine;
* FFP: ( x, -y, -z)    feet first prone.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from recon.data.grid import ImageGrid
from recon.data.pet_scanner import PETScanner
from recon.data.pet_sinogram import SinogramLayout
from recon.data.study import AcquisitionInfo, DoseInfo, PatientInfo

_AXIS_SIGNS: dict[str, tuple[float, float, float]] = {
    "HFS": (1.0, 1.0, 1.0),
    "HFP": (-1.0, -1.0, 1.0),
    "FFS": (-1.0, 1.0, -1.0),
    "FFP": (1.0, -1.0, -1.0),
}


@dataclass(frozen=True)
class ScannerPlacement:
    """Patient position (HFS, HFP, FFS, FFP) and the LPS position (mm) of the scanner-frame origin."""

    patient_position: str = "HFS"
    table_position_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        pos = str(self.patient_position).upper()
        if pos not in _AXIS_SIGNS:
            raise ValueError(f"patient position {self.patient_position!r} is not one of {sorted(_AXIS_SIGNS)}")
        t = tuple(float(v) for v in self.table_position_mm)
        if len(t) != 3 or not all(np.isfinite(t)):
            raise ValueError(f"table_position_mm must be 3 finite numbers (mm), got {self.table_position_mm!r}")
        object.__setattr__(self, "patient_position", pos)
        object.__setattr__(self, "table_position_mm", t)

    @property
    def axis_signs(self) -> tuple[float, float, float]:
        """(+-1, +-1, +-1): ``lps = axis_signs * scanner + table_position_mm`` per axis (x, y, z); the one
        table of the project (projector, SSS and attenuation all read it here)."""
        return _AXIS_SIGNS[self.patient_position]

    def to_patient(self, points_mm: np.ndarray) -> np.ndarray:
        """Scanner-frame points (..., 3) -> LPS points (..., 3), float32 (mm)."""
        signs = np.asarray(self.axis_signs, np.float32)
        return (np.asarray(points_mm, np.float32) * signs + np.asarray(self.table_position_mm, np.float32)).astype(np.float32)

    def field_of_view_centre_mm(self) -> tuple[float, float, float]:
        """LPS position (mm) of the centre of the scanner's field of view."""
        return self.table_position_mm


def _check_counts(name: str, array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    a = np.asarray(array)
    if tuple(a.shape) != tuple(shape):
        raise ValueError(f"{name} has shape {tuple(a.shape)}; the sinogram layout expects {tuple(shape)} "
                         f"(view, plane, radial{', tof' if len(shape) == 4 else ''})")
    a = np.ascontiguousarray(a, dtype=np.float32)
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    if (a < 0).any():
        raise ValueError(f"{name} contains negative values (min {float(a.min())})")
    return a


@dataclass(frozen=True)
class PETSinogram:
    """Prompt coincidences of one frame as a sinogram, with the optional delayed coincidences."""

    layout: SinogramLayout
    prompts: np.ndarray
    frame_duration_s: float
    frame_start_s: float = 0.0  # from the acquisition start
    delayed: np.ndarray | None = None  # non-TOF shape (view, plane, radial)
    placement: ScannerPlacement = field(default_factory=ScannerPlacement)
    info: AcquisitionInfo = field(default_factory=AcquisitionInfo)
    patient: PatientInfo = field(default_factory=PatientInfo)
    dose: DoseInfo = field(default_factory=DoseInfo)
    image_grid: ImageGrid | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "prompts", _check_counts("prompts sinogram", self.prompts, self.layout.shape))
        if self.delayed is not None:
            shape = self.layout.shape[:3]
            object.__setattr__(self, "delayed", _check_counts("delayed sinogram", self.delayed, shape))
        d = float(self.frame_duration_s)
        if not np.isfinite(d) or d <= 0:
            raise ValueError(f"frame_duration_s must be positive (s), got {self.frame_duration_s!r}")
        if not np.isfinite(float(self.frame_start_s)) or float(self.frame_start_s) < 0:
            raise ValueError(f"frame_start_s must be >= 0 (s), got {self.frame_start_s!r}")


@dataclass(frozen=True)
class ListModeEvents:
    """Prompt coincidence events: detector ids (``ring * crystals_per_ring + crystal``), TOF bin, time.

    ``tof_bin`` counts from the LOR midpoint towards ``detector_b`` as in :mod:`recon.data.pet_sinogram`
    (bin ``(n_tof - 1) / 2`` is the midpoint); ``time_s`` is from the acquisition start.
    """

    scanner_name: str
    detector_a: np.ndarray
    detector_b: np.ndarray
    time_s: np.ndarray
    acquisition_duration_s: float
    tof_bin: np.ndarray | None = None
    delayed: np.ndarray | None = None  # bool per event: a delayed (random) coincidence, not a prompt

    def __post_init__(self) -> None:
        n = np.asarray(self.detector_a).shape
        for name in ("detector_a", "detector_b", "time_s", "tof_bin", "delayed"):
            value = getattr(self, name)
            if value is not None and np.asarray(value).shape != n:
                raise ValueError(f"list-mode field {name} has shape {np.asarray(value).shape}, detector_a has {n}")
        for name in ("detector_a", "detector_b"):
            ids = np.asarray(getattr(self, name))
            if not np.issubdtype(ids.dtype, np.integer):
                raise ValueError(f"list-mode {name} must hold integer detector ids, got dtype {ids.dtype}")
        dur = float(self.acquisition_duration_s)
        if not np.isfinite(dur) or dur <= 0:
            raise ValueError(f"acquisition_duration_s must be positive (s), got {self.acquisition_duration_s!r}")
        t = np.asarray(self.time_s, np.float64)
        if t.size and not np.isfinite(t).all():
            raise ValueError(f"list-mode event times contain {int((~np.isfinite(t)).sum())} NaN or infinite values")
        if t.size and (t.min() < 0 or t.max() > dur):
            raise ValueError(f"list-mode event times must lie within the acquisition 0..{dur} s, "
                             f"found {float(t.min())}..{float(t.max())} s")

    @property
    def n_events(self) -> int:
        return int(np.asarray(self.detector_a).shape[0])


def _check_factors(name: str, array: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    if array is None:
        return None
    return _check_counts(name, array, shape)


@dataclass(frozen=True)
class SinogramCorrections:
    """Per-LOR correction terms of a sinogram, all non-TOF ``(view, plane, radial)`` float32.

    ``randoms``: expected random coincidences (counts in the frame, summed over TOF bins; a TOF
    model spreads them evenly over the bins). ``normalisation``: detection efficiency factors
    (dimensionless, multiplicative; 0 in gaps). ``attenuation_factors``: exp(-integral of mu) along
    each LOR at 511 keV (dimensionless, 0..1).
    """

    layout: SinogramLayout
    randoms: np.ndarray | None = None
    normalisation: np.ndarray | None = None
    attenuation_factors: np.ndarray | None = None

    def __post_init__(self) -> None:
        shape = self.layout.shape[:3]
        for name in ("randoms", "normalisation", "attenuation_factors"):
            object.__setattr__(self, name, _check_factors(f"{name} sinogram", getattr(self, name), shape))
        af = self.attenuation_factors
        if af is not None and af.size and float(af.max()) > 1.0 + 1e-5:
            raise ValueError(f"attenuation_factors sinogram holds values above 1 (max {float(af.max())}); "
                             "expected exp(-integral mu) in 0..1")

    @property
    def empty(self) -> bool:
        return self.randoms is None and self.normalisation is None and self.attenuation_factors is None


@dataclass(frozen=True)
class ListModeAcquisition:
    """List-mode events with the scanner that recorded them and the study metadata.

    ``time_blocks_s``: (n, 2) float64 start/stop (s from the acquisition start) of the blocks
    the source grouped events in (PETSIRD event time blocks), or None.
    """

    scanner: PETScanner
    events: ListModeEvents
    placement: ScannerPlacement = field(default_factory=ScannerPlacement)
    info: AcquisitionInfo = field(default_factory=AcquisitionInfo)
    patient: PatientInfo = field(default_factory=PatientInfo)
    dose: DoseInfo = field(default_factory=DoseInfo)
    time_blocks_s: np.ndarray | None = None

    def __post_init__(self) -> None:
        sc, ev = self.scanner, self.events
        if ev.scanner_name != sc.name:
            raise ValueError(f"list-mode events name scanner {ev.scanner_name!r}, the acquisition's scanner is {sc.name!r}")
        for name in ("detector_a", "detector_b"):
            ids = np.asarray(getattr(ev, name))
            if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= sc.n_crystals):
                raise ValueError(f"list-mode {name} ids out of range 0..{sc.n_crystals - 1} for scanner {sc.name!r}: "
                                 f"found {int(ids.min())}..{int(ids.max())}")
        if ev.tof_bin is not None and ev.n_events:
            t = np.asarray(ev.tof_bin)
            if not np.issubdtype(t.dtype, np.integer):
                raise ValueError(f"list-mode tof_bin must hold integers, got dtype {t.dtype}")
            if int(t.min()) < 0 or int(t.max()) >= sc.n_tof_bins:
                raise ValueError(f"list-mode TOF bins {int(t.min())}..{int(t.max())} do not match scanner {sc.name!r}, "
                                 f"which has {sc.n_tof_bins} TOF bin(s)")
        if self.time_blocks_s is not None:
            tb = np.asarray(self.time_blocks_s, np.float64)
            if tb.ndim != 2 or tb.shape[1] != 2 or not np.isfinite(tb).all() or (tb[:, 1] < tb[:, 0]).any():
                raise ValueError("time_blocks_s must be an (n, 2) array of finite start <= stop times (s)")
            object.__setattr__(self, "time_blocks_s", tb)
