"""Reconstructed volumes as standard DICOM image series (PET or NM Image Storage), and back.

One single-frame file per axial slice, rows along +x, columns along +y
(ImageOrientationPatient 1\\0\\0\\0\\1\\0), Image Position (Patient) the LPS
centre of the slice's first voxel. Values are stored as signed 16-bit
integers with a per-slice RescaleSlope (intercept 0): slope_k =
max|v_k| / 32767, so every voxel comes back within slope_k / 2. Units
(0054,1001) carries the unit (BQML for Bq/mL).
"""
from __future__ import annotations

import copy
import datetime as _dt
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import generate_uid

from recon.data.grid import Volume
from recon.data.study import PatientInfo
from recon.io.dicom.series import read_axial_series
from recon.io.dicom.values import DicomFormatError, format_ds
from recon.io.dicom.write_common import (
    NM_IMAGE_STORAGE,
    PET_IMAGE_STORAGE,
    fill_patient_study,
    new_instance,
    write_patient,
)

logger = logging.getLogger(__name__)

_SOP_CLASS = {"PT": PET_IMAGE_STORAGE, "NM": NM_IMAGE_STORAGE}
_UNIT_TO_DICOM = {"bq/ml": "BQML", "bqml": "BQML", "counts": "CNTS", "cnts": "CNTS", "g/ml": "GML", "gml": "GML"}
_DICOM_TO_UNIT = {"BQML": "Bq/mL", "CNTS": "counts", "GML": "g/mL", "CM2ML": "cm2/mL", "PROPCNTS": "counts"}
_INT16_MAX = 32767


def _radiopharmaceutical_sequence(value: Dataset | Sequence | Mapping[str, Any]) -> Sequence:
    """A RadiopharmaceuticalInformationSequence from a Dataset, a Sequence, or a mapping keyword -> value."""
    if isinstance(value, Sequence):
        return copy.deepcopy(value)
    if isinstance(value, Dataset):
        return Sequence([copy.deepcopy(value)])
    item = Dataset()
    for keyword, v in value.items():
        try:
            vr = dictionary_VR(keyword)
        except (KeyError, ValueError):
            raise ValueError(f"radiopharmaceutical: {keyword!r} is not a DICOM keyword") from None
        if vr == "DS":
            v = format_ds(v)
        elif vr == "SQ" and not isinstance(v, Sequence):
            v = Sequence([copy.deepcopy(x) for x in (v if isinstance(v, (list, tuple)) else [v])])
        else:
            v = copy.deepcopy(v)
        setattr(item, keyword, v)
    return Sequence([item])


def _quantise(values: np.ndarray) -> tuple[np.ndarray, float]:
    """int16 values and the slope (as it reads back from its DS string) with |v - q * slope| <= slope / 2."""
    top = float(np.abs(values).max()) if values.size else 0.0
    if top == 0.0:
        return np.zeros(values.shape, dtype=np.int16), 1.0
    slope = float(format_ds(top / _INT16_MAX))
    q = np.clip(np.rint(values / slope), -_INT16_MAX - 1, _INT16_MAX)
    return q.astype(np.int16), slope


