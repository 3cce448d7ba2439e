"""``recon-spect-projections``: a SPECT acquisition, all energy windows, optionally its mu-map.

Schema in docs/file-format.md. Version 2 adds the typed study metadata:
``n_detectors`` and ``center_mm_xyz`` (root attributes), the groups
``/acquisition_info``, ``/patient``, ``/dose`` (one attribute per field,
date-times as ISO 8601 strings, absent = None) and the mu-map's
``frame_of_reference_uid``. Version 1 files read with defaults, except that
``n_detectors``, ``acquisition_start`` and ``frame_center_mm`` found in their
metadata JSON (as written by the DICOM NM reader of that time) fill
``n_detectors``, ``info.start_time`` and ``center_mm``.
"""
from __future__ import annotations

import dataclasses

import logging
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from recon.data.collimator import Collimator
from recon.data.grid import ImageGrid, Volume
from recon.data.spect import EnergyWindow, SPECTAcquisition, SPECTGeometry
from recon.data.study import AcquisitionInfo, DoseInfo, PatientInfo
from recon.io.hdf5.container import (
    FileFormatError,
    create,
    metadata_from_json,
    metadata_to_json,
    open_checked,
    read_grid,
    read_record,
    require_attr,
    require_node,
    write_grid,
    write_record,
)

__all__ = ["FORMAT_PROJECTIONS", "PROJECTIONS_VERSION", "read_mu_map", "read_projections", "write_projections"]

logger = logging.getLogger(__name__)

FORMAT_PROJECTIONS = "recon-spect-projections"
PROJECTIONS_VERSION = 2

_COLLIMATOR_FIELDS = ("name", "hole_diameter_mm", "hole_length_mm", "septal_thickness_mm", "intrinsic_fwhm_mm",
                      "back_gap_mm", "hole_shape")
#: typed records: group name -> (dataclass, its datetime fields)
_RECORDS: dict[str, tuple[type, tuple[str, ...]]] = {
    "acquisition_info": (AcquisitionInfo, ("start_time",)),
    "patient": (PatientInfo, ()),
    "dose": (DoseInfo, ("injection_time",)),
}
_RECORD_ATTR = {"acquisition_info": "info", "patient": "patient", "dose": "dose"}


def write_projections(acq: SPECTAcquisition, path: str | os.PathLike[str], mu_map: Volume | None = None,
                      overwrite: bool = False) -> Path:
    """Write a SPECTAcquisition (windows, geometry, collimator, timing, study metadata) and optionally its
    mu-map (1/mm at the photopeak energy); returns the path."""
    mu_host = None
    if mu_map is not None:
        mu_host = mu_map.to_host()
        if mu_host.unit != "1/mm":
            raise ValueError(f"mu-map unit must be '1/mm', got {mu_host.unit!r}")
    g = acq.geometry

    def write(f: h5py.File) -> None:
        f.attrs["photopeak"] = acq.photopeak
        f.attrs["frame_duration_s"] = acq.frame_duration_s
        f.attrs["photon_energy_kev"] = acq.photon_energy_kev
        f.attrs["radionuclide"] = acq.radionuclide
        f.attrs["n_detectors"] = np.int64(acq.n_detectors)
        if acq.center_mm is not None:
            f.attrs["center_mm_xyz"] = np.asarray(acq.center_mm, dtype=np.float64)
        f.attrs["metadata_json"] = metadata_to_json(acq.metadata)
        geo = f.create_group("geometry")
        geo.create_dataset("angles_deg", data=g.angles_deg)
        geo.create_dataset("radius_mm", data=g.radius_mm)
        geo.attrs["n_rows"] = g.n_rows
        geo.attrs["n_cols"] = g.n_cols
        geo.attrs["pixel_size_mm"] = g.pixel_size_mm
        geo.attrs["slice_thickness_mm"] = g.slice_thickness_mm
        col = f.create_group("collimator")
        for key in _COLLIMATOR_FIELDS:
            col.attrs[key] = getattr(acq.collimator, key)
        wg = f.create_group("windows")
        for order, w in enumerate(acq.windows):
            ds = wg.create_dataset(w.name, data=acq.counts[w.name], compression="gzip", compression_opts=4)
            ds.attrs["lower_kev"] = w.lower_kev
            ds.attrs["upper_kev"] = w.upper_kev
            ds.attrs["order"] = order
            ds.attrs["axes"] = "view,row,col"
        for group, _ in _RECORDS.items():
            write_record(f.create_group(group), getattr(acq, _RECORD_ATTR[group]))
        if mu_host is not None:
            ds = f.create_dataset("mu_map", data=mu_host.data, compression="gzip", compression_opts=4)
            ds.attrs["unit"] = "1/mm"
            ds.attrs["energy_kev"] = acq.photon_energy_kev
            ds.attrs["axes"] = "z,y,x"
            ds.attrs["frame_of_reference_uid"] = mu_host.frame_of_reference_uid
            write_grid(ds, mu_host.grid)

    return create(path, FORMAT_PROJECTIONS, PROJECTIONS_VERSION, write, overwrite)


