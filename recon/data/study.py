"""Typed study metadata: who the patient is, what was given, and where and when the data were acquired.

Readers fill these from their inputs (DICOM, HDF5); the physics, the
reconstruction and quantification read them as typed fields, never from a free
dict. Missing values are ``None`` (or ``""`` for identifiers).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

PATIENT_POSITIONS = ("HFS", "HFP", "FFS", "FFP", "HFDR", "HFDL", "FFDR", "FFDL", "")


def _optional_positive(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    v = float(value)
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be positive when given, got {value}")
    return v


@dataclass(frozen=True)
class PatientInfo:
    """The patient as the input describes them: weight (kg), height (m), sex ``"M" | "F" | "O"``."""

    weight_kg: float | None = None
    height_m: float | None = None
    sex: str | None = None
    patient_id: str = ""
    name: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "weight_kg", _optional_positive("weight_kg", self.weight_kg))
        object.__setattr__(self, "height_m", _optional_positive("height_m", self.height_m))
        if self.sex is not None:
            sex = str(self.sex).strip().upper()[:1] or None
            if sex is not None and sex not in ("M", "F", "O"):
                raise ValueError(f"sex must be 'M', 'F' or 'O', got {self.sex!r}")
            object.__setattr__(self, "sex", sex)


@dataclass(frozen=True)
class DoseInfo:
    """The administered radiopharmaceutical: activity (Bq) at ``injection_time``, radionuclide name."""

    radionuclide: str | None = None
    injected_activity_bq: float | None = None
    injection_time: datetime | None = None
    radiopharmaceutical: str = ""
    half_life_s: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "injected_activity_bq",
                           _optional_positive("injected_activity_bq", self.injected_activity_bq))
        object.__setattr__(self, "half_life_s", _optional_positive("half_life_s", self.half_life_s))
        if self.injection_time is not None and not isinstance(self.injection_time, datetime):
            raise TypeError(f"injection_time must be a datetime, got {type(self.injection_time).__name__}")


@dataclass(frozen=True)
class AcquisitionInfo:
    """Where and when: DICOM identifiers, the frame of reference, the start of the acquisition, equipment.

    ``patient_position`` is DICOM's Patient Position (0018,5100), e.g. ``"HFS"``
    (head first supine) or ``"FFS"``; ``""`` when unknown.
    """

    frame_of_reference_uid: str = ""
    study_instance_uid: str = ""
    series_instance_uid: str = ""
    start_time: datetime | None = None
    patient_position: str = ""
    manufacturer: str = ""
    model: str = ""
    source: str = ""

    def __post_init__(self) -> None:
        if self.start_time is not None and not isinstance(self.start_time, datetime):
            raise TypeError(f"start_time must be a datetime, got {type(self.start_time).__name__}")
        position = str(self.patient_position or "").strip().upper()
        object.__setattr__(self, "patient_position", position)
