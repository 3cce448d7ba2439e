"""Body-size normalisers for SUV: lean body mass, ideal body weight, body surface area.

W in kg, H in cm (Sugawara et al., Radiology 1999; Janmahasatian et al., Clin
Pharmacokinet 2005; Du Bois & Du Bois, Arch Intern Med 1916):

* LBM James (DICOM "LBMJAMES128"): male 1.10 W - 128 (W/H)^2,
  female 1.07 W - 148 (W/H)^2; Morgan ("LBM") uses 120 for males.
* LBM Janmahasatian ("LBMJANMA"): male 9270 W / (6680 + 216 BMI),
  female 9270 W / (8780 + 244 BMI), BMI = W / (H/100)^2.
* IBW ("IBW"): male 48.0 + 1.06 (H - 152), female 45.5 + 0.91 (H - 152).
* BSA Du Bois ("BSA"): 0.007184 W^0.425 H^0.725 (m^2).

PatientSex "O" (other) uses the mean of the male and female values. A
missing value raises :class:`SUVError` naming the DICOM tag it comes from.
"""
from __future__ import annotations

import math
from typing import Callable

__all__ = [
    "SUVError",
    "SUV_KINDS",
    "body_normaliser",
    "bsa_dubois_m2",
    "canonical_kind",
    "ibw_kg",
    "lbm_james_kg",
    "lbm_janmahasatian_kg",
    "lbm_morgan_kg",
]

SUV_KINDS: tuple[str, ...] = ("bw", "lbm_james", "lbm_janma", "lbm_morgan", "bsa", "ibw")
"""Accepted SUV kinds; the unit is g/mL except ``"bsa"`` (cm^2/mL)."""

_KIND_ALIASES: dict[str, str] = {
    "bw": "bw", "suvbw": "bw", "lbm": "lbm_james", "lbm_james": "lbm_james", "lbmjames128": "lbm_james",
    "james": "lbm_james", "lbm_janma": "lbm_janma", "lbmjanma": "lbm_janma", "janma": "lbm_janma",
    "janmahasatian": "lbm_janma", "lbm_morgan": "lbm_morgan", "morgan": "lbm_morgan",
    "bsa": "bsa", "ibw": "ibw",
}


class SUVError(ValueError):
    """The DICOM header cannot support the SUV asked for; the message names the tag."""


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


def _positive_lbm(lbm_kg: float, formula: str, weight_kg: float, height_cm: float, sex: str | None) -> float:
    """``lbm_kg``, or SUVError when the quadratic formula gives LBM <= 0 (a heavy, short patient)."""
    if not lbm_kg > 0:
        raise SUVError(f"lean body mass by the {formula} formula is {lbm_kg:.1f} kg (<= 0) for weight {weight_kg:g} kg, "
                       f"height {height_cm:g} cm, sex {sex}: the formula fails for so high a weight/height; use "
                       "SUVlbm Janmahasatian (lbm_janma) or check PatientWeight (0010,1030) and PatientSize (0010,1020)")
    return lbm_kg


def lbm_james_kg(weight_kg: float, height_cm: float, sex: str | None) -> float:
    """Lean body mass (kg), James (DICOM LBMJAMES128): M 1.10W-128(W/H)^2, F 1.07W-148(W/H)^2; > 0 or SUVError."""
    _check_wh(weight_kg, height_cm)
    r2 = (weight_kg / height_cm) ** 2
    lbm = _by_sex(sex, lambda: 1.10 * weight_kg - 128.0 * r2, lambda: 1.07 * weight_kg - 148.0 * r2, "SUVlbm (James)")
    return _positive_lbm(lbm, "James", weight_kg, height_cm, sex)


def lbm_morgan_kg(weight_kg: float, height_cm: float, sex: str | None) -> float:
    """Lean body mass (kg), Morgan (DICOM LBM): M 1.10W-120(W/H)^2, F 1.07W-148(W/H)^2; > 0 or SUVError."""
    _check_wh(weight_kg, height_cm)
    r2 = (weight_kg / height_cm) ** 2
    lbm = _by_sex(sex, lambda: 1.10 * weight_kg - 120.0 * r2, lambda: 1.07 * weight_kg - 148.0 * r2, "SUVlbm (Morgan)")
    return _positive_lbm(lbm, "Morgan", weight_kg, height_cm, sex)


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


def canonical_kind(kind: str) -> str:
    k = _KIND_ALIASES.get(str(kind).strip().lower().replace("-", "_"))
    if k is None:
        raise ValueError(f"unknown SUV kind {kind!r}; use one of {SUV_KINDS}")
    return k


def body_normaliser(kind: str, weight_kg: float | None, height_m: float | None, sex: str | None) -> float:
    """The SUV normaliser: g for bw/lbm/ibw, cm^2 for bsa.

    Raises SUVError naming PatientWeight (0010,1030), PatientSize (0010,1020)
    or PatientSex (0010,0040) when the value needed is missing.
    """
    k = canonical_kind(kind)

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
