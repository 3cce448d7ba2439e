"""Read an NM reconstruction stored as ONE multi-frame file (ImageType ... RECON TOMO): frames are slices.

Geometry (DICOM PS3.3 C.8.4.8 / C.8.4.10, NM Image and Detector modules):

* Image Position (Patient) (0020,0032) and Image Orientation (Patient)
  (0020,0037) are read from the first item of the Detector Information
  Sequence (0054,0022), else from the top level. IPP is the LPS centre of the
  first voxel of the first slice.
* Slice k (0-based, in Slice Vector (0054,0080) order: the frame whose
  SliceVector entry is k + 1) sits at IPP + k * step * normal, with normal =
  row direction x column direction and step = SpacingBetweenSlices
  (0018,0088), else SliceThickness (0018,0050). A negative
  SpacingBetweenSlices (allowed by older NM writers) puts the slices against
  the normal.
* Number of Slices (0054,0081), when given, must equal the number of frames.

Values. The Real World Value Mapping Sequence (0040,9096), the NM IOD's
place for them, comes first: its first item's slope and intercept, its unit
from MeasurementUnitsCodeSequence (UCUM ``Bq/ml`` -> Bq/mL, ``{SUVbw}g/ml`` or
``g/ml`` -> g/mL). Without it, RescaleSlope * stored + RescaleIntercept in
Units (0054,1001) when given (vendor files), else counts. Decay correction:
DecayCorrection (0054,1102) when given, else START (to SeriesDate/SeriesTime)
when Corrected Image (0028,0051) lists DECY, else NONE. The volume is mapped onto an
axis-aligned LPS grid (:func:`~recon.io.dicom.geometry.place_stack`).
"""
from __future__ import annotations

import copy
import logging
import math
import os
from pathlib import Path

import numpy as np
import pydicom
import pydicom.errors
from pydicom.dataset import Dataset

from recon.data.grid import Volume
from recon.io.dicom.codes import rwvm_unit
from recon.io.dicom.geometry import place_stack, vector
from recon.io.dicom.series import UNIT_NAMES, ImageSeries, series_info
from recon.io.dicom.series_header import DoseUnit, read_series_header
from recon.io.dicom.values import DicomFormatError, dcmread_checked, get_float, pixels_of, require, rescale_of, values_of

logger = logging.getLogger(__name__)

__all__ = ["find_nm_recon", "read_nm_recon"]


def _placement_source(ds: Dataset) -> Dataset:
    """The dataset holding IPP/IOP: the first Detector Information Sequence item when it has them, else ``ds``."""
    seq = ds.get("DetectorInformationSequence")
    if seq and len(seq) > 0 and "ImagePositionPatient" in seq[0] and "ImageOrientationPatient" in seq[0]:
        return seq[0]
    return ds


def _slice_order(ds: Dataset, n_frames: int, name: str) -> np.ndarray:
    """Frame index of each slice (0-based) from Slice Vector (0054,0080); frames in order without it."""
    declared = get_float(ds, "NumberOfSlices")
    if declared is not None and int(declared) != n_frames:
        raise DicomFormatError(
            f"{name}: NumberOfSlices (0054,0081) is {int(declared)} but NumberOfFrames (0028,0008) is {n_frames}"
        )
    if "SliceVector" not in ds or ds.SliceVector in (None, ""):
        return np.arange(n_frames)
    vec = np.asarray(values_of(ds.SliceVector), dtype=np.int64)
    if vec.size != n_frames or sorted(vec.tolist()) != list(range(1, n_frames + 1)):
        raise DicomFormatError(
            f"{name}: SliceVector (0054,0080) must number the {n_frames} frames 1..{n_frames} once each"
        )
    return np.argsort(vec, kind="stable")


def _slice_step_mm(ds: Dataset, name: str) -> float:
    step = get_float(ds, "SpacingBetweenSlices")
    if step is None or step == 0:
        step = get_float(ds, "SliceThickness")
    if step is None or step == 0:
        raise DicomFormatError(f"{name}: neither SpacingBetweenSlices (0018,0088) nor SliceThickness (0018,0050) "
                               "gives the distance between slices")
    return float(step)


def _value_mapping(ds: Dataset, name: str) -> tuple[float, float, str | None]:
    """(slope, intercept, DICOM Units or None) from the Real World Value Mapping Sequence, else the rescale."""
    seq = ds.get("RealWorldValueMappingSequence")
    if seq:
        item = seq[0]
        slope = get_float(item, "RealWorldValueSlope")
        if slope is None:
            raise DicomFormatError(f"{name}: RealWorldValueMappingSequence[0] has no RealWorldValueSlope (0040,9225)")
        intercept = get_float(item, "RealWorldValueIntercept")
        intercept = 0.0 if intercept is None else intercept
        if not (math.isfinite(slope) and slope != 0.0 and math.isfinite(intercept)):
            raise DicomFormatError(f"{name}: RealWorldValueMappingSequence[0] slope {slope} / intercept {intercept} "
                                   "(0040,9225/9224) must be finite with a non-zero slope")
        units = rwvm_unit(item)
        rescale = get_float(ds, "RescaleSlope")
        if rescale is not None and abs(rescale - slope) > 1e-6 * abs(slope):
            logger.warning("%s: RescaleSlope %g differs from the Real World Value slope %g; using the latter",
                           name, rescale, slope)
        if units is None:
            code = item.get("MeasurementUnitsCodeSequence")
            logger.warning("%s: Real World Value unit %r is not one recon knows; values read as given", name,
                           str(code[0].get("CodeValue", "")) if code else "")
        return float(slope), float(intercept), units
    slope, intercept = rescale_of(ds, name)
    return slope, intercept, None


