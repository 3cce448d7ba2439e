"""Read a PET DICOM image series (one slice per file) into a Volume with SUV header info.

Geometry: each file's ImagePositionPatient (IPP, the LPS position of the
centre of its first voxel), ImageOrientationPatient (row and column direction
cosines) and PixelSpacing (row spacing, column spacing) give voxel (k, r, c) at

    IPP_k + c * PixelSpacing[1] * row_dir + r * PixelSpacing[0] * col_dir.

Slices are sorted by their position along the normal row_dir x col_dir. The
:class:`~recon.data.grid.ImageGrid` holds axis-aligned grids only, so the
stack is transposed/flipped until its axes run along +z, +y, +x (LPS);
oblique orientations are refused. Per-slice RescaleSlope/RescaleIntercept are
applied, so the volume holds values in the header's Units (BQML -> Bq/mL).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from recon.data.grid import ImageGrid, Volume
from recon.quant.suv import PETHeader, SUVConversion, suv_factors

logger = logging.getLogger(__name__)

__all__ = ["DicomSeriesError", "PETSeries", "read_pet_series", "UNIT_NAMES"]

UNIT_NAMES: dict[str, str] = {
    "BQML": "Bq/mL", "GML": "g/mL", "CM2ML": "cm2/mL", "CNTS": "counts", "CPS": "cps",
    "PROPCNTS": "proportional to counts", "PROPCPS": "proportional to cps", "1CM": "1/cm",
}


class DicomSeriesError(ValueError):
    """The files do not form one consistent image series; the message says why."""


@dataclass(frozen=True)
class PETSeries:
    """A PET image series: the volume (values after rescale, in the header Units) and its SUV header.

    ``slice_axis`` is the volume axis (0=z, 1=y, 2=x) along which the DICOM
    slices lie; ``slice_order[i]`` is the header slice index of volume index
    ``i`` along that axis (header slices are sorted by position).
    """

    volume: Volume
    header: PETHeader
    slice_axis: int
    slice_order: tuple[int, ...]
    files: tuple[str, ...]
    info: dict[str, Any] = field(default_factory=dict)

    def per_slice_to_volume(self, per_slice: Sequence[float] | np.ndarray) -> np.ndarray:
        """Broadcastable array of per-header-slice values laid out along the volume's slice axis."""
        v = np.asarray(per_slice, dtype=np.float64)[np.asarray(self.slice_order)]
        shape = [1, 1, 1]
        shape[self.slice_axis] = -1
        return v.reshape(shape)

    def suv(self, kind: str = "bw", **overrides: Any) -> tuple[Volume, SUVConversion]:
        """SUV volume of ``kind`` (``"bw"``, ``"lbm_james"``, ``"lbm_janma"``, ``"bsa"``, ``"ibw"``) and the conversion used.

        ``overrides`` go to :func:`recon.quant.suv.suv_factors` (e.g.
        ``weight_kg``, ``dose_bq``, ``reference_time``).
        """
        conv = suv_factors(self.header, kind, **overrides)
        data = self.volume.data * self.per_slice_to_volume(conv.factors)
        meta = dict(self.volume.metadata)
        meta["suv"] = conv.details
        return Volume(data.astype(np.float32), self.volume.grid, f"SUV{conv.kind} ({conv.unit})", meta), conv


def _files_in(directory: Path, recursive: bool) -> list[Path]:
    if directory.is_file():
        return [directory]
    if not directory.is_dir():
        raise FileNotFoundError(f"no such DICOM series directory: {directory}")
    it = directory.rglob("*") if recursive else directory.iterdir()
    return sorted(p for p in it if p.is_file() and not p.name.startswith("."))


def _read_headers(paths: list[Path]) -> list[tuple[Path, Any]]:
    import pydicom  # noqa: PLC0415 - keep import cost at the edge
    from pydicom.errors import InvalidDicomError  # noqa: PLC0415

    out = []
    for p in paths:
        try:
            ds = pydicom.dcmread(os.fspath(p))
        except (InvalidDicomError, OSError) as exc:
            logger.debug("skipping %s: %s", p, exc)
            continue
        if "PixelData" not in ds:
            logger.debug("skipping %s: no PixelData (%s)", p, getattr(ds, "Modality", "?"))
            continue
        out.append((p, ds))
    return out


def _vec(ds: Any, key: str, n: int, path: Path) -> np.ndarray:
    v = getattr(ds, key, None)
    if v is None:
        raise DicomSeriesError(f"{path.name}: {key} is missing")
    a = np.array([float(x) for x in v], dtype=np.float64)
    if a.shape != (n,) or not np.all(np.isfinite(a)):
        raise DicomSeriesError(f"{path.name}: {key} must hold {n} finite numbers, got {list(v)}")
    return a


