"""The Dask cluster of a batch: local worker processes sized to the machine, one worker per GPU, or a
running scheduler.

Local workers run with the environment of the plain loop. Dask's nanny sets
``MALLOC_TRIM_THRESHOLD_=65536`` in every worker process it spawns (``distributed.nanny.pre-spawn-environ``);
setting it switches off glibc's dynamic mmap threshold, so every array over 128 KiB is a fresh ``mmap``
that is page-faulted in and unmapped again. A 64^3 study allocates thousands of such temporaries: it
ran 0.12-0.25 s (20-45 %) slower in a worker than in the loop (measured, see benchmarks/README.md). Our
local workers therefore start with the malloc settings this process started with, and Numba, OpenMP and
BLAS threads set so that workers x threads = cores, and they end without the interpreter's teardown
(:mod:`recon.batch.worker_exit`), which the cluster's close otherwise waits for.
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

logger = logging.getLogger(__name__)

# Worker environment variables Dask sets that the plain loop does not have (see the module docstring).
DROPPED_WORKER_ENV: tuple[str, ...] = ("MALLOC_TRIM_THRESHOLD_",)
# Their values when this process started: a user's own setting is kept, Dask's is not (the nanny also
# writes its pre-spawn environment into this process's os.environ, where later clusters would inherit it).
_STARTUP_ENV: dict[str, str | None] = {k: os.environ.get(k) for k in DROPPED_WORKER_ENV}
NO_GPU = ("--gpus: no CUDA GPU is visible to this process (CuPy missing, no driver, or CUDA_VISIBLE_DEVICES empty); "
          "run without --gpus to use the CPU cores")


def local_sizing(n_studies: int, workers: int | None, threads_per_worker: int | None,
                 cores: int | None = None) -> tuple[int, int]:
    """(workers, Numba threads per worker) for a local cluster: workers x threads = cores by default."""
    cores = cores or os.cpu_count() or 1
    if workers:
        threads = threads_per_worker or max(1, cores // workers)
    elif threads_per_worker:
        threads = threads_per_worker
        workers = max(1, min(n_studies, cores // threads))
    else:
        workers = max(1, min(n_studies, cores))
        threads = max(1, cores // workers)
    return workers, threads


def thread_environ(threads: int) -> dict[str, str]:
    """Environment of a worker process that may use ``threads`` threads: Numba's pool and OpenMP/BLAS."""
    n = str(max(1, int(threads)))
    return {"NUMBA_NUM_THREADS": n, "OMP_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n, "MKL_NUM_THREADS": n}


def gpu_worker_environs(devices: list[str], threads: int | None = None,
                        cores: int | None = None) -> list[dict[str, str]]:
    """One worker environment per GPU in ``devices`` (``CUDA_VISIBLE_DEVICES`` entries): the worker's own
    GPU listed first, then the others (dask-cuda's order, so the worker's device 0 is its own GPU), and
    ``threads`` CPU threads each (default cores / GPUs). Raises RuntimeError without a GPU."""
    if not devices:
        raise RuntimeError(NO_GPU)
    cores = cores or os.cpu_count() or 1
    per_worker = threads or max(1, cores // len(devices))
    return [{"CUDA_VISIBLE_DEVICES": ",".join(devices[i:] + devices[:i]), **thread_environ(per_worker)}
            for i in range(len(devices))]


@contextmanager
def loop_like_workers() -> Iterator[None]:
    """Worker processes spawned inside this block get no ``DROPPED_WORKER_ENV`` variable that this
    process did not start with (see the module docstring)."""
    import dask  # noqa: PLC0415

    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", default={}) or {})
    for key in DROPPED_WORKER_ENV:
        if _STARTUP_ENV.get(key) is None:
            environ[key] = None  # distributed skips variables set to None
            os.environ.pop(key, None)  # left here by an earlier cluster's nanny; spawned workers inherit os.environ
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
        yield


def _gpu_cluster(devices: list[str], threads: int | None) -> Any:
    """dask-cuda's LocalCUDACluster when installed, else one ``Nanny`` per GPU pinned by CUDA_VISIBLE_DEVICES."""
    environs = gpu_worker_environs(devices, threads)
    try:
        from dask_cuda import LocalCUDACluster  # noqa: PLC0415
    except ImportError:
        from distributed import Nanny, Scheduler, SpecCluster  # noqa: PLC0415

        logger.info("dask-cuda is not installed: %d workers, each pinned to one GPU with CUDA_VISIBLE_DEVICES",
                    len(environs))
        workers = {f"gpu-{dev}": {"cls": Nanny, "options": {"nthreads": 1, "env": env, "name": f"gpu-{dev}"}}
                   for dev, env in zip(devices, environs)}
        return SpecCluster(workers=workers, scheduler={"cls": Scheduler, "options": {"dashboard_address": ":0"}},
                           silence_logs=logging.WARNING, name="recon-gpus")
    env = {k: v for k, v in environs[0].items() if k != "CUDA_VISIBLE_DEVICES"}
    return LocalCUDACluster(CUDA_VISIBLE_DEVICES=",".join(devices), threads_per_worker=1, dashboard_address=":0",
                            silence_logs=logging.WARNING, env=env)


@contextmanager
def dask_client(n_studies: int, scheduler: str | None = None, workers: int | None = None,
                threads_per_worker: int | None = None, gpus: bool = False,
                stats: dict[str, float] | None = None) -> Iterator[tuple[Any, int | None]]:
    """A connected ``distributed.Client`` and the Numba threads each task should use. ``stats`` (when
    given) receives ``cluster_start_s`` and ``cluster_close_s`` of a cluster started here."""
    from distributed import Client, LocalCluster  # noqa: PLC0415

    stats = {} if stats is None else stats
    if scheduler:
        try:
            client = Client(scheduler, timeout="30s")
        except OSError as exc:
            raise RuntimeError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from exc
        with client:
            logger.info("connected to the Dask scheduler at %s (dashboard %s)", scheduler, client.dashboard_link)
            yield client, threads_per_worker
        return
    t0 = time.perf_counter()
    with ExitStack() as stack:
        quiet = logging.getLogger("distributed")
        if not logger.isEnabledFor(logging.DEBUG):  # Dask's INFO lines (start, close) only with -v
            stack.callback(quiet.setLevel, quiet.level)
            quiet.setLevel(logging.WARNING)
        with loop_like_workers():
            if gpus:
                from recon.backend import visible_gpus  # noqa: PLC0415

                threads = threads_per_worker
                cluster = stack.enter_context(_gpu_cluster(visible_gpus(), threads))
            else:
                n, threads = local_sizing(n_studies, workers, threads_per_worker)
                cluster = stack.enter_context(LocalCluster(
                    n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0",
                    silence_logs=logging.WARNING, env=thread_environ(threads)))
                logger.info("started a local Dask cluster: %d worker processes x %d Numba threads", n, threads)
        client = stack.enter_context(Client(cluster))
        from recon.batch.worker_exit import FastWorkerExit  # noqa: PLC0415

        client.register_plugin(FastWorkerExit())
        stats["cluster_start_s"] = time.perf_counter() - t0
        logger.info("Dask dashboard: %s", client.dashboard_link)
        try:
            yield client, threads
        finally:
            t1 = time.perf_counter()
            stack.close()
            stats["cluster_close_s"] = time.perf_counter() - t1