def read_nm_recon(path: str | os.PathLike[str], *, dose_unit: DoseUnit = "auto") -> ImageSeries:
    """Read a multi-frame NM RECON TOMO file into an :class:`ImageSeries` (volume placed in LPS + SUV header).

    The volume's unit follows Units (0054,1001) (``"counts"`` when absent);
    its frame_of_reference_uid is the file's. The header has one per-slice
    entry (the file's), applied to every slice.
    """
    path = Path(path)
    name = path.name
    ds = dcmread_checked(os.fspath(path))
    modality = str(ds.get("Modality", "") or "")
    if modality and modality != "NM":
        raise DicomFormatError(f"{name}: Modality (0008,0060) is {modality!r}, expected 'NM'")
    image_type = [str(v).upper() for v in values_of(ds.get("ImageType", []) or [])]
    if len(image_type) < 3 or "RECON" not in image_type[2]:
        raise DicomFormatError(f"{name}: ImageType (0008,0008) {image_type} is not a reconstruction (RECON TOMO)")
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    rows, cols = int(require(ds, "Rows", f"{name}: ")), int(require(ds, "Columns", f"{name}: "))
    pixel_spacing = vector(ds, "PixelSpacing", 2, f"{name}: ")
    place = _placement_source(ds)
    where = f"{name}: DetectorInformationSequence[0]." if place is not ds else f"{name}: "
    ipp = vector(place, "ImagePositionPatient", 3, where)
    iop = vector(place, "ImageOrientationPatient", 6, where)
    order = _slice_order(ds, n_frames, name)
    step = _slice_step_mm(ds, name)

    pixels = np.asarray(pixels_of(ds, name), dtype=np.float64)
    if pixels.size != n_frames * rows * cols:
        raise DicomFormatError(f"{name}: PixelData holds {pixels.size} pixels, NumberOfFrames x Rows x Columns = "
                               f"{n_frames} x {rows} x {cols} (truncated?)")
    frames = pixels.reshape(n_frames, rows, cols)
    slope, intercept, rwv_units = _value_mapping(ds, name)
    stack = frames[order] * slope + intercept
    placed = place_stack(stack, ipp, iop, step, pixel_spacing)

    header_ds = copy.deepcopy(ds)
    del header_ds.PixelData
    if rwv_units is not None:
        header_ds.Units = rwv_units
    if "DecayCorrection" not in header_ds:
        corrected = [str(v).upper() for v in values_of(header_ds.get("CorrectedImage", []) or [])]
        header_ds.DecayCorrection = "START" if "DECY" in corrected and rwv_units is not None else "NONE"
    header = read_series_header([header_ds], dose_unit=dose_unit)
    units = header.units or "CNTS"
    info = series_info(ds, units, iop)
    info["rescale_slope"], info["rescale_intercept"] = slope, intercept
    volume = Volume(placed.data, placed.grid, UNIT_NAMES.get(units, units), dict(info),
                    info["frame_of_reference_uid"])
    logger.info("read NM reconstruction %s: %d slices, grid %s", name, n_frames, placed.grid.shape)
    return ImageSeries(volume, header, placed.slice_axis, placed.slice_order, (os.fspath(path),), info)


def find_nm_recon(directory: str | os.PathLike[str], series_uid: str | None = None) -> Path | None:
    """The multi-frame NM file in ``directory`` (of ``series_uid`` when given); None when there is none.

    Raises DicomFormatError when several NM multi-frame series are there and ``series_uid`` picks none
    (``recon spect --dicom-out`` writes the Bq/mL volume and the SUV map: name the file).
    """
    d = Path(directory)
    if not d.is_dir():
        return None
    found: list[tuple[Path, str]] = []
    for p in sorted(d.iterdir()):
        if not p.is_file() or p.name.startswith("."):
            continue
        try:
            ds = pydicom.dcmread(os.fspath(p), stop_before_pixels=True)
        except (pydicom.errors.InvalidDicomError, OSError):
            continue
        if str(ds.get("Modality", "")) == "NM" and int(ds.get("NumberOfFrames", 1) or 1) > 1:
            found.append((p, str(ds.get("SeriesInstanceUID", ""))))
    if series_uid is not None:
        found = [f for f in found if f[1] == series_uid]
    if len(found) > 1:
        raise DicomFormatError(f"{d} holds {len(found)} NM multi-frame files ({', '.join(p.name for p, _ in found)}); "
                               "name the file, or pass series_uid")
    return found[0][0] if found else None
