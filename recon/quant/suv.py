"""Standardised uptake values from PET (or quantitative SPECT) DICOM headers.

SUV = C / (D / N), with C the activity concentration (Bq/mL), D the injected
activity (Bq) decayed to the time the image values refer to, and N the body
normaliser: body weight (g) for SUVbw, lean body mass (g) for SUVlbm, ideal
body weight (g) for SUVibw, body surface area (cm^2) for SUVbsa (then the unit
is cm^2/mL, DICOM "CM2ML"; the others are g/mL, "GML").

DICOM conventions handled (DICOM PS3.3 C.8.9.1 PET Series module, QIBA FDG-PET
profile, and the SUV manual of Vacha et al. shipped with the reference DROs):

* Rescale slope/intercept per slice are applied before anything else (by the
  reader; :func:`suv_factors` returns per-slice factors for rescaled values).
* Units (0054,1001): ``BQML``; ``CNTS`` with the Philips private Activity
  Concentration Scale Factor (7053,1009) or SUV Scale Factor (7053,1000), else
  converted to CPS by ActualFrameDuration (0018,1242); ``CPS`` with "DCAL" in
  CorrectedImage (0028,0051) or a DoseCalibrationFactor (0054,1322), divided by
  the voxel volume; ``GML`` (already an SUV of SUVType (0054,1006), BW when
  empty); ``CM2ML`` (SUVbsa). Anything else (PROPCNTS, PROPCPS, 1CM, ...) is
  refused.
* DecayCorrection (0054,1102): ``ADMIN`` (dose used as is), ``START`` (dose
  decayed to the decay-correction reference time), ``NONE`` (each slice is
  corrected from its own acquisition with the frame-averaged factor
  lambda T / (1 - exp(-lambda T)) and exp(lambda (t_acq - t_adm))).
* Reference time for START (``reference_time="qiba"``, the default):
  DecayCorrectionDateTime (0018,9701); else GE private scan_datetime
  (0009,100D); else SeriesDate/SeriesTime when not after the earliest
  acquisition time; else back-computed per slice as
  t_acq + T_ave - FrameReferenceTime with T_ave the average-count-rate time;
  else the earliest acquisition time. ``"backcompute"`` uses the back-computed
  time only (the manual's option B); ``"series"`` uses SeriesDate/Time only.
* Injection time: RadiopharmaceuticalStartDateTime (0018,1078) (refused when
  more than a minute after the decay reference; an uptake time over 10
  half-lives is refused, over 5 warned: :mod:`recon.quant.suv_plausibility`); else
  RadiopharmaceuticalStartTime (0018,1072) on SeriesDate (then an injection
  later than the scan by more than an hour is taken as the previous day:
  midnight crossing) (:mod:`recon.quant.suv_times`).
* Dose, weight, height and half-life as the header gives them; how a DICOM
  reader fills them (units heuristics, vendor private tags) is described in
  :mod:`recon.io.dicom.series_header`. Body-size normalisers:
  :mod:`recon.quant.body_size`.

When the header cannot support the number asked for, an :class:`SUVError`
names the missing or inconsistent tag. Everything here is a pure function of
a :class:`~recon.data.series_header.SeriesHeader`; nothing reads files.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal, Sequence

import numpy as np

from recon.data.grid import Volume
from recon.data.radionuclides import get_radionuclide
from recon.data.series_header import CLOCK_TOLERANCE_S, MIDNIGHT_TOLERANCE_S, SeriesHeader
from recon.data.study import DoseInfo, PatientInfo
from recon.quant.body_size import SUV_KINDS, SUVError, body_normaliser, canonical_kind
from recon.quant.decay import acquisition_decay_factor, decay_constant
from recon.quant.suv_plausibility import check_uptake_time, warn_implausible_patient
from recon.quant.suv_times import injection_datetime_for, need_half_life, reference_datetime

logger = logging.getLogger(__name__)

__all__ = ["SUVError", "SUV_KINDS", "SUVConversion", "study_header", "suv_factors", "suv_volume"]

# DICOM SUVType (0054,1006) defined terms -> our kinds
_SUVTYPE_TO_KIND: dict[str, str] = {
    "BW": "bw", "LBM": "lbm_morgan", "LBMJAMES128": "lbm_james", "LBMJANMA": "lbm_janma",
    "BSA": "bsa", "IBW": "ibw",
}


@dataclass(frozen=True)
class SUVConversion:
    """Per-slice factors: SUV = (rescaled stored value) x ``factors[slice]``.

    ``unit`` is ``"g/mL"`` or ``"cm2/mL"``; ``details`` is a JSON-friendly
    record of the inputs used (weight, dose, times, half-life, their tags).
    """

    kind: str
    factors: np.ndarray
    unit: str
    details: dict[str, Any]

    def apply(self, values: np.ndarray, slice_axis: int = 0) -> np.ndarray:
        """Multiply ``values`` (stored values after rescale) by the factor of each slice along ``slice_axis``."""
        v = np.asarray(values)
        if v.shape[slice_axis] != self.factors.shape[0]:
            raise ValueError(
                f"values have {v.shape[slice_axis]} slices along axis {slice_axis}, factors {self.factors.shape[0]}"
            )
        shape = [1] * v.ndim
        shape[slice_axis] = -1
        return (v * self.factors.reshape(shape)).astype(np.float32)


def suv_factors(
    header: SeriesHeader,
    kind: str = "bw",
    *,
    reference_time: Literal["qiba", "backcompute", "series"] = "qiba",
    half_life_s: float | None = None,
    weight_kg: float | None = None,
    height_m: float | None = None,
    sex: str | None = None,
    dose_bq: float | None = None,
    injection_datetime: datetime | None = None,
) -> SUVConversion:
    """Per-slice factors turning rescaled stored values into SUV of ``kind``.

    ``header`` is the series' :class:`SeriesHeader`.
    Keyword values override (or supply) the header's; ``half_life_s`` given
    here wins over everything. Raises :class:`SUVError` naming the tag when
    the header cannot support the number.
    """
    if not isinstance(header, SeriesHeader):
        raise TypeError(f"suv_factors needs a SeriesHeader (read one with recon.io.dicom.read_series_header), "
                        f"got {type(header).__name__}")
    h = header
    k = canonical_kind(kind)
    overrides = {
        k2: v for k2, v in (("weight_kg", weight_kg), ("height_m", height_m), ("sex", sex), ("dose_bq", dose_bq),
                            ("injection_datetime", injection_datetime)) if v is not None
    }
    if overrides:
        h = replace(h, **overrides)
    n = h.n_slices
    details: dict[str, Any] = {"kind": k, "units": h.units, "decay_correction": h.decay_correction,
                               "notes": list(h.notes), "sources": dict(h.sources)}
    if overrides:
        details["overrides"] = sorted(overrides)
    unit = "cm2/mL" if k == "bsa" else "g/mL"

    if h.units is None:
        raise SUVError("Units (0054,1001) is missing: the meaning of the pixel values is unknown")
    units = h.units

    # ---- already normalised images: convert between normalisations only
    if units in ("GML", "CM2ML"):
        stored_kind = "bsa" if units == "CM2ML" else _SUVTYPE_TO_KIND.get(h.suv_type or "BW")
        if stored_kind is None:
            raise SUVError(f"SUVType (0054,1006) = {h.suv_type!r} is not a DICOM SUV type {tuple(_SUVTYPE_TO_KIND)}")
        if units == "CM2ML" and h.suv_type not in (None, "BSA"):
            raise SUVError(f"Units (0054,1001) = CM2ML but SUVType (0054,1006) = {h.suv_type!r}; expected BSA")
        if units == "GML" and stored_kind == "bsa":
            raise SUVError("SUVType (0054,1006) = BSA but Units (0054,1001) = GML; expected CM2ML")
        details["stored_suv_kind"] = stored_kind
        if stored_kind == k:
            f = 1.0
        else:
            f = body_normaliser(k, h.weight_kg, h.height_m, h.sex) / body_normaliser(stored_kind, h.weight_kg, h.height_m, h.sex)
        details.update(_patient_details(h))
        return SUVConversion(k, np.full(n, f, dtype=np.float64), unit, details)

    # ---- Philips counts with an SUV scale factor and no activity factor
    to_bqml: np.ndarray
    if units == "CNTS":
        act = h.philips_activity_factors
        suvf = h.philips_suv_factors
        if all(a is not None and a != 0 for a in act):
            to_bqml = np.array(act, dtype=np.float64)
            details["count_conversion"] = "Philips Activity Concentration Scale Factor (7053,1009)"
        elif all(s is not None and s != 0 for s in suvf):
            f_bw = np.array(suvf, dtype=np.float64)
            details["count_conversion"] = "Philips SUV Scale Factor (7053,1000) (vendor SUVbw)"
            details.update(_patient_details(h))
            if k != "bw":
                f_bw = f_bw * body_normaliser(k, h.weight_kg, h.height_m, h.sex) / body_normaliser(
                    "bw", h.weight_kg, h.height_m, h.sex)
            return SUVConversion(k, f_bw, unit, details)
        else:
            if any(a is not None or s is not None for a, s in zip(act, suvf)):
                raise SUVError(
                    "Units (0054,1001) = CNTS: Philips scale factors (7053,1009)/(7053,1000) are zero or not on "
                    "every slice; counts cannot be converted"
                )
            if any(t is None for t in h.frame_durations_s):
                raise SUVError("Units (0054,1001) = CNTS without Philips scale factors needs ActualFrameDuration "
                               "(0018,1242) to convert counts to CPS")
            to_bqml = 1.0 / np.array(h.frame_durations_s, dtype=np.float64)
            to_bqml = to_bqml * _cps_to_bqml(h, details)
            details["count_conversion"] = "counts / ActualFrameDuration -> CPS -> Bq/mL"
    elif units == "CPS":
        to_bqml = np.full(n, _cps_to_bqml(h, details), dtype=np.float64)
    elif units == "BQML":
        to_bqml = np.ones(n, dtype=np.float64)
    else:
        raise SUVError(
            f"Units (0054,1001) = {units!r} cannot be converted to activity concentration "
            "(supported: BQML, CNTS, CPS, GML, CM2ML)"
        )

    # ---- activity concentration -> SUV
    norm = body_normaliser(k, h.weight_kg, h.height_m, h.sex)
    details.update(_patient_details(h))
    details["normaliser"] = norm
    details["normaliser_unit"] = "cm2" if k == "bsa" else "g"
    if h.dose_bq is None:
        raise SUVError("injected dose is missing: RadionuclideTotalDose (0018,1074) is absent or zero")
    details["dose_bq"] = h.dose_bq
    warn_implausible_patient(h)
    dc = h.decay_correction
    if dc is None:
        raise SUVError("DecayCorrection (0054,1102) is missing: cannot tell which time the values refer to")
    details["decay_correction"] = dc

    if dc == "ADMIN":
        dose_factor = np.ones(n)
        inj = h.injection
        details["injection_datetime"] = inj.isoformat() if inj else None
    elif dc == "START":
        t_half = need_half_life(h, half_life_s, "DecayCorrection START")
        ref = reference_datetime(h, reference_time, t_half, details)
        inj = injection_datetime_for(h, ref, details)
        dt = (ref - inj).total_seconds()
        tolerance = CLOCK_TOLERANCE_S if h.injection_datetime is not None else MIDNIGHT_TOLERANCE_S
        if dt < -tolerance:
            raise SUVError(f"injection ({inj}) is {-dt:.0f} s after the decay reference time ({ref}); "
                           "check RadiopharmaceuticalStartDateTime (0018,1078) and SeriesDate/Time")
        check_uptake_time(dt, t_half)
        dose_factor = np.full(n, math.exp(-decay_constant(t_half) * dt))
        details.update(reference_datetime=ref.isoformat(), injection_datetime=inj.isoformat(),
                       uptake_time_s=dt, half_life_s=t_half, dose_decay_factor=float(dose_factor[0]))
    elif dc == "NONE":
        t_half = need_half_life(h, half_life_s, "DecayCorrection NONE")
        first = min((a for a in h.acquisition_datetimes if a is not None), default=None)
        inj = injection_datetime_for(h, first, details)
        if first is not None:
            check_uptake_time((first - inj).total_seconds(), t_half)
        lam = decay_constant(t_half)
        dose_factor = np.empty(n)
        for i, (a, t) in enumerate(zip(h.acquisition_datetimes, h.frame_durations_s)):
            if a is None:
                raise SUVError(f"DecayCorrection NONE: slice {i} lacks AcquisitionDate/AcquisitionTime (0008,0022/0032)")
            if t is None:
                raise SUVError(f"DecayCorrection NONE: slice {i} lacks ActualFrameDuration (0018,1242)")
            # dose at frame start, times the mean decay within the frame: the mean activity seen
            dose_factor[i] = math.exp(-lam * (a - inj).total_seconds()) * float(acquisition_decay_factor(t_half, t))
        details.update(injection_datetime=inj.isoformat(), half_life_s=t_half,
                       dose_decay_factor_range=[float(dose_factor.min()), float(dose_factor.max())])
    else:
        raise SUVError(f"DecayCorrection (0054,1102) = {dc!r} is not one of START, ADMIN, NONE")

    factors = to_bqml * norm / (h.dose_bq * dose_factor)
    return SUVConversion(k, factors, unit, details)


def _cps_to_bqml(h: SeriesHeader, details: dict[str, Any]) -> float:
    if h.voxel_volume_ml is None:
        raise SUVError("CPS to Bq/mL needs the voxel volume: PixelSpacing (0028,0030) and SliceThickness (0018,0050)")
    if "DCAL" in h.corrected_image:
        details["cps_conversion"] = "dose calibrated (DCAL in CorrectedImage): CPS / voxel volume"
        logger.warning("converting CPS to Bq/mL by the voxel volume alone (DCAL set): vendor-dependent, check")
        return 1.0 / h.voxel_volume_ml
    if h.dose_calibration_factor:
        details["cps_conversion"] = "CPS x DoseCalibrationFactor (0054,1322) / voxel volume"
        return h.dose_calibration_factor / h.voxel_volume_ml
    raise SUVError(
        "CPS cannot be converted to Bq/mL: CorrectedImage (0028,0051) lacks DCAL and DoseCalibrationFactor "
        "(0054,1322) is missing"
    )


def _patient_details(h: SeriesHeader) -> dict[str, Any]:
    return {"weight_kg": h.weight_kg, "height_m": h.height_m, "sex": h.sex}


def suv_volume(
    volume: Volume,
    header: SeriesHeader,
    kind: str = "bw",
    *,
    slice_axis: int = 0,
    slice_order: Sequence[int] | None = None,
    conversion: SUVConversion | None = None,
    **overrides: Any,
) -> tuple[Volume, SUVConversion]:
    """SUV volume of ``kind`` from a volume of rescaled values and its series header; also the conversion used.

    ``slice_axis`` is the volume axis (0=z, 1=y, 2=x) along which the
    header's slices lie and ``slice_order[i]`` the header slice index of volume
    index ``i`` along it (default: the same order). A header with a single
    entry (one multi-frame file) applies one factor everywhere. ``overrides``
    go to :func:`suv_factors` (``weight_kg``, ``dose_bq``, ``reference_time``...). A ``conversion``
    computed earlier from the same header and kind (e.g. checked before a reconstruction) is used as is.
    """
    conv = conversion if conversion is not None else suv_factors(header, kind, **overrides)
    data = np.asarray(volume.to_host().data, dtype=np.float64)
    factors = conv.factors
    if factors.size == 1:
        scaled = data * float(factors[0])
    else:
        n = data.shape[slice_axis]
        order = np.arange(n) if slice_order is None else np.asarray(slice_order)
        if factors.size != n or order.size != n:
            raise ValueError(f"the header has {factors.size} slices, the volume {n} along axis {slice_axis}")
        shape = [1, 1, 1]
        shape[slice_axis] = -1
        scaled = data * factors[order].reshape(shape)
    meta = dict(volume.metadata)
    meta["suv"] = conv.details
    out = Volume(scaled.astype(np.float32), volume.grid, f"SUV{conv.kind} ({conv.unit})", meta,
                 volume.frame_of_reference_uid)
    return out, conv


def study_header(patient: PatientInfo, dose: DoseInfo, decay_reference_time: datetime | None, *,
                 half_life_s: float | None = None, units: str = "BQML", manufacturer: str = "") -> SeriesHeader:
    """The series header of a volume we reconstructed, from the study's typed metadata.

    The values are in ``units`` (Bq/mL) decay-corrected to ``decay_reference_time``
    (DecayCorrection START with that DecayCorrectionDateTime); without a
    reference time they are not decay-corrected (DecayCorrection NONE is then not
    computable and :func:`suv_factors` says so). With :func:`suv_volume` this gives
    the SUV of any calibrated Volume with patient, dose and time data, with no
    DICOM round trip. ``half_life_s`` (the one the calibration used) wins over
    the dose record's and the radionuclide table's.
    """
    sources = {"dose": "DoseInfo.injected_activity_bq", "injection": "DoseInfo.injection_time",
               "half_life": "DoseInfo.half_life_s (else the radionuclide table)"}
    half_life = half_life_s if half_life_s is not None else dose.half_life_s
    if half_life is None and dose.radionuclide:
        try:
            half_life = get_radionuclide(dose.radionuclide).half_life_s
        except (KeyError, ValueError):
            half_life = None
    return SeriesHeader(
        units=units, decay_correction="START" if decay_reference_time is not None else None, suv_type=None,
        manufacturer=manufacturer or None, weight_kg=patient.weight_kg, height_m=patient.height_m, sex=patient.sex,
        dose_bq=dose.injected_activity_bq, injection_datetime=dose.injection_time, injection_time_only=None,
        half_life_s=half_life, series_datetime=None, series_date=None,
        decay_correction_datetime=decay_reference_time, ge_scan_datetime=None, corrected_image=(),
        dose_calibration_factor=None, voxel_volume_ml=None, acquisition_datetimes=(None,), frame_durations_s=(None,),
        frame_reference_times_s=(None,), philips_suv_factors=(None,), philips_activity_factors=(None,),
        sources=sources,
    )
