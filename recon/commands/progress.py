"""A progress bar for long reconstructions on the command line: iterations x subsets with an ETA (tqdm).

The library core only calls an OSEM callback; the bar lives here, in the CLI, and ``-q`` silences it.
"""
from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from recon.algorithms.osem import OSEMProgress


@contextmanager
def osem_progress_bar(enabled: bool, n_iterations: int, n_subsets: int,
                      desc: str = "OSEM") -> Iterator[Callable[[OSEMProgress], None] | None]:
    """Yield an OSEM callback that advances a tqdm bar of ``n_iterations`` x ``n_subsets`` sub-iterations
    (on stderr, with an ETA), or ``None`` when ``enabled`` is False; the bar is closed on exit."""
    if not enabled:
        yield None
        return
    from tqdm import tqdm  # noqa: PLC0415
    from tqdm.contrib.logging import logging_redirect_tqdm  # noqa: PLC0415

    bar: Any = tqdm(total=n_iterations * n_subsets, desc=desc, unit="subset", file=sys.stderr, leave=False,
                    dynamic_ncols=True)

    def callback(p: OSEMProgress) -> None:
        bar.set_postfix_str(f"iteration {p.iteration + 1}/{p.n_iterations}", refresh=False)
        bar.update(1)

    try:
        with logging_redirect_tqdm():  # log lines print above the bar, not through it
            yield callback
    finally:
        bar.close()
