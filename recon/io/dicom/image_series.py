"""Reconstructed PET volumes as standard PET Image Storage series, and back (NM: one multi-frame file,
:mod:`recon.io.dicom.nm_recon_write`).

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

from recon.data.grid import Volume
from recon.data.study import DoseInfo, PatientInfo
from recon.io.dicom.nm_recon import find_nm_recon, read_nm_recon
from recon.io.dicom.series import read_axial_series
from recon.io.dicom.values import DicomFormatError, format_ds
from recon.io.dicom.codes import radionuclide_code, set_patient_orientation_codes
from recon.io.dicom.image_base import SeriesFacts, atomic_directory, quantise, series_base
from recon.io.dicom.write_common import PET_IMAGE_STORAGE, new_instance

logger = logging.getLogger(__name__)

_UNIT_TO_DICOM = {"bq/ml": "BQML", "bqml": "BQML", "counts": "CNTS", "cnts": "CNTS", "g/ml": "GML", "gml": "GML"}
_DICOM_TO_UNIT = {"BQML": "Bq/mL", "CNTS": "counts", "GML": "g/mL", "CM2ML": "cm2/mL", "PROPCNTS": "counts"}


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


def _dose_sequence(dose: DoseInfo, reference: Dataset | None) -> Sequence:
    """RadiopharmaceuticalInformationSequence from the typed dose (PET: RadionuclideTotalDose in Bq),
    over the reference's item when it has one; the radionuclide code from ``dose.radionuclide``."""
    if reference is not None and reference.get("RadiopharmaceuticalInformationSequence"):
        seq = copy.deepcopy(reference.RadiopharmaceuticalInformationSequence)
    else:
        seq = Sequence([Dataset()])
    item = seq[0]
    if dose.radionuclide:
        item.RadionuclideCodeSequence = Sequence([radionuclide_code(dose.radionuclide)])
    if dose.radiopharmaceutical:
        item.Radiopharmaceutical = dose.radiopharmaceutical
    if dose.injected_activity_bq is not None:
        item.RadionuclideTotalDose = format_ds(dose.injected_activity_bq)
    if dose.injection_time is not None:
        item.RadiopharmaceuticalStartDateTime = dose.injection_time.strftime("%Y%m%d%H%M%S.%f")
        item.RadiopharmaceuticalStartTime = dose.injection_time.strftime("%H%M%S.%f")
    if dose.half_life_s is not None:
        item.RadionuclideHalfLife = format_ds(dose.half_life_s)
    return seq


