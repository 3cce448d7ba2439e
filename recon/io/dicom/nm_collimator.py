"""Collimators as NM files name them: CollimatorGridName (0018,1180) per vendor -> our presets."""
from __future__ import annotations

import re
from typing import Any

from recon.data.collimator import COLLIMATOR_PRESETS, Collimator
from recon.io.dicom.values import DicomFormatError

__all__ = ["VENDORS", "collimator_from_dicom_name", "vendor_of", "vendor_collimator_name"]

# Vendor layouts written by write_nm: equipment names, and the collimator names each vendor
# writes in CollimatorGridName (0018,1180) for our presets.
VENDORS: dict[str, dict[str, Any]] = {
    "siemens": {
        "manufacturer": "SIEMENS NM",
        "model": "Symbia Intevo",
        "prefix": "SY",
        "aliases": {"LEHR": "SY-LEHR", "LEAP": "SY-LEAP", "ME": "SY-ME", "MELP": "SY-ME"},
    },
    "ge": {
        "manufacturer": "GE MEDICAL SYSTEMS",
        "model": "Discovery NM/CT 670",
        "prefix": "GI",
        "aliases": {"LEHR": "GI-LEHR", "MEGP": "GI-MEGP", "MEG": "GI-MEGP"},
    },
    "philips": {"manufacturer": "Philips", "model": "BrightView", "prefix": "PB", "aliases": {"LEHR": "PB-LEHR"}},
}


def vendor_of(manufacturer: str) -> str | None:
    """Our vendor key ('siemens', 'ge', 'philips') of a Manufacturer (0008,0070) value, or None."""
    m = manufacturer.upper()
    if "SIEMENS" in m:
        return "siemens"
    if m.startswith("GE") or "GENERAL ELECTRIC" in m:
        return "ge"
    if "PHILIPS" in m or "ADAC" in m:
        return "philips"
    return None


def collimator_from_dicom_name(name: str, manufacturer: str = "") -> Collimator:
    """The collimator preset for a CollimatorGridName (0018,1180) as a vendor writes it (e.g. 'LEHR' by Siemens)."""
    key = name.strip().upper()
    if key in COLLIMATOR_PRESETS:
        return COLLIMATOR_PRESETS[key]
    vendor = vendor_of(manufacturer)
    if vendor is not None:
        compact = re.sub(r"[^A-Z]", "", key)
        alias = VENDORS[vendor]["aliases"].get(compact)
        if alias is not None:
            return COLLIMATOR_PRESETS[alias]
    raise DicomFormatError(
        f"unknown collimator {name!r} (CollimatorGridName (0018,1180), manufacturer {manufacturer!r}); "
        f"known presets: {', '.join(sorted(COLLIMATOR_PRESETS))}; pass collimator= to choose one"
    )


def vendor_collimator_name(collimator: Collimator, vendor: str) -> str:
    """The name ``vendor`` writes for one of our presets (e.g. SY-LEHR -> 'LEHR'); a foreign preset keeps its name."""
    for short, full in VENDORS[vendor]["aliases"].items():
        if full == collimator.name.upper():
            return short
    return collimator.name
