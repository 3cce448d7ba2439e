"""Build a :class:`~recon.data.series_header.SeriesHeader` from pydicom datasets (PET or NM).

The DICOM conventions (DICOM PS3.3 C.8.9.1, QIBA FDG-PET profile, Vacha et
al.'s SUV manual shipped with the reference DROs) read here:

* Injection: RadiopharmaceuticalStartDateTime (0018,1078); else
  RadiopharmaceuticalStartTime (0018,1072) kept time-only (the SUV layer puts
  it on the series date and handles midnight crossing); else GE private
  admin_datetime (0009,103B).
* Dose: RadionuclideTotalDose (0018,1074) in Bq, or in MBq when below 1e5
  (``dose_unit="auto"``: recognised by magnitude, as the manual recommends);
  else GE private tracer_activity (0009,1038, MBq at meas_datetime 0009,1039)
  minus post_inj_activity (0009,103C at 0009,103D), both decayed to injection.
* Weight: PatientWeight (0010,1030) in kg, or in g when above 1000. Height:
  PatientSize (0010,1020) in m (values above 3 taken as cm).
* Half-life: RadionuclideHalfLife (0018,1075); else the radionuclide table via
  RadionuclideCodeSequence (0054,0300); else GE private half_life (0009,103F).
* Per slice: acquisition datetime (AcquisitionDateTime, else
  AcquisitionDate/Time, a time-only value well before SeriesTime taken as the
  next day), ActualFrameDuration (ms -> s), FrameReferenceTime (ms -> s),
  Philips SUV (7053,1000) and activity concentration (7053,1009) scale factors.
"""
from __future__ import annotations

import math
from dataclasses import replace
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

from recon.data.radionuclides import radionuclide_from_dicom_code
from recon.data.series_header import MIDNIGHT_TOLERANCE_S, SeriesHeader
from recon.io.dicom.dates import combine, parse_da, parse_dt, parse_tm
from recon.io.dicom.values import DicomFormatError, ge_private, get_float, get_str, philips_private_float, raw

__all__ = ["read_series_header"]

DoseUnit = Literal["auto", "Bq", "MBq"]
_MBQ_THRESHOLD = 1.0e5  # a dose value below this is in MBq (1e5 MBq = 100 GBq; 1e5 Bq = 0.1 MBq)


def _upper(ds: Any, key: str) -> str | None:
    v = get_str(ds, key)
    return v.upper() if v else None


def _dose_to_bq(value: float, dose_unit: str, tag: str, notes: list[str]) -> float:
    if dose_unit == "Bq":
        return value
    if dose_unit == "MBq":
        return value * 1e6
    if dose_unit != "auto":
        raise ValueError(f"dose_unit must be 'auto', 'Bq' or 'MBq', got {dose_unit!r}")
    if value < _MBQ_THRESHOLD:
        notes.append(f"{tag} = {value} < {_MBQ_THRESHOLD:g} taken as MBq")
        return value * 1e6
    return value


def _patient(ds0: Any, notes: list[str]) -> tuple[float | None, float | None, str | None]:
    """Weight (kg), height (m) and sex, with the g/cm heuristics noted."""
    weight = get_float(ds0, "PatientWeight")
    if weight is not None and weight <= 0:
        weight = None
    if weight is not None and weight > 1000.0:
        notes.append(f"PatientWeight (0010,1030) = {weight} > 1000 taken as grams")
        weight = weight / 1000.0
    height = get_float(ds0, "PatientSize")
    if height is not None and height <= 0:
        height = None
    if height is not None and height > 3.0:
        notes.append(f"PatientSize (0010,1020) = {height} > 3 taken as centimetres")
        height = height / 100.0
    return weight, height, get_str(ds0, "PatientSex")


