"""The HDF5 container every recon file kind shares (schemas in docs/file-format.md).

What every kind gets from here: root attributes ``format`` (the kind) and
``format_version`` checked on open with one-line errors naming the file;
atomic writes (a temporary file next to the target, renamed on success) that
never replace an existing file unless asked; grid attributes; JSON metadata
(pydicom Datasets kept in DICOM's JSON model); typed records (frozen
dataclasses) as attributes of a group, datetimes as ISO 8601 strings.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, TypeVar

import h5py
import numpy as np

from recon.data.grid import ImageGrid
from recon.io.atomic import atomic_output

__all__ = [
    "FileFormatError",
    "create",
    "json_default",
    "metadata_from_json",
    "metadata_to_json",
    "open_checked",
    "read_grid",
    "read_record",
    "require_attr",
    "require_node",
    "write_grid",
    "write_record",
]

logger = logging.getLogger(__name__)

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_DICOM_KEY = "__dicom_json__"
T = TypeVar("T")


class FileFormatError(ValueError):
    """A file that is not one of ours, or of a kind or version this reader does not understand."""


# ------------------------------------------------------------------------------------------- files

def is_hdf5(path: str | os.PathLike[str]) -> bool:
    """True when the file starts with HDF5's signature. HDF5's 8-byte signature at offset 0, 512, 1024, 2048, ... (a user block may precede it)."""
    p = Path(path)
    size = p.stat().st_size
    with open(p, "rb") as f:
        offset = 0
        while offset + 8 <= size:
            f.seek(offset)
            if f.read(8) == _HDF5_SIGNATURE:
                return True
            offset = 512 if offset == 0 else offset * 2
    return False


def create(path: str | os.PathLike[str], kind: str, version: int, write: Callable[[h5py.File], None],
           overwrite: bool = False) -> Path:
    """Write a file of ``kind`` (root ``format``) and ``version`` through ``write(h5file)``; returns the path.

    The file is written next to ``path`` under a temporary name and renamed on
    success, so a failure leaves nothing behind; an existing ``path`` is refused
    unless ``overwrite``.
    """
    p = Path(path)
    with atomic_output(p, overwrite) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = kind
            f.attrs["format_version"] = np.int64(version)
            write(f)
    logger.debug("wrote %s (%s v%d)", p, kind, version)
    return p


def format_of(path: str | os.PathLike[str]) -> str | None:
    """The ``format`` attribute of our HDF5 file at ``path`` (its kind), or None when it has none or is no HDF5."""
    p = Path(path)
    if not p.is_file() or p.stat().st_size == 0 or not is_hdf5(p):
        return None
    try:
        with h5py.File(p, "r") as f:
            found = _decode(f.attrs.get("format"))
    except OSError:
        return None
    return found if isinstance(found, str) else None


def open_checked(path: str | os.PathLike[str], kind: str, max_version: int) -> tuple[h5py.File, int]:
    """Open ``path`` read-only as a file of ``kind``, versions 1..``max_version``; returns (file, version).

    Missing file: FileNotFoundError. Anything else wrong (empty, not HDF5,
    another kind, a newer version): a one-line :class:`FileFormatError`.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p} does not exist")
    if p.is_dir():
        raise FileFormatError(f"{p} is a directory, not an HDF5 file")
    if p.stat().st_size == 0:
        raise FileFormatError(f"{p} is not an HDF5 file (it is empty)")
    if not is_hdf5(p):
        raise FileFormatError(f"{p} is not an HDF5 file (no HDF5 signature)")
    try:
        f = h5py.File(p, "r")
    except OSError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FileFormatError(f"{p} is not a readable HDF5 file ({reason})") from None
    try:
        found = _decode(f.attrs.get("format"))
        if found != kind:
            raise FileFormatError(f"{p}: expected an HDF5 file of format {kind!r}, found format {found!r}")
        try:
            version = int(f.attrs.get("format_version", -1))
        except (TypeError, ValueError):
            version = -1
        if version < 1 or version > max_version:
            raise FileFormatError(
                f"{p}: format version {version} is not supported by this reader (supports 1..{max_version})"
            )
    except BaseException:
        f.close()
        raise
    return f, version


# ------------------------------------------------------------------------------------- attributes

