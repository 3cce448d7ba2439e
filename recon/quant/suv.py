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
* Injection time: RadiopharmaceuticalStartDateTime (0018,1078); else
  RadiopharmaceuticalStartTime (0018,1072) on SeriesDate (then an injection
  later than the scan by more than an hour is taken as the previous day:
  midnight crossing); else GE private admin_datetime (0009,103B).
* Dose: RadionuclideTotalDose (0018,1074) in Bq, or in MBq when below 1e5
  (recognised by magnitude, as the manual recommends); else GE private
  tracer_activity (0009,1038, MBq at meas_datetime 0009,1039) minus
  post_inj_activity (0009,103C at 0009,103D), both decayed to injection.
* Weight: PatientWeight (0010,1030) in kg, or in g when above 1000.
  Height PatientSize (0010,1020) in m (values above 3 taken as cm).
* Half-life: RadionuclideHalfLife (0018,1075) wins; else the radionuclide
  table via RadionuclideCodeSequence (0054,0300); else GE private half_life
  (0009,103F).

Body-size formulas (W kg, H cm; Sugawara et al., Radiology 1999; Janmahasatian
et al., Clin Pharmacokinet 2005; Du Bois & Du Bois, Arch Intern Med 1916):

* LBM James (DICOM "LBMJAMES128"): male 1.10 W - 128 (W/H)^2,
  female 1.07 W - 148 (W/H)^2; Morgan ("LBM") uses 120 for males.
* LBM Janmahasatian ("LBMJANMA"): male 9270 W / (6680 + 216 BMI),
  female 9270 W / (8780 + 244 BMI), BMI = W / (H/100)^2.
* IBW ("IBW"): male 48.0 + 1.06 (H - 152), female 45.5 + 0.91 (H - 152).
* BSA Du Bois ("BSA"): 0.007184 W^0.425 H^0.725 (m^2).

