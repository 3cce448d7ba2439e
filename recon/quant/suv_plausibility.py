"""Plausibility of the numbers an SUV rests on: values possible but implausible warn (logging, thresholds in
the message); an uptake time so long that the decay correction is meaningless is refused.

Thresholds (docs/bad-input.md): weight ``WEIGHT_KG``, height ``HEIGHT_M``, injected activity ``DOSE_BQ``
(a dose in Bq read as MBq is 1e6 too high, one in MBq read as Bq 1e6 too low), uptake time (injection to the
decay reference) warned above ``WARN_UPTAKE_HALF_LIVES`` half-lives and refused above
``MAX_UPTAKE_HALF_LIVES`` (decay correction > 2^10 = 1024: a date typo).
"""
from __future__ import annotations

import logging

from recon.data.series_header import SeriesHeader
from recon.quant.body_size import SUVError

logger = logging.getLogger(__name__)

WEIGHT_KG = (2.0, 250.0)
HEIGHT_M = (0.4, 2.3)
DOSE_BQ = (1.0e6, 2.0e10)  # 1 MBq .. 20 GBq
WARN_UPTAKE_HALF_LIVES = 5.0
MAX_UPTAKE_HALF_LIVES = 10.0


def _outside(value: float | None, bounds: tuple[float, float]) -> bool:
    return value is not None and not bounds[0] <= value <= bounds[1]


def warn_implausible_patient(h: SeriesHeader) -> None:
    """Warn when weight, height or injected activity lie outside the plausible ranges."""
    if _outside(h.weight_kg, WEIGHT_KG):
        logger.warning("patient weight %g kg is implausible (outside %g-%g kg): check PatientWeight (0010,1030) "
                       "/ --weight-kg (grams or pounds?)", h.weight_kg, *WEIGHT_KG)
    if _outside(h.height_m, HEIGHT_M):
        logger.warning("patient height %g m is implausible (outside %g-%g m): check PatientSize (0010,1020) "
                       "/ --height-m (cm given as m?)", h.height_m, *HEIGHT_M)
    if _outside(h.dose_bq, DOSE_BQ):
        logger.warning("injected activity %.4g MBq is implausible (outside %g-%g MBq): check RadionuclideTotalDose "
                       "(0018,1074) / --dose-mbq (Bq given as MBq, or MBq as Bq?)", h.dose_bq / 1e6,
                       DOSE_BQ[0] / 1e6, DOSE_BQ[1] / 1e6)


def check_uptake_time(uptake_s: float, half_life_s: float) -> None:
    """Refuse an uptake time (s) above MAX_UPTAKE_HALF_LIVES half-lives; warn above WARN_UPTAKE_HALF_LIVES."""
    n = uptake_s / half_life_s
    hours = uptake_s / 3600.0
    if n > MAX_UPTAKE_HALF_LIVES:
        raise SUVError(f"uptake time {hours:.1f} h (injection to scan) is {n:.1f} half-lives (over "
                       f"{MAX_UPTAKE_HALF_LIVES:g}: decay correction x{2.0 ** min(n, 1000.0):.3g}): implausible, check the injection "
                       "date and time (RadiopharmaceuticalStartDateTime (0018,1078)) and the series date")
    if n > WARN_UPTAKE_HALF_LIVES:
        logger.warning("uptake time %.1f h is %.1f half-lives (over %g: decay correction x%.3g): implausible, check "
                       "the injection date and time", hours, n, WARN_UPTAKE_HALF_LIVES, 2 ** n)
