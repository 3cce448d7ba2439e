"""The SUV/lesion report of one SUV volume: the same record ``recon suv --lesions --json`` writes."""
from __future__ import annotations

from typing import Any

import numpy as np

from recon.data.grid import Volume
from recon.quant.voi import (BONE_SPECT_TC99M_CUTOFFS, CUTOFF_DISCLAIMER, lesion_table, segment_lesions,
                             voi_statistics)


def suv_report(suv_vol: Volume, conversion: dict[str, Any], info: dict[str, Any], threshold: float = 2.5,
               percent: float | None = None) -> dict[str, Any]:
    """Whole-image statistics and the lesion table of ``suv_vol`` (lesions: SUV >= ``threshold``, or
    ``percent`` of each lesion's local max seeded at ``threshold``), keyed as ``recon suv``'s JSON report."""
    mask = np.ones(suv_vol.grid.shape, bool)
    stats = voi_statistics(suv_vol, mask)
    labels, _ = segment_lesions(suv_vol, threshold=threshold, percent_of_max=percent, within=mask, min_volume_ml=0.0)
    table = lesion_table(suv_vol, labels, cutoffs=list(BONE_SPECT_TC99M_CUTOFFS))
    method = f"{percent:g}% of local max (seeds >= {threshold:g})" if percent else f"SUV >= {threshold:g}"
    return {
        "series": info,
        "grid": {"shape_zyx": list(suv_vol.grid.shape), "spacing_mm_zyx": list(suv_vol.grid.spacing_mm),
                 "origin_mm_xyz": list(suv_vol.grid.origin_mm)},
        "suv": conversion,
        "voi": {"mask": "whole image", **stats.to_dict()},
        "lesions": {"method": method, "cutoff_note": CUTOFF_DISCLAIMER, "table": [r.to_dict() for r in table]},
    }


def key_quantities(report: dict[str, Any]) -> dict[str, Any]:
    """SUVmax, SUVpeak (1 mL search), SUVmean of the whole image, the lesion count and the unit."""
    voi = report["voi"]
    return {"suv_max": float(voi["max"]), "suv_peak": float(voi["peak_search"]), "suv_mean": float(voi["mean"]),
            "n_lesions": len(report["lesions"]["table"]), "unit": str(voi["unit"])}
