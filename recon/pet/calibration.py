"""The PET side of quantification: the scanner calibration factor and the chain for one frame.

A reconstruction x (counts over the frame, per voxel) becomes Bq/mL through the shared chain
(:mod:`recon.quant.calibration`): ``c = x / T * F / V_voxel``, corrected for decay during the
frame and optionally to a reference time. F (Bq per cps) is the scanner calibration factor,
measured as clinics do: a uniform cylinder of known concentration is scanned and reconstructed
with the same corrections, and F is chosen so that its mean comes out right. F carries the
positron fraction and every efficiency the model leaves out.
"""
from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np

from recon.data.grid import Volume
from recon.data.pet import PETSinogram
from recon.quant.calibration import Calibration
from recon.quant.decay import HalfLife, acquisition_decay_factor


def frame_half_life(sino: PETSinogram) -> HalfLife | None:
    """Half-life of the frame's radionuclide: the dose record's (s), else its name, else None."""
    if sino.dose.half_life_s is not None:
        return sino.dose.half_life_s
    return sino.dose.radionuclide or None


def frame_start(sino: PETSinogram) -> datetime | None:
    """Start of the frame: acquisition start + frame start offset, or None when the start is unknown."""
    if sino.info.start_time is None:
        return None
    return sino.info.start_time + timedelta(seconds=float(sino.frame_start_s))


def pet_calibration(sino: PETSinogram, calibration_factor_bq_per_cps: float,
                    reference_time: datetime | None = None, half_life: HalfLife | None = None) -> Calibration:
    """The chain for one frame: Bq/mL at the frame start (decay over the frame corrected when the
    half-life is known), or at ``reference_time`` (e.g. the injection) when given."""
    hl = half_life if half_life is not None else frame_half_life(sino)
    start = frame_start(sino)
    if reference_time is not None and (start is None or hl is None):
        raise ValueError("decay correction to a reference time needs the frame's start time and the "
                         "radionuclide's half-life; the input gives " + ("no start time" if start is None else "no half-life"))
    return Calibration.for_pet(calibration_factor_bq_per_cps, sino.frame_duration_s, hl, start, reference_time)


def calibration_factor_from_cylinder(volume: Volume, mask: np.ndarray, true_bq_ml: float, frame_duration_s: float,
                                     half_life: HalfLife | None = None) -> float:
    """F (Bq per cps) from a reconstructed uniform cylinder of known concentration ``true_bq_ml``
    at the frame start: F = c_true * V_voxel * D(T) / (mean(x in mask) / T), D(T) the mean decay
    over the frame (1 without a half-life)."""
    if volume.unit != "counts":
        raise ValueError(f"the cylinder reconstruction must be in 'counts', got {volume.unit!r}")
    m = np.asarray(mask, bool)
    if m.shape != tuple(volume.grid.shape) or not m.any():
        raise ValueError("the cylinder mask must be a non-empty boolean array on the volume's grid")
    c = float(true_bq_ml)
    t = float(frame_duration_s)
    if not (np.isfinite(c) and c > 0 and np.isfinite(t) and t > 0):
        raise ValueError("true_bq_ml and frame_duration_s must be positive")
    mean_counts = float(np.asarray(volume.to_host().data, np.float64)[m].mean())
    if mean_counts <= 0:
        raise ValueError("the cylinder reconstruction has no counts inside the mask")
    decay = 1.0 if half_life is None else float(acquisition_decay_factor(half_life, t))
    return c * volume.grid.voxel_volume_ml * decay / (mean_counts / t)
