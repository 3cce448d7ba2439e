"""Run many studies: on a Dask cluster (local, remote or one worker per GPU) or one after another.

Dask does the scheduling; each study is one task, :func:`recon.batch.study.run_study`, which never
raises for a bad study. A local cluster uses processes, one study at a time per worker, and sets
Numba's thread count per worker so that workers x threads = cores.
"""
from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

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
    """Refuse, before any compute, options whose Dask pieces are not installed."""
    if (options.scheduler or options.gpus) and not dask_available():
        raise RuntimeError(f"--scheduler and --gpus need Dask: {INSTALL_HINT}")
    if options.gpus:
        try:
            import dask_cuda  # noqa: F401, PLC0415
        except ImportError as exc:
            raise RuntimeError("--gpus needs dask-cuda (pip install dask-cuda) for one worker per GPU") from exc


def local_sizing(n_studies: int, options: ClusterOptions, cores: int | None = None) -> tuple[int, int]:
    """(workers, Numba threads per worker) for a local cluster: workers x threads = cores by default."""
    cores = cores or os.cpu_count() or 1
    if options.workers:
        workers = options.workers
        threads = options.threads_per_worker or max(1, cores // workers)
    elif options.threads_per_worker:
        threads = options.threads_per_worker
        workers = max(1, min(n_studies, cores // threads))
    else:
        workers = max(1, min(n_studies, cores))
        threads = max(1, cores // workers)
    return workers, threads


@contextmanager
def dask_client(n_studies: int, options: ClusterOptions) -> Iterator[tuple[Any, int | None]]:
    """A connected ``distributed.Client`` and the Numba threads each task should use."""
    from distributed import Client, LocalCluster  # noqa: PLC0415

    if options.scheduler:
        try:
            client = Client(options.scheduler, timeout="30s")
        except OSError as exc:
            raise RuntimeError(f"cannot reach the Dask scheduler at {options.scheduler}: {exc}") from exc
        with client:
            logger.info("connected to the Dask scheduler at %s (dashboard %s)", options.scheduler, client.dashboard_link)
            yield client, options.threads_per_worker
        return
    if options.gpus:
        check_backend(options)
        from dask_cuda import LocalCUDACluster  # noqa: PLC0415

        cluster = LocalCUDACluster(threads_per_worker=1, dashboard_address=":0", silence_logs=logging.WARNING)
        threads = options.threads_per_worker
    else:
        workers, threads = local_sizing(n_studies, options)
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                               silence_logs=logging.WARNING,
                               env={"NUMBA_NUM_THREADS": str(threads), "OMP_NUM_THREADS": "1"})
        logger.info("started a local Dask cluster: %d worker processes x %d Numba threads", workers, threads)
    with cluster, Client(cluster) as client:
        logger.info("Dask dashboard: %s", client.dashboard_link)
        yield client, threads


def _progress(total: int, show: bool) -> Any:
    from tqdm import tqdm  # noqa: PLC0415

    return tqdm(total=total, desc="studies", unit="study", disable=not show)


def run_studies(specs: list[StudySpec], outdir: Path, options: ClusterOptions, progress: bool = True,
                on_result: Callable[[StudyResult], None] | None = None) -> list[StudyResult]:
    """Run every study; results in the order of ``specs``. Uses Dask unless ``options.workers == 0`` or
    Dask is not installed (then one study after another, with a note on how to get parallelism)."""
    if not specs:
        return []
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
            _run_on_dask(specs, outdir, options, done)
    return [results[s.id] for s in specs]


def _run_on_dask(specs: list[StudySpec], outdir: Path, options: ClusterOptions,
                 done: Callable[[StudyResult], None]) -> None:
    from distributed import as_completed  # noqa: PLC0415

    with dask_client(len(specs), options) as (client, threads):
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
