"""Baseline vs follow-up: match lesions by position, report changes, new and vanished lesions;
PERCIST 1.0 categories for PET and the SUVmax change for bone SPECT.

Lesions are matched by the distance between their positions in patient
coordinates (LPS mm; the maximum voxel by default, or the centroid), after an
optional translation of the follow-up (``followup_offset_mm``, e.g. from a
registration: position_in_baseline_frame = position_followup - offset).
Pairs are taken greedily from the closest, each lesion at most once, and only
when closer than ``max_distance_mm``. Changes are follow-up minus baseline,
absolute and in percent of the baseline.

PET response, PERCIST 1.0 (Wahl et al., J Nucl Med 2009;50:122S), :func:`percist_response`:

* Values are SUL: SUV normalised to lean body mass (James's formula in PERCIST 1.0, our
  ``lbm_james``; the caller converts). SULpeak is the mean in a 1 cm^3 sphere (1.2 cm diameter)
  placed where it is highest inside the lesion: our ``VOIStats.peak_search`` with a 1 mL sphere.
* A lesion is measurable when its SULpeak >= 1.5 x liver mean SUL + 2 x liver SD (a 3 cm sphere
  in the normal right lobe), when a liver reference is given; otherwise every segmented lesion
  counts as measurable (logged).
* The target is the single hottest measurable lesion at baseline and the single hottest lesion
  at follow-up (it may be another lesion). Change = follow-up - baseline SULpeak (SUL units) and
  in percent of the baseline.
* Categories: NE (no measurable lesion at baseline); CMR (no follow-up lesion, or every
  follow-up lesion's SULpeak below the follow-up liver mean, and no new lesion); PMD (a new
  lesion, or a change >= +30 % and >= +0.8 SUL); PMR (a change <= -30 % and <= -0.8 SUL, no new
  lesion); SMD otherwise. New lesions are the follow-up lesions matched to no baseline lesion
  (measurable ones only, when a follow-up liver reference is given): automatic segmentation may
  also pick physiological uptake, so the report names them for a reader to confirm.

Bone SPECT (:func:`bone_spect_response`): the change of lesion SUVmax, per matched lesion and for
the hottest lesion of each study; no category is assigned.
"""
from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Sequence

import numpy as np

from recon.quant.voi import LesionRecord

__all__ = [
    "PERCIST_MIN_CHANGE_PCT",
    "PERCIST_MIN_CHANGE_SUL",
    "BoneSpectResponse",
    "LesionChange",
    "LiverReference",
    "PercistResult",
    "ResponseReport",
    "bone_spect_response",
    "compare_lesions",
    "percist_response",
]

logger = logging.getLogger(__name__)

PERCIST_MIN_CHANGE_PCT = 30.0
"""PERCIST: a response or progression needs a SULpeak change of at least 30 % ..."""
PERCIST_MIN_CHANGE_SUL = 0.8
"""... and of at least 0.8 SUL units."""
_EPS = 1e-6  # float32 images: a change equal to a threshold counts as reaching it


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


# ------------------------------------------------------------------------------------ PERCIST 1.0

@dataclass(frozen=True)
class LiverReference:
    """Liver SUL in a 3 cm sphere of the normal right lobe: mean and standard deviation (SUL units)."""

    mean_sul: float
    sd_sul: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.mean_sul) and self.mean_sul > 0):
            raise ValueError(f"liver mean SUL must be a positive number, got {self.mean_sul}")
        if not (math.isfinite(self.sd_sul) and self.sd_sul >= 0):
            raise ValueError(f"liver SUL standard deviation must be >= 0, got {self.sd_sul}")

    @property
    def measurability_threshold(self) -> float:
        """PERCIST: a lesion is measurable when its SULpeak >= 1.5 x liver mean + 2 x SD."""
        return 1.5 * self.mean_sul + 2.0 * self.sd_sul


