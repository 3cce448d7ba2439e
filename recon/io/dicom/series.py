"""One reader for series of single-slice image files (CT, PT, NM image series): group, sort, check, stack.

Files are grouped by SeriesInstanceUID (one series per call: pass
``series_uid`` when a directory holds several), sorted along the slice
normal (ImageOrientationPatient row x column), and checked: one
orientation, pixel spacing and matrix; no duplicated positions; uniform
spacing (a gap is reported as missing slices); no in-plane shifts (gantry
tilt); and, when Number of Slices (0054,0081) says more slices than there
are files, the series is refused as incomplete. Each slice's
RescaleSlope/RescaleIntercept is applied. The stack is mapped onto an
axis-aligned LPS grid by :func:`recon.io.dicom.geometry.place_stack`.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from recon.data.grid import ImageGrid, Volume
from recon.data.series_header import SeriesHeader
from recon.io.dicom.geometry import place_stack, vector
from recon.io.dicom.series_header import DoseUnit, read_series_header
from recon.io.dicom.values import DicomFormatError, dcmread_checked, get_float, pixels_of, rescale_of

logger = logging.getLogger(__name__)

__all__ = ["AxialSeries", "ImageSeries", "UNIT_NAMES", "read_axial_series", "read_image_series"]

_ORIENTATION_TOL = 1e-4


@dataclass(frozen=True)
class AxialSeries:
    """A series read from disk: values (z, y, x) float32 after rescale on an LPS grid.

    ``datasets``, ``files`` and ``slopes`` are in header order (sorted along
    the slice normal; datasets without pixel data); ``slice_axis`` is the
    volume axis the slices lie along and ``slice_order[i]`` the header index
    of volume index ``i`` along it.
    """

    data: np.ndarray
    grid: ImageGrid
    datasets: tuple[Dataset, ...]
    files: tuple[Path, ...]
    slopes: np.ndarray
    slice_axis: int
    slice_order: tuple[int, ...]


def _files_in(directory: Path, recursive: bool) -> list[Path]:
    if directory.is_file():
        return [directory]
    if not directory.is_dir():
        raise FileNotFoundError(f"no such DICOM series directory: {directory}")
    it = directory.rglob("*") if recursive else directory.iterdir()
    return sorted(p for p in it if p.is_file() and not p.name.startswith("."))


def _image_headers(paths: list[Path], modalities: tuple[str, ...] | None) -> list[tuple[Path, Dataset]]:
    out = []
    for p in paths:
        try:
            ds = pydicom.dcmread(os.fspath(p), stop_before_pixels=True)
        except (InvalidDicomError, OSError) as exc:
            logger.debug("skipping %s: %s", p, exc)
            continue
        if "Rows" not in ds:
            logger.debug("skipping %s: not an image (%s)", p, ds.get("Modality", "?"))
            continue
        if modalities is not None and str(ds.get("Modality", "")).upper() not in modalities:
            continue
        out.append((p, ds))
    return out


def _one_series(items: list[tuple[Path, Dataset]], directory: Path, series_uid: str | None,
                modalities: tuple[str, ...] | None) -> list[tuple[Path, Dataset]]:
    if not items:
        what = f" with Modality in {modalities}" if modalities else ""
        raise DicomFormatError(f"no DICOM image files{what} in {directory}")
    by_uid: dict[str, list[tuple[Path, Dataset]]] = {}
    for p, ds in items:
        by_uid.setdefault(str(ds.get("SeriesInstanceUID", "")), []).append((p, ds))
    if series_uid is not None:
        if series_uid not in by_uid:
            raise DicomFormatError(f"SeriesInstanceUID {series_uid} not in {directory}; found {sorted(by_uid)}")
        return by_uid[series_uid]
    if len(by_uid) > 1:
        desc = {u: (str(v[0][1].get("SeriesDescription", "")), len(v)) for u, v in by_uid.items()}
        raise DicomFormatError(
            f"{directory} holds {len(by_uid)} series (SeriesInstanceUID: description, files): {desc}; "
            "pass series_uid to choose one"
        )
    return next(iter(by_uid.values()))


def _check_consistent(items: list[tuple[Path, Dataset]]) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    p0, ds0 = items[0]
    iop0 = vector(ds0, "ImageOrientationPatient", 6, f"{p0.name}: ")
    ps0 = vector(ds0, "PixelSpacing", 2, f"{p0.name}: ")
    shape0 = (int(ds0.Rows), int(ds0.Columns))
    for key in ("Units", "DecayCorrection", "FrameOfReferenceUID"):
        vals = {str(ds.get(key, None)) for _, ds in items}
        if len(vals) > 1:
            raise DicomFormatError(f"{key} differs between files of the series: {sorted(vals)}")
    for p, ds in items[1:]:
        iop = vector(ds, "ImageOrientationPatient", 6, f"{p.name}: ")
        if not np.allclose(iop, iop0, atol=_ORIENTATION_TOL):
            raise DicomFormatError(f"{p.name}: ImageOrientationPatient {iop.tolist()} differs from {iop0.tolist()}")
        ps = vector(ds, "PixelSpacing", 2, f"{p.name}: ")
        if not np.allclose(ps, ps0, rtol=1e-4, atol=1e-5):
            raise DicomFormatError(f"{p.name}: PixelSpacing {ps.tolist()} differs from {ps0.tolist()}")
        if (int(ds.Rows), int(ds.Columns)) != shape0:
            raise DicomFormatError(f"{p.name}: matrix {int(ds.Rows)}x{int(ds.Columns)} differs from {shape0}")
    return iop0, ps0, shape0


def _check_complete(items: list[tuple[Path, Dataset]]) -> None:
    """Refuse a series whose NumberOfSlices (0054,0081) counts more slices than there are files."""
    declared = get_float(items[0][1], "NumberOfSlices")
    if declared is not None and int(declared) > len(items):
        ds0 = items[0][1]
        raise DicomFormatError(
            f"incomplete series {ds0.get('SeriesInstanceUID', '?')} ({ds0.get('SeriesDescription', '')!r}): "
            f"NumberOfSlices (0054,0081) is {int(declared)} but {len(items)} slice file(s) are present"
        )


def _slice_step(items: list[tuple[Path, Dataset]], positions: np.ndarray, dist: np.ndarray, normal: np.ndarray,
                pixel_spacing: np.ndarray) -> float:
    """Uniform distance between slices along the normal (mm), checking duplicates, gaps and in-plane shifts."""
    if len(items) == 1:
        ds0 = items[0][1]
        step = get_float(ds0, "SpacingBetweenSlices") or get_float(ds0, "SliceThickness") or 0.0
        if step <= 0:
            raise DicomFormatError(f"{items[0][0].name}: a single slice needs SliceThickness (0018,0050)")
        return float(step)
    gaps = np.diff(dist)
    if np.any(gaps < 1e-3):
        i = int(np.argmin(gaps))
        raise DicomFormatError(
            f"two files at the same slice position {dist[i]:.3f} mm ({items[i][0].name}, {items[i + 1][0].name}):"
            " a dynamic/gated series or duplicated files; pass one time frame"
        )
    step = float(np.median(gaps))
    bad = np.abs(gaps - step) > max(0.01 * step, 1e-3)
    if np.any(bad):
        i = int(np.argmax(bad))
        n_missing = int(round(gaps[i] / step)) - 1
        exact = n_missing >= 1 and abs(gaps[i] - (n_missing + 1) * step) < 0.01 * step
        what = f"{n_missing} slice(s) missing" if exact else "irregular slice spacing"
        raise DicomFormatError(
            f"slice spacing is not uniform: {what} between {items[i][0].name} and {items[i + 1][0].name}: "
            f"gap {gaps[i]:.3f} mm, spacing {step:.3f} mm"
        )
    inplane = (positions - positions[0]) - np.outer(dist - dist[0], normal)
    if np.abs(inplane).max() > 0.01 * min(pixel_spacing):
        raise DicomFormatError("slices are shifted in-plane relative to each other (ImagePositionPatient): "
                               "gantry tilt is not supported")
    return float((dist[-1] - dist[0]) / (len(dist) - 1))


def read_axial_series(
    directory: str | os.PathLike[str],
    *,
    modalities: tuple[str, ...] | None = None,
    series_uid: str | None = None,
    recursive: bool = False,
) -> AxialSeries:
    """Read the single-slice image series in ``directory`` (non-DICOM files and other modalities skipped).

    ``modalities`` keeps files whose Modality (0008,0060) is listed (upper
    case); ``series_uid`` picks one series. Raises DicomFormatError (naming
    the file or tag) when the files do not form one complete, uniform series.
    """
    directory = Path(directory)
    mods = tuple(m.upper() for m in modalities) if modalities is not None else None
    items = _one_series(_image_headers(_files_in(directory, recursive), mods), directory, series_uid, mods)
    if any(int(ds.get("NumberOfFrames", 1) or 1) > 1 for _, ds in items):
        raise DicomFormatError(
            f"{items[0][0].name}: multi-frame image (NumberOfFrames > 1); use read_nm_recon for NM RECON TOMO files"
        )
    _check_complete(items)
    iop0, ps0, shape0 = _check_consistent(items)
    normal = np.cross(iop0[:3], iop0[3:])
    positions = np.array([vector(ds, "ImagePositionPatient", 3, f"{p.name}: ") for p, ds in items])
    dist = positions @ normal
    order = np.argsort(dist, kind="stable")
    items = [items[i] for i in order]
    positions, dist = positions[order], dist[order]
    step = _slice_step(items, positions, dist, normal, ps0)

    stack = np.empty((len(items),) + shape0, dtype=np.float64)
    slopes = np.empty(len(items))
    datasets = []
    for i, (p, _) in enumerate(items):
        ds = dcmread_checked(os.fspath(p))
        pixels = pixels_of(ds, f"{p.name} (slice {i})")
        slope, intercept = rescale_of(ds, f"{p.name} (slice {i})")
        if intercept != 0.0 and str(ds.get("Modality", "")).upper() == "PT":
            logger.warning("%s: RescaleIntercept (0028,1052) = %g is not 0 (unusual for PET); applied", p.name,
                           intercept)
        if pixels.shape != shape0:
            raise DicomFormatError(f"{p.name} (slice {i}): pixels {pixels.shape}, the series' slices {shape0}")
        stack[i] = np.asarray(pixels, dtype=np.float64) * slope + intercept
        slopes[i] = slope
        del ds.PixelData
        datasets.append(ds)
    placed = place_stack(stack, positions[0], iop0, step, ps0)
    logger.info("read %d %s slices from %s: grid %s", len(items), datasets[0].get("Modality", ""), directory,
                placed.grid.shape)
    return AxialSeries(placed.data, placed.grid, tuple(datasets), tuple(p for p, _ in items), slopes,
                       placed.slice_axis, placed.slice_order)


UNIT_NAMES: dict[str, str] = {
    "BQML": "Bq/mL", "GML": "g/mL", "CM2ML": "cm2/mL", "CNTS": "counts", "CPS": "cps",
    "PROPCNTS": "proportional to counts", "PROPCPS": "proportional to cps", "1CM": "1/cm",
}
"""DICOM Units (0054,1001) -> our unit names."""


@dataclass(frozen=True)
class ImageSeries:
    """A quantitative image series (PET or NM): the volume (values after rescale, in the header's Units),
    its :class:`~recon.data.series_header.SeriesHeader`, and how header slices map onto the volume.

    ``slice_axis`` is the volume axis (0=z, 1=y, 2=x) along which the header's
    slices lie; ``slice_order[i]`` is the header slice index of volume index
    ``i`` along that axis. A multi-frame file has one header entry.
    """

    volume: Volume
    header: SeriesHeader
    slice_axis: int
    slice_order: tuple[int, ...]
    files: tuple[str, ...]
    info: dict[str, Any] = field(default_factory=dict)


def series_info(ds0: Dataset, units: str, iop: Any) -> dict[str, Any]:
    """Descriptive, JSON-friendly facts of a series from its first dataset."""
    return {
        "modality": str(ds0.get("Modality", "")),
        "manufacturer": str(ds0.get("Manufacturer", "")),
        "patient_id": str(ds0.get("PatientID", "")),
        "study_instance_uid": str(ds0.get("StudyInstanceUID", "")),
        "series_instance_uid": str(ds0.get("SeriesInstanceUID", "")),
        "series_description": str(ds0.get("SeriesDescription", "")),
        "frame_of_reference_uid": str(ds0.get("FrameOfReferenceUID", "")),
        "units": units,
        "image_orientation_patient": [float(v) for v in iop],
    }


def _is_multiframe_nm(path: Path) -> bool:
    try:
        ds = pydicom.dcmread(os.fspath(path), stop_before_pixels=True)
    except (InvalidDicomError, OSError):
        return False
    return str(ds.get("Modality", "")) == "NM" and int(ds.get("NumberOfFrames", 1) or 1) > 1


def read_image_series(
    directory: str | os.PathLike[str],
    *,
    series_uid: str | None = None,
    recursive: bool = False,
    modalities: tuple[str, ...] = ("PT", "NM"),
    dose_unit: DoseUnit = "auto",
) -> ImageSeries:
    """Read a PET or NM image series (one slice per file, or one NM multi-frame file: a directory holding
    one, or the file itself) with its quantitative header.

    The volume's unit follows Units (0054,1001) (BQML -> Bq/mL); its
    frame_of_reference_uid is the series'. ``dose_unit`` goes to
    :func:`~recon.io.dicom.series_header.read_series_header`.
    """
    if "NM" in modalities:
        from recon.io.dicom.nm_recon import find_nm_recon, read_nm_recon  # noqa: PLC0415 (nm_recon imports this)

        nm_file = Path(directory) if Path(directory).is_file() else find_nm_recon(directory, series_uid)
        if nm_file is not None and _is_multiframe_nm(nm_file):
            return read_nm_recon(nm_file, dose_unit=dose_unit)
    s = read_axial_series(directory, modalities=modalities, series_uid=series_uid, recursive=recursive)
    header = read_series_header(s.datasets, dose_unit=dose_unit)
    units = header.units or "UNKNOWN"
    ds0 = s.datasets[0]
    info = series_info(ds0, units, ds0.get("ImageOrientationPatient"))
    volume = Volume(s.data, s.grid, UNIT_NAMES.get(units, units), dict(info), info["frame_of_reference_uid"])
    return ImageSeries(volume, header, s.slice_axis, s.slice_order, tuple(os.fspath(p) for p in s.files), info)
