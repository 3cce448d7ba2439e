"""``recon response BASELINE FOLLOWUP [--json OUT.json]``: lesion-by-lesion change between two SUV studies.

Each study is what ``recon suv`` reads (a DICOM PT/NM series, one multi-frame
NM reconstruction, or the ``NAME_suvbw.h5`` map from ``recon spect``). Lesions
are segmented in both (the same threshold rules as ``recon suv --lesions``),
matched by the distance between their maxima in patient coordinates (LPS mm),
and reported with the change of SUVmax and SUVpeak, plus the lesions that are
new at follow-up or have vanished.

PET (a PT series, or an SUL map; --modality pet) is assessed by PERCIST 1.0: values are SUL
(SUV normalised to lean body mass, James's formula unless --suv-type says otherwise), SULpeak is
the hottest 1 mL sphere in a lesion, and the hottest lesion's change gives CMR, PMR, SMD or PMD
(a change of at least 30 % and 0.8 SUL; new lesions mean PMD). Give the liver reference
(--liver-baseline/--liver-followup MEAN SD, in SUL) to apply PERCIST's measurability threshold.
Bone SPECT (NM, or an SUV map; --modality spect) reports the change of lesion SUVmax, without a
category. The category is computed from automatically segmented lesions: it is a measurement
for a reader to confirm, not a diagnosis.
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
    p.add_argument("--suv-type", default=None,
                   help="SUV normalisation for DICOM input (default: lbm_james for PET/PERCIST, bw for SPECT)")
    p.add_argument("--modality", choices=("auto", "pet", "spect"), default="auto",
                   help="pet: PERCIST 1.0; spect: bone SPECT SUVmax change (auto: PT series or an SUL map -> pet)")
    p.add_argument("--liver-baseline", type=float, nargs=2, metavar=("MEAN", "SD"),
                   help="PET: liver reference SUL mean and SD at baseline (PERCIST measurability)")
    p.add_argument("--liver-followup", type=float, nargs=2, metavar=("MEAN", "SD"),
                   help="PET: liver reference SUL mean and SD at follow-up")
    p.add_argument("--threshold", type=float, default=2.5, help="lesions: SUV threshold (default 2.5)")
    p.add_argument("--percent", type=float, help="lesions: percent of each lesion's local max (e.g. 41)")
    p.add_argument("--min-volume-ml", type=float, default=0.0, help="lesions: drop lesions smaller than this (mL)")
    p.add_argument("--max-distance-mm", type=float, default=20.0,
                   help="match lesions whose maxima lie closer than this (mm, default 20)")
    p.add_argument("--json", type=Path, metavar="OUT.json", help="write the report as JSON")
    p.add_argument("--overwrite", action="store_true", help="replace an existing JSON report")
    p.set_defaults(func=run)
    return p


def study_modality(path: Path) -> str:
    """``"pet"`` for a PT series or an HDF5 SUL map (unit ``SUVlbm...``), else ``"spect"``."""
    from recon.commands.suv import _is_hdf5  # noqa: PLC0415

    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if _is_hdf5(path):
        from recon.io.hdf5 import read_volume  # noqa: PLC0415

        return "pet" if read_volume(path).unit.startswith("SUVlbm") else "spect"
    from recon.io.dicom.values import dcmread_checked  # noqa: PLC0415

    files = [path] if path.is_file() else sorted(f for f in path.iterdir() if f.is_file())
    for f in files[:50]:
        try:
            ds = dcmread_checked(f, stop_before_pixels=True)
        except Exception:  # noqa: BLE001 - not DICOM: try the next file
            continue
        return "pet" if str(ds.get("Modality", "")) == "PT" else "spect"
    return "spect"


def _lesions(path: Path, args: argparse.Namespace, modality: str) -> list[Any]:
    from recon.commands.suv import _is_hdf5, load_suv_volume  # noqa: PLC0415
    from recon.quant.voi import lesion_table, segment_lesions  # noqa: PLC0415

    study_args = argparse.Namespace(**vars(args))
    hdf5 = _is_hdf5(path)
    if args.suv_type is None:
        study_args.suv_type = "bw" if hdf5 or modality == "spect" else "lbm_james"
    volume, conversion, _ = load_suv_volume(path, study_args)
    if modality == "pet" and not str(conversion.get("kind", "")).startswith("lbm"):
        raise ValueError(f"{path}: PERCIST needs SUL (SUV normalised to lean body mass), the study gives "
                         f"SUV{conversion.get('kind')}; use --suv-type lbm_james with a DICOM series")
    labels, _ = segment_lesions(volume, threshold=args.threshold, percent_of_max=args.percent,
                                min_volume_ml=args.min_volume_ml)
    return lesion_table(volume, labels, cutoffs=None, peak_volume_ml=1.0)


def _liver(values: list[float] | None, flag: str) -> Any:
    from recon.quant.response import LiverReference  # noqa: PLC0415

    if values is None:
        return None
    try:
        return LiverReference(float(values[0]), float(values[1]))
    except ValueError as exc:
        raise ValueError(f"{flag}: {exc}") from None


def run(args: argparse.Namespace) -> int:
    """Run ``recon response``; 0 on success, 2 on bad input."""
    from recon.commands import check_threshold_options  # noqa: PLC0415
    from recon.io.atomic import check_writable_target  # noqa: PLC0415
    from recon.io.dicom import DicomFormatError  # noqa: PLC0415
    from recon.io.hdf5 import json_default  # noqa: PLC0415
    from recon.quant.response import bone_spect_response, compare_lesions, percist_response  # noqa: PLC0415
    from recon.quant.suv import SUVError  # noqa: PLC0415

    try:
        if args.json is not None:
            check_writable_target(args.json, args.overwrite)
        if not args.max_distance_mm > 0:
            raise ValueError(f"--max-distance-mm must be positive, got {args.max_distance_mm}")
        check_threshold_options(args)
        liver_b = _liver(args.liver_baseline, "--liver-baseline")
        liver_f = _liver(args.liver_followup, "--liver-followup")
    except (ValueError, OSError) as exc:
        report_error("response", exc)
        return 2
    try:
        modality = args.modality
        if modality == "auto":
            found = {study_modality(args.baseline), study_modality(args.followup)}
            if len(found) > 1:
                raise ValueError("baseline and follow-up are of different modalities (PET and SPECT); "
                                 "give --modality to compare them anyway")
            modality = found.pop()
        if modality == "spect" and (liver_b or liver_f):
            raise ValueError("--liver-baseline/--liver-followup apply to PET (PERCIST) only")
        baseline = _lesions(args.baseline, args, modality)
        followup = _lesions(args.followup, args, modality)
        report = compare_lesions(baseline, followup, max_distance_mm=args.max_distance_mm)
        if modality == "pet":
            summary = percist_response(baseline, followup, report, baseline_liver=liver_b, followup_liver=liver_f)
        else:
            summary = bone_spect_response(baseline, followup, report)
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
    out = {"modality": modality, **report.to_dict()}
    if modality == "pet":
        s = summary
        change = "-" if s.change_pct is None else f"{s.change_sul:+.2f} SUL ({s.change_pct:+.1f} %)"
        print(f"PERCIST 1.0: {s.category}  (hottest SULpeak baseline {s.baseline_sul_peak}, follow-up "
              f"{s.followup_sul_peak}, change {change}); {'; '.join(s.reasons)}")
        out["percist"] = s.to_dict()
    else:
        s = summary
        if s.change is not None:
            print(f"Bone SPECT: hottest lesion SUVmax {s.hottest_baseline_suv_max:.2f} -> "
                  f"{s.hottest_followup_suv_max:.2f} ({s.change:+.2f}, {s.change_pct:+.1f} %)")
        out["bone_spect"] = s.to_dict()
    if args.json is not None:
        from recon.io.atomic import write_text_atomic  # noqa: PLC0415

        write_text_atomic(args.json, json.dumps(out, indent=2, default=json_default), args.overwrite)
    return 0
