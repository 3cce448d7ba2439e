"""Baseline vs follow-up: match lesions by position, report changes, new and vanished lesions.

Lesions are matched by the distance between their positions in patient
coordinates (LPS mm; the maximum voxel by default, or the centroid), after an
optional translation of the follow-up (``followup_offset_mm``, e.g. from a
registration: position_in_baseline_frame = position_followup - offset).
Pairs are taken greedily from the closest, each lesion at most once, and only
when closer than ``max_distance_mm``. Changes are follow-up minus baseline,
absolute and in percent of the baseline.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal, Sequence

import numpy as np

from recon.quant.voi import LesionRecord

__all__ = ["LesionChange", "ResponseReport", "compare_lesions"]


def _pct(before: float, after: float) -> float | None:
    return None if before == 0 else 100.0 * (after - before) / before


@dataclass(frozen=True)
class LesionChange:
    """One matched lesion pair: labels, distance (mm) and change in SUVmax and SUVpeak (both definitions)."""

    baseline_label: int
    followup_label: int
    distance_mm: float
    suv_max_baseline: float
    suv_max_followup: float
    suv_max_change: float
    suv_max_change_pct: float | None
    suv_peak_baseline: float
    suv_peak_followup: float
    suv_peak_change: float
    suv_peak_change_pct: float | None
    suv_peak_max_centred_change: float
    suv_peak_max_centred_change_pct: float | None
    volume_ml_baseline: float
    volume_ml_followup: float


@dataclass(frozen=True)
class ResponseReport:
    """Matched pairs, lesions new at follow-up and lesions that vanished (labels)."""

    matched: list[LesionChange]
    new: list[int]
    vanished: list[int]
    max_distance_mm: float
    position: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict."""
        return asdict(self)


def compare_lesions(
    baseline: Sequence[LesionRecord],
    followup: Sequence[LesionRecord],
    *,
    max_distance_mm: float = 20.0,
    position: Literal["max", "centroid"] = "max",
    followup_offset_mm: Sequence[float] = (0.0, 0.0, 0.0),
) -> ResponseReport:
    """Match baseline and follow-up lesions by position and report the changes.

    SUVpeak changes use the search definition (``suv_peak_*``) and the
    max-centred one (``suv_peak_max_centred_*``).
    """
    if max_distance_mm <= 0:
        raise ValueError(f"max_distance_mm must be positive, got {max_distance_mm}")
    if position not in ("max", "centroid"):
        raise ValueError(f"position must be 'max' or 'centroid', got {position!r}")

    def pos(r: LesionRecord) -> np.ndarray:
        return np.asarray(r.stats.max_position_mm if position == "max" else r.centroid_mm, dtype=np.float64)

    off = np.asarray(followup_offset_mm, dtype=np.float64)
    pairs: list[tuple[float, int, int]] = []
    for i, b in enumerate(baseline):
        for j, f in enumerate(followup):
            d = float(np.linalg.norm(pos(f) - off - pos(b)))
            if d <= max_distance_mm:
                pairs.append((d, i, j))
    pairs.sort()
    used_b: set[int] = set()
    used_f: set[int] = set()
    matched: list[LesionChange] = []
    for d, i, j in pairs:
        if i in used_b or j in used_f:
            continue
        used_b.add(i)
        used_f.add(j)
        b, f = baseline[i].stats, followup[j].stats
        matched.append(LesionChange(
            baseline_label=baseline[i].label,
            followup_label=followup[j].label,
            distance_mm=d,
            suv_max_baseline=b.max,
            suv_max_followup=f.max,
            suv_max_change=f.max - b.max,
            suv_max_change_pct=_pct(b.max, f.max),
            suv_peak_baseline=b.peak_search,
            suv_peak_followup=f.peak_search,
            suv_peak_change=f.peak_search - b.peak_search,
            suv_peak_change_pct=_pct(b.peak_search, f.peak_search),
            suv_peak_max_centred_change=f.peak_max_centred - b.peak_max_centred,
            suv_peak_max_centred_change_pct=_pct(b.peak_max_centred, f.peak_max_centred),
            volume_ml_baseline=b.volume_ml,
            volume_ml_followup=f.volume_ml,
        ))
    matched.sort(key=lambda c: c.baseline_label)
    new = sorted(followup[j].label for j in range(len(followup)) if j not in used_f)
    vanished = sorted(baseline[i].label for i in range(len(baseline)) if i not in used_b)
    return ResponseReport(matched, new, vanished, float(max_distance_mm), position)