def _v1_typed(meta: dict[str, Any], where: str, radionuclide: str) -> dict[str, Any]:
    """Typed fields a version-1 file kept in its metadata JSON (DICOM NM reader of that time): the DICOM
    header's patient, dose and identifiers when it kept one, else the plain keys it wrote."""
    out: dict[str, Any] = {}
    header = meta.get("dicom_header")
    if header is not None and hasattr(header, "get"):
        from recon.io.dicom.nm_metadata import study_metadata  # noqa: PLC0415

        known = radionuclide if radionuclide not in ("", "unknown") else None
        out["info"], out["patient"], out["dose"] = study_metadata(header, meta.get("source", ""), known)
    if meta.get("n_detectors") not in (None, ""):
        out["n_detectors"] = int(meta["n_detectors"])
    centre = meta.get("frame_center_mm")
    if centre is not None:
        out["center_mm"] = tuple(float(c) for c in centre)
    start = meta.get("acquisition_start")
    start_time = None
    if isinstance(start, str) and start:
        try:
            start_time = datetime.fromisoformat(start)
        except ValueError:
            logger.warning("%s: acquisition_start %r is not an ISO date-time; ignored", where, start)
    keys = ("frame_of_reference_uid", "study_instance_uid", "series_instance_uid", "patient_position",
            "manufacturer", "model", "source")
    plain = AcquisitionInfo(start_time=start_time, **{k: str(meta.get(k, "") or "") for k in keys})
    from_header = out.get("info")
    if from_header is not None:  # the header's values, the plain keys where it has none
        plain = dataclasses.replace(plain, **{f.name: getattr(from_header, f.name)
                                              for f in dataclasses.fields(from_header)
                                              if getattr(from_header, f.name) not in (None, "")})
    out["info"] = plain
    return out


def read_projections(path: str | os.PathLike[str]) -> SPECTAcquisition:
    """Read a SPECTAcquisition written by :func:`write_projections` (format versions 1 and 2)."""
    where = str(path)
    f, version = open_checked(path, FORMAT_PROJECTIONS, PROJECTIONS_VERSION)
    with f:
        geo = require_node(f, "geometry", where)
        gw = f"{where}:/geometry"
        try:
            geometry = SPECTGeometry(
                require_node(geo, "angles_deg", gw)[()], require_node(geo, "radius_mm", gw)[()],
                int(require_attr(geo, "n_rows", gw)), int(require_attr(geo, "n_cols", gw)),
                float(require_attr(geo, "pixel_size_mm", gw)), float(require_attr(geo, "slice_thickness_mm", gw)),
            )
            col = require_node(f, "collimator", where)
            cw = f"{where}:/collimator"
            collimator = Collimator(*(require_attr(col, key, cw) for key in _COLLIMATOR_FIELDS))
            items = sorted(require_node(f, "windows", where).items(), key=lambda kv: int(kv[1].attrs.get("order", 0)))
            windows = tuple(
                EnergyWindow(name, float(require_attr(ds, "lower_kev", f"{where}:/windows/{name}")),
                             float(require_attr(ds, "upper_kev", f"{where}:/windows/{name}")))
                for name, ds in items
            )
            counts = {name: ds[()] for name, ds in items}
            meta = metadata_from_json(f.attrs.get("metadata_json", "{}"), where)
            typed: dict[str, Any] = {}
            if version >= 2:
                typed["n_detectors"] = int(require_attr(f, "n_detectors", where))
                if "center_mm_xyz" in f.attrs:
                    typed["center_mm"] = tuple(float(c) for c in f.attrs["center_mm_xyz"])
                for group, (cls, dt_fields) in _RECORDS.items():
                    if group in f:
                        typed[_RECORD_ATTR[group]] = read_record(cls, f[group], f"{where}:/{group}", dt_fields)
            else:
                typed = _v1_typed(meta, where, str(require_attr(f, "radionuclide", where)))
            return SPECTAcquisition(
                counts, windows, str(require_attr(f, "photopeak", where)), geometry, collimator,
                float(require_attr(f, "frame_duration_s", where)), float(require_attr(f, "photon_energy_kev", where)),
                str(require_attr(f, "radionuclide", where)), meta, **typed,
            )
        except (ValueError, TypeError) as exc:
            if isinstance(exc, FileFormatError):
                raise
            raise FileFormatError(f"{where}: {exc}") from None


def _v1_mu_grid(grid: ImageGrid, meta: dict[str, Any]) -> ImageGrid:
    centre = meta.get("frame_center_mm")
    if centre is None:
        return grid
    return grid.recentred(tuple(float(c) for c in centre))


def read_mu_map(path: str | os.PathLike[str]) -> Volume | None:
    """The mu-map (1/mm at the photopeak energy) stored with projections, or None when absent.

    In version 1 the projections placed the study (``frame_center_mm``) and the
    mu-map's own origin was not used: such a mu-map on the projections' grid
    (same shape and spacing) is placed at that centre, as the reconstruction of
    that time did.
    """
    f, version = open_checked(path, FORMAT_PROJECTIONS, PROJECTIONS_VERSION)
    with f:
        if "mu_map" not in f:
            return None
        ds = f["mu_map"]
        frame = ds.attrs.get("frame_of_reference_uid", "")
        frame = frame.decode() if isinstance(frame, bytes) else str(frame)
        meta = {"energy_kev": float(ds.attrs.get("energy_kev", np.nan)), "frame_of_reference_uid": frame}
        try:
            grid = read_grid(ds, f"{path}:/mu_map")
            if version < 2:
                grid = _v1_mu_grid(grid, metadata_from_json(f.attrs.get("metadata_json", "{}"), str(path)))
            return Volume(ds[()], grid, "1/mm", meta, frame)
        except ValueError as exc:
            if isinstance(exc, FileFormatError):
                raise
            raise FileFormatError(f"{path}:/mu_map: {exc}") from None
