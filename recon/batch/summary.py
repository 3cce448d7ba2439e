"""The batch's one table: every study's status, error, timings, device and key quantities (CSV + JSON)."""
from __future__ import annotations

import csv
import io
import json
from dataclasses import fields
from pathlib import Path
from typing import Any

from recon.batch.study import StudyResult
from recon.io.atomic import write_text_atomic

COLUMNS = tuple(f.name for f in fields(StudyResult))


def summary_csv(results: list[StudyResult]) -> str:
    """CSV text, one row per study (outputs joined by ';', missing quantities empty)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in results:
        row = r.to_dict()
        row["outputs"] = ";".join(r.outputs)
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return buf.getvalue()


def summary_record(results: list[StudyResult], batch: dict[str, Any]) -> dict[str, Any]:
    """The JSON summary: the batch's settings and counts, then every study."""
    counts = {s: sum(r.status == s for r in results) for s in ("ok", "failed")}
    counts["reused"] = sum(r.reused for r in results)
    return {"batch": batch, "counts": {"studies": len(results), **counts}, "studies": [r.to_dict() for r in results]}


def write_summary(outdir: Path, results: list[StudyResult], batch: dict[str, Any],
                  json_path: Path | None = None, overwrite: bool = False) -> list[Path]:
    """``outdir/summary.csv`` and ``outdir/summary.json`` (and ``json_path`` when given), atomically."""
    text = json.dumps(summary_record(results, batch), indent=2)
    paths = [write_text_atomic(outdir / "summary.csv", summary_csv(results), overwrite),
             write_text_atomic(outdir / "summary.json", text, overwrite)]
    if json_path is not None:
        paths.append(write_text_atomic(json_path, text, overwrite))
    return paths
