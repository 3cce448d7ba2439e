"""The SPECT side of quantification: a calibration chain built from an acquisition's typed metadata.

The chain itself (counts -> Bq/mL, decay) is modality-neutral
(:mod:`recon.quant.calibration`); SPECT supplies the system sensitivity
(cps/MBq), the time per view, the whole acquisition's duration (views per
detector x time per view) and the half-life of the acquisition's radionuclide.
"""
from __future__ import annotations

from datetime import datetime

from recon.data.series_header import SeriesHeader
from recon.data.spect import SPECTAcquisition
from recon.quant.calibration import Calibration
from recon.quant.decay import HalfLife, half_life_seconds
from recon.quant.suv import study_header

_UNKNOWN = ("", "unknown")


def acquisition_half_life(acq: SPECTAcquisition) -> HalfLife | None:
    """Half-life of the study's radionuclide: the dose record's (s), else the radionuclide's name, else None."""
    if acq.dose.half_life_s is not None:
        return acq.dose.half_life_s
    if acq.radionuclide not in _UNKNOWN:
        return acq.radionuclide
    return None


def spect_calibration(acq: SPECTAcquisition, sensitivity_cps_per_mbq: float,
                      reference_time: datetime | None = None) -> Calibration:
    """The calibration chain for ``acq``: Bq/mL decay-corrected to the acquisition start, or to
    ``reference_time`` (e.g. the administration) when given.

    Decay during the acquisition is corrected when the half-life is known. Raises
    ValueError when ``reference_time`` is given but the acquisition start or the
    half-life is unknown.
    """
    half_life = acquisition_half_life(acq)
    start = acq.info.start_time
    if reference_time is not None:
        if start is None:
            raise ValueError("decay correction to a reference time needs the acquisition start time, "
                             "which the input does not give")
        if half_life is None:
            raise ValueError("decay correction to a reference time needs the radionuclide's half-life, "
                             "which the input does not give")
    duration = acq.acquisition_duration_s if half_life is not None else 0.0
    return Calibration.for_spect(sensitivity_cps_per_mbq, acq.frame_duration_s, half_life, duration, start,
                                 reference_time)


def decay_reference_time(acq: SPECTAcquisition, cal: Calibration) -> datetime | None:
    """The time the calibrated values refer to: ``cal.reference_time``, else the acquisition start
    when decay during the acquisition was corrected, else None (values are the mean over the scan)."""
    if cal.reference_time is not None:
        return cal.reference_time
    if cal.acquisition_duration_s > 0:
        return acq.info.start_time
    return None


def suv_header(acq: SPECTAcquisition, cal: Calibration) -> tuple[SeriesHeader | None, str]:
    """The SUV header of the volume that ``cal`` calibrates, from the acquisition's typed metadata, or
    ``(None, reason)`` when the input lacks what SUV needs (weight, injected activity and time, the
    decay reference time). The half-life is the calibration's, so decay is handled once, one way."""
    missing = [what for what, value in (("patient weight", acq.patient.weight_kg),
                                        ("injected activity", acq.dose.injected_activity_bq),
                                        ("injection time", acq.dose.injection_time)) if value is None]
    reference = decay_reference_time(acq, cal)
    if reference is None:
        missing.append("acquisition start time" if cal.half_life is not None else "radionuclide half-life")
    if missing:
        return None, "the input does not give the " + ", ".join(missing)
    half_life = None if cal.half_life is None else half_life_seconds(cal.half_life)
    return study_header(acq.patient, acq.dose, reference, half_life_s=half_life), ""