def write_volume_series(
    volume: Volume,
    directory: str | Path,
    *,
    modality: str = "PT",
    reference: Dataset | None = None,
    radiopharmaceutical: Dataset | Sequence | Mapping[str, Any] | None = None,
    frame_of_reference_uid: str | None = None,
    unit: str | None = None,
    series_description: str = "recon quantitative",
    series_number: int = 1001,
    decay_correction: str = "NONE",
    corrected_image: tuple[str, ...] = ("ATTN", "SCAT", "DECY"),
    frame_duration_s: float | None = None,
    decay_reference_time: _dt.datetime | None = None,
    patient: PatientInfo | None = None,
    study_instance_uid: str = "",
) -> list[Path]:
    """Write ``volume`` as a DICOM image series (one file per slice) in ``directory``; returns the paths.

    ``modality`` 'PT' (PET Image Storage) or 'NM' (NM Image Storage, RECON
    TOMO). Patient and study attributes come from ``reference`` (e.g. the NM
    or PET input header) when given; the series is new (new SeriesInstanceUID).
    The RadiopharmaceuticalInformationSequence is ``radiopharmaceutical``, else
    the reference's. FrameOfReferenceUID: ``frame_of_reference_uid`` (the
    CT's), else the volume's, else the reference's, else new. ``unit``
    defaults from the volume (Bq/mL -> BQML). ``decay_reference_time`` (with
    DecayCorrection START) is the time the values are decay-corrected to: it is
    written as DecayCorrectionDateTime (0018,9701) and as SeriesDate/SeriesTime,
    where SUV readers (QIBA) look for it. ``patient`` (typed) and
    ``study_instance_uid`` override the reference's values where set.
    """
    modality = modality.upper()
    if modality not in _SOP_CLASS:
        raise ValueError(f"modality must be 'PT' or 'NM', got {modality!r}")
    unit_text = unit if unit is not None else volume.unit
    units = _UNIT_TO_DICOM.get(unit_text.strip().lower())
    if units is None:
        raise ValueError(f"cannot store unit {unit_text!r} as DICOM Units (0054,1001); known: Bq/mL, counts, g/mL")
    if decay_correction not in ("NONE", "START", "ADMIN"):
        raise ValueError(f"decay_correction must be NONE, START or ADMIN, got {decay_correction!r}")
    host = volume.to_host()
    data = np.asarray(host.data, dtype=np.float64)
    grid = host.grid
    nz, ny, nx = grid.shape
    dz, dy, dx = grid.spacing_mm
    ox, oy, oz = grid.origin_mm
    out_dir = Path(directory)
    out_dir.mkdir(parents=True, exist_ok=True)
    existing = sorted(out_dir.glob("*.dcm"))
    if existing:
        raise FileExistsError(f"{out_dir} already holds {len(existing)} .dcm files; choose an empty directory")

    now = _dt.datetime.now()
    base = Dataset()
    base.SpecificCharacterSet = "ISO_IR 100"
    fill_patient_study(base, reference, now)
    if patient is not None:
        write_patient(base, patient)
    if study_instance_uid:
        base.StudyInstanceUID = study_instance_uid
    if reference is not None:
        for kw in ("AcquisitionDate", "AcquisitionTime", "SeriesDate", "SeriesTime", "PatientPosition"):
            if kw in reference and reference[kw].value not in (None, ""):
                setattr(base, kw, copy.deepcopy(reference[kw].value))
    if decay_reference_time is not None:
        base.SeriesDate = decay_reference_time.strftime("%Y%m%d")
        base.SeriesTime = decay_reference_time.strftime("%H%M%S.%f")
        base.DecayCorrectionDateTime = decay_reference_time.strftime("%Y%m%d%H%M%S.%f")
    base.Modality = modality
    base.SeriesInstanceUID = generate_uid()
    base.SeriesNumber = int(series_number)
    base.SeriesDescription = series_description
    for kw, fmt in (("SeriesDate", "%Y%m%d"), ("SeriesTime", "%H%M%S"), ("AcquisitionDate", "%Y%m%d"),
                    ("AcquisitionTime", "%H%M%S")):  # fmt: skip
        if kw not in base:
            setattr(base, kw, now.strftime(fmt))
    if "PatientPosition" not in base:
        base.PatientPosition = "HFS"
    base.Manufacturer = "recon"
    if frame_of_reference_uid:
        base.FrameOfReferenceUID = frame_of_reference_uid
    elif volume.frame_of_reference_uid:
        base.FrameOfReferenceUID = volume.frame_of_reference_uid
    elif reference is not None and reference.get("FrameOfReferenceUID"):
        base.FrameOfReferenceUID = str(reference.FrameOfReferenceUID)
    else:
        base.FrameOfReferenceUID = generate_uid()
    base.PositionReferenceIndicator = ""
    if radiopharmaceutical is not None:
        base.RadiopharmaceuticalInformationSequence = _radiopharmaceutical_sequence(radiopharmaceutical)
    elif reference is not None and reference.get("RadiopharmaceuticalInformationSequence"):
        base.RadiopharmaceuticalInformationSequence = copy.deepcopy(reference.RadiopharmaceuticalInformationSequence)
    base.Units = units
    base.DecayCorrection = decay_correction
    base.CorrectedImage = list(corrected_image)
    base.NumberOfSlices = nz
    if modality == "PT":
        base.ImageType = ["ORIGINAL", "PRIMARY"]
        base.SeriesType = ["STATIC", "IMAGE"]
        base.CountsSource = "EMISSION"
        base.FrameReferenceTime = format_ds(0.0)
        base.ReconstructionMethod = "OSEM"
        if frame_duration_s is not None:
            base.ActualFrameDuration = int(round(frame_duration_s * 1000.0))
    else:
        base.ImageType = ["ORIGINAL", "PRIMARY", "RECON TOMO", "EMISSION"]
        base.NumberOfFrames = 1
        base.FrameIncrementPointer = Tag(0x0054, 0x0080)  # Slice Vector
        if frame_duration_s is not None:
            base.ActualFrameDuration = int(round(frame_duration_s * 1000.0))
    base.ContentDate = now.strftime("%Y%m%d")
    base.ContentTime = now.strftime("%H%M%S")
    base.SamplesPerPixel = 1
    base.PhotometricInterpretation = "MONOCHROME2"
    base.Rows = ny
    base.Columns = nx
    base.BitsAllocated = 16
    base.BitsStored = 16
    base.HighBit = 15
    base.PixelRepresentation = 1
    base.PixelSpacing = [format_ds(dy), format_ds(dx)]  # (between rows, between columns)
    base.SliceThickness = format_ds(dz)
    base.SpacingBetweenSlices = format_ds(dz)
    base.ImageOrientationPatient = [format_ds(v) for v in (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)]
    base.RescaleIntercept = format_ds(0.0)
    base.RescaleType = units if modality == "PT" else "US"

    paths: list[Path] = []
    for k in range(nz):
        stored, slope = _quantise(data[k])
        ds = copy.deepcopy(base)
        new_instance(ds, _SOP_CLASS[modality])
        ds.InstanceNumber = k + 1
        if modality == "PT":
            ds.ImageIndex = k + 1
        else:
            ds.SliceVector = [k + 1]
        ds.ImagePositionPatient = [format_ds(ox), format_ds(oy), format_ds(oz + k * dz)]
        ds.SliceLocation = format_ds(oz + k * dz)
        ds.RescaleSlope = format_ds(slope)
        ds.LargestImagePixelValue = int(stored.max())
        ds["LargestImagePixelValue"].VR = "SS"
        ds.SmallestImagePixelValue = int(stored.min())
        ds["SmallestImagePixelValue"].VR = "SS"
        ds.PixelData = stored.astype("<i2").tobytes()
        path = out_dir / f"slice_{k + 1:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    logger.info("wrote %d %s slices (%s) to %s", nz, modality, units, out_dir)
    return paths


