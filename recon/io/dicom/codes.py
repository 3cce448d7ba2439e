"""Coded values the image writers share: patient orientation (CID 19/21), radionuclides (CID 18/4020),
units (UCUM, CID 82/85) and the Real World Value Mapping item (PS3.3 C.7.6.16.2.11).

Codes are SNOMED CT (``SCT``) where DICOM gives them, UCUM for units.
"""
from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from recon.data.radionuclides import get_radionuclide

__all__ = [
    "RWV_UNITS", "code_item", "orientation_code_sequences", "set_patient_orientation_codes", "radionuclide_code", "real_world_value_mapping",
    "rwvm_unit",
]

# PatientPosition -> (orientation, orientation modifier, gantry relationship), SCT codes (CID 19, 20, 21).
_RECUMBENT = ("102538003", "SCT", "recumbent")
_MODIFIER = {"S": ("40199007", "SCT", "supine"), "P": ("1240000", "SCT", "prone")}
_GANTRY = {"HF": ("102540008", "SCT", "headfirst"), "FF": ("102541007", "SCT", "feet-first")}

RWV_UNITS: dict[str, tuple[str, str]] = {
    "Bq/mL": ("Bq/ml", "Becquerels/milliliter"),
    "counts": ("{counts}", "Counts"),
    "g/mL": ("{SUVbw}g/ml", "Standardized Uptake Value body weight"),
}
"""Our unit -> UCUM code value and meaning for MeasurementUnitsCodeSequence (SUV maps: CID 85 SUVbw)."""

_RWV_TO_UNIT = {"BQ/ML": "BQML", "{COUNTS}": "CNTS", "{SUVBW}G/ML": "GML", "G/ML": "GML", "CM2/ML": "CM2ML"}


def code_item(value: str, scheme: str, meaning: str) -> Dataset:
    """One Code Sequence item (CodeValue, CodingSchemeDesignator, CodeMeaning)."""
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def orientation_code_sequences(patient_position: str) -> tuple[Sequence, Sequence]:
    """PatientOrientationCodeSequence (with its modifier) and PatientGantryRelationshipCodeSequence for a
    PatientPosition (HFS, FFS, HFP, FFP); empty sequences for decubitus or unknown positions."""
    pos = (patient_position or "").strip().upper()
    if len(pos) != 3 or pos[:2] not in _GANTRY or pos[2] not in _MODIFIER:
        return Sequence([]), Sequence([])
    orientation = code_item(*_RECUMBENT)
    orientation.PatientOrientationModifierCodeSequence = Sequence([code_item(*_MODIFIER[pos[2]])])
    return Sequence([orientation]), Sequence([code_item(*_GANTRY[pos[:2]])])


def radionuclide_code(radionuclide: str) -> Dataset:
    """RadionuclideCodeSequence item of ``radionuclide`` (SCT code when DICOM has one, else SRT, else local)."""
    try:
        r = get_radionuclide(radionuclide)
    except (KeyError, ValueError):
        r = None
    if r is None or not r.dicom_codes:
        name = r.name if r is not None else radionuclide
        meaning = r.dicom_meaning if r is not None else radionuclide
        return code_item(name[:16], "99RECON", meaning)
    codes = dict((scheme, value) for value, scheme in r.dicom_codes)
    scheme = "SCT" if "SCT" in codes else next(iter(codes))
    return code_item(codes[scheme], scheme, r.dicom_meaning)


def real_world_value_mapping(unit: str, slope: float, first: int, last: int, label: str) -> Sequence:
    """RealWorldValueMappingSequence, one item: value = slope * stored (intercept 0) in ``unit``'s UCUM code.

    ``first``/``last`` are the stored values mapped (the pixel range); ``slope`` is stored as FD.
    """
    if unit not in RWV_UNITS:
        raise ValueError(f"no Real World Value unit code for {unit!r}; known: {', '.join(RWV_UNITS)}")
    value, meaning = RWV_UNITS[unit]
    item = Dataset()
    item.LUTExplanation = f"{label} in {unit}"
    item.LUTLabel = label[:16]
    item.MeasurementUnitsCodeSequence = Sequence([code_item(value, "UCUM", meaning)])
    item.RealWorldValueFirstValueMapped = int(first)
    item.RealWorldValueLastValueMapped = int(last)
    item.RealWorldValueIntercept = 0.0
    item.RealWorldValueSlope = float(slope)
    return Sequence([item])


def rwvm_unit(item: Dataset) -> str | None:
    """DICOM Units (BQML, CNTS, GML, ...) of one Real World Value Mapping item, from its UCUM code; None if
    the code is not one we know."""
    seq = item.get("MeasurementUnitsCodeSequence")
    if not seq:
        return None
    return _RWV_TO_UNIT.get(str(seq[0].get("CodeValue", "")).upper())


def set_patient_orientation_codes(ds: Dataset) -> None:
    """Empty Laterality and the NM/PET Patient Orientation code sequences from ``ds.PatientPosition``; the
    codes replace Patient Position where they exist (C.7.3.1: not both)."""
    ds.Laterality = None
    orient, gantry = orientation_code_sequences(str(ds.PatientPosition))
    ds.PatientOrientationCodeSequence = orient
    ds.PatientGantryRelationshipCodeSequence = gantry
    if len(orient):
        del ds.PatientPosition
