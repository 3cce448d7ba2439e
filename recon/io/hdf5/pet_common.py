"""What the PET schemas share: the scanner group (every :class:`PETScanner` field), the placement
group and the typed study records (schemas in docs/file-format.md)."""
from __future__ import annotations

import dataclasses
from typing import Any

import h5py
import numpy as np

from recon.data.pet import ScannerPlacement
from recon.data.pet_scanner import PETScanner
from recon.data.study import AcquisitionInfo, DoseInfo, PatientInfo
from recon.io.hdf5.container import FileFormatError, read_record, require_attr, require_node, write_record

__all__ = ["RECORDS", "read_placement", "read_records", "read_scanner", "write_placement", "write_records",
           "write_scanner"]

#: typed records: group name -> (dataclass, its datetime fields, attribute of the data object)
RECORDS: dict[str, tuple[type, tuple[str, ...], str]] = {
    "acquisition_info": (AcquisitionInfo, ("start_time",), "info"),
    "patient": (PatientInfo, (), "patient"),
    "dose": (DoseInfo, ("injection_time",), "dose"),
}

_OPTIONAL_SCANNER_FIELDS = {"source", "first_crystal_angle_deg"}


def write_scanner(group: h5py.Group, scanner: PETScanner) -> None:
    """Every field of ``scanner`` as an attribute of ``group`` (units in the names: mm, ps, ns)."""
    for fld in dataclasses.fields(scanner):
        group.attrs[fld.name] = getattr(scanner, fld.name)
    group.attrs["crystals_per_ring"] = np.int64(scanner.crystals_per_ring)  # derived, for readers of the file


def read_scanner(group: h5py.Group, where: str) -> PETScanner:
    """The :class:`PETScanner` stored by :func:`write_scanner`; a missing field or a bad value is a FileFormatError."""
    kwargs: dict[str, Any] = {}
    for fld in dataclasses.fields(PETScanner):
        if fld.name in _OPTIONAL_SCANNER_FIELDS and fld.name not in group.attrs:
            continue
        kwargs[fld.name] = require_attr(group, fld.name, where)
    try:
        return PETScanner(**kwargs)
    except (TypeError, ValueError) as exc:
        raise FileFormatError(f"{where}: invalid scanner ({exc})") from None


def write_placement(group: h5py.Group, placement: ScannerPlacement) -> None:
    """``patient_position`` (HFS, HFP, FFS, FFP) and ``table_position_mm`` (float64 (3), LPS mm)."""
    group.attrs["patient_position"] = placement.patient_position
    group.attrs["table_position_mm"] = np.asarray(placement.table_position_mm, np.float64)


def read_placement(f: h5py.Group, where: str) -> ScannerPlacement:
    """The placement group, or the default placement (HFS at the origin) when absent."""
    if "placement" not in f:
        return ScannerPlacement()
    g = f["placement"]
    try:
        return ScannerPlacement(str(require_attr(g, "patient_position", f"{where}:/placement")),
                                tuple(np.asarray(require_attr(g, "table_position_mm", f"{where}:/placement"))))
    except (TypeError, ValueError) as exc:
        if isinstance(exc, FileFormatError):
            raise
        raise FileFormatError(f"{where}:/placement: {exc}") from None


def write_records(f: h5py.Group, obj: Any) -> None:
    """The typed records of ``obj`` (``info``, ``patient``, ``dose``) as groups."""
    for group, (_, _, attr) in RECORDS.items():
        write_record(f.create_group(group), getattr(obj, attr))


def read_records(f: h5py.Group, where: str) -> dict[str, Any]:
    """``{"info": ..., "patient": ..., "dose": ...}`` for the groups present."""
    out: dict[str, Any] = {}
    for group, (cls, dt_fields, attr) in RECORDS.items():
        if group in f:
            out[attr] = read_record(cls, f[group], f"{where}:/{group}", dt_fields)
    return out


def require_dataset(f: h5py.Group, name: str, where: str) -> h5py.Dataset:
    """Dataset ``name``; FileFormatError naming it when missing or a group."""
    node = require_node(f, name, where)
    if not isinstance(node, h5py.Dataset):
        raise FileFormatError(f"{where}: {name!r} is not a dataset")
    return node