def read_volume_series(directory: str | Path, *, series_uid: str | None = None) -> Volume:
    """Read a PET or NM image series (one slice per file, per-slice rescale) into a Volume (no SUV header:
    :func:`~recon.io.dicom.series.read_image_series` gives one).

    The unit follows Units (0054,1001): BQML -> 'Bq/mL', CNTS -> 'counts',
    GML -> 'g/mL'; metadata holds the first slice's header (no pixels), the
    UIDs and the per-slice slopes.
    """
    series = read_axial_series(directory, modalities=("PT", "NM"), series_uid=series_uid)
    first = series.datasets[0]
    units = str(first.get("Units", "") or "").upper()
    if units and units not in _DICOM_TO_UNIT:
        raise DicomFormatError(f"unknown Units (0054,1001) {units!r}")
    unit = _DICOM_TO_UNIT.get(units, "unknown")
    metadata = {
        "units": units,
        "modality": str(first.get("Modality", "")),
        "series_instance_uid": str(first.get("SeriesInstanceUID", "")),
        "study_instance_uid": str(first.get("StudyInstanceUID", "")),
        "frame_of_reference_uid": str(first.get("FrameOfReferenceUID", "")),
        "rescale_slopes": series.slopes.copy(),
        "dicom_header": copy.deepcopy(first),
    }
    return Volume(series.data, series.grid, unit=unit, metadata=metadata,
                  frame_of_reference_uid=metadata["frame_of_reference_uid"])
