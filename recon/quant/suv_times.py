"""Times for SUV decay correction: the injection time and the decay-correction reference time.

Reference time for DecayCorrection START (``reference_time="qiba"``, the
default): DecayCorrectionDateTime (0018,9701); else GE private scan_datetime
(0009,100D); else SeriesDate/SeriesTime when not after the earliest
acquisition time; else back-computed per slice as t_acq + T_ave -
FrameReferenceTime with T_ave the average-count-rate time, when every slice's
FrameReferenceTime and ActualFrameDuration are > 0 (QIBA); else the earliest
acquisition time. ``"backcompute"`` uses the back-computed time only (the
SUV manual's option B); ``"series"`` uses SeriesDate/Time only.

Pure functions of a :class:`~recon.data.series_header.SeriesHeader`; times
are naive datetimes, durations in s.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from recon.data.series_header import SeriesHeader, place_time_only
from recon.quant.body_size import SUVError
from recon.quant.decay import average_count_rate_time

logger = logging.getLogger(__name__)

__all__ = ["backcomputed_reference", "injection_datetime_for", "need_half_life", "reference_datetime"]

def need_half_life(h: SeriesHeader, half_life_s: float | None, why: str) -> float:
    if half_life_s is not None:
        return float(half_life_s)
    if h.half_life_s is None:
        raise SUVError(
            f"{why} needs the half-life: RadionuclideHalfLife (0018,1075) is missing and the "
            "RadionuclideCodeSequence (0054,0300) does not name a known radionuclide"
        )
    return h.half_life_s


def injection_datetime_for(h: SeriesHeader, reference: datetime | None, details: dict[str, Any]) -> datetime:
    if h.injection_datetime is not None:
        return h.injection_datetime
    if h.injection_time_only is not None:
        if h.series_date is None:
            raise SUVError(
                "RadiopharmaceuticalStartTime (0018,1072) has no date: SeriesDate (0008,0021) is needed "
                "(RadiopharmaceuticalStartDateTime (0018,1078) is missing)"
            )
        inj, crossed = place_time_only(h.series_date, h.injection_time_only, reference)
        details["injection_source"] = "RadiopharmaceuticalStartTime (0018,1072) on SeriesDate (0008,0021)"
        if crossed:
            details["midnight_crossing"] = True
            logger.info("injection time %s is after the scan: taken as the previous day (midnight crossing)", inj.time())
        return inj
    raise SUVError(
        "injection time is missing: neither RadiopharmaceuticalStartDateTime (0018,1078) nor "
        "RadiopharmaceuticalStartTime (0018,1072) is in RadiopharmaceuticalInformationSequence (0054,0016)"
    )


def backcomputed_reference(h: SeriesHeader, half_life_s: float) -> datetime:
    refs: list[datetime] = []
    for i, (a, t, fr) in enumerate(zip(h.acquisition_datetimes, h.frame_durations_s, h.frame_reference_times_s)):
        if a is None or t is None or fr is None:
            missing = [n for n, v in (("AcquisitionDate/Time (0008,0022/0032)", a),
                                      ("ActualFrameDuration (0018,1242)", t),
                                      ("FrameReferenceTime (0054,1300)", fr)) if v is None]
            raise SUVError(f"cannot back-compute the decay reference time: slice {i} lacks {', '.join(missing)}")
        refs.append(a + timedelta(seconds=average_count_rate_time(half_life_s, t) - fr))
    base = min(refs)
    offsets = np.array([(r - base).total_seconds() for r in refs])
    if offsets.max() > 1.0:
        logger.warning("back-computed reference times differ by up to %.1f s between slices; using the median",
                       offsets.max())
    return base + timedelta(seconds=float(np.median(offsets)))


def check_backcompute_valid(h: SeriesHeader) -> None:
    """QIBA back-computes the scan time only when every slice's FrameReferenceTime (0054,1300) and
    ActualFrameDuration (0018,1242) are valid (> 0); SUVError naming the slice otherwise."""
    for i, (t, fr) in enumerate(zip(h.frame_durations_s, h.frame_reference_times_s)):
        if t is not None and fr is not None and not (t > 0 and fr > 0):
            raise SUVError(f"slice {i}: FrameReferenceTime (0054,1300) {fr * 1000:g} ms and ActualFrameDuration "
                           f"(0018,1242) {t * 1000:g} ms must both be > 0 to back-compute the scan time")


def reference_datetime(h: SeriesHeader, method: str, half_life_s: float, details: dict[str, Any]) -> datetime:
    """The time the image values were decay-corrected to (DecayCorrection START)."""
    acq = [a for a in h.acquisition_datetimes if a is not None]
    earliest = min(acq) if acq else None
    if method == "series":
        if h.series_datetime is None:
            raise SUVError("reference_time='series' needs SeriesDate (0008,0021) and SeriesTime (0008,0031)")
        details["reference_source"] = "SeriesDate/SeriesTime (0008,0021/0031)"
        return h.series_datetime
    if method == "backcompute":
        details["reference_source"] = "back-computed: AcquisitionTime + T_ave - FrameReferenceTime"
        return backcomputed_reference(h, half_life_s)
    if method != "qiba":
        raise ValueError(f"reference_time must be 'qiba', 'backcompute' or 'series', got {method!r}")
    if h.decay_correction_datetime is not None:
        details["reference_source"] = "DecayCorrectionDateTime (0018,9701)"
        return h.decay_correction_datetime
    if h.ge_scan_datetime is not None:
        details["reference_source"] = "GE private scan_datetime (0009,100D)"
        return h.ge_scan_datetime
    if h.series_datetime is not None and (earliest is None or h.series_datetime <= earliest + timedelta(seconds=1)):
        details["reference_source"] = "SeriesDate/SeriesTime (0008,0021/0031)"
        return h.series_datetime
    try:
        check_backcompute_valid(h)
        ref = backcomputed_reference(h, half_life_s)
        details["reference_source"] = "back-computed: AcquisitionTime + T_ave - FrameReferenceTime"
        if h.series_datetime is not None:
            logger.info("SeriesTime is after AcquisitionTime (post-processed series?): reference time back-computed")
        return ref
    except SUVError:
        if earliest is None:
            raise SUVError(
                "DecayCorrection START: no reference time; need SeriesDate/SeriesTime (0008,0021/0031) or "
                "AcquisitionDate/AcquisitionTime (0008,0022/0032)"
            ) from None
        details["reference_source"] = "earliest AcquisitionDate/AcquisitionTime (0008,0022/0032)"
        return earliest
