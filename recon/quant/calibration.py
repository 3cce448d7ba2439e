"""SPECT calibration chain: reconstructed counts -> activity concentration (Bq/mL).

The reconstruction x is in counts per voxel per view duration (see
:mod:`recon.spect.system_model`). Step by step, each a named function:

1. count rate        R = x / t_view                              (cps per voxel)
2. activity          A = R / S * 1e6                             (Bq per voxel; S in cps/MBq)
3. concentration     C_acq = A / V_voxel                         (Bq/mL, mean over the acquisition)
4. decay in scan     C_start = C_acq / [(1 - e^{-lambda T}) / (lambda T)]   (T: whole acquisition, s)
5. to reference      C_ref = C_start * e^{-lambda (t_ref - t_start)}

System sensitivity S (cps/MBq) comes from a calibration acquisition: a planar
source in air, or a reconstructed uniform cylinder of known activity (all its
reconstructed counts / t_view / activity).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from recon.data.grid import Volume
from recon.quant.decay import HalfLife, acquisition_decay_factor, decay_factor


def _positive(name: str, value: float) -> float:
    v = float(value)
    if not np.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return v


def count_rate(counts: Any, frame_duration_s: float) -> Any:
    """Step 1: counts per view -> counts per second."""
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
class SPECTCalibration:
    """Everything the chain needs. Without times, steps 4-5 are skipped (factor 1, recorded)."""

    sensitivity_cps_per_mbq: float
    frame_duration_s: float
    half_life: HalfLife | None = None
    acquisition_duration_s: float = 0.0
    acquisition_start: datetime | None = None
    reference_time: datetime | None = None

    def __post_init__(self) -> None:
        _positive("sensitivity_cps_per_mbq", self.sensitivity_cps_per_mbq)
        _positive("frame_duration_s", self.frame_duration_s)
        if (self.acquisition_duration_s > 0 or self.reference_time is not None) and self.half_life is None:
            raise ValueError("decay correction needs a half-life (or radionuclide name)")
        if self.reference_time is not None and self.acquisition_start is None:
            raise ValueError("decay to a reference time needs the acquisition start time")


def calibrate(volume: Volume, cal: SPECTCalibration) -> Volume:
    """Apply the chain to a reconstruction in counts; returns Bq/mL with every factor in metadata."""
    if volume.unit != "counts":
        raise ValueError(f"calibration expects a reconstruction in 'counts', got {volume.unit!r}")
    x = np.asarray(volume.to_host().data, dtype=np.float64)
    c = concentration_bq_per_ml(activity_bq(count_rate(x, cal.frame_duration_s), cal.sensitivity_cps_per_mbq),
                                volume.grid.voxel_volume_ml)
    acq_factor = 1.0
    ref_factor = 1.0
    if cal.acquisition_duration_s > 0:
        acq_factor = 1.0 / float(acquisition_decay_factor(cal.half_life, cal.acquisition_duration_s))
    if cal.reference_time is not None:
        ref_factor = decay_factor(cal.half_life, cal.acquisition_start, cal.reference_time)
    c = c * acq_factor * ref_factor
    meta = dict(volume.metadata)
    meta["calibration"] = {
        "sensitivity_cps_per_mbq": cal.sensitivity_cps_per_mbq,
        "frame_duration_s": cal.frame_duration_s,
        "voxel_volume_ml": volume.grid.voxel_volume_ml,
        "decay_during_acquisition_factor": acq_factor,
        "decay_to_reference_factor": ref_factor,
        "reference_time": None if cal.reference_time is None else cal.reference_time.isoformat(),
    }
    return Volume(c.astype(np.float32), volume.grid, "Bq/mL", meta)


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
