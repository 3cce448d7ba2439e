"""Subset partitions: which data units (SPECT views, PET sinogram views or events) each subset holds.

A partition is a list of int64 index arrays on the host that together hold every unit
index in [0, n_units) exactly once.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _positive_int(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


def interleaved_subsets(n_units: int, n_subsets: int) -> list[np.ndarray]:
    """Unit indices of each subset: subset b holds units b, b + n, b + 2n, ... (n = ``n_subsets``).

    With SPECT views ordered by angle, each subset spreads evenly over the orbit.
    """
    n_units = _positive_int("n_units", n_units)
    n_subsets = _positive_int("n_subsets", n_subsets)
    if n_subsets > n_units:
        raise ValueError(f"n_subsets ({n_subsets}) exceeds the number of subset units ({n_units}, e.g. views)")
    return [np.arange(b, n_units, n_subsets, dtype=np.int64) for b in range(n_subsets)]


def check_partition(parts: Sequence[np.ndarray], n_units: int) -> None:
    """Raise ValueError unless ``parts`` are non-empty and hold each index in [0, n_units) exactly once."""
    if len(parts) == 0:
        raise ValueError("a partition needs at least one subset")
    counts = np.zeros(int(n_units), dtype=np.int64)
    for b, part in enumerate(parts):
        idx = np.asarray(part).reshape(-1)
        if idx.size == 0:
            raise ValueError(f"subset {b} is empty")
        if not np.issubdtype(idx.dtype, np.integer):
            raise ValueError(f"subset {b} indices must be integers, got dtype {idx.dtype}")
        if idx.min() < 0 or idx.max() >= n_units:
            raise ValueError(f"subset {b} has indices outside [0, {n_units})")
        np.add.at(counts, idx, 1)
    if (counts != 1).any():
        missing = int((counts == 0).sum())
        repeated = int((counts > 1).sum())
        raise ValueError(f"subsets must hold every unit exactly once: {missing} missing, {repeated} repeated")
