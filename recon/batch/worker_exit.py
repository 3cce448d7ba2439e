"""A Dask worker plugin that lets a local worker process end without Python's interpreter teardown.

A worker process is started with ``spawn`` and ends with ``sys.exit``: Python then garbage-collects
every module (Numba's and LLVM's types among them), which took 0.4-0.9 s on the 2-core test VM after
one study (measured with gdb in ``Py_FinalizeEx`` -> ``finalize_modules``), and the cluster's close waits
for it. When the worker has closed (results delivered, its folder released), the plugin's teardown
registers an exit handler that flushes logging and standard streams and ends the process with
``os._exit(0)``. Only clusters that ``recon batch`` starts itself get it; workers of an existing
scheduler are left alone. This module imports ``distributed``: import it only when Dask is used.
"""
from __future__ import annotations

import atexit
import logging
import os
import sys
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin


def _exit_now() -> None:
    """Flush what the process wrote and end it without the interpreter teardown."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    os._exit(0)


class FastWorkerExit(WorkerPlugin):
    """On the worker's teardown, register :func:`_exit_now` as the first exit handler to run."""

    name = "recon-fast-worker-exit"

    def teardown(self, worker: Any) -> None:
        atexit.register(_exit_now)  # registered last, run first: after the worker has closed
