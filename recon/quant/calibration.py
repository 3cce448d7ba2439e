"""The calibration chain, for any emission modality: reconstructed counts -> activity concentration (Bq/mL).

The reconstruction x holds the counts of each voxel acquired over a time t
(SPECT: counts per voxel per view duration, see :mod:`recon.spect.system_model`;
PET: counts per voxel per frame). The modality supplies the system sensitivity
S; everything else is the same. Step by step, each a named function that
:func:`calibrate` calls in this order:

1. count rate        R = x / t                                   (cps per voxel)
2. activity          A = R / S * 1e6                             (Bq per voxel; S in cps/MBq)
3. concentration     C_acq = A / V_voxel                         (Bq/mL, mean over the acquisition)
4. decay in scan     C_start = C_acq / [(1 - e^{-lambda T}) / (lambda T)]   (T: whole acquisition, s)
5. to reference      C_ref = C_start * e^{-lambda (t_ref - t_start)}

S in cps/MBq comes, for SPECT, from a calibration acquisition (a planar source
in air, or a reconstructed uniform cylinder of known activity:
:func:`sensitivity_from_planar`, :func:`sensitivity_from_reconstruction`);
for PET from the scanner's calibration factor F (Bq per cps, i.e. Bq/mL per
cps/mL) as S = 1e6 / F (:meth:`Calibration.for_pet`).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from recon.data.grid import Volume
from recon.quant.decay import HalfLife, acquisition_decay_factor, decay_factor

__all__ = [
    "Calibration",
    "SPECTCalibration",
    "activity_bq",
    "calibrate",
    "concentration_bq_per_ml",
    "correct_decay_during_acquisition",
    "count_rate",
    "decay_to_reference_time",
    "sensitivity_from_planar",
    "sensitivity_from_reconstruction",
]


def _positive(name: str, value: float) -> float:
    v = float(value)
    if not np.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return v


def count_rate(counts: Any, frame_duration_s: float) -> Any:
    """Step 1: counts acquired over ``frame_duration_s`` (s) -> counts per second."""
    return counts / _positive("frame_duration_s", frame_duration_s)


def activity_bq(rate_cps: Any, sensitivity_cps_per_mbq: float) -> Any:
    """Step 2: count rate (cps) -> activity (Bq) with system sensitivity (cps/MBq)."""
    return rate_cps / _positive("sensitivity_cps_per_mbq", sensitivity_cps_per_mbq) * 1e6


def concentration_bq_per_ml(activity: Any, voxel_volume_ml: float) -> Any:
    """Step 3: activity per voxel (Bq) -> concentration (Bq/mL)."""
    return activity / _positive("voxel_volume_ml", voxel_volume_ml)


def correct_decay_during_acquisition(value: Any, half_life: HalfLife, acquisition_duration_s: float) -> Any:
    """Step 4: mean over an acquisition of duration T -> value at the acquisition start."""
    if acquisition_duration_s < 0:
        raise ValueError(f"acquisition_duration_s must be >= 0, got {acquisition_duration_s}")
    return value / acquisition_decay_factor(half_life, acquisition_duration_s)


def decay_to_reference_time(value: Any, half_life: HalfLife, acquisition_start: datetime,
                            reference_time: datetime) -> Any:
    """Step 5: value at the acquisition start -> value at ``reference_time`` (e.g. injection)."""
    return value * decay_factor(half_life, acquisition_start, reference_time)


@dataclass(frozen=True)
class Calibration:
    """Everything the chain needs, for any modality. Without times, steps 4-5 are skipped (factor 1, recorded).

    ``sensitivity_cps_per_mbq``: system sensitivity S (cps/MBq); ``frame_duration_s``:
    the time t the reconstructed counts were acquired over (s); ``half_life``: s
    or a radionuclide name; ``acquisition_duration_s``: the whole acquisition T
    (s) for the decay during it; ``acquisition_start`` and ``reference_time``:
    the decay from the start to the reference (e.g. injection).
    """

    sensitivity_cps_per_mbq: float
    frame_duration_s: float
    half_life: HalfLife | None = None
    acquisition_duration_s: float = 0.0
    acquisition_start: datetime | None = None
    reference_time: datetime | None = None
    modality: str = ""

    def __post_init__(self) -> None:
        _positive("sensitivity_cps_per_mbq", self.sensitivity_cps_per_mbq)
        _positive("frame_duration_s", self.frame_duration_s)
        if not np.isfinite(self.acquisition_duration_s) or self.acquisition_duration_s < 0:
            raise ValueError(f"acquisition_duration_s must be >= 0, got {self.acquisition_duration_s}")
        if (self.acquisition_duration_s > 0 or self.reference_time is not None) and self.half_life is None:
            raise ValueError("decay correction needs a half-life (or radionuclide name)")
        if self.reference_time is not None and self.acquisition_start is None:
            raise ValueError("decay to a reference time needs the acquisition start time")

    @classmethod
    def for_spect(cls, sensitivity_cps_per_mbq: float, frame_duration_s: float, half_life: HalfLife | None = None,
                  acquisition_duration_s: float = 0.0, acquisition_start: datetime | None = None,
                  reference_time: datetime | None = None) -> "Calibration":
        """SPECT: S in cps/MBq (planar or cylinder calibration), t the time per view."""
        return cls(sensitivity_cps_per_mbq, frame_duration_s, half_life, acquisition_duration_s,
                   acquisition_start, reference_time, "SPECT")

    @classmethod
    def for_pet(cls, calibration_factor_bq_per_cps: float, frame_duration_s: float,
                half_life: HalfLife | None = None, acquisition_start: datetime | None = None,
                reference_time: datetime | None = None) -> "Calibration":
        """PET: the scanner calibration factor F (Bq per cps) as S = 1e6 / F; the frame is the acquisition."""
        factor = _positive("calibration_factor_bq_per_cps", calibration_factor_bq_per_cps)
        duration = frame_duration_s if half_life is not None else 0.0
        return cls(1e6 / factor, frame_duration_s, half_life, duration, acquisition_start, reference_time, "PET")


@dataclass(frozen=True)
class SPECTCalibration(Calibration):
    """The SPECT construction of :class:`Calibration` (same fields and order; ``modality`` is ``"SPECT"``)."""

    modality: str = "SPECT"


def calibrate(volume: Volume, cal: Calibration) -> Volume:
    """Apply the chain (steps 1-5 in order) to a reconstruction in counts; returns Bq/mL, every factor in metadata."""
    if volume.unit != "counts":
        raise ValueError(f"calibration expects a reconstruction in 'counts', got {volume.unit!r}")
    x = np.asarray(volume.to_host().data, dtype=np.float64)
    rate = count_rate(x, cal.frame_duration_s)
    activity = activity_bq(rate, cal.sensitivity_cps_per_mbq)
    c = concentration_bq_per_ml(activity, volume.grid.voxel_volume_ml)
    acq_factor = 1.0
    ref_factor = 1.0
    if cal.acquisition_duration_s > 0:
        c = correct_decay_during_acquisition(c, cal.half_life, cal.acquisition_duration_s)
        acq_factor = float(correct_decay_during_acquisition(1.0, cal.half_life, cal.acquisition_duration_s))
    if cal.reference_time is not None:
        c = decay_to_reference_time(c, cal.half_life, cal.acquisition_start, cal.reference_time)
        ref_factor = float(decay_to_reference_time(1.0, cal.half_life, cal.acquisition_start, cal.reference_time))
    meta = dict(volume.metadata)
    meta["calibration"] = {
        "modality": cal.modality,
        "sensitivity_cps_per_mbq": cal.sensitivity_cps_per_mbq,
        "frame_duration_s": cal.frame_duration_s,
        "voxel_volume_ml": volume.grid.voxel_volume_ml,
        "decay_during_acquisition_factor": acq_factor,
        "decay_to_reference_factor": ref_factor,
        "reference_time": None if cal.reference_time is None else cal.reference_time.isoformat(),
    }
    return Volume(np.asarray(c, dtype=np.float32), volume.grid, "Bq/mL", meta, volume.frame_of_reference_uid)


def sensitivity_from_planar(counts: float, duration_s: float, activity_mbq: float,
                            background_counts: float = 0.0, half_life: HalfLife | None = None) -> float:
    """System sensitivity (cps/MBq) from a planar acquisition of a source of known activity in air.

    ``activity_mbq`` is at the acquisition start; with ``half_life`` the decay
    during the acquisition is accounted for.
    """
    net = float(counts) - float(background_counts)
    if net <= 0:
        raise ValueError(f"net calibration counts must be positive, got {net}")
    a = _positive("activity_mbq", activity_mbq)
    if half_life is not None:
        a *= float(acquisition_decay_factor(half_life, _positive("duration_s", duration_s)))
    return net / _positive("duration_s", duration_s) / a


def sensitivity_from_reconstruction(volume: Volume, activity_mbq: float, frame_duration_s: float,
                                    mask: np.ndarray | None = None, half_life: HalfLife | None = None,
                                    acquisition_duration_s: float = 0.0) -> float:
    """System sensitivity (cps/MBq) from an attenuation-corrected reconstruction (counts) of a known source.

    Sums the reconstructed counts (inside ``mask`` if given; it must enclose the
    whole source, spill-out included) and divides by view duration and activity.
    ``activity_mbq`` is at the acquisition start; with ``half_life`` and the whole
    acquisition's duration, the mean activity during the scan is used, matching the
    decay correction that :func:`calibrate` applies to patient data.
    """
    if volume.unit != "counts":
        raise ValueError(f"sensitivity needs a reconstruction in 'counts', got {volume.unit!r}")
    x = np.asarray(volume.to_host().data, dtype=np.float64)
    total = float(x[mask].sum() if mask is not None else x.sum())
    activity = _positive("activity_mbq", activity_mbq)
    if acquisition_duration_s > 0:
        if half_life is None:
            raise ValueError("decay during the calibration scan needs a half-life")
        activity *= float(acquisition_decay_factor(half_life, acquisition_duration_s))
    return total / _positive("frame_duration_s", frame_duration_s) / activity
