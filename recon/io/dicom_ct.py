"""DICOM CT series -> HU Volume (LPS geometry) and CT -> mu-map on a SPECT grid.

A series is a directory of single-slice image files. Slices are sorted by
Image Position (Patient) along the slice normal; stored values become
RescaleSlope * stored + RescaleIntercept per slice. Only axial series whose
rows and columns run along the patient x and y axes (either sense) are
accepted, because :class:`ImageGrid` has no rotation; reversed axes are
flipped so that indices increase with +x, +y, +z.

:func:`ct_to_mu_map` converts HU to mu (1/mm) at the photon energy with the
bilinear model of :mod:`recon.spect.mu_map` and resamples trilinearly, by
patient coordinates, onto the target (SPECT) grid.
"""
from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from recon.data.grid import ImageGrid, Volume
from recon.io.dicom_nm import DicomFormatError, require_tag
from recon.physics.attenuation import DEFAULT_CT_EFFECTIVE_ENERGY_KEV, bilinear_model

logger = logging.getLogger(__name__)

_ORIENTATION_TOL = 1e-4
_POSITION_TOL_MM = 0.01


@dataclass
class AxialSeries:
    """An axial series read from disk: values (z, y, x) float32, grid, and its datasets sorted by z."""

    data: np.ndarray
    grid: ImageGrid
    datasets: list[Dataset]
    slopes: np.ndarray


def _list_series(directory: Path, modality: str | None) -> dict[str, list[tuple[Path, Dataset]]]:
    if not directory.is_dir():
        raise FileNotFoundError(f"DICOM series directory {directory} does not exist")
    found: dict[str, list[tuple[Path, Dataset]]] = {}
    for path in sorted(p for p in directory.iterdir() if p.is_file()):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except (InvalidDicomError, OSError):
            logger.debug("skipping %s: not a DICOM file", path)
            continue
        if "Rows" not in ds or "ImagePositionPatient" not in ds:
            continue
        if modality is not None and str(ds.get("Modality", "")) != modality:
            continue
        found.setdefault(str(ds.get("SeriesInstanceUID", "")), []).append((path, ds))
    return found


