"""Radioactive decay in closed form.

With lambda = ln 2 / T1/2 (1/s):

* decay over an interval dt:                    f = exp(-lambda dt)
* mean activity over an acquisition of length T, relative to its start
  (the "frame-averaged" factor):                f = (1 - exp(-lambda T)) / (lambda T)
* counts collected in [t0, t0 + T] from A(t0):  N = A(t0) (1 - exp(-lambda T)) / lambda
* effective ("average count rate") time inside the frame, where the
  instantaneous activity equals the frame mean:  t_ave = -ln(f) / lambda
  = (1/lambda) ln(lambda T / (1 - exp(-lambda T)))

All times are in seconds; ``half_life_s`` may also be given as a
:class:`~recon.data.radionuclides.Radionuclide` or a radionuclide name.
"""
from __future__ import annotations

import math
from datetime import datetime
from typing import Union

import numpy as np

from recon.data.radionuclides import Radionuclide, get_radionuclide

__all__ = [
    "HalfLife",
    "half_life_seconds",
    "decay_constant",
    "decay_factor",
    "decay_correction_factor",
    "acquisition_decay_factor",
    "average_count_rate_time",
    "decay_to_reference",
    "activity_at",
    "seconds_between",
]

HalfLife = Union[float, Radionuclide, str]


def half_life_seconds(half_life: HalfLife) -> float:
    """A half-life given as seconds, a Radionuclide or a radionuclide name, in s."""
    if isinstance(half_life, Radionuclide):
        return half_life.half_life_s
    if isinstance(half_life, str):
        return get_radionuclide(half_life).half_life_s
    t = float(half_life)
    if not (t > 0 and math.isfinite(t)):
        raise ValueError(f"half-life must be a positive number of seconds, got {half_life!r}")
    return t


def decay_constant(half_life: HalfLife) -> float:
    """lambda = ln 2 / T1/2 in 1/s."""
    return math.log(2.0) / half_life_seconds(half_life)


def seconds_between(start: datetime, end: datetime) -> float:
    """``end - start`` in seconds (negative when ``end`` is earlier)."""
    return (end - start).total_seconds()


def _dt_s(dt: float | datetime, end: datetime | None) -> float:
    if isinstance(dt, datetime):
        if end is None:
            raise TypeError("give both start and end datetimes, or a duration in seconds")
        return seconds_between(dt, end)
    return float(dt)


def decay_factor(half_life: HalfLife, dt_s: float | datetime, end: datetime | None = None) -> float:
    """Fraction of activity left after ``dt_s`` seconds: exp(-lambda dt).

    ``dt_s`` may be negative (activity at an earlier time is larger). With
    ``end`` given, ``dt_s`` is a start datetime and the interval is end - start.
    """
    return math.exp(-decay_constant(half_life) * _dt_s(dt_s, end))


def decay_correction_factor(half_life: HalfLife, dt_s: float | datetime, end: datetime | None = None) -> float:
    """exp(+lambda dt): multiply a value measured ``dt_s`` after the reference time to correct it back."""
    return 1.0 / decay_factor(half_life, dt_s, end)


def acquisition_decay_factor(half_life: HalfLife, duration_s: float | np.ndarray) -> float | np.ndarray:
    """Mean activity during an acquisition of ``duration_s`` relative to the activity at its start.

    (1 - exp(-lambda T)) / (lambda T); equals 1 for T = 0 (computed stably for
    small lambda T with expm1). Accepts an array of durations.
    """
    lam = decay_constant(half_life)
    t = np.asarray(duration_s, dtype=np.float64)
    if np.any(t < 0) or not np.all(np.isfinite(t)):
        raise ValueError(f"acquisition duration must be finite and >= 0 s, got {duration_s!r}")
    x = lam * t
    with np.errstate(invalid="ignore", divide="ignore"):
        f = np.where(x > 0, -np.expm1(-x) / np.where(x > 0, x, 1.0), 1.0)
    return float(f) if f.ndim == 0 else f


def average_count_rate_time(half_life: HalfLife, duration_s: float) -> float:
    """Time after frame start (s) at which the activity equals its frame mean.

    t_ave = (1/lambda) ln(lambda T / (1 - exp(-lambda T))); tends to T/2 for
    lambda T -> 0. This is the DICOM/QIBA "average count rate time" used to
    back-compute the decay-correction reference time.
    """
    f = acquisition_decay_factor(half_life, duration_s)
    return -math.log(float(f)) / decay_constant(half_life)


def activity_at(
    activity_bq: float, measured_at: datetime, at: datetime, half_life: HalfLife
) -> float:
    """Activity (Bq) at ``at`` of a source that held ``activity_bq`` at ``measured_at``."""
    return activity_bq * decay_factor(half_life, measured_at, at)


def decay_to_reference(
    value: float | np.ndarray,
    half_life: HalfLife,
    value_time: datetime | float,
    reference_time: datetime | float,
    *,
    acquisition_duration_s: float = 0.0,
) -> float | np.ndarray:
    """Decay-correct ``value`` measured at ``value_time`` to ``reference_time``.

    With ``acquisition_duration_s`` > 0, ``value`` is the mean over an
    acquisition starting at ``value_time`` (counts / duration), and the result
    is the instantaneous value at ``reference_time``:

        value_ref = value / [(1 - exp(-lambda T)) / (lambda T)] * exp(lambda (t_start - t_ref))

    Times are datetimes or seconds on a common clock.
    """
    if isinstance(value_time, datetime) != isinstance(reference_time, datetime):
        raise TypeError("value_time and reference_time must both be datetimes or both be seconds")
    if isinstance(value_time, datetime):
        dt = seconds_between(reference_time, value_time)  # type: ignore[arg-type]
    else:
        dt = float(value_time) - float(reference_time)  # type: ignore[arg-type]
    f_acq = acquisition_decay_factor(half_life, acquisition_duration_s)
    factor = math.exp(decay_constant(half_life) * dt) / float(f_acq)
    return value * factor