@dataclass(frozen=True)
class PercistResult:
    """PERCIST 1.0 category (``CMR``, ``PMR``, ``SMD``, ``PMD`` or ``NE``) and what it rests on."""

    category: str
    baseline_sul_peak: float | None
    followup_sul_peak: float | None
    baseline_label: int | None
    followup_label: int | None
    change_sul: float | None
    change_pct: float | None
    new_lesions: list[int]
    baseline_threshold: float | None
    followup_threshold: float | None
    reasons: list[str] = field(default_factory=list)
    min_change_pct: float = PERCIST_MIN_CHANGE_PCT
    min_change_sul: float = PERCIST_MIN_CHANGE_SUL

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict."""
        return asdict(self)


def _hottest(lesions: Sequence[LesionRecord], threshold: float | None) -> LesionRecord | None:
    kept = [r for r in lesions if threshold is None or r.stats.peak_search >= threshold]
    return max(kept, key=lambda r: r.stats.peak_search, default=None)


def percist_response(
    baseline: Sequence[LesionRecord],
    followup: Sequence[LesionRecord],
    report: ResponseReport,
    *,
    baseline_liver: LiverReference | None = None,
    followup_liver: LiverReference | None = None,
    min_change_pct: float = PERCIST_MIN_CHANGE_PCT,
    min_change_sul: float = PERCIST_MIN_CHANGE_SUL,
) -> PercistResult:
    """PERCIST 1.0 category from lesions measured in SUL (``stats.peak_search`` = SULpeak, 1 mL sphere).

    ``report`` is :func:`compare_lesions` of the same lesions (it names the new lesions).
    """
    if not (min_change_pct > 0 and min_change_sul > 0):
        raise ValueError("PERCIST thresholds must be positive")
    th_b = baseline_liver.measurability_threshold if baseline_liver else None
    th_f = followup_liver.measurability_threshold if followup_liver else None
    if baseline_liver is None:
        logger.info("PERCIST: no baseline liver reference; every segmented lesion counts as measurable")
    by_label = {r.label: r for r in followup}
    new = [lab for lab in report.new if th_f is None or by_label[lab].stats.peak_search >= th_f]
    target_b = _hottest(baseline, th_b)
    target_f = _hottest(followup, None)
    common = dict(new_lesions=new, baseline_threshold=th_b, followup_threshold=th_f,
                  min_change_pct=min_change_pct, min_change_sul=min_change_sul)
    if target_b is None:
        return PercistResult("NE", None, target_f.stats.peak_search if target_f else None, None,
                             target_f.label if target_f else None, None, None,
                             reasons=["no measurable lesion at baseline"], **common)
    b = target_b.stats.peak_search
    f = target_f.stats.peak_search if target_f else None
    change = None if f is None else f - b
    pct = None if change is None else 100.0 * change / b
    reasons: list[str] = []
    below_liver = target_f is None or (followup_liver is not None and f is not None and f < followup_liver.mean_sul)
    if new:
        category = "PMD"
        reasons.append(f"new lesion(s) at follow-up: {new}")
    elif below_liver:
        category = "CMR"
        reasons.append("no lesion at follow-up" if target_f is None else
                       f"hottest follow-up SULpeak {f:.2f} below the liver mean {followup_liver.mean_sul:.2f}")  # type: ignore[union-attr]
    elif change is not None and pct is not None and pct >= min_change_pct - _EPS and change >= min_change_sul - _EPS:
        category = "PMD"
        reasons.append(f"SULpeak {b:.2f} -> {f:.2f}: {pct:+.1f} % and {change:+.2f} SUL")
    elif change is not None and pct is not None and pct <= -min_change_pct + _EPS and change <= -min_change_sul + _EPS:
        category = "PMR"
        reasons.append(f"SULpeak {b:.2f} -> {f:.2f}: {pct:+.1f} % and {change:+.2f} SUL")
    else:
        category = "SMD"
        reasons.append(f"SULpeak {b:.2f} -> {f:.2f}: change below {min_change_pct:g} % and {min_change_sul:g} SUL"
                       if change is not None else "no change measurable")
    return PercistResult(category, b, f, target_b.label, target_f.label if target_f else None, change, pct,
                         reasons=reasons, **common)


@dataclass(frozen=True)
class BoneSpectResponse:
    """Bone SPECT: SUVmax of the hottest lesion in each study and its change; per-lesion changes in the report."""

    hottest_baseline_suv_max: float | None
    hottest_followup_suv_max: float | None
    change: float | None
    change_pct: float | None
    matched: int
    new_lesions: list[int]
    vanished_lesions: list[int]

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict."""
        return asdict(self)


def bone_spect_response(baseline: Sequence[LesionRecord], followup: Sequence[LesionRecord],
                        report: ResponseReport) -> BoneSpectResponse:
    """The change in SUVmax of the hottest lesion (per-lesion changes: ``report.matched``)."""
    b = max((r.stats.max for r in baseline), default=None)
    f = max((r.stats.max for r in followup), default=None)
    change = None if b is None or f is None else f - b
    pct = None if change is None or not b else 100.0 * change / b
    return BoneSpectResponse(b, f, change, pct, len(report.matched), list(report.new), list(report.vanished))