def read_axial_series(
    directory: str | Path, *, modality: str | tuple[str, ...] | None = None, series_uid: str | None = None
) -> AxialSeries:
    """Read a directory of axial image slices into values (z, y, x) and an LPS ImageGrid.

    ``modality`` keeps only files of that Modality; ``series_uid`` picks one
    series when the directory holds several (otherwise that is an error).
    """
    directory = Path(directory)
    modalities = (modality,) if isinstance(modality, str) else modality
    found: dict[str, list[tuple[Path, Dataset]]] = {}
    for mod in modalities or (None,):
        for uid, files in _list_series(directory, mod).items():
            found.setdefault(uid, []).extend(files)
    if series_uid is not None:
        found = {k: v for k, v in found.items() if k == series_uid}
    if not found:
        what = f" of modality {modality}" if modality else ""
        which = f" with SeriesInstanceUID {series_uid}" if series_uid else ""
        raise DicomFormatError(f"no DICOM image slices{what} in {directory}{which}")
    if len(found) > 1:
        raise DicomFormatError(f"{directory} holds {len(found)} series ({', '.join(sorted(found))}); pass series_uid=")
    files = next(iter(found.values()))

    first = files[0][1]
    iop = np.asarray([float(v) for v in require_tag(first, "ImageOrientationPatient", f"{files[0][0].name}: ")])
    spacing = [float(v) for v in require_tag(first, "PixelSpacing", f"{files[0][0].name}: ")]
    rows, cols = int(require_tag(first, "Rows")), int(require_tag(first, "Columns"))
    row_dir, col_dir = iop[:3], iop[3:]
    if not (abs(abs(row_dir[0]) - 1) < _ORIENTATION_TOL and abs(abs(col_dir[1]) - 1) < _ORIENTATION_TOL):
        raise DicomFormatError(
            f"ImageOrientationPatient (0020,0037) {iop.tolist()} is not axial with rows along x and columns "
            "along y; oblique, tilted, coronal and sagittal series are not supported"
        )
    sx, sy = int(np.sign(row_dir[0])), int(np.sign(col_dir[1]))
    positions = []
    for path, ds in files:
        where = f"{path.name}: "
        other = np.asarray([float(v) for v in require_tag(ds, "ImageOrientationPatient", where)])
        if not np.allclose(other, iop, atol=_ORIENTATION_TOL):
            raise DicomFormatError(
                f"{where}ImageOrientationPatient {other.tolist()} differs from the series' {iop.tolist()}"
            )
        if [float(v) for v in require_tag(ds, "PixelSpacing", where)] != spacing:
            raise DicomFormatError(f"{where}PixelSpacing differs from the series' {spacing}")
        if int(ds.Rows) != rows or int(ds.Columns) != cols:
            raise DicomFormatError(f"{where}matrix {ds.Rows}x{ds.Columns} differs from the series' {rows}x{cols}")
        positions.append([float(v) for v in require_tag(ds, "ImagePositionPatient", where)])
    pos = np.asarray(positions)
    order = np.argsort(pos[:, 2], kind="stable")
    pos = pos[order]
    files = [files[i] for i in order]
    same_xy = np.allclose(pos[:, :2], pos[0, :2], rtol=0, atol=_POSITION_TOL_MM)
    if not same_xy:
        raise DicomFormatError("ImagePositionPatient x/y changes between slices (gantry tilt?); not supported")
    z = pos[:, 2]
    if len(z) > 1:
        dz_all = np.diff(z)
        if (dz_all < _POSITION_TOL_MM).any():
            raise DicomFormatError(f"two slices share the position z = {z[np.argmin(dz_all)]:.3f} mm")
        dz = float(np.median(dz_all))
        if np.abs(dz_all - dz).max() > max(_POSITION_TOL_MM, 1e-3 * dz):
            raise DicomFormatError(
                f"slice spacing is not uniform ({dz_all.min():.3f} to {dz_all.max():.3f} mm); a slice may be missing"
            )
        dz = float((z[-1] - z[0]) / (len(z) - 1))
    else:
        thick = first.get("SpacingBetweenSlices") or first.get("SliceThickness")
        if not thick:
            raise DicomFormatError("single-slice series without SliceThickness (0018,0050)")
        dz = float(thick)

    dy, dx = spacing  # PixelSpacing = (between rows, between columns)
    data = np.empty((len(files), rows, cols), dtype=np.float32)
    slopes = np.empty(len(files))
    datasets = []
    for k, (path, _) in enumerate(files):
        ds = pydicom.dcmread(path)
        slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
        intercept = float(ds.get("RescaleIntercept", 0.0) or 0.0)
        values = ds.pixel_array.astype(np.float64) * slope + intercept
        if sy < 0:
            values = values[::-1, :]
        if sx < 0:
            values = values[:, ::-1]
        data[k] = values
        slopes[k] = slope
        del ds.PixelData
        datasets.append(ds)
    x0 = pos[0, 0] if sx > 0 else pos[0, 0] - (cols - 1) * dx
    y0 = pos[0, 1] if sy > 0 else pos[0, 1] - (rows - 1) * dy
    grid = ImageGrid((len(files), rows, cols), (dz, dy, dx), (x0, y0, float(z[0])))
    return AxialSeries(data, grid, datasets, slopes)


def read_ct_series(directory: str | Path, *, series_uid: str | None = None) -> Volume:
    """Read a CT series directory into a Volume of CT numbers (unit ``"HU"``) on its LPS grid."""
    series = read_axial_series(directory, modality="CT", series_uid=series_uid)
    first = series.datasets[0]
    kvp = first.get("KVP")
    metadata: dict[str, Any] = {
        "frame_of_reference_uid": str(first.get("FrameOfReferenceUID", "") or ""),
        "series_instance_uid": str(first.get("SeriesInstanceUID", "") or ""),
        "study_instance_uid": str(first.get("StudyInstanceUID", "") or ""),
        "kvp": float(kvp) if kvp not in (None, "") else None,
        "dicom_header": copy.deepcopy(first),
    }
    logger.info("read CT %s: %s voxels of %s mm", directory, series.grid.shape, series.grid.spacing_mm)
    return Volume(series.data, series.grid, unit="HU", metadata=metadata)


