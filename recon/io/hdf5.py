"""The native HDF5 container for SPECT projections and reconstructed volumes (format in docs/file-format.md).

Every file carries root attributes ``format`` ("recon-spect-projections" or
"recon-volume") and ``format_version``; readers refuse other formats and newer
major versions with a message saying what was found.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from recon.data.collimator import Collimator
from recon.data.grid import ImageGrid, Volume
from recon.data.spect import EnergyWindow, SPECTAcquisition, SPECTGeometry

FORMAT_PROJECTIONS = "recon-spect-projections"
FORMAT_VOLUME = "recon-volume"
FORMAT_VERSION = 1


class FileFormatError(ValueError):
    """A file that is not one of ours, or of a version this reader does not understand."""


def _prepare_output(path: str | os.PathLike, overwrite: bool) -> Path:
    p = Path(path)
    if p.exists() and not overwrite:
        raise FileExistsError(f"{p} exists; refusing to overwrite (pass overwrite=True / --overwrite)")
    if not p.parent.exists():
        raise FileNotFoundError(f"output directory {p.parent} does not exist")
    return p


def _atomic_write(p: Path, write: Any) -> None:
    """Write to a temporary file next to ``p`` then rename, so a failure never leaves half a file."""
    tmp = p.with_name(p.name + ".partial")
    try:
        with h5py.File(tmp, "w") as f:
            write(f)
        os.replace(tmp, p)
    finally:
        if tmp.exists():
            tmp.unlink()


def json_default(o: Any) -> Any:
    """``json.dumps`` fallback: NumPy scalars and arrays as Python values, anything else as its text."""
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


_DICOM_KEY = "__dicom_json__"


def _json_safe(meta: dict[str, Any]) -> str:
    """JSON of the metadata; a DICOM header (pydicom Dataset) is kept in DICOM's JSON model."""
    out = {k: {_DICOM_KEY: v.to_json_dict()} if hasattr(v, "to_json_dict") else v for k, v in meta.items()}
    return json.dumps(out, default=json_default)


def _metadata_from_json(text: str) -> dict[str, Any]:
    """Inverse of :func:`_json_safe`: DICOM headers come back as pydicom Datasets."""
    meta = json.loads(text)
    for key, value in meta.items():
        if isinstance(value, dict) and set(value) == {_DICOM_KEY}:
            from pydicom.dataset import Dataset  # noqa: PLC0415

            meta[key] = Dataset.from_json(value[_DICOM_KEY])
    return meta


def _open_checked(path: str | os.PathLike, expected_format: str) -> h5py.File:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p} does not exist")
    try:
        f = h5py.File(p, "r")
    except OSError as exc:
        raise FileFormatError(f"{p} is not an HDF5 file ({exc})") from exc
    fmt = f.attrs.get("format")
    if isinstance(fmt, bytes):
        fmt = fmt.decode()
    if fmt != expected_format:
        f.close()
        raise FileFormatError(f"{p}: expected an HDF5 file of format {expected_format!r}, found format {fmt!r}")
    version = int(f.attrs.get("format_version", -1))
    if version < 1 or version > FORMAT_VERSION:
        f.close()
        raise FileFormatError(
            f"{p}: format version {version} is not supported by this reader (supports 1..{FORMAT_VERSION})"
        )
    return f


def _write_grid(group: h5py.Group, grid: ImageGrid) -> None:
    group.attrs["shape_zyx"] = np.asarray(grid.shape, dtype=np.int64)
    group.attrs["spacing_mm_zyx"] = np.asarray(grid.spacing_mm, dtype=np.float64)
    group.attrs["origin_mm_xyz"] = np.asarray(grid.origin_mm, dtype=np.float64)


def _read_grid(group: h5py.Group, where: str) -> ImageGrid:
    try:
        return ImageGrid(tuple(group.attrs["shape_zyx"]), tuple(group.attrs["spacing_mm_zyx"]),
                         tuple(group.attrs["origin_mm_xyz"]))
    except KeyError as exc:
        raise FileFormatError(f"{where}: grid attribute {exc.args[0]!r} missing") from exc


