"""Batch throughput: studies per minute on Dask against a plain sequential loop, as JSON.

    python benchmarks/batch_throughput.py [--n-studies 16] [--workers W] [--repeats 3]

N simulated studies of 64^3 voxels (9.6 mm, 60 views, a cylinder with hot lesions, Poisson noise,
seeded), each reconstructed as ``recon batch`` does (OSEM 4 x 8, attenuation + PSF + TEW, calibrated
to Bq/mL, SUV map and lesion report), on the same machine, each way once per repeat (interleaved, so
that a noisy neighbour hits every mode alike; ratios are taken within one repeat):
  sequential:     a plain loop over ``run_study`` in this process, Numba on all cores, kernels warm
  dask:           a LocalCluster of W worker processes x (cores / W) Numba threads (default W = cores)
  dask_1:         a LocalCluster of one worker with all cores (Dask's overhead against the loop)
  dask_1_daskenv: the same with Dask's default worker environment (MALLOC_TRIM_THRESHOLD_=65536),
                  i.e. before the fix in recon/batch/cluster.py
  cli_sequential, cli_dask_1: ``recon batch --workers 0`` and ``--workers 1`` as fresh processes
                  (both pay Python imports and the Numba cache load, as a user does)
Dask wall times include starting and closing the cluster; ``cluster_start_s``/``cluster_close_s``
give that split, and the overhead is reported with and without it.
Results go to benchmarks/results/batch_throughput_n<N>_cpu_<processor>.json.
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.spect_osem import device_description, versions  # noqa: E402
from recon.batch import ClusterOptions, cluster, read_manifest, run_studies, run_study  # noqa: E402
from recon.batch.cluster import _STARTUP_ENV, DROPPED_WORKER_ENV  # noqa: E402
from recon.data import ImageGrid, Volume  # noqa: E402
from recon.data.study import AcquisitionInfo, DoseInfo, PatientInfo  # noqa: E402
from recon.io.hdf5 import write_projections  # noqa: E402
from recon.spect.simulate import AcquisitionProtocol, simulate_spect  # noqa: E402

logger = logging.getLogger("benchmarks.batch_throughput")
N, VOXEL_MM, VIEWS = 64, 9.6, 60


def make_study(path: Path, seed: int) -> None:
    """A 64^3 cylinder (water mu, 5 kBq/mL) with three hot spheres, 500 MBq in 70 kg, 3 h after injection."""
    grid = ImageGrid.centered((N, N, N), (VOXEL_MM,) * 3)
    zz, yy, xx = (np.indices(grid.shape) - (N - 1) / 2) * VOXEL_MM
    body = (yy**2 + xx**2 <= 200.0**2) & (np.abs(zz) <= 250.0)
    act = body * 5e3
    rng = np.random.default_rng(seed)
    for _ in range(3):
        c = rng.uniform(-100, 100, 3)
        act = np.where((zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 <= 25.0**2, 4e4, act)
    mu = Volume((body * 0.0154).astype(np.float32), grid, "1/mm")
    acq = simulate_spect(Volume(act.astype(np.float32), grid, "Bq/mL"), mu,
                         AcquisitionProtocol(n_views=VIEWS, radius_mm=290.0), rng=rng, device="cpu")
    acq = replace(acq, info=AcquisitionInfo(start_time=datetime(2026, 11, 25, 11)), patient=PatientInfo(weight_kg=70.0),
                  dose=DoseInfo("Tc-99m", 500e6, datetime(2026, 11, 25, 8)))
    write_projections(acq, path, mu_map=mu)


def make_manifest(directory: Path, n: int) -> Path:
    rows = []
    for i in range(n):
        make_study(directory / f"b{i:03d}.h5", seed=i)
        rows.append({"id": f"b{i:03d}", "input": f"b{i:03d}.h5", "device": "cpu", "calibration": "91.0"})
    path = directory / "manifest.csv"
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def timed_batch(specs: list[Any], outdir: Path, options: ClusterOptions | None, cores: int) -> dict[str, Any]:
    """Wall time of the whole batch, its throughput, the median study (s, in its process) and the
    cluster's start and close times; ``options=None`` is the plain loop."""
    outdir.mkdir()
    stats: dict[str, float] = {}
    t0 = time.perf_counter()
    if options is None:
        results = [run_study(s, outdir, cores) for s in specs]
    else:
        results = run_studies(specs, outdir, options, progress=False, stats=stats)
    wall = time.perf_counter() - t0
    failed = [r.id for r in results if r.status != "ok"]
    if failed:
        raise RuntimeError(f"studies failed in the benchmark: {failed}")
    study_s = [r.compute_s for r in results]
    return {"wall_s": round(wall, 3), "studies_per_min": round(60.0 * len(specs) / wall, 2),
            "median_study_compute_s": round(float(np.median(study_s)), 3),
            "first_study_compute_s": round(study_s[0], 3),
            **{k: round(v, 3) for k, v in stats.items()}}