def _half_life(ds0: Any, rp: Any, sources: dict[str, str]) -> float | None:
    half_life = get_float(rp, "RadionuclideHalfLife")
    if half_life is not None and half_life > 0:
        sources["half_life"] = "RadionuclideHalfLife (0018,1075)"
        return half_life
    codes = raw(rp, "RadionuclideCodeSequence")
    if codes:
        try:
            nuc = radionuclide_from_dicom_code(get_str(codes[0], "CodeValue"), get_str(codes[0], "CodeMeaning"))
            sources["half_life"] = f"radionuclide table ({nuc.name}) via RadionuclideCodeSequence (0054,0300)"
            return nuc.half_life_s
        except KeyError:
            pass
    value = ge_private(ds0, 0x103F)
    try:
        ge_hl = float(value) if value is not None else None
    except (TypeError, ValueError):
        ge_hl = None
    if ge_hl is not None and ge_hl > 0:
        sources["half_life"] = "GE private half_life (0009,103F)"
        return ge_hl
    return None


def _per_slice(datasets: Sequence[Any], ds0: Any, series_date: Any) -> tuple[list, list, list, list, list]:
    acq: list[datetime | None] = []
    dur: list[float | None] = []
    fref: list[float | None] = []
    ph_suv: list[float | None] = []
    ph_act: list[float | None] = []
    for ds in datasets:
        a = parse_dt(raw(ds, "AcquisitionDateTime"))
        if a is None:
            t = parse_tm(raw(ds, "AcquisitionTime"))
            d = parse_da(raw(ds, "AcquisitionDate")) or series_date
            a = combine(d, t)
            if a is not None and parse_da(raw(ds, "AcquisitionDate")) is None and series_date is not None:
                # time only: an acquisition time well before the series time crossed midnight
                st = combine(series_date, parse_tm(raw(ds0, "SeriesTime")))
                if st is not None and (st - a).total_seconds() > MIDNIGHT_TOLERANCE_S:
                    a = a + timedelta(days=1)
        acq.append(a)
        ms = get_float(ds, "ActualFrameDuration")
        dur.append(ms / 1000.0 if ms is not None and ms > 0 else None)
        fr = get_float(ds, "FrameReferenceTime")
        fref.append(fr / 1000.0 if fr is not None else None)
        ph_suv.append(philips_private_float(ds, 0x1000))
        ph_act.append(philips_private_float(ds, 0x1009))
    return acq, dur, fref, ph_suv, ph_act


def _voxel_volume_ml(ds0: Any) -> float | None:
    ps = raw(ds0, "PixelSpacing")
    thick = get_float(ds0, "SliceThickness") or get_float(ds0, "SpacingBetweenSlices")
    if ps is None or not thick:
        return None
    try:
        return float(ps[0]) * float(ps[1]) * abs(thick) / 1000.0
    except (TypeError, ValueError, IndexError):
        return None


def _corrected_image(ds0: Any) -> tuple[str, ...]:
    corrected = raw(ds0, "CorrectedImage")
    if corrected is None:
        return ()
    if isinstance(corrected, str):
        return tuple(c.strip().upper() for c in corrected.split("\\"))
    return tuple(str(c).strip().upper() for c in corrected)


