"""``recon batch MANIFEST -o OUTDIR``: many studies in one command, in parallel on Dask.

MANIFEST is a CSV, one row per study (id, input, task spect|suv, options, calibration, reference
time, patient overrides; see docs/batch.md), or a directory of *.h5 projections and NM *.dcm files.
The whole manifest is checked before any compute. Each study writes what ``recon spect`` (and
``recon suv --lesions --json``) would under OUTDIR/<id>/, its completion record study.json last;
OUTDIR/summary.csv and summary.json gather every study.

Exit status: 0 every study succeeded; 1 at least one study failed (the others still ran, see the
summary); 2 bad manifest or usage, nothing computed.
"""
from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

from recon.commands import common_options

logger = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("batch", help="run many studies from a manifest (Dask)", description=__doc__,
                       parents=[common_options()], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("manifest", type=Path, help="CSV manifest, or a directory of *.h5 / NM *.dcm studies")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUTDIR", help="output directory")
    p.add_argument("--scheduler", metavar="ADDRESS", help="use a running Dask cluster (tcp://HOST:PORT)")
    p.add_argument("--workers", type=int, metavar="N",
                   help="local worker processes (default: sized to the machine; 0: one study after another, no Dask)")
    p.add_argument("--threads-per-worker", type=int, metavar="T",
                   help="Numba threads per worker (default: cores / workers)")
    p.add_argument("--gpus", action="store_true", help="one worker per GPU (needs dask-cuda); studies on cuda")
    p.add_argument("--resume", action="store_true", help="keep finished studies, redo the rest")
    p.add_argument("--overwrite", action="store_true", help="redo every study, replacing earlier outputs")
    p.add_argument("--json", type=Path, metavar="SUMMARY.json", help="also write the summary JSON here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``recon batch``; returns 0 (all good), 1 (some studies failed); usage errors raise (-> 2)."""
    from recon.batch import ClusterOptions, plan_batch, read_manifest, run_studies  # noqa: PLC0415
    from recon.batch.runner import check_backend  # noqa: PLC0415
    from recon.batch.summary import write_summary  # noqa: PLC0415
    from recon.io.atomic import check_writable_directory, check_writable_target  # noqa: PLC0415

    options = ClusterOptions(args.scheduler, args.workers, args.threads_per_worker, args.gpus)
    check_backend(options)
    specs = read_manifest(args.manifest)
    outdir: Path = args.output
    if outdir.exists() and not outdir.is_dir():
        raise FileExistsError(f"{outdir} is not a directory")
    if not outdir.parent.is_dir():
        raise FileNotFoundError(f"the parent directory of {outdir} does not exist")
    check_writable_directory(outdir if outdir.is_dir() else outdir.parent)
    plan = plan_batch(specs, outdir, resume=args.resume, overwrite=args.overwrite)
    if args.json is not None:
        check_writable_target(args.json, args.overwrite or args.resume)
    outdir.mkdir(exist_ok=True)
    plan.apply(outdir)
    if plan.reused:
        logger.info("resume: %d finished studies kept, %d to run", len(plan.reused), len(plan.run))
    t0 = time.perf_counter()
    ran = run_studies(plan.run, outdir, options, progress=not args.quiet)
    elapsed = time.perf_counter() - t0
    by_id = {r.id: r for r in [*plan.reused, *ran]}
    results = [by_id[s.id] for s in specs]
    batch = {"manifest": str(args.manifest), "outdir": str(outdir), "scheduler": args.scheduler,
             "workers": args.workers, "threads_per_worker": args.threads_per_worker, "gpus": args.gpus,
             "cpu_count": os.cpu_count(), "elapsed_s": round(elapsed, 3), "resumed": args.resume}
    write_summary(outdir, results, batch, args.json, overwrite=args.resume or args.overwrite)
    failed = [r for r in results if r.status != "ok"]
    logger.info("%d studies: %d ok, %d failed (%d kept from before) in %.1f s; summary in %s",
                len(results), len(results) - len(failed), len(failed), len(plan.reused), elapsed,
                outdir / "summary.csv")
    for r in failed:
        logger.warning("study %s failed: %s", r.id, r.error)
    return 1 if failed else 0