def _axis_weights(
    src_origin: float, src_spacing: float, n_src: int, target: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear-interpolation lower index, upper weight and inside-mask for target coordinates (mm).

    A target inside the source's outer half voxels takes the edge value.
    """
    f = (target - src_origin) / src_spacing
    inside = (f >= -0.5 - 1e-9) & (f <= n_src - 0.5 + 1e-9)
    f = np.clip(f, 0.0, n_src - 1.0)
    if n_src == 1:
        return np.zeros(f.shape, dtype=np.int64), np.zeros(f.shape), inside
    i0 = np.minimum(np.floor(f).astype(np.int64), n_src - 2)
    return i0, f - i0, inside


def resample_trilinear(data: np.ndarray, source: ImageGrid, target: ImageGrid, fill: float = 0.0) -> np.ndarray:
    """Trilinear resampling of ``data`` (z, y, x) on ``source`` at the voxel centres of ``target`` (float32).

    Positions are patient coordinates (mm); target voxels outside the source
    (beyond its outer half voxels) get ``fill``.
    """
    arr = np.asarray(data)
    if arr.shape != source.shape:
        raise ValueError(f"data shape {arr.shape} does not match source grid {source.shape}")
    out = arr
    masks = []
    for axis, name in ((0, "z"), (1, "y"), (2, "x")):
        spacing = source.spacing_mm[axis]
        origin = source.origin_mm[2 - axis]
        i0, w, inside = _axis_weights(origin, spacing, source.shape[axis], target.axis_mm(name))
        lo = np.take(out, i0, axis=axis)
        hi = np.take(out, np.minimum(i0 + 1, source.shape[axis] - 1), axis=axis)
        shape = [1, 1, 1]
        shape[axis] = -1
        wv = w.reshape(shape).astype(np.float32)
        out = (lo * (1.0 - wv) + hi * wv).astype(np.float32)
        masks.append(inside)
    mz, my, mx = masks
    inside_all = mz[:, None, None] & my[None, :, None] & mx[None, None, :]
    return np.where(inside_all, out, np.float32(fill)).astype(np.float32)


def ct_to_mu_map(
    ct_volume: Volume,
    target_grid: ImageGrid,
    energy_kev: float,
    *,
    break_hu: float = 0.0,
    bone_hu: float | None = None,
    ct_effective_energy_kev: float | None = None,
    outside_xy: str = "air",
) -> Volume:
    """mu-map (1/mm) at ``energy_kev`` (keV) on ``target_grid`` from a CT Volume in HU.

    HU -> mu by the bilinear model (recon.spect.mu_map), then trilinear
    resampling by patient coordinates. The CT must cover the target grid
    along z (DicomFormatError otherwise); target voxels outside the CT in x/y
    are air (mu = 0, logged) with ``outside_xy="air"``, an error with ``"error"``.
    """
    if outside_xy not in ("air", "error"):
        raise ValueError(f"outside_xy must be 'air' or 'error', got {outside_xy!r}")
    if ct_volume.unit.upper() != "HU":
        raise ValueError(f"ct_to_mu_map needs a CT volume in HU, got unit {ct_volume.unit!r}")
    src = ct_volume.grid
    kvp = ct_volume.metadata.get("kvp")
    if bone_hu is None and ct_effective_energy_kev is None and kvp is not None and not 110.0 <= float(kvp) <= 140.0:
        logger.warning(
            "CT at %g kVp: the bone segment assumes a %g keV effective beam energy (about 120 kVp); "
            "pass bone_hu= or ct_effective_energy_kev= for this scanner",
            float(kvp),
            DEFAULT_CT_EFFECTIVE_ENERGY_KEV,
        )
    model = bilinear_model(
        energy_kev,
        break_hu=break_hu,
        bone_hu=bone_hu,
        ct_effective_energy_kev=ct_effective_energy_kev or DEFAULT_CT_EFFECTIVE_ENERGY_KEV,
    )

    # coverage along z: every target slice centre inside the CT's slab extent
    nz, _, _ = src.shape
    dz = src.spacing_mm[0]
    ct_lo, ct_hi = src.origin_mm[2] - dz / 2, src.origin_mm[2] + (nz - 0.5) * dz
    tz = target_grid.axis_mm("z")
    if tz.min() < ct_lo - 1e-6 or tz.max() > ct_hi + 1e-6:
        raise DicomFormatError(
            f"the CT does not cover the SPECT field of view along z: CT spans z = {ct_lo:.1f} to {ct_hi:.1f} mm, "
            f"the SPECT grid's slice centres span {tz.min():.1f} to {tz.max():.1f} mm; "
            "crop the SPECT grid or supply a longer CT"
        )
    for name, axis in (("y", 1), ("x", 2)):
        t = target_grid.axis_mm(name)
        o, d, n = src.origin_mm[2 - axis], src.spacing_mm[axis], src.shape[axis]
        lo, hi = o - d / 2, o + (n - 0.5) * d
        outside = int(((t < lo - 1e-6) | (t > hi + 1e-6)).sum())
        if outside:
            msg = (
                f"the CT covers {name} = {lo:.1f} to {hi:.1f} mm; {outside} of {t.size} SPECT voxel columns "
                f"along {name} "
                f"({t.min():.1f} to {t.max():.1f} mm) lie outside it"
            )
            if outside_xy == "error":
                raise DicomFormatError(f"the CT does not cover the SPECT field of view: {msg}")
            logger.warning("%s; they are set to air (mu = 0)", msg)

    # convert only the CT slices the z interpolation touches
    i0, _, _ = _axis_weights(src.origin_mm[2], dz, nz, tz)
    needed = np.unique(np.concatenate([i0, np.minimum(i0 + 1, nz - 1)]))
    ct_data = ct_volume.data if isinstance(ct_volume.data, np.ndarray) else ct_volume.to_host().data
    sub = model(ct_data[needed])
    full_index = np.full(nz, -1, dtype=np.int64)  # CT slice -> its row in ``sub``
    full_index[needed] = np.arange(needed.size)
    mu = _resample_gathered(sub, full_index, src, target_grid)
    metadata = {
        "energy_kev": float(energy_kev),
        "model": "bilinear HU->mu",
        "break_hu": model.break_hu,
        "bone_hu": model.bone_hu,
        "mu_water_per_mm": model.mu_water_per_mm,
        "mu_bone_per_mm": model.mu_bone_per_mm,
        "frame_of_reference_uid": ct_volume.metadata.get("frame_of_reference_uid", ""),
    }
    return Volume(mu, target_grid, unit="1/mm", metadata=metadata)


def _resample_gathered(sub: np.ndarray, full_index: np.ndarray, src: ImageGrid, target: ImageGrid) -> np.ndarray:
    """Trilinear resampling where only the CT slices named in ``full_index`` (>= 0) are held in ``sub``."""
    nz = src.shape[0]
    i0, w, _ = _axis_weights(src.origin_mm[2], src.spacing_mm[0], nz, target.axis_mm("z"))
    lo = sub[full_index[i0]]
    hi = sub[full_index[np.minimum(i0 + 1, nz - 1)]]
    wz = w.reshape(-1, 1, 1).astype(np.float32)
    zgrid_data = (lo * (1.0 - wz) + hi * wz).astype(np.float32)
    # the z axis is done: resample y and x on a grid whose z axis already is the target's
    mid = ImageGrid(
        (target.shape[0], src.shape[1], src.shape[2]),
        (target.spacing_mm[0], src.spacing_mm[1], src.spacing_mm[2]),
        (src.origin_mm[0], src.origin_mm[1], target.origin_mm[2]),
    )
    return resample_trilinear(zgrid_data, mid, target, fill=0.0)
