"""What the PET and NM image writers share: the patient/study/series/frame-of-reference base, pixel
quantisation, and the directory that appears whole (written beside it, then renamed)."""
from __future__ import annotations

import copy
import datetime as _dt
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from recon.data.grid import Volume
from recon.data.study import PatientInfo
from recon.io.dicom.values import format_ds
from recon.io.dicom.write_common import fill_patient_study, write_patient

__all__ = ["SeriesFacts", "atomic_directory", "quantise", "series_base"]


@dataclass(frozen=True)
class SeriesFacts:
    """Series-level facts of a written image object: who, which study, where, when the values refer to."""

    reference: Dataset | None = None
    patient: PatientInfo | None = None
    study_instance_uid: str = ""
    frame_of_reference_uid: str | None = None
    series_description: str = "recon quantitative"
    series_number: int = 1001
    decay_reference_time: _dt.datetime | None = None
    patient_position: str = ""


def series_base(volume: Volume, modality: str, facts: SeriesFacts, now: _dt.datetime) -> Dataset:
    """Patient, study, series, frame-of-reference and equipment attributes of a new series.

    Patient and study come from ``facts.reference`` (the input header) with the typed ``patient`` and
    ``study_instance_uid`` over them. SeriesDate/SeriesTime are the decay reference time when given (where
    QIBA SUV readers look for it). FrameOfReferenceUID: the given one, else the volume's, else the
    reference's, else new.
    """
    ref = facts.reference
    base = Dataset()
    base.SpecificCharacterSet = "ISO_IR 100"
    fill_patient_study(base, ref, now)
    if facts.patient is not None:
        write_patient(base, facts.patient)
    if facts.study_instance_uid:
        base.StudyInstanceUID = facts.study_instance_uid
    if ref is not None:
        for kw in ("AcquisitionDate", "AcquisitionTime", "SeriesDate", "SeriesTime", "PatientPosition"):
            if kw in ref and ref[kw].value not in (None, ""):
                setattr(base, kw, copy.deepcopy(ref[kw].value))
    if facts.patient_position:
        base.PatientPosition = facts.patient_position
    if facts.decay_reference_time is not None:
        base.SeriesDate = facts.decay_reference_time.strftime("%Y%m%d")
        base.SeriesTime = facts.decay_reference_time.strftime("%H%M%S.%f")
    base.Modality = modality
    base.SeriesInstanceUID = generate_uid()
    base.SeriesNumber = int(facts.series_number)
    base.SeriesDescription = facts.series_description
    for kw, fmt in (("SeriesDate", "%Y%m%d"), ("SeriesTime", "%H%M%S"), ("AcquisitionDate", "%Y%m%d"),
                    ("AcquisitionTime", "%H%M%S")):  # fmt: skip
        if kw not in base:
            setattr(base, kw, now.strftime(fmt))
    if "PatientPosition" not in base or not base.PatientPosition:
        base.PatientPosition = "HFS"
    base.Manufacturer = "recon"
    base.FrameOfReferenceUID = (facts.frame_of_reference_uid or volume.frame_of_reference_uid
                                or (str(ref.get("FrameOfReferenceUID", "")) if ref is not None else "")
                                or generate_uid())
    base.PositionReferenceIndicator = ""
    base.ContentDate = now.strftime("%Y%m%d")
    base.ContentTime = now.strftime("%H%M%S")
    base.InstanceNumber = 1
    return base


def quantise(values: np.ndarray, unsigned: bool) -> tuple[np.ndarray, float]:
    """16-bit stored values and one slope with |v - q * slope| <= slope / 2 (slope as read back from DS).

    ``unsigned``: uint16 over [0, max] (values must be >= 0), else int16 over [-max|v|, max|v|].
    """
    top = float(np.abs(values).max()) if values.size else 0.0
    dtype, limit = (np.uint16, 65535) if unsigned else (np.int16, 32767)
    if unsigned and values.size and float(values.min()) < 0:
        raise ValueError("unsigned storage needs values >= 0")
    if top == 0.0:
        return np.zeros(values.shape, dtype=dtype), 1.0
    slope = float(format_ds(top / limit))
    q = np.clip(np.rint(values / slope), 0 if unsigned else -limit - 1, limit)
    return q.astype(dtype), slope


@contextmanager
def atomic_directory(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary directory beside ``target``; on a clean exit it becomes ``target`` (which must be
    absent or an empty directory), on an error it is removed."""
    out = Path(target)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} is not an empty directory; refusing to write DICOM files into it")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"output directory {out.parent} does not exist")
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        yield tmp
        if out.exists():
            if any(out.iterdir()):
                raise FileExistsError(f"{out} filled up while writing; refusing to overwrite")
            out.rmdir()
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
