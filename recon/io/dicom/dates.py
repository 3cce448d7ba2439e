"""DICOM DA / TM / DT values as Python dates, times and naive datetimes.

Timezone offsets (&ZZXX) are dropped: all times of one study are assumed to
share a clock. Unparsable or empty values give ``None``.
"""
from __future__ import annotations

import re
from datetime import date, datetime, time
from typing import Any

__all__ = ["combine", "parse_da", "parse_dt", "parse_tm"]

_TM_RE = re.compile(r"^(\d{2})(\d{2})?(\d{2})?(?:\.(\d{1,6}))?$")
_DT_RE = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.(\d{1,6}))?$")


def parse_tm(v: Any) -> time | None:
    """A TM (HHMMSS.FFFFFF, possibly truncated; ACR-NEMA HH:MM:SS accepted) as a time."""
    if v is None:
        return None
    if isinstance(v, time):
        return v.replace(tzinfo=None)
    m = _TM_RE.match(str(v).strip().replace(":", ""))
    if not m:
        return None
    hh, mm, ss, frac = m.groups()
    sec = min(int(ss or 0), 59)  # DICOM allows a leap second
    try:
        return time(int(hh), int(mm or 0), sec, int((frac or "0").ljust(6, "0")))
    except ValueError:
        return None


def parse_da(v: Any) -> date | None:
    """A DA (YYYYMMDD; ACR-NEMA YYYY.MM.DD accepted) as a date."""
    if v is None:
        return None
    if isinstance(v, datetime):
        return v.date()
    if isinstance(v, date):
        return v
    s = str(v).strip().replace(".", "").replace("-", "")
    if len(s) != 8 or not s.isdigit():
        return None
    try:
        return date(int(s[:4]), int(s[4:6]), int(s[6:8]))
    except ValueError:
        return None


def parse_dt(value: Any) -> datetime | None:
    """A DT (YYYYMMDDHHMMSS.FFFFFF, possibly truncated, optional &ZZXX offset) as a naive datetime."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    s = str(value).strip()
    s = re.split(r"[+-]", s, maxsplit=1)[0] if len(s) > 8 else s
    m = _DT_RE.match(s)
    if not m:
        return None
    y, mo, d, hh, mi, ss, frac = m.groups()
    try:
        return datetime(
            int(y), int(mo or 1), int(d or 1), int(hh or 0), int(mi or 0), min(int(ss or 0), 59),
            int((frac or "0").ljust(6, "0")),
        )
    except ValueError:
        return None


def combine(d: date | None, t: time | None) -> datetime | None:
    """``datetime.combine(d, t)``, or None when either is missing."""
    if d is None or t is None:
        return None
    return datetime.combine(d, t)