def timed_cli(manifest: Path, outdir: Path, workers: int, cores: int) -> dict[str, Any]:
    """Wall time of ``recon batch`` as a fresh process (imports, cluster, studies, summary)."""
    env = {k: v for k, v in os.environ.items() if k not in DROPPED_WORKER_ENV or _STARTUP_ENV.get(k) is not None}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "recon.cli", "-q", "batch", str(manifest), "-o", str(outdir),
           "--workers", str(workers), "--threads-per-worker", str(cores)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - t0
    studies = json.loads((outdir / "summary.json").read_text())["studies"]
    return {"wall_s": round(wall, 3), "studies_per_min": round(60.0 * len(studies) / wall, 2),
            "median_study_compute_s": round(float(np.median([r["compute_s"] for r in studies])), 3)}


def _percent(a: float, b: float) -> float:
    return round(100.0 * (a - b) / b, 1)


def overheads(t: dict[str, Any]) -> dict[str, float]:
    """One repeat's overheads of one Dask worker against the loop (%), with and without the cluster's
    start and close, per study (median), for the CLI, and before the fix."""
    seq, one, old = t["sequential"], t["dask_1"], t["dask_1_daskenv"]
    fixed = one.get("cluster_start_s", 0.0) + one.get("cluster_close_s", 0.0)
    return {
        "total_percent": _percent(one["wall_s"], seq["wall_s"]),
        "without_cluster_start_close_percent": _percent(one["wall_s"] - fixed, seq["wall_s"]),
        "cluster_start_close_s": round(fixed, 3),
        "median_study_percent": _percent(one["median_study_compute_s"], seq["median_study_compute_s"]),
        "cli_total_percent": _percent(t["cli_dask_1"]["wall_s"], t["cli_sequential"]["wall_s"]),
        "before_fix_total_percent": _percent(old["wall_s"], seq["wall_s"]),
        "before_fix_median_study_percent": _percent(old["median_study_compute_s"], seq["median_study_compute_s"]),
        "speedup_dask_vs_sequential": round(seq["wall_s"] / t["dask"]["wall_s"], 3),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    cores = os.cpu_count() or 1
    workers = args.workers or cores
    repeats: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="recon-batch-bench-") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        manifest = make_manifest(work, args.n_studies)
        specs = read_manifest(manifest)
        logger.info("simulated %d studies in %.1f s", len(specs), time.perf_counter() - t0)
        run_study(specs[0], work / "warmup", cores)  # compile (and cache) Numba's kernels before timing
        modes = {
            "sequential": None,
            "dask": ClusterOptions(workers=workers, threads_per_worker=max(1, cores // workers)),
            "dask_1": ClusterOptions(workers=1, threads_per_worker=cores),
        }
        for r in range(args.repeats):
            timings: dict[str, Any] = {}
            for name, options in modes.items():
                timings[name] = timed_batch(specs, work / f"{name}_{r}", options, cores)
            for name, n_workers in (("cli_sequential", 0), ("cli_dask_1", 1)):
                timings[name] = timed_cli(manifest, work / f"{name}_{r}", n_workers, cores)
            with mock.patch.object(cluster, "DROPPED_WORKER_ENV", ()):  # Dask's own worker environment
                timings["dask_1_daskenv"] = timed_batch(specs, work / f"daskenv_{r}", modes["dask_1"], cores)
            repeats.append({"timings": timings, "overheads": overheads(timings)})
            logger.info("repeat %d: %s", r + 1, json.dumps(repeats[-1]))
    ranges = {k: [min(x["overheads"][k] for x in repeats), max(x["overheads"][k] for x in repeats)]
              for k in repeats[0]["overheads"]}
    return {
        "benchmark": "batch_throughput", "date": datetime.now().isoformat(timespec="seconds"),
        "device": device_description("cpu"), "versions": versions("cpu"),
        "study": {"voxels": [N, N, N], "voxel_mm": VOXEL_MM, "views": VIEWS, "osem": "4 x 8",
                  "physics": "attenuation + psf + tew", "outputs": "Bq/mL volume, SUV map, lesion report"},
        "n_studies": args.n_studies, "dask_workers": workers, "threads_per_worker": max(1, cores // workers),
        "repeats": repeats, "ranges": ranges,
        "note": ("Dask wall times include starting and closing the local cluster; each ratio is from one "
                 "repeat (same minute); shared machine, timings are noisy"),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-studies", type=int, default=16)
    p.add_argument("--workers", type=int, help="Dask worker processes (default: one per core)")
    p.add_argument("--repeats", type=int, default=3, help="interleaved repeats of every mode (default 3)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = p.parse_args(argv)
    if args.n_studies < 1 or args.repeats < 1:
        p.error("--n-studies and --repeats must be >= 1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("distributed").setLevel(logging.WARNING)
    result = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    host = re.sub(r"[^A-Za-z0-9]+", "-", result["device"]["cpu"]).strip("-")[:40]
    path = args.out / f"batch_throughput_n{args.n_studies}_cpu_{host}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    logger.info("wrote %s", path)
    logger.info("overhead ranges over %d repeats: %s", args.repeats, json.dumps(result["ranges"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