def write_volume(volume: Volume, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write a Volume (array, grid, unit, metadata) to ``path``; returns the path."""
    p = _prepare_output(path, overwrite)
    host = volume.to_host()

    def write(f: h5py.File) -> None:
        f.attrs["format"] = FORMAT_VOLUME
        f.attrs["format_version"] = FORMAT_VERSION
        ds = f.create_dataset("volume", data=host.data, compression="gzip", compression_opts=4)
        ds.attrs["unit"] = host.unit
        ds.attrs["axes"] = "z,y,x"
        _write_grid(ds, host.grid)
        f.attrs["metadata_json"] = _json_safe(host.metadata)

    _atomic_write(p, write)
    return p


def read_volume(path: str | os.PathLike) -> Volume:
    """Read a Volume written by :func:`write_volume`."""
    with _open_checked(path, FORMAT_VOLUME) as f:
        if "volume" not in f:
            raise FileFormatError(f"{path}: dataset 'volume' missing")
        ds = f["volume"]
        grid = _read_grid(ds, f"{path}:/volume")
        meta = _metadata_from_json(f.attrs.get("metadata_json", "{}"))
        return Volume(ds[()], grid, str(ds.attrs.get("unit", "")), meta)


def write_projections(acq: SPECTAcquisition, path: str | os.PathLike, mu_map: Volume | None = None,
                      overwrite: bool = False) -> Path:
    """Write a SPECTAcquisition (all windows, geometry, collimator, timing) and optionally its mu-map (1/mm)."""
    p = _prepare_output(path, overwrite)
    g = acq.geometry
    c = acq.collimator

    def write(f: h5py.File) -> None:
        f.attrs["format"] = FORMAT_PROJECTIONS
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["photopeak"] = acq.photopeak
        f.attrs["frame_duration_s"] = acq.frame_duration_s
        f.attrs["photon_energy_kev"] = acq.photon_energy_kev
        f.attrs["radionuclide"] = acq.radionuclide
        f.attrs["metadata_json"] = _json_safe(acq.metadata)
        geo = f.create_group("geometry")
        geo.create_dataset("angles_deg", data=g.angles_deg)
        geo.create_dataset("radius_mm", data=g.radius_mm)
        geo.attrs["n_rows"] = g.n_rows
        geo.attrs["n_cols"] = g.n_cols
        geo.attrs["pixel_size_mm"] = g.pixel_size_mm
        geo.attrs["slice_thickness_mm"] = g.slice_thickness_mm
        col = f.create_group("collimator")
        for key in ("name", "hole_diameter_mm", "hole_length_mm", "septal_thickness_mm", "intrinsic_fwhm_mm",
                    "back_gap_mm", "hole_shape"):
            col.attrs[key] = getattr(c, key)
        wg = f.create_group("windows")
        for order, w in enumerate(acq.windows):
            ds = wg.create_dataset(w.name, data=acq.counts[w.name], compression="gzip", compression_opts=4)
            ds.attrs["lower_kev"] = w.lower_kev
            ds.attrs["upper_kev"] = w.upper_kev
            ds.attrs["order"] = order
            ds.attrs["axes"] = "view,row,col"
        if mu_map is not None:
            host = mu_map.to_host()
            if host.unit != "1/mm":
                raise ValueError(f"mu-map unit must be '1/mm', got {host.unit!r}")
            ds = f.create_dataset("mu_map", data=host.data, compression="gzip", compression_opts=4)
            ds.attrs["unit"] = "1/mm"
            ds.attrs["energy_kev"] = acq.photon_energy_kev
            _write_grid(ds, host.grid)

    _atomic_write(p, write)
    return p


def _attr(node: h5py.HLObject, key: str, where: str) -> Any:
    if key not in node.attrs:
        raise FileFormatError(f"{where}: required attribute {key!r} missing")
    value = node.attrs[key]
    return value.decode() if isinstance(value, bytes) else value


def read_projections(path: str | os.PathLike) -> SPECTAcquisition:
    """Read a SPECTAcquisition written by :func:`write_projections`."""
    with _open_checked(path, FORMAT_PROJECTIONS) as f:
        for group in ("geometry", "collimator", "windows"):
            if group not in f:
                raise FileFormatError(f"{path}: group {group!r} missing")
        geo = f["geometry"]
        geometry = SPECTGeometry(
            geo["angles_deg"][()], geo["radius_mm"][()], int(_attr(geo, "n_rows", f"{path}:/geometry")),
            int(_attr(geo, "n_cols", f"{path}:/geometry")), float(_attr(geo, "pixel_size_mm", f"{path}:/geometry")),
            float(_attr(geo, "slice_thickness_mm", f"{path}:/geometry")),
        )
        col = f["collimator"]
        where = f"{path}:/collimator"
        collimator = Collimator(
            str(_attr(col, "name", where)), float(_attr(col, "hole_diameter_mm", where)),
            float(_attr(col, "hole_length_mm", where)), float(_attr(col, "septal_thickness_mm", where)),
            float(_attr(col, "intrinsic_fwhm_mm", where)), float(_attr(col, "back_gap_mm", where)),
            str(_attr(col, "hole_shape", where)),
        )
        items = sorted(f["windows"].items(), key=lambda kv: int(kv[1].attrs.get("order", 0)))
        windows = tuple(EnergyWindow(name, float(_attr(ds, "lower_kev", name)), float(_attr(ds, "upper_kev", name)))
                        for name, ds in items)
        counts = {name: ds[()] for name, ds in items}
        return SPECTAcquisition(
            counts, windows, str(_attr(f, "photopeak", str(path))), geometry, collimator,
            float(_attr(f, "frame_duration_s", str(path))), float(_attr(f, "photon_energy_kev", str(path))),
            str(_attr(f, "radionuclide", str(path))), _metadata_from_json(f.attrs.get("metadata_json", "{}")),
        )


def read_mu_map(path: str | os.PathLike) -> Volume | None:
    """The mu-map (1/mm at the photopeak energy) stored with projections, or None when absent."""
    with _open_checked(path, FORMAT_PROJECTIONS) as f:
        if "mu_map" not in f:
            return None
        ds = f["mu_map"]
        return Volume(ds[()], _read_grid(ds, f"{path}:/mu_map"), "1/mm",
                      {"energy_kev": float(ds.attrs.get("energy_kev", np.nan))})