def _decode(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def require_attr(node: h5py.HLObject, key: str, where: str) -> Any:
    """Attribute ``key`` of ``node`` as a Python value; FileFormatError naming ``where`` when missing."""
    if key not in node.attrs:
        raise FileFormatError(f"{where}: required attribute {key!r} missing")
    return _decode(node.attrs[key])


def require_node(f: h5py.Group, name: str, where: str) -> Any:
    """Group or dataset ``name`` of ``f``; FileFormatError naming ``where`` when missing."""
    if name not in f:
        raise FileFormatError(f"{where}: {name!r} missing")
    return f[name]


def write_grid(node: h5py.HLObject, grid: ImageGrid) -> None:
    """Grid attributes: ``shape_zyx``, ``spacing_mm_zyx``, ``origin_mm_xyz`` (LPS centre of voxel [0, 0, 0])."""
    node.attrs["shape_zyx"] = np.asarray(grid.shape, dtype=np.int64)
    node.attrs["spacing_mm_zyx"] = np.asarray(grid.spacing_mm, dtype=np.float64)
    node.attrs["origin_mm_xyz"] = np.asarray(grid.origin_mm, dtype=np.float64)


def read_grid(node: h5py.HLObject, where: str) -> ImageGrid:
    """The :class:`ImageGrid` stored by :func:`write_grid`."""
    try:
        return ImageGrid(tuple(node.attrs["shape_zyx"]), tuple(node.attrs["spacing_mm_zyx"]),
                         tuple(node.attrs["origin_mm_xyz"]))
    except KeyError as exc:
        raise FileFormatError(f"{where}: grid attribute {exc.args[0]!r} missing") from None
    except ValueError as exc:
        raise FileFormatError(f"{where}: invalid grid ({exc})") from None


# ------------------------------------------------------------------------------------------- JSON

def json_default(o: Any) -> Any:
    """``json.dumps`` fallback: NumPy scalars and arrays as Python values, datetimes ISO, anything else as text."""
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, datetime):
        return o.isoformat()
    return str(o)


def metadata_to_json(meta: dict[str, Any]) -> str:
    """JSON of a free metadata dict; a DICOM header (pydicom Dataset) is kept in DICOM's JSON model."""
    out = {k: {_DICOM_KEY: v.to_json_dict()} if hasattr(v, "to_json_dict") else v for k, v in meta.items()}
    return json.dumps(out, default=json_default)


def metadata_from_json(text: Any, where: str) -> dict[str, Any]:
    """Inverse of :func:`metadata_to_json`: DICOM headers come back as pydicom Datasets."""
    try:
        meta = json.loads(_decode(text))
    except (TypeError, ValueError) as exc:
        raise FileFormatError(f"{where}: metadata_json is not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise FileFormatError(f"{where}: metadata_json is not a JSON object")
    for key, value in meta.items():
        if isinstance(value, dict) and set(value) == {_DICOM_KEY}:
            from pydicom.dataset import Dataset  # noqa: PLC0415

            meta[key] = Dataset.from_json(value[_DICOM_KEY])
    return meta


# ------------------------------------------------------------------------------------ typed records

def write_record(group: h5py.Group, record: Any) -> None:
    """A frozen dataclass of str / number / datetime / None fields as attributes of ``group``.

    ``None`` is stored as an absent attribute; datetimes as ISO 8601 strings.
    """
    for fld in dataclasses.fields(record):
        value = getattr(record, fld.name)
        if value is None:
            continue
        if isinstance(value, datetime):
            value = value.isoformat()
        elif not isinstance(value, (str, int, float, np.generic)):
            raise TypeError(f"{type(record).__name__}.{fld.name}: cannot store a {type(value).__name__}")
        group.attrs[fld.name] = value


def read_record(cls: type[T], group: h5py.Group, where: str, datetime_fields: tuple[str, ...] = ()) -> T:
    """The dataclass ``cls`` from the attributes of ``group`` (absent: the field's default)."""
    known = {fld.name for fld in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for key in group.attrs:
        if key not in known:
            logger.debug("%s: ignoring unknown attribute %r", where, key)
            continue
        value = _decode(group.attrs[key])
        if key in datetime_fields:
            try:
                value = datetime.fromisoformat(str(value))
            except ValueError:
                raise FileFormatError(f"{where}: {key} = {value!r} is not an ISO 8601 date-time") from None
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise FileFormatError(f"{where}: {exc}") from None
