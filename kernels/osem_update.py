"""The fused elementwise steps of one OSEM sub-iteration: the one public entry per operation.

- :func:`poisson_ratio_into`: out = y / (A x + a) where A x + a > 0, else 0 (projection space);
- :func:`osem_update_into`: x *= A^T(ratio) / s + unseen (image space, in place).

Each validates its arrays once (float32, C-contiguous, equal shapes, one device; errors name the
argument) and dispatches on where they live: NumPy arrays run the Numba CPU loops below (parallel
``prange``), device arrays (``__cuda_array_interface__``, i.e. CuPy) the CUDA launchers of
:mod:`kernels.osem_cuda`. Neither allocates an array nor synchronises the host with the device.
The per-element math is :mod:`kernels.osem_math`, shared by both targets.
"""
from __future__ import annotations

from typing import Any

import numba
import numpy as np
from numba import prange

from kernels import osem_math as om
from kernels.arrays import describe, is_device_array, location

_math = om.compile_math(numba.njit(inline="always"))
_poisson_ratio = _math["poisson_ratio"]
_expected_with_additive = _math["expected_with_additive"]
_osem_factor = _math["osem_factor"]


@numba.njit(parallel=True, cache=True)
def _poisson_ratio_cpu(measured, expected, out):
    for i in prange(out.size):
        out[i] = _poisson_ratio(measured[i], expected[i])


@numba.njit(parallel=True, cache=True)
def _poisson_ratio_additive_cpu(measured, expected, additive, out):
    for i in prange(out.size):
        out[i] = _poisson_ratio(measured[i], _expected_with_additive(expected[i], additive[i]))


@numba.njit(parallel=True, cache=True)
def _osem_update_cpu(x, back_ratio, inv_sens, unseen):
    for i in prange(x.size):
        x[i] = _osem_factor(x[i], back_ratio[i], inv_sens[i], unseen[i])


def _check(**named: Any) -> bool:
    """Validate the named arrays (None skipped) against the first; returns True for device arrays."""
    first_name, first = None, None
    for name, a in named.items():
        if a is None:
            continue
        if not hasattr(a, "dtype") or not hasattr(a, "shape"):
            raise TypeError(f"{name} must be an array, got {type(a).__name__}")
        if a.dtype != np.float32:
            raise TypeError(f"{name} must be float32, got {a.dtype}")
        if not a.flags.c_contiguous:
            raise ValueError(f"{name} must be C-contiguous")
        if first is None:
            first_name, first = name, a
            continue
        if tuple(a.shape) != tuple(first.shape):
            raise ValueError(f"{name} has shape {tuple(a.shape)} but {first_name} has {tuple(first.shape)}")
        if location(a) != location(first):
            raise ValueError(f"{name} is on {describe(location(a))} but {first_name} is on "
                             f"{describe(location(first))}; all arrays must live on one device")
    return is_device_array(first)


def poisson_ratio_into(measured: Any, expected: Any, additive: Any | None, out: Any) -> Any:
    """out = measured / e where e = expected (+ additive) > 0, else 0; returns ``out``.

    All float32 (counts), C-contiguous, one shape and device. ``out`` may be ``expected`` itself
    (each bin is read before it is written). Reproduces the NumPy formula
    ``where(e > 0, measured / maximum(e, 1e-30), 0)`` in float32 bit for bit.
    """
    device = _check(measured=measured, expected=expected, additive=additive, out=out)
    if device:
        from kernels import osem_cuda  # noqa: PLC0415 - lazy: only with device arrays

        osem_cuda.poisson_ratio(measured, expected, additive, out)
    elif additive is None:
        _poisson_ratio_cpu(measured.reshape(-1), expected.reshape(-1), out.reshape(-1))
    else:
        _poisson_ratio_additive_cpu(measured.reshape(-1), expected.reshape(-1), additive.reshape(-1),
                                    out.reshape(-1))
    return out


def osem_update_into(x: Any, back_ratio: Any, inv_sens: Any, unseen: Any) -> Any:
    """x *= back_ratio * inv_sens + unseen, in place; returns ``x``.

    ``back_ratio`` = A_b^T(ratio), ``inv_sens`` = 1 / s_b where s_b > 0 (else 0) and ``unseen`` = 1 where
    s_b = 0 (else 0): the EM update where the subset sees a voxel, x kept where it does not. All float32,
    C-contiguous, one shape and device. Same roundings as the unfused NumPy formula.
    """
    device = _check(x=x, back_ratio=back_ratio, inv_sens=inv_sens, unseen=unseen)
    if device:
        from kernels import osem_cuda  # noqa: PLC0415 - lazy: only with device arrays

        osem_cuda.osem_update(x, back_ratio, inv_sens, unseen)
    else:
        _osem_update_cpu(x.reshape(-1), back_ratio.reshape(-1), inv_sens.reshape(-1), unseen.reshape(-1))
    return x