PatientSex "O" (other) uses the mean of the male and female values, as the
manual suggests. When the header cannot support the number asked for, an
:class:`SUVError` names the missing or inconsistent tag.
"""
from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Any, Callable, Literal, Sequence

import numpy as np

from recon.quant.decay import acquisition_decay_factor, average_count_rate_time, decay_constant
from recon.quant.radionuclides import radionuclide_from_dicom_code

logger = logging.getLogger(__name__)

__all__ = [
    "SUVError",
    "SUV_KINDS",
    "PETHeader",
    "SUVConversion",
    "suv_factors",
    "lbm_james_kg",
    "lbm_morgan_kg",
    "lbm_janmahasatian_kg",
    "ibw_kg",
    "bsa_dubois_m2",
    "body_normaliser",
    "parse_dicom_datetime",
]

SUVKind = Literal["bw", "lbm_james", "lbm_janma", "lbm_morgan", "bsa", "ibw"]
SUV_KINDS: tuple[str, ...] = ("bw", "lbm_james", "lbm_janma", "lbm_morgan", "bsa", "ibw")
"""Accepted SUV kinds; the unit is g/mL except ``"bsa"`` (cm^2/mL)."""

# DICOM SUVType (0054,1006) defined terms -> our kinds
_SUVTYPE_TO_KIND: dict[str, str] = {
    "BW": "bw", "LBM": "lbm_morgan", "LBMJAMES128": "lbm_james", "LBMJANMA": "lbm_janma",
    "BSA": "bsa", "IBW": "ibw",
}
_KIND_ALIASES: dict[str, str] = {
    "bw": "bw", "suvbw": "bw", "lbm": "lbm_james", "lbm_james": "lbm_james", "lbmjames128": "lbm_james",
    "james": "lbm_james", "lbm_janma": "lbm_janma", "lbmjanma": "lbm_janma", "janma": "lbm_janma",
    "janmahasatian": "lbm_janma", "lbm_morgan": "lbm_morgan", "morgan": "lbm_morgan",
    "bsa": "bsa", "ibw": "ibw",
}

_MBQ_THRESHOLD = 1.0e5  # a dose value below this is in MBq (1e5 MBq = 100 GBq; 1e5 Bq = 0.1 MBq)
_MIDNIGHT_TOLERANCE_S = 3600.0


class SUVError(ValueError):
    """The DICOM header cannot support the SUV asked for; the message names the tag."""


# --------------------------------------------------------------------------- body size

def _check_wh(weight_kg: float, height_cm: float | None = None) -> None:
    if not (weight_kg > 0 and math.isfinite(weight_kg)):
        raise SUVError(f"patient weight must be positive (kg), got {weight_kg}")
    if height_cm is not None and not (height_cm > 0 and math.isfinite(height_cm)):
        raise SUVError(f"patient height must be positive (cm), got {height_cm}")


def _by_sex(sex: str | None, male: Callable[[], float], female: Callable[[], float], what: str) -> float:
    s = (sex or "").strip().upper()
    if s == "M":
        return male()
    if s == "F":
        return female()
    if s == "O":
        return 0.5 * (male() + female())
    raise SUVError(f"{what} needs PatientSex (0010,0040) = M, F or O; got {sex!r}")


def lbm_james_kg(weight_kg: float, height_cm: float, sex: str | None) -> float:
    """Lean body mass (kg), James (DICOM LBMJAMES128): M 1.10W-128(W/H)^2, F 1.07W-148(W/H)^2."""
    _check_wh(weight_kg, height_cm)
    r2 = (weight_kg / height_cm) ** 2
    return _by_sex(sex, lambda: 1.10 * weight_kg - 128.0 * r2, lambda: 1.07 * weight_kg - 148.0 * r2, "SUVlbm (James)")


def lbm_morgan_kg(weight_kg: float, height_cm: float, sex: str | None) -> float:
    """Lean body mass (kg), Morgan (DICOM LBM): M 1.10W-120(W/H)^2, F 1.07W-148(W/H)^2."""
    _check_wh(weight_kg, height_cm)
    r2 = (weight_kg / height_cm) ** 2
    return _by_sex(sex, lambda: 1.10 * weight_kg - 120.0 * r2, lambda: 1.07 * weight_kg - 148.0 * r2, "SUVlbm (Morgan)")


def lbm_janmahasatian_kg(weight_kg: float, height_cm: float, sex: str | None) -> float:
    """Lean body mass (kg), Janmahasatian: M 9270W/(6680+216 BMI), F 9270W/(8780+244 BMI)."""
    _check_wh(weight_kg, height_cm)
    bmi = weight_kg / (height_cm / 100.0) ** 2
    return _by_sex(
        sex,
        lambda: 9270.0 * weight_kg / (6680.0 + 216.0 * bmi),
        lambda: 9270.0 * weight_kg / (8780.0 + 244.0 * bmi),
        "SUVlbm (Janmahasatian)",
    )


def ibw_kg(height_cm: float, sex: str | None) -> float:
    """Ideal body weight (kg): M 48.0+1.06(H-152), F 45.5+0.91(H-152), H in cm."""
    if not (height_cm > 0 and math.isfinite(height_cm)):
        raise SUVError(f"patient height must be positive (cm), got {height_cm}")
    return _by_sex(sex, lambda: 48.0 + 1.06 * (height_cm - 152.0), lambda: 45.5 + 0.91 * (height_cm - 152.0), "SUVibw")


def bsa_dubois_m2(weight_kg: float, height_cm: float) -> float:
    """Body surface area (m^2), Du Bois: 0.007184 W^0.425 H^0.725."""
    _check_wh(weight_kg, height_cm)
    return 0.007184 * weight_kg**0.425 * height_cm**0.725


def _canonical_kind(kind: str) -> str:
    k = _KIND_ALIASES.get(str(kind).strip().lower().replace("-", "_"))
    if k is None:
        raise ValueError(f"unknown SUV kind {kind!r}; use one of {SUV_KINDS}")
    return k


def body_normaliser(kind: str, weight_kg: float | None, height_m: float | None, sex: str | None) -> float:
    """The SUV normaliser: g for bw/lbm/ibw, cm^2 for bsa.

    Raises SUVError naming PatientWeight (0010,1030), PatientSize (0010,1020)
    or PatientSex (0010,0040) when the value needed is missing.
    """
    k = _canonical_kind(kind)

    def need_w() -> float:
        if weight_kg is None:
            raise SUVError(f"SUV{k} needs PatientWeight (0010,1030), which is missing or zero")
        return float(weight_kg)

    def need_h_cm() -> float:
        if height_m is None:
            raise SUVError(f"SUV{k} needs PatientSize (0010,1020, height in m), which is missing or zero")
        return 100.0 * float(height_m)

    if k == "bw":
        w = need_w()
        _check_wh(w)
        return 1000.0 * w
    if k == "lbm_james":
        return 1000.0 * lbm_james_kg(need_w(), need_h_cm(), sex)
    if k == "lbm_morgan":
        return 1000.0 * lbm_morgan_kg(need_w(), need_h_cm(), sex)
    if k == "lbm_janma":
        return 1000.0 * lbm_janmahasatian_kg(need_w(), need_h_cm(), sex)
    if k == "ibw":
        return 1000.0 * ibw_kg(need_h_cm(), sex)
    return 1.0e4 * bsa_dubois_m2(need_w(), need_h_cm())  # bsa, cm^2


# --------------------------------------------------------------------------- DICOM values

def _raw(ds: Any, key: str | tuple[int, int]) -> Any:
    """Value of a keyword or (group, element) tag in a dataset, or None when absent/empty."""
    if ds is None:
        return None
    try:
        if isinstance(key, str):
            v = getattr(ds, key, None) if hasattr(ds, key) else None
        else:
            elem = ds.get(key) if hasattr(ds, "get") else None
            if elem is None:
                return None
            v = getattr(elem, "value", elem)
    except Exception:  # a malformed element reads as absent
        return None
    if isinstance(v, (bytes, bytearray)):
        v = bytes(v).decode("ascii", errors="ignore").strip("\x00 ")
    if v is None or (isinstance(v, str) and not v.strip()):
        return None
    if hasattr(v, "__len__") and not isinstance(v, str) and len(v) == 0:
        return None
    return v


def _float(ds: Any, key: str | tuple[int, int]) -> float | None:
    v = _raw(ds, key)
    if v is None:
        return None
    if isinstance(v, (list, tuple)) or (hasattr(v, "__iter__") and not isinstance(v, str)):
        v = list(v)[0]
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _str(ds: Any, key: str | tuple[int, int]) -> str | None:
    v = _raw(ds, key)
    return None if v is None else str(v).strip()


_TM_RE = re.compile(r"^(\d{2})(\d{2})?(\d{2})?(?:\.(\d{1,6}))?$")


def _upper(ds: Any, key: str) -> str | None:
    v = _str(ds, key)
    return v.upper() if v else None


def _parse_tm(v: Any) -> time | None:
    if v is None:
        return None
    if isinstance(v, time):
        return v.replace(tzinfo=None)
    s = str(v).strip().replace(":", "")  # ACR-NEMA style HH:MM:SS
    m = _TM_RE.match(s)
    if not m:
        return None
    hh, mm, ss, frac = m.groups()
    us = int((frac or "0").ljust(6, "0"))
    sec = int(ss or 0)
    if sec == 60:  # leap second allowed by DICOM
        sec = 59
    return time(int(hh), int(mm or 0), sec, us)


def _parse_da(v: Any) -> date | None:
    if v is None:
        return None
    if isinstance(v, datetime):
        return v.date()
    if isinstance(v, date):
        return v
    s = str(v).strip().replace(".", "").replace("-", "")
    if len(s) != 8 or not s.isdigit():
        return None
    try:
        return date(int(s[:4]), int(s[4:6]), int(s[6:8]))
    except ValueError:
        return None


def parse_dicom_datetime(value: Any) -> datetime | None:
    """A DICOM DT (YYYYMMDDHHMMSS.FFFFFF, possibly truncated, optional &ZZXX offset) as a naive datetime.

    A timezone offset is dropped (all times of one study are assumed to share
    a clock). Returns None for empty or unparsable values.
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    s = str(value).strip()
    s = re.split(r"[+-]", s, maxsplit=1)[0] if len(s) > 8 else s
    m = re.match(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.(\d{1,6}))?$", s)
    if not m:
        return None
    y, mo, d, hh, mi, ss, frac = m.groups()
    try:
        return datetime(
            int(y), int(mo or 1), int(d or 1), int(hh or 0), int(mi or 0), min(int(ss or 0), 59),
            int((frac or "0").ljust(6, "0")),
        )
    except ValueError:
        return None


