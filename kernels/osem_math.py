"""Per-element math of the OSEM update, written once for both targets.

Plain Python functions on float32 scalars. :func:`compile_math` compiles them with one
decorator: ``numba.njit`` in :mod:`kernels.osem_update` (CPU), ``numba.cuda.jit(device=True)``
in :mod:`kernels.osem_cuda`. Both launchers call these functions and nothing else for the
arithmetic, so the CPU path is the tested truth for the GPU path.

The rounding sequence is the one of the unfused NumPy formula (one float32 rounding per
operation, no fused multiply-add on the CPU), so the CPU path reproduces it bit for bit::

    ratio  = measured / max(expected + additive, TINY)  where expected + additive > 0, else 0
    x_new  = x * (back_ratio * inv_sens + unseen)

Numba's on-disk cache of :mod:`kernels.osem_update` checks only that file's time stamp: after
editing this module, touch ``osem_update.py`` (or delete ``kernels/__pycache__``).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from kernels.jit_math import compile_functions

# Smallest denominator of the Poisson ratio (float32; the expected counts below it but > 0 divide by it).
TINY: np.float32 = np.float32(1e-30)


def poisson_ratio(measured: float, expected: float) -> float:
    """measured / max(expected, TINY) where expected > 0, else 0 (float32 counts ratio)."""
    if expected > np.float32(0.0):
        return measured / max(expected, TINY)
    return np.float32(0.0)


def expected_with_additive(expected: float, additive: float) -> float:
    """The expected counts A x + a of one bin (one float32 rounding)."""
    return expected + additive


def osem_factor(x: float, back_ratio: float, inv_sens: float, unseen: float) -> float:
    """The updated voxel x (back_ratio inv_sens + unseen): the EM update, or x kept where unseen = 1."""
    return x * (back_ratio * inv_sens + unseen)


FUNCTIONS: tuple[str, ...] = ("poisson_ratio", "expected_with_additive", "osem_factor")


def compile_math(jit: Callable[[Callable], Any]) -> dict[str, Any]:
    """Every function of :data:`FUNCTIONS` compiled with ``jit`` (e.g. ``numba.njit(inline="always")``
    or ``numba.cuda.jit(device=True, inline="always")``), calling each other's compiled versions."""
    return compile_functions(globals(), FUNCTIONS, jit)