def _pt_base(base: Dataset, units: str, decay_correction: str, corrected_image: tuple[str, ...], nz: int,
             frame_duration_s: float | None, decay_reference_time: _dt.datetime | None,
             decay_factor: float | None) -> None:
    """PET Series, PET Isotope, PET Image and NM/PET Patient Orientation attributes (PS3.3 C.8.9)."""
    base.ImageType = ["ORIGINAL", "PRIMARY"]
    base.SeriesType = ["STATIC", "IMAGE"]
    base.Units = units
    base.CountsSource = "EMISSION"
    base.NumberOfSlices = nz
    base.CorrectedImage = list(corrected_image)
    base.DecayCorrection = decay_correction
    if decay_correction != "NONE":
        base.DecayFactor = format_ds(decay_factor if decay_factor is not None else 1.0)
        if decay_reference_time is not None:
            base.DecayCorrectionDateTime = decay_reference_time.strftime("%Y%m%d%H%M%S.%f")
    base.RandomsCorrectionMethod = "NONE"
    base.ReconstructionMethod = "OSEM"
    base.CollimatorType = "NONE"
    base.FrameReferenceTime = format_ds(0.0)
    base.PrimaryPromptsCountsAccumulated = 0
    if frame_duration_s is not None:
        base.ActualFrameDuration = int(round(frame_duration_s * 1000.0))
    base.RescaleIntercept = format_ds(0.0)
    set_patient_orientation_codes(base)


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
    decay_factor: float | None = None,
    dose: DoseInfo | None = None,
) -> list[Path]:
    """Write ``volume`` as a PET Image series (one file per slice) in the new directory ``directory``
    (absent or empty; written beside it and renamed); returns the paths.

    NM volumes are written as ONE multi-frame RECON TOMO file by
    :func:`~recon.io.dicom.nm_recon_write.write_nm_recon`; ``modality='NM'``
    is refused here. Patient and study attributes come from ``reference`` (e.g.
    the input header) when given; the series is new. The
    RadiopharmaceuticalInformationSequence is ``radiopharmaceutical``, else the
    reference's. FrameOfReferenceUID: ``frame_of_reference_uid``, else the
    volume's, else the reference's, else new. ``unit`` defaults from the volume
    (Bq/mL -> BQML). ``decay_reference_time`` (with DecayCorrection START/ADMIN)
    is the time the values are decay-corrected to: DecayCorrectionDateTime
    (0018,9701) and SeriesDate/SeriesTime (where QIBA SUV readers look).
    ``decay_factor`` is Decay Factor (0054,1321), the factor the decay
    correction scaled the values by (required with START/ADMIN; 1 when not given).
    ``patient`` (weight kg, height m, sex) and ``dose`` (injected activity Bq, injection date-time,
    half-life s, radionuclide, radiopharmaceutical) write what SUV tools read: PatientWeight,
    PatientSize, PatientSex and the RadiopharmaceuticalInformationSequence (``dose`` and
    ``radiopharmaceutical`` together are refused).
    """
    modality = modality.upper()
    if modality == "NM":
        raise ValueError("NM volumes are written as one multi-frame file: use write_nm_recon")
    if modality != "PT":
        raise ValueError(f"modality must be 'PT', got {modality!r}")
    unit_text = unit if unit is not None else volume.unit
    units = _UNIT_TO_DICOM.get(unit_text.strip().lower())
    if units is None:
        raise ValueError(f"cannot store unit {unit_text!r} as DICOM Units (0054,1001); known: Bq/mL, counts, g/mL")
    if decay_correction not in ("NONE", "START", "ADMIN"):
        raise ValueError(f"decay_correction must be NONE, START or ADMIN, got {decay_correction!r}")
    host = volume.to_host()
    data = np.asarray(host.data, dtype=np.float64)
    nz, ny, nx = host.grid.shape
    dz, dy, dx = host.grid.spacing_mm
    ox, oy, oz = host.grid.origin_mm

    now = _dt.datetime.now()
    facts = SeriesFacts(reference, patient, study_instance_uid, frame_of_reference_uid, series_description,
                        series_number, decay_reference_time)
    base = series_base(volume, "PT", facts, now)
    if radiopharmaceutical is not None and dose is not None:
        raise ValueError("give the radiopharmaceutical either as dose (typed) or as radiopharmaceutical, not both")
    if dose is not None:
        base.RadiopharmaceuticalInformationSequence = _dose_sequence(dose, reference)
    elif radiopharmaceutical is not None:
        base.RadiopharmaceuticalInformationSequence = _radiopharmaceutical_sequence(radiopharmaceutical)
    elif reference is not None and reference.get("RadiopharmaceuticalInformationSequence"):
        base.RadiopharmaceuticalInformationSequence = copy.deepcopy(reference.RadiopharmaceuticalInformationSequence)
    else:
        base.RadiopharmaceuticalInformationSequence = Sequence([])
    if decay_correction != "NONE" and decay_factor is None:
        logger.warning("DecayCorrection %s without a decay factor: Decay Factor (0054,1321) written as 1",
                       decay_correction)
    _pt_base(base, units, decay_correction, corrected_image, nz, frame_duration_s, decay_reference_time,
             decay_factor)
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

    paths: list[Path] = []
    out_dir = Path(directory)
    with atomic_directory(out_dir) as tmp:
        for k in range(nz):
            stored, slope = quantise(data[k], unsigned=False)
            ds = copy.deepcopy(base)
            new_instance(ds, PET_IMAGE_STORAGE)
            ds.InstanceNumber = k + 1
            ds.ImageIndex = k + 1
            ds.ImagePositionPatient = [format_ds(ox), format_ds(oy), format_ds(oz + k * dz)]
            ds.SliceLocation = format_ds(oz + k * dz)
            ds.RescaleSlope = format_ds(slope)
            ds.LargestImagePixelValue = int(stored.max())
            ds["LargestImagePixelValue"].VR = "SS"
            ds.SmallestImagePixelValue = int(stored.min())
            ds["SmallestImagePixelValue"].VR = "SS"
            ds.PixelData = stored.astype("<i2").tobytes()
            ds.save_as(tmp / f"slice_{k + 1:04d}.dcm", enforce_file_format=True)
            paths.append(out_dir / f"slice_{k + 1:04d}.dcm")
    logger.info("wrote %d PT slices (%s) to %s", nz, units, out_dir)
    return paths


def read_volume_series(directory: str | Path, *, series_uid: str | None = None) -> Volume:
    """Read a PET or NM image series (one slice per file, per-slice rescale; or a directory with one NM
    multi-frame file, read by :func:`~recon.io.dicom.nm_recon.read_nm_recon`) into a Volume (no SUV header:
    :func:`~recon.io.dicom.series.read_image_series` gives one).

    The unit follows Units (0054,1001): BQML -> 'Bq/mL', CNTS -> 'counts',
    GML -> 'g/mL'; metadata holds the first slice's header (no pixels), the
    UIDs and the per-slice slopes.
    """
    nm_file = find_nm_recon(directory, series_uid)
    if nm_file is not None:
        return read_nm_recon(nm_file).volume
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