def _combine(d: date | None, t: time | None) -> datetime | None:
    if d is None or t is None:
        return None
    return datetime.combine(d, t)


def _private(
    ds: Any, group: int, element: int, creators: tuple[str, ...], manufacturer_prefix: str
) -> Any:
    """A vendor private value, accepted when its private creator matches, or when no
    creator is recorded and the Manufacturer (0008,0070) is that vendor."""
    v = _raw(ds, (group, element))
    if v is None:
        return None
    creator = _str(ds, (group, (element >> 8) & 0xFF))
    if creator is not None:
        return v if creator.strip().upper() in {c.upper() for c in creators} else None
    manufacturer = (_str(ds, "Manufacturer") or "").upper()
    return v if manufacturer.startswith(manufacturer_prefix.upper()) else None


def _ge(ds: Any, element: int) -> Any:
    return _private(ds, 0x0009, element, ("GEMS_PETD_01",), "GE")


def _philips(ds: Any, element: int) -> float | None:
    v = _private(ds, 0x7053, element, ("Philips PET Private Group",), "PHILIPS")
    if v is None:
        return None
    try:
        if hasattr(v, "__iter__") and not isinstance(v, str):
            v = list(v)[0]
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


# --------------------------------------------------------------------------- header

@dataclass(frozen=True)
class PETHeader:
    """What SUV needs from a PET series, read from its DICOM datasets.

    Series-level values come from the first dataset; per-slice values are
    tuples ordered like the datasets given to :meth:`from_datasets`. Missing
    values are None; :func:`suv_factors` decides what is required. ``sources``
    records which tag each time/dose/half-life came from.
    """

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

    @classmethod
    def from_datasets(cls, datasets: Sequence[Any], *, dose_unit: Literal["auto", "Bq", "MBq"] = "auto") -> "PETHeader":
        """Read the SUV-relevant attributes from pydicom-like datasets (one per slice or one multi-frame)."""
        if len(datasets) == 0:
            raise SUVError("no DICOM datasets given")
        ds0 = datasets[0]
        sources: dict[str, str] = {}
        notes: list[str] = []

        # ---- patient
        weight = _float(ds0, "PatientWeight")
        if weight is not None and weight <= 0:
            weight = None
        if weight is not None and weight > 1000.0:
            notes.append(f"PatientWeight (0010,1030) = {weight} > 1000 taken as grams")
            weight = weight / 1000.0
        height = _float(ds0, "PatientSize")
        if height is not None and height <= 0:
            height = None
        if height is not None and height > 3.0:
            notes.append(f"PatientSize (0010,1020) = {height} > 3 taken as centimetres")
            height = height / 100.0
        sex = _str(ds0, "PatientSex")

        # ---- radiopharmaceutical
        rp_seq = _raw(ds0, "RadiopharmaceuticalInformationSequence")
        rp = rp_seq[0] if rp_seq else None
        series_date = _parse_da(_raw(ds0, "SeriesDate")) or _parse_da(_raw(ds0, "AcquisitionDate")) \
            or _parse_da(_raw(ds0, "StudyDate"))

        half_life = _float(rp, "RadionuclideHalfLife")
        if half_life is not None and half_life > 0:
            sources["half_life"] = "RadionuclideHalfLife (0018,1075)"
        else:
            half_life = None
            codes = _raw(rp, "RadionuclideCodeSequence")
            if codes:
                try:
                    nuc = radionuclide_from_dicom_code(_str(codes[0], "CodeValue"), _str(codes[0], "CodeMeaning"))
                    half_life = nuc.half_life_s
                    sources["half_life"] = f"radionuclide table ({nuc.name}) via RadionuclideCodeSequence (0054,0300)"
                except KeyError:
                    pass
            if half_life is None:
                ge_hl = _ge(ds0, 0x103F)
                try:
                    if ge_hl is not None and float(ge_hl) > 0:
                        half_life = float(ge_hl)
                        sources["half_life"] = "GE private half_life (0009,103F)"
                except (TypeError, ValueError):
                    pass

        inj = parse_dicom_datetime(_raw(rp, "RadiopharmaceuticalStartDateTime"))
        inj_t = _parse_tm(_raw(rp, "RadiopharmaceuticalStartTime"))
        if inj is not None:
            sources["injection"] = "RadiopharmaceuticalStartDateTime (0018,1078)"
        elif inj_t is None:
            ge_admin = parse_dicom_datetime(_ge(ds0, 0x103B))
            if ge_admin is not None:
                inj = ge_admin
                sources["injection"] = "GE private admin_datetime (0009,103B)"

        dose = _float(rp, "RadionuclideTotalDose")
        if dose is not None and dose > 0:
            dose = _dose_to_bq(dose, dose_unit, "RadionuclideTotalDose (0018,1074)", notes)
            sources["dose"] = "RadionuclideTotalDose (0018,1074)"
        else:
            dose = None

        ge_scan = parse_dicom_datetime(_ge(ds0, 0x100D))

        # ---- per slice
        acq: list[datetime | None] = []
        dur: list[float | None] = []
        fref: list[float | None] = []
        ph_suv: list[float | None] = []
        ph_act: list[float | None] = []
        for ds in datasets:
            a = parse_dicom_datetime(_raw(ds, "AcquisitionDateTime"))
            if a is None:
                t = _parse_tm(_raw(ds, "AcquisitionTime"))
                d = _parse_da(_raw(ds, "AcquisitionDate")) or series_date
                a = _combine(d, t)
                if a is not None and _parse_da(_raw(ds, "AcquisitionDate")) is None and series_date is not None:
                    # time only: an acquisition time well before the series time crossed midnight
                    st = _combine(series_date, _parse_tm(_raw(ds0, "SeriesTime")))
                    if st is not None and (st - a).total_seconds() > _MIDNIGHT_TOLERANCE_S:
                        a = a + timedelta(days=1)
            acq.append(a)
            ms = _float(ds, "ActualFrameDuration")
            dur.append(ms / 1000.0 if ms is not None and ms > 0 else None)
            fr = _float(ds, "FrameReferenceTime")
            fref.append(fr / 1000.0 if fr is not None else None)
            ph_suv.append(_philips(ds, 0x1000))
            ph_act.append(_philips(ds, 0x1009))

        ps = _raw(ds0, "PixelSpacing")
        thick = _float(ds0, "SliceThickness") or _float(ds0, "SpacingBetweenSlices")
        voxel_ml = None
        if ps is not None and thick:
            try:
                voxel_ml = float(ps[0]) * float(ps[1]) * thick / 1000.0
            except (TypeError, ValueError, IndexError):
                voxel_ml = None
        corrected = _raw(ds0, "CorrectedImage")
        if corrected is None:
            corrected_t: tuple[str, ...] = ()
        elif isinstance(corrected, str):
            corrected_t = tuple(c.strip().upper() for c in corrected.split("\\"))
        else:
            corrected_t = tuple(str(c).strip().upper() for c in corrected)

        header = cls(
            units=_upper(ds0, "Units"),
            decay_correction=_upper(ds0, "DecayCorrection"),
            suv_type=_upper(ds0, "SUVType"),
            manufacturer=_str(ds0, "Manufacturer"),
            weight_kg=weight,
            height_m=height,
            sex=sex,
            dose_bq=dose,
            injection_datetime=inj,
            injection_time_only=inj_t,
            half_life_s=half_life,
            series_datetime=_combine(_parse_da(_raw(ds0, "SeriesDate")), _parse_tm(_raw(ds0, "SeriesTime"))),
            series_date=series_date,
            decay_correction_datetime=parse_dicom_datetime(_raw(ds0, "DecayCorrectionDateTime")),
            ge_scan_datetime=ge_scan,
            corrected_image=corrected_t,
            dose_calibration_factor=_float(ds0, "DoseCalibrationFactor"),
            voxel_volume_ml=voxel_ml,
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


def _ge_net_dose(h: PETHeader, ds0: Any, dose_unit: str) -> PETHeader:
    """Fill the dose from GE private pre-/post-injection activities when the standard tag is missing."""
    pre = _ge(ds0, 0x1038)
    pre_t = parse_dicom_datetime(_ge(ds0, 0x1039))
    if pre is None or pre_t is None:
        return h
    inj = h.injection_datetime or _combine(h.series_date, h.injection_time_only)
    if inj is None or h.half_life_s is None:
        return h
    notes = list(h.notes)
    try:
        pre_bq = _dose_to_bq(float(pre), "MBq" if dose_unit == "auto" else dose_unit,
                             "GE tracer_activity (0009,1038)", notes)
    except (TypeError, ValueError):
        return h
    lam = math.log(2.0) / h.half_life_s
    net = pre_bq * math.exp(-lam * (inj - pre_t).total_seconds())
    post = _ge(ds0, 0x103C)
    post_t = parse_dicom_datetime(_ge(ds0, 0x103D))
    try:
        if post is not None and float(post) > 0 and post_t is not None:
            post_bq = _dose_to_bq(float(post), "MBq" if dose_unit == "auto" else dose_unit,
                                  "GE post_inj_activity (0009,103C)", notes)
            net -= post_bq * math.exp(lam * (post_t - inj).total_seconds())
    except (TypeError, ValueError):
        pass
    if net <= 0:
        return h
    sources = dict(h.sources)
    sources["dose"] = "GE private tracer_activity (0009,1038) - post_inj_activity (0009,103C), decayed to injection"
    notes.append("dose from GE private pre/post-injection activities (MBq)")
    return _replace(h, dose_bq=net, sources=sources, notes=tuple(notes))


def _replace(h: PETHeader, **kw: Any) -> PETHeader:
    return replace(h, **kw)


# --------------------------------------------------------------------------- conversion

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


def _need_half_life(h: PETHeader, half_life_s: float | None, why: str) -> float:
    if half_life_s is not None:
        return float(half_life_s)
    if h.half_life_s is None:
        raise SUVError(
            f"{why} needs the half-life: RadionuclideHalfLife (0018,1075) is missing and the "
            "RadionuclideCodeSequence (0054,0300) does not name a known radionuclide"
        )
    return h.half_life_s


def _injection_datetime(h: PETHeader, reference: datetime | None, details: dict[str, Any]) -> datetime:
    if h.injection_datetime is not None:
        return h.injection_datetime
    if h.injection_time_only is not None:
        if h.series_date is None:
            raise SUVError(
                "RadiopharmaceuticalStartTime (0018,1072) has no date: SeriesDate (0008,0021) is needed "
                "(RadiopharmaceuticalStartDateTime (0018,1078) is missing)"
            )
        inj = datetime.combine(h.series_date, h.injection_time_only)
        details["injection_source"] = "RadiopharmaceuticalStartTime (0018,1072) on SeriesDate (0008,0021)"
        if reference is not None and (inj - reference).total_seconds() > _MIDNIGHT_TOLERANCE_S:
            inj -= timedelta(days=1)
            details["midnight_crossing"] = True
            logger.info("injection time %s is after the scan: taken as the previous day (midnight crossing)", inj.time())
        return inj
    raise SUVError(
        "injection time is missing: neither RadiopharmaceuticalStartDateTime (0018,1078) nor "
        "RadiopharmaceuticalStartTime (0018,1072) is in RadiopharmaceuticalInformationSequence (0054,0016)"
    )


def _backcomputed_reference(h: PETHeader, half_life_s: float) -> datetime:
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


def _reference_datetime(h: PETHeader, method: str, half_life_s: float, details: dict[str, Any]) -> datetime:
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
        return _backcomputed_reference(h, half_life_s)
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
        ref = _backcomputed_reference(h, half_life_s)
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


def suv_factors(
    header: PETHeader | Sequence[Any],
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

    ``header`` is a :class:`PETHeader` or the datasets to read one from.
    Keyword values override (or supply) the header's; ``half_life_s`` given
    here wins over everything. Raises :class:`SUVError` naming the tag when
    the header cannot support the number.
    """
    h = header if isinstance(header, PETHeader) else PETHeader.from_datasets(header)
    k = _canonical_kind(kind)
    overrides = {
        k2: v for k2, v in (("weight_kg", weight_kg), ("height_m", height_m), ("sex", sex), ("dose_bq", dose_bq),
                            ("injection_datetime", injection_datetime)) if v is not None
    }
    if overrides:
        h = _replace(h, **overrides)
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
    dc = h.decay_correction
    if dc is None:
        raise SUVError("DecayCorrection (0054,1102) is missing: cannot tell which time the values refer to")
    details["decay_correction"] = dc

    if dc == "ADMIN":
        dose_factor = np.ones(n)
        inj = h.injection_datetime or (_combine(h.series_date, h.injection_time_only))
        details["injection_datetime"] = inj.isoformat() if inj else None
    elif dc == "START":
        t_half = _need_half_life(h, half_life_s, "DecayCorrection START")
        ref = _reference_datetime(h, reference_time, t_half, details)
        inj = _injection_datetime(h, ref, details)
        dt = (ref - inj).total_seconds()
        if dt < -_MIDNIGHT_TOLERANCE_S:
            raise SUVError(f"injection ({inj}) is {-dt:.0f} s after the decay reference time ({ref}); "
                           "check RadiopharmaceuticalStartDateTime (0018,1078) and SeriesDate/Time")
        dose_factor = np.full(n, math.exp(-decay_constant(t_half) * dt))
        details.update(reference_datetime=ref.isoformat(), injection_datetime=inj.isoformat(),
                       uptake_time_s=dt, half_life_s=t_half, dose_decay_factor=float(dose_factor[0]))
    elif dc == "NONE":
        t_half = _need_half_life(h, half_life_s, "DecayCorrection NONE")
        first = min((a for a in h.acquisition_datetimes if a is not None), default=None)
        inj = _injection_datetime(h, first, details)
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


def _cps_to_bqml(h: PETHeader, details: dict[str, Any]) -> float:
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


def _patient_details(h: PETHeader) -> dict[str, Any]:
    return {"weight_kg": h.weight_kg, "height_m": h.height_m, "sex": h.sex}
