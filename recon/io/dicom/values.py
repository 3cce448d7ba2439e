"""DICOM attribute access shared by every reader and writer: one error class, tag values, private tags.

Two families of helpers:

* strict (:func:`require`, :func:`sequence_item`): the value must be there,
  else :class:`DicomFormatError` naming the tag (keyword and (gggg,eeee));
* lenient (:func:`raw`, :func:`get_float`, :func:`get_str`): ``None`` when
  the attribute is absent, empty or malformed (headers read for SUV tolerate
  gaps; the quantification layer decides what is required).

Private tags (:func:`ge_private`, :func:`philips_private_float`) are
accepted when their private creator matches the vendor's, or when no
creator is recorded and Manufacturer (0008,0070) names that vendor.
"""
from __future__ import annotations

import math
from collections.abc import Sequence as _Seq
from typing import Any

import pydicom
from pydicom.dataset import Dataset
from pydicom.valuerep import DSfloat

__all__ = [
    "DicomFormatError",
    "dcmread_checked",
    "format_ds",
    "format_tag",
    "ge_private",
    "get_float",
    "get_str",
    "philips_private_float",
    "pixels_of",
    "present",
    "raw",
    "require",
    "rescale_of",
    "sequence_item",
    "values_of",
]

GE_PET_CREATOR = "GEMS_PETD_01"
PHILIPS_PET_CREATOR = "Philips PET Private Group"


class DicomFormatError(ValueError):
    """DICOM input is missing a required attribute, holds inconsistent values or is not one usable series."""


def dcmread_checked(path: Any, stop_before_pixels: bool = False) -> Dataset:
    """``pydicom.dcmread`` whose failures on a bad file (empty, text, truncated, a directory) become one
    :class:`DicomFormatError` naming the file."""
    from pydicom.errors import InvalidDicomError  # noqa: PLC0415

    name = str(path)
    try:
        return pydicom.dcmread(name, stop_before_pixels=stop_before_pixels)
    except IsADirectoryError:
        raise DicomFormatError(f"{name} is a directory, expected one DICOM file") from None
    except InvalidDicomError:
        raise DicomFormatError(f"{name} is not a DICOM file (empty, text, or no DICM prefix in its header)") from None
    except (EOFError, ValueError, OverflowError, KeyError, IndexError) as exc:
        raise DicomFormatError(f"{name}: unreadable DICOM file (truncated or corrupt: {exc})") from None


def format_tag(keyword: str) -> str:
    """``"Keyword (gggg,eeee)"`` for a DICOM keyword (just the keyword when unknown)."""
    tag = pydicom.datadict.tag_for_keyword(keyword)
    return f"{keyword} ({tag >> 16:04X},{tag & 0xFFFF:04X})" if tag is not None else keyword


def present(ds: Dataset | None, keyword: str) -> bool:
    """True when ``keyword`` is in ``ds`` with a non-empty value."""
    return ds is not None and keyword in ds and ds[keyword].value is not None and ds[keyword].value != ""


def require(ds: Dataset, keyword: str, where: str = "") -> Any:
    """The value of ``keyword`` in ``ds``; DicomFormatError naming the tag (prefixed by ``where``) when absent."""
    if not present(ds, keyword):
        raise DicomFormatError(f"missing required DICOM tag {where}{format_tag(keyword)}")
    return ds[keyword].value


