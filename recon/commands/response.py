"""``recon response BASELINE FOLLOWUP [--json OUT.json]``: lesion-by-lesion change between two SUV studies.

Each study is what ``recon suv`` reads (a DICOM PT/NM series, one multi-frame
NM reconstruction, or the ``NAME_suvbw.h5`` map from ``recon spect``). Lesions
are segmented in both (the same threshold rules as ``recon suv --lesions``),
matched by the distance between their maxima in patient coordinates (LPS mm),
and reported with the change of SUVmax and SUVpeak, plus the lesions that are
new at follow-up or have vanished. Changes are reported as numbers, never as a
response category.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from recon.commands import report_error

__all__ = ["register", "run"]


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``response`` subcommand."""
    from recon.commands import common_options  # noqa: PLC0415

    p = subparsers.add_parser("response", help="lesion changes between a baseline and a follow-up SUV study",
                              description=__doc__.split("\n\n", 1)[1], parents=[common_options()])
    p.add_argument("baseline", type=Path, help="baseline study (DICOM series dir, NM file or SUV .h5)")
    p.add_argument("followup", type=Path, help="follow-up study (same kinds)")
    p.add_argument("--suv-type", default="bw", help="SUV normalisation for DICOM input (default: bw)")
    p.add_argument("--threshold", type=float, default=2.5, help="lesions: SUV threshold (default 2.5)")
    p.add_argument("--percent", type=float, help="lesions: percent of each lesion's local max (e.g. 41)")
    p.add_argument("--min-volume-ml", type=float, default=0.0, help="lesions: drop lesions smaller than this (mL)")
    p.add_argument("--max-distance-mm", type=float, default=20.0,
                   help="match lesions whose maxima lie closer than this (mm, default 20)")
    p.add_argument("--json", type=Path, metavar="OUT.json", help="write the report as JSON")
    p.add_argument("--overwrite", action="store_true", help="replace an existing JSON report")
    p.set_defaults(func=run)
    return p


def _lesions(path: Path, args: argparse.Namespace) -> list[Any]:
    from recon.commands.suv import load_suv_volume  # noqa: PLC0415
    from recon.quant.voi import lesion_table, segment_lesions  # noqa: PLC0415

    volume, _, _ = load_suv_volume(path, args)
    labels, _ = segment_lesions(volume, threshold=args.threshold, percent_of_max=args.percent,
                                min_volume_ml=args.min_volume_ml)
    return lesion_table(volume, labels, cutoffs=None)


def run(args: argparse.Namespace) -> int:
    """Run ``recon response``; 0 on success, 2 on bad input."""
    from recon.commands import check_threshold_options  # noqa: PLC0415
    from recon.io.atomic import check_writable_target  # noqa: PLC0415
    from recon.io.dicom import DicomFormatError  # noqa: PLC0415
    from recon.io.hdf5 import json_default  # noqa: PLC0415
    from recon.quant.response import compare_lesions  # noqa: PLC0415
    from recon.quant.suv import SUVError  # noqa: PLC0415

    try:
        if args.json is not None:
            check_writable_target(args.json, args.overwrite)
        if not args.max_distance_mm > 0:
            raise ValueError(f"--max-distance-mm must be positive, got {args.max_distance_mm}")
        check_threshold_options(args)
    except (ValueError, OSError) as exc:
        report_error("response", exc)
        return 2
    try:
        baseline = _lesions(args.baseline, args)
        followup = _lesions(args.followup, args)
        report = compare_lesions(baseline, followup, max_distance_mm=args.max_distance_mm)
    except (SUVError, DicomFormatError, ValueError, OSError) as exc:
        report_error("response", exc)
        return 2
    print(f"Baseline {len(baseline)} lesions, follow-up {len(followup)}: {len(report.matched)} matched, "
          f"{len(report.new)} new, {len(report.vanished)} vanished")
    print(f"{'base':>4} {'follow':>6} {'dist mm':>8} {'SUVmax':>16} {'change %':>9} {'SUVpeak':>16} {'change %':>9}")
    for c in report.matched:
        pct_max = "-" if c.suv_max_change_pct is None else f"{c.suv_max_change_pct:+.1f}"
        pct_peak = "-" if c.suv_peak_change_pct is None else f"{c.suv_peak_change_pct:+.1f}"
        print(f"{c.baseline_label:>4} {c.followup_label:>6} {c.distance_mm:>8.1f} "
              f"{c.suv_max_baseline:>7.2f} -> {c.suv_max_followup:<6.2f} {pct_max:>9} "
              f"{c.suv_peak_baseline:>7.2f} -> {c.suv_peak_followup:<6.2f} {pct_peak:>9}")
    if report.new:
        print(f"new at follow-up: lesions {report.new}")
    if report.vanished:
        print(f"vanished at follow-up: baseline lesions {report.vanished}")
    if args.json is not None:
        from recon.io.atomic import write_text_atomic  # noqa: PLC0415

        write_text_atomic(args.json, json.dumps(report.to_dict(), indent=2, default=json_default), args.overwrite)
    return 0
