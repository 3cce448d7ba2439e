"""Ordered-subsets expectation maximisation (Hudson & Larkin 1994).

For each subset b::

    x <- x / s_b * A_b^T ( y_b / (A_b x + r_b) ),    s_b = A_b^T 1

Positivity is kept by construction (x0 > 0, multiplicative updates). Where the
expected data A_b x + r_b is 0 the ratio is taken as 0. A voxel that subset b
does not see (s_b = 0) keeps its value in that sub-iteration; voxels that no
subset sees are set to 0, as no data constrain them.

The loop allocates nothing and never waits for the device after its setup: one projection buffer per
distinct subset data shape and one image buffer are allocated before it, the operators write into them
(``apply_into`` / ``adjoint_into``, :func:`~recon.algorithms.operators.apply_into`; operators without
them fall back to ``apply`` / ``adjoint``), and the ratio and the update run as two fused elementwise
kernels (:mod:`kernels.osem_update`: modality-free array arithmetic, the one kernels module this
package may use).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from kernels.osem_update import osem_update_into, poisson_ratio_into
from recon.algorithms.operators import adjoint_into, apply_into
from recon.algorithms.protocol import Subset
from recon.backend import array_module

logger = logging.getLogger(__name__)

_TINY = 1e-30


@dataclass(frozen=True)
class OSEMProgress:
    """Passed to the callback after each sub-iteration."""

    iteration: int  # 0-based
    subset: int  # 0-based
    n_iterations: int
    n_subsets: int
    image: Any  # the current estimate (do not modify)
    elapsed_s: float


def osem(
    subsets: Sequence[Subset],
    n_iterations: int,
    x0: Any | None = None,
    callback: Callable[[OSEMProgress], None] | None = None,
    progress: bool = True,
) -> Any:
    """Run ``n_iterations`` full passes over ``subsets``; returns the image (same array module as the data).

    ``progress`` logs each iteration at INFO level and each subset at DEBUG level (silence with False
    or the logging configuration; ``recon -q`` does).
    """
    if n_iterations < 1:
        raise ValueError(f"n_iterations must be >= 1, got {n_iterations}")
    if len(subsets) == 0:
        raise ValueError("no subsets given")
    in_shape = tuple(subsets[0].operator.in_shape)
    for b, s in enumerate(subsets):
        if tuple(s.operator.in_shape) != in_shape:
            raise ValueError(f"subset {b} has image shape {tuple(s.operator.in_shape)}, expected {in_shape}")
    xp = array_module(subsets[0].measured)
    if x0 is None:
        x = xp.ones(in_shape, dtype=xp.float32)
    else:
        x = xp.array(x0, dtype=xp.float32, copy=True, order="C")
        if tuple(x.shape) != in_shape:
            raise ValueError(f"x0 shape {tuple(x.shape)} != image shape {in_shape}")
        if bool((x < 0).any()) or not bool(xp.isfinite(x).all()):
            raise ValueError("x0 must be finite and non-negative")
    # Per subset: 1/s_b where s_b > 0, and a 1 where s_b = 0 added to the update factor, so a voxel the
    # subset cannot see (its back projection is 0 there) keeps its value. Voxels that no subset sees
    # are set to 0: no data constrain them.
    inv_sens = [_float32_c(xp, xp.where(s.sensitivity > 0, 1.0 / xp.maximum(s.sensitivity, _TINY), 0.0))
                for s in subsets]
    unseen = [_float32_c(xp, s.sensitivity <= 0) for s in subsets]
    x *= (sum(s.sensitivity for s in subsets) > 0).astype(xp.float32)
    measured = [_float32_c(xp, s.measured) for s in subsets]
    additive = [None if s.additive is None else _float32_c(xp, s.additive) for s in subsets]
    # the loop's only working memory: one projection buffer per distinct subset shape, one image buffer
    by_shape = {shape: xp.empty(shape, dtype=xp.float32) for shape in {tuple(s.operator.out_shape) for s in subsets}}
    projection = [by_shape[tuple(s.operator.out_shape)] for s in subsets]
    back = xp.empty(in_shape, dtype=xp.float32)
    start = time.perf_counter()
    n_sub = len(subsets)
    for it in range(n_iterations):
        for b, s in enumerate(subsets):
            expected = apply_into(s.operator, x, projection[b])
            poisson_ratio_into(measured[b], expected, additive[b], expected)  # the ratio overwrites expected
            adjoint_into(s.operator, expected, back)
            osem_update_into(x, back, inv_sens[b], unseen[b])
            if progress:
                logger.debug("OSEM iteration %d/%d, subset %d/%d", it + 1, n_iterations, b + 1, n_sub)
            if callback is not None:
                callback(OSEMProgress(it, b, n_iterations, n_sub, x, time.perf_counter() - start))
        if progress:
            logger.info("OSEM iteration %d/%d (%d subsets) done, %.2f s", it + 1, n_iterations, n_sub,
                        time.perf_counter() - start)
    return x


def _float32_c(xp: Any, a: Any) -> Any:
    """``a`` as float32 C-contiguous: itself when it is already (the usual case), else a copy made once."""
    return xp.ascontiguousarray(a, dtype=xp.float32)