def values_of(value: Any) -> list[Any]:
    """A DICOM value as a list (multi-valued or single)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, _Seq):
        return [value]
    return list(value)


def sequence_item(ds: Dataset, keyword: str, index: int, count: int | None = None, where: str = "") -> Dataset:
    """Item ``index`` of sequence ``keyword``; DicomFormatError when the sequence is absent or has fewer than
    ``count`` (default ``index + 1``) items."""
    seq = require(ds, keyword, where)
    need = index + 1 if count is None else count
    if len(seq) < need:
        raise DicomFormatError(f"{where}{format_tag(keyword)} has {len(seq)} items, {need} expected")
    return seq[index]


def format_ds(value: float) -> DSfloat:
    """A float as a DS value of at most 16 characters."""
    return DSfloat(float(value), auto_format=True)


def raw(ds: Any, key: str | tuple[int, int]) -> Any:
    """Value of a keyword or (group, element) tag, or None when absent, empty or malformed."""
    if ds is None:
        return None
    try:
        if isinstance(key, str):
            v = getattr(ds, key, None) if hasattr(ds, key) else None
        else:
            elem = ds.get(key) if hasattr(ds, "get") else None
            if elem is None:
                return None
            v = getattr(elem, "value", elem)
    except Exception:  # noqa: BLE001 - a malformed element reads as absent
        return None
    if isinstance(v, (bytes, bytearray)):
        v = bytes(v).decode("ascii", errors="ignore").strip("\x00 ")
    if v is None or (isinstance(v, str) and not v.strip()):
        return None
    if hasattr(v, "__len__") and not isinstance(v, str) and len(v) == 0:
        return None
    return v


def _first_float(v: Any) -> float | None:
    if v is None:
        return None
    if not isinstance(v, str) and hasattr(v, "__iter__"):
        items = list(v)
        if not items:
            return None
        v = items[0]
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def get_float(ds: Any, key: str | tuple[int, int]) -> float | None:
    """First value of ``key`` as a finite float, or None."""
    return _first_float(raw(ds, key))


def rescale_of(ds: Any, where: str) -> tuple[float, float]:
    """(RescaleSlope, RescaleIntercept): 1 and 0 when absent; a value present but not a finite number (or a
    zero slope) is a DicomFormatError naming ``where`` (the file or slice) and the tag."""
    out = []
    for keyword, default in (("RescaleSlope", 1.0), ("RescaleIntercept", 0.0)):
        value = raw(ds, keyword)
        if value is None:
            out.append(default)
            continue
        number = _first_float(value)
        if number is None or (keyword == "RescaleSlope" and number == 0.0):
            raise DicomFormatError(f"{where}: {format_tag(keyword)} is {value!s}; it must be a finite "
                                   f"{'non-zero ' if keyword == 'RescaleSlope' else ''}number")
        out.append(number)
    return out[0], out[1]


def pixels_of(ds: Any, where: str) -> Any:
    """``ds.pixel_array``; a missing, truncated or undecodable PixelData is a DicomFormatError naming ``where``."""
    if "PixelData" not in ds:
        raise DicomFormatError(f"{where}: PixelData (7FE0,0010) is missing")
    try:
        return ds.pixel_array
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types for bad pixel data
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise DicomFormatError(f"{where}: PixelData (7FE0,0010) cannot be decoded (truncated?): {reason}") from None


def get_str(ds: Any, key: str | tuple[int, int]) -> str | None:
    """Value of ``key`` as a stripped string, or None."""
    v = raw(ds, key)
    return None if v is None else str(v).strip()


def _private(ds: Any, group: int, element: int, creators: tuple[str, ...], manufacturer_prefix: str) -> Any:
    v = raw(ds, (group, element))
    if v is None:
        return None
    creator = get_str(ds, (group, (element >> 8) & 0xFF))
    if creator is not None:
        return v if creator.strip().upper() in {c.upper() for c in creators} else None
    manufacturer = (get_str(ds, "Manufacturer") or "").upper()
    return v if manufacturer.startswith(manufacturer_prefix.upper()) else None


def ge_private(ds: Any, element: int) -> Any:
    """GE PET private value (0009,xxxx) of creator GEMS_PETD_01, or None."""
    return _private(ds, 0x0009, element, (GE_PET_CREATOR,), "GE")


def philips_private_float(ds: Any, element: int) -> float | None:
    """Philips PET private value (7053,xxxx) as a float, or None."""
    return _first_float(_private(ds, 0x7053, element, (PHILIPS_PET_CREATOR,), "PHILIPS"))
