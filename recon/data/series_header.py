"""The quantitative header of an image series (PET or NM): what SUV and decay corrections need.

A plain, frozen record, filled by a reader (DICOM:
:func:`recon.io.dicom.read_series_header`) and consumed by pure functions
(:func:`recon.quant.suv.suv_factors`). Series-level values are single
fields; per-slice values are tuples ordered like the slices the reader
gave (one entry for a multi-frame file). Missing values are ``None``;
``sources`` says which tag each time/dose/half-life came from and ``notes``
records unit heuristics that were applied.

Units: weight kg, height m, activity Bq, half-life and durations s, voxel
volume mL. ``units`` is DICOM Units (0054,1001) (e.g. ``"BQML"``),
``decay_correction`` DecayCorrection (0054,1102) (``"START"``, ``"ADMIN"``,
``"NONE"``), ``suv_type`` SUVType (0054,1006).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

__all__ = ["CLOCK_TOLERANCE_S", "MIDNIGHT_TOLERANCE_S", "SeriesHeader", "place_time_only"]

MIDNIGHT_TOLERANCE_S = 3600.0
"""A time-only injection (or acquisition) more than this after the scan (s) is taken as the previous day."""

CLOCK_TOLERANCE_S = 60.0
"""An injection with a full date-time may follow the decay reference by at most this much (s): clocks differ."""


def place_time_only(day: date, clock: time, reference: datetime | None) -> tuple[datetime, bool]:
    """A time-only value (e.g. RadiopharmaceuticalStartTime) on ``day``; when that lands more than
    :data:`MIDNIGHT_TOLERANCE_S` after ``reference`` (the scan), the previous day (midnight crossing).
    Returns the datetime and whether it was moved."""
    placed = datetime.combine(day, clock)
    if reference is not None and (placed - reference).total_seconds() > MIDNIGHT_TOLERANCE_S:
        return placed - timedelta(days=1), True
    return placed, False


@dataclass(frozen=True)
class SeriesHeader:
    """Quantitative header of an image series: patient, dose, times, units and vendor scale factors."""

    units: str | None
    decay_correction: str | None
    suv_type: str | None
    manufacturer: str | None
    weight_kg: float | None
    height_m: float | None
    sex: str | None
    dose_bq: float | None
    injection_datetime: datetime | None
    injection_time_only: time | None
    half_life_s: float | None
    series_datetime: datetime | None
    series_date: date | None
    decay_correction_datetime: datetime | None
    ge_scan_datetime: datetime | None
    corrected_image: tuple[str, ...]
    dose_calibration_factor: float | None
    voxel_volume_ml: float | None
    acquisition_datetimes: tuple[datetime | None, ...]
    frame_durations_s: tuple[float | None, ...]
    frame_reference_times_s: tuple[float | None, ...]
    philips_suv_factors: tuple[float | None, ...]
    philips_activity_factors: tuple[float | None, ...]
    sources: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def n_slices(self) -> int:
        """Number of per-slice entries."""
        return len(self.acquisition_datetimes)

    @property
    def injection(self) -> datetime | None:
        """Injection datetime: the full value, else the time-only value on the series date (no midnight check)."""
        if self.injection_datetime is not None:
            return self.injection_datetime
        if self.injection_time_only is not None and self.series_date is not None:
            return datetime.combine(self.series_date, self.injection_time_only)
        return None