def read_pet_series(
    directory: str | os.PathLike[str],
    *,
    series_uid: str | None = None,
    recursive: bool = False,
    modalities: tuple[str, ...] = ("PT",),
    dose_unit: str = "auto",
) -> PETSeries:
    """Read the PET image series in ``directory`` (files that are not DICOM images are skipped).

    Raises DicomSeriesError when the directory holds more than one series
    (unless ``series_uid`` picks one), when slices are missing or duplicated,
    or when orientation, pixel spacing or matrix size differ between files.
    """
    directory = Path(directory)
    items = _read_headers(_files_in(directory, recursive))
    items = [(p, ds) for p, ds in items if str(getattr(ds, "Modality", "")).upper() in modalities]
    if not items:
        raise DicomSeriesError(f"no DICOM image files with Modality in {modalities} in {directory}")
    by_uid: dict[str, list[tuple[Path, Any]]] = {}
    for p, ds in items:
        by_uid.setdefault(str(getattr(ds, "SeriesInstanceUID", "")), []).append((p, ds))
    if series_uid is not None:
        if series_uid not in by_uid:
            raise DicomSeriesError(f"SeriesInstanceUID {series_uid} not in {directory}; found {sorted(by_uid)}")
        items = by_uid[series_uid]
    elif len(by_uid) > 1:
        desc = {u: (str(getattr(v[0][1], "SeriesDescription", "")), len(v)) for u, v in by_uid.items()}
        raise DicomSeriesError(
            f"{directory} holds {len(by_uid)} series (SeriesInstanceUID: description, files): {desc}; "
            "pass series_uid to choose one"
        )
    if any(int(getattr(ds, "NumberOfFrames", 1) or 1) > 1 for _, ds in items):
        raise DicomSeriesError("multi-frame PET images (NumberOfFrames > 1) are not supported by this reader")

    # ---- geometry consistency
    p0, ds0 = items[0]
    iop0 = _vec(ds0, "ImageOrientationPatient", 6, p0)
    ps0 = _vec(ds0, "PixelSpacing", 2, p0)
    shape0 = (int(ds0.Rows), int(ds0.Columns))
    for key in ("Units", "DecayCorrection", "FrameOfReferenceUID"):
        vals = {str(getattr(ds, key, None)) for _, ds in items}
        if len(vals) > 1:
            raise DicomSeriesError(f"{key} differs between files of the series: {sorted(vals)}")
    for p, ds in items[1:]:
        iop = _vec(ds, "ImageOrientationPatient", 6, p)
        if not np.allclose(iop, iop0, atol=1e-4):
            raise DicomSeriesError(f"{p.name}: ImageOrientationPatient {iop.tolist()} differs from {iop0.tolist()}")
        ps = _vec(ds, "PixelSpacing", 2, p)
        if not np.allclose(ps, ps0, rtol=1e-4, atol=1e-5):
            raise DicomSeriesError(f"{p.name}: PixelSpacing {ps.tolist()} differs from {ps0.tolist()}")
        if (int(ds.Rows), int(ds.Columns)) != shape0:
            raise DicomSeriesError(f"{p.name}: matrix {int(ds.Rows)}x{int(ds.Columns)} differs from {shape0}")
    row_dir, col_dir = iop0[:3], iop0[3:]
    if abs(np.dot(row_dir, col_dir)) > 1e-3 or not np.allclose(
        [np.linalg.norm(row_dir), np.linalg.norm(col_dir)], 1.0, atol=1e-3
    ):
        raise DicomSeriesError(f"ImageOrientationPatient {iop0.tolist()} is not two orthonormal directions")
    normal = np.cross(row_dir, col_dir)

    positions = np.array([_vec(ds, "ImagePositionPatient", 3, p) for p, ds in items])
    dist = positions @ normal
    order = np.argsort(dist, kind="stable")
    items = [items[i] for i in order]
    positions = positions[order]
    dist = dist[order]
    if len(items) > 1:
        gaps = np.diff(dist)
        if np.any(gaps < 1e-3):
            i = int(np.argmin(gaps))
            raise DicomSeriesError(
                f"two files at the same slice position {dist[i]:.3f} mm ({items[i][0].name}, {items[i + 1][0].name}):"
                " a dynamic/gated series or duplicated files; pass one time frame"
            )
        step = float(np.median(gaps))
        bad = np.abs(gaps - step) > max(0.01 * step, 1e-3)
        if np.any(bad):
            i = int(np.argmax(bad))
            n_missing = int(round(gaps[i] / step)) - 1
            what = f"{n_missing} slice(s) missing" if n_missing >= 1 and abs(gaps[i] - (n_missing + 1) * step) < 0.01 * step \
                else "irregular slice spacing"
            raise DicomSeriesError(
                f"{what} between {items[i][0].name} and {items[i + 1][0].name}: gap {gaps[i]:.3f} mm, "
                f"spacing {step:.3f} mm"
            )
        inplane = (positions - positions[0]) - np.outer(dist - dist[0], normal)
        if np.abs(inplane).max() > 0.01 * min(ps0):
            raise DicomSeriesError("slices are shifted in-plane relative to each other (ImagePositionPatient)")
    else:
        step = float(getattr(ds0, "SliceThickness", 0) or getattr(ds0, "SpacingBetweenSlices", 0) or 0)
        if step <= 0:
            raise DicomSeriesError("a single slice needs SliceThickness (0018,0050) for its thickness")

    # ---- pixel data with per-slice rescale
    stack = np.empty((len(items),) + shape0, dtype=np.float64)
    for i, (p, ds) in enumerate(items):
        slope = float(getattr(ds, "RescaleSlope", 1.0) or 1.0) if "RescaleSlope" in ds else 1.0
        intercept = float(getattr(ds, "RescaleIntercept", 0.0) or 0.0) if "RescaleIntercept" in ds else 0.0
        if intercept != 0.0:
            logger.warning("%s: RescaleIntercept (0028,1052) = %g is not 0 (unusual for PET); applied", p.name, intercept)
        stack[i] = ds.pixel_array.astype(np.float64) * slope + intercept

    # ---- to an axis-aligned (z, y, x) LPS grid
    vectors = [normal, col_dir, row_dir]  # stack axes (k, r, c)
    spacings = [step, float(ps0[0]), float(ps0[1])]
    lps_axis, signs = [], []
    for v in vectors:
        a = int(np.argmax(np.abs(v)))
        if abs(abs(v[a]) - 1.0) > 1e-3:
            raise DicomSeriesError(
                f"oblique ImageOrientationPatient {iop0.tolist()}: only axis-aligned series map onto ImageGrid"
            )
        lps_axis.append(a)
        signs.append(1.0 if v[a] > 0 else -1.0)
    if sorted(lps_axis) != [0, 1, 2]:
        raise DicomSeriesError(f"ImageOrientationPatient {iop0.tolist()} does not span three axes")
    vol_axis_of_stack = [2 - a for a in lps_axis]  # LPS x->2, y->1, z->0
    perm = [vol_axis_of_stack.index(j) for j in range(3)]  # stack axis feeding volume axis j
    data = np.transpose(stack, perm)
    origin = positions[0].copy()
    for s_ax in range(3):
        if signs[s_ax] < 0:
            origin += (stack.shape[s_ax] - 1) * spacings[s_ax] * vectors[s_ax]
            data = np.flip(data, axis=vol_axis_of_stack[s_ax])
    spacing_zyx = tuple(spacings[perm[j]] for j in range(3))
    grid = ImageGrid(tuple(data.shape), spacing_zyx, (float(origin[0]), float(origin[1]), float(origin[2])))  # type: ignore[arg-type]
    slice_axis = vol_axis_of_stack[0]
    n = len(items)
    slice_order = tuple(range(n)) if signs[0] > 0 else tuple(range(n - 1, -1, -1))

    header = PETHeader.from_datasets([ds for _, ds in items], dose_unit=dose_unit)  # type: ignore[arg-type]
    units = header.units or "UNKNOWN"
    info = {
        "modality": str(getattr(ds0, "Modality", "")),
        "manufacturer": str(getattr(ds0, "Manufacturer", "")),
        "patient_id": str(getattr(ds0, "PatientID", "")),
        "study_instance_uid": str(getattr(ds0, "StudyInstanceUID", "")),
        "series_instance_uid": str(getattr(ds0, "SeriesInstanceUID", "")),
        "series_description": str(getattr(ds0, "SeriesDescription", "")),
        "frame_of_reference_uid": str(getattr(ds0, "FrameOfReferenceUID", "")),
        "units": units,
        "image_orientation_patient": iop0.tolist(),
    }
    volume = Volume(np.ascontiguousarray(data, dtype=np.float32), grid, UNIT_NAMES.get(units, units), dict(info))
    logger.info("read %d %s slices from %s: grid %s", n, info["modality"], directory, grid.shape)
    return PETSeries(volume, header, slice_axis, slice_order, tuple(os.fspath(p) for p, _ in items), info)