def read_series_header(datasets: Sequence[Any], *, dose_unit: DoseUnit = "auto") -> SeriesHeader:
    """The quantitative header of a series from its pydicom datasets (one per slice, or one multi-frame file).

    Series-level values come from the first dataset. ``dose_unit`` says how
    RadionuclideTotalDose is read (``"auto"``: MBq below 1e5, else Bq).
    """
    if len(datasets) == 0:
        raise DicomFormatError("no DICOM datasets given for the series header")
    ds0 = datasets[0]
    sources: dict[str, str] = {}
    notes: list[str] = []
    weight, height, sex = _patient(ds0, notes)

    rp_seq = raw(ds0, "RadiopharmaceuticalInformationSequence")
    rp = rp_seq[0] if rp_seq else None
    series_date = parse_da(raw(ds0, "SeriesDate")) or parse_da(raw(ds0, "AcquisitionDate")) \
        or parse_da(raw(ds0, "StudyDate"))
    half_life = _half_life(ds0, rp, sources)

    inj = parse_dt(raw(rp, "RadiopharmaceuticalStartDateTime"))
    inj_t = parse_tm(raw(rp, "RadiopharmaceuticalStartTime"))
    if inj is not None:
        sources["injection"] = "RadiopharmaceuticalStartDateTime (0018,1078)"
    elif inj_t is None:
        ge_admin = parse_dt(ge_private(ds0, 0x103B))
        if ge_admin is not None:
            inj = ge_admin
            sources["injection"] = "GE private admin_datetime (0009,103B)"

    dose = get_float(rp, "RadionuclideTotalDose")
    if dose is not None and dose > 0:
        dose = _dose_to_bq(dose, dose_unit, "RadionuclideTotalDose (0018,1074)", notes)
        sources["dose"] = "RadionuclideTotalDose (0018,1074)"
    else:
        dose = None

    acq, dur, fref, ph_suv, ph_act = _per_slice(datasets, ds0, series_date)
    header = SeriesHeader(
        units=_upper(ds0, "Units"),
        decay_correction=_upper(ds0, "DecayCorrection"),
        suv_type=_upper(ds0, "SUVType"),
        manufacturer=get_str(ds0, "Manufacturer"),
        weight_kg=weight,
        height_m=height,
        sex=sex,
        dose_bq=dose,
        injection_datetime=inj,
        injection_time_only=inj_t,
        half_life_s=half_life,
        series_datetime=combine(parse_da(raw(ds0, "SeriesDate")), parse_tm(raw(ds0, "SeriesTime"))),
        series_date=series_date,
        decay_correction_datetime=parse_dt(raw(ds0, "DecayCorrectionDateTime")),
        ge_scan_datetime=parse_dt(ge_private(ds0, 0x100D)),
        corrected_image=_corrected_image(ds0),
        dose_calibration_factor=get_float(ds0, "DoseCalibrationFactor"),
        voxel_volume_ml=_voxel_volume_ml(ds0),
        acquisition_datetimes=tuple(acq),
        frame_durations_s=tuple(dur),
        frame_reference_times_s=tuple(fref),
        philips_suv_factors=tuple(ph_suv),
        philips_activity_factors=tuple(ph_act),
        sources=sources,
        notes=tuple(notes),
    )
    if header.dose_bq is None:
        header = _ge_net_dose(header, ds0, dose_unit)
    return header


def _ge_net_dose(h: SeriesHeader, ds0: Any, dose_unit: str) -> SeriesHeader:
    """Fill the dose from GE private pre-/post-injection activities (MBq) when the standard tag is missing."""
    pre = ge_private(ds0, 0x1038)
    pre_t = parse_dt(ge_private(ds0, 0x1039))
    if pre is None or pre_t is None:
        return h
    inj = h.injection
    if inj is None or h.half_life_s is None:
        return h
    notes = list(h.notes)
    unit = "MBq" if dose_unit == "auto" else dose_unit
    try:
        pre_bq = _dose_to_bq(float(pre), unit, "GE tracer_activity (0009,1038)", notes)
    except (TypeError, ValueError):
        return h
    lam = math.log(2.0) / h.half_life_s
    net = pre_bq * math.exp(-lam * (inj - pre_t).total_seconds())
    post = ge_private(ds0, 0x103C)
    post_t = parse_dt(ge_private(ds0, 0x103D))
    try:
        if post is not None and float(post) > 0 and post_t is not None:
            post_bq = _dose_to_bq(float(post), unit, "GE post_inj_activity (0009,103C)", notes)
            net -= post_bq * math.exp(lam * (post_t - inj).total_seconds())
    except (TypeError, ValueError):
        pass
    if net <= 0:
        return h
    sources = dict(h.sources)
    sources["dose"] = "GE private tracer_activity (0009,1038) - post_inj_activity (0009,103C), decayed to injection"
    notes.append("dose from GE private pre/post-injection activities (MBq)")
    return replace(h, dose_bq=net, sources=sources, notes=tuple(notes))
