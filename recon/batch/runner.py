"""Run many studies: on a Dask cluster (local, remote or one worker per GPU) or one after another.

Dask does the scheduling; each study is one task, :func:`recon.batch.study.run_study`, which never
raises for a bad study and may be rerun (a retry after a worker died). A local cluster uses processes,
one study at a time per worker, with Numba's thread count per worker set so that workers x threads =
cores (:mod:`recon.batch.cluster`). Paths are made absolute before tasks leave this process.
"""
from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from recon.batch import cluster
from recon.batch.cluster import NO_GPU
from recon.batch.manifest import StudySpec
from recon.batch.study import StudyResult, run_study

logger = logging.getLogger(__name__)

INSTALL_HINT = "install the 'distributed' extra (pip install 'recon[distributed]') to run studies in parallel"


@dataclass(frozen=True)
class ClusterOptions:
    """Where studies run: ``scheduler`` (address of an existing cluster), ``workers`` (None: sized to the
    machine; 0: one after another in this process), Numba ``threads_per_worker``, ``gpus`` (one worker
    per GPU through dask-cuda)."""

    scheduler: str | None = None
    workers: int | None = None
    threads_per_worker: int | None = None
    gpus: bool = False

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 0:
            raise ValueError(f"--workers must be >= 0, got {self.workers}")
        if self.threads_per_worker is not None and self.threads_per_worker < 1:
            raise ValueError(f"--threads-per-worker must be >= 1, got {self.threads_per_worker}")
        if self.gpus and self.scheduler:
            raise ValueError("--gpus starts its own GPU workers; with --scheduler, start dask-cuda workers there instead")
        if self.gpus and self.workers == 0:
            raise ValueError("--gpus and --workers 0 exclude each other")


def dask_available() -> bool:
    try:
        import distributed  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


def check_backend(options: ClusterOptions) -> None:
    """Refuse, before any compute, options whose Dask pieces or GPUs are missing (one-line errors)."""
    if (options.scheduler or options.gpus) and not dask_available():
        raise RuntimeError(f"--scheduler and --gpus need Dask: {INSTALL_HINT}")
    if options.gpus:
        from recon.backend import visible_gpus  # noqa: PLC0415

        if not visible_gpus():
            raise RuntimeError(NO_GPU)


def local_sizing(n_studies: int, options: ClusterOptions, cores: int | None = None) -> tuple[int, int]:
    """(workers, Numba threads per worker) for a local cluster: workers x threads = cores by default."""
    return cluster.local_sizing(n_studies, options.workers, options.threads_per_worker, cores)


def absolute_spec(spec: StudySpec) -> StudySpec:
    """``spec`` with absolute input paths (relative ones taken from this process's working directory):
    a remote worker has another working directory."""
    paths = {k: Path(os.path.abspath(v)) for k in ("input", "ct")
             if isinstance(v := getattr(spec, k), Path) and not v.is_absolute()}
    return replace(spec, **paths) if paths else spec


def _progress(total: int, show: bool) -> Any:
    from tqdm import tqdm  # noqa: PLC0415

    return tqdm(total=total, desc="studies", unit="study", disable=not show)


def run_studies(specs: list[StudySpec], outdir: Path, options: ClusterOptions, progress: bool = True,
                on_result: Callable[[StudyResult], None] | None = None,
                stats: dict[str, float] | None = None) -> list[StudyResult]:
    """Run every study; results in the order of ``specs``. Uses Dask unless ``options.workers == 0`` or
    Dask is not installed (then one study after another, with a note on how to get parallelism).
    ``stats`` (when given) receives the cluster's start and close times (s)."""
    if not specs:
        return []
    outdir = Path(os.path.abspath(outdir))
    specs = [absolute_spec(s) for s in specs]
    if options.gpus:
        specs = [replace(s, device="cuda") if s.device == "auto" and s.task == "spect" else s for s in specs]
    sequential = options.workers == 0
    check_backend(options)
    if not sequential and not dask_available():
        logger.warning("Dask is not installed: running the studies one after another; %s", INSTALL_HINT)
        sequential = True
    results: dict[str, StudyResult] = {}
    with _progress(len(specs), progress) as bar:
        def done(result: StudyResult) -> None:
            results[result.id] = result
            bar.update(1)
            bar.set_postfix(failed=sum(r.status != "ok" for r in results.values()))
            if on_result is not None:
                on_result(result)

        if sequential:
            for spec in specs:
                done(run_study(spec, outdir, options.threads_per_worker))
        else:
            _run_on_dask(specs, outdir, options, done, stats)
    return [results[s.id] for s in specs]


def _run_on_dask(specs: list[StudySpec], outdir: Path, options: ClusterOptions,
                 done: Callable[[StudyResult], None], stats: dict[str, float] | None) -> None:
    from distributed import as_completed  # noqa: PLC0415

    with cluster.dask_client(len(specs), options.scheduler, options.workers, options.threads_per_worker,
                             options.gpus, stats) as (client, threads):
        batch = uuid.uuid4().hex[:8]  # keys unique to this batch on a shared scheduler
        futures = {client.submit(run_study, spec, str(outdir), threads, key=f"study-{spec.id}-{batch}"): spec
                   for spec in specs}
        for future in as_completed(futures):
            spec = futures[future]
            try:
                result = future.result()
            except Exception as exc:  # noqa: BLE001 - a lost worker fails its study, not the batch
                result = StudyResult(id=spec.id, task=spec.task, status="failed", input=str(spec.input),
                                     error=f"{type(exc).__name__}: {exc}".splitlines()[0])
                logger.error("study %s failed on the cluster: %s", spec.id, result.error)
            done(result)
