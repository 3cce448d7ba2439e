"""Which array module and which device: the only place that imports CuPy.

Nothing here runs at import time; CUDA availability is probed lazily on first
use and cached. The array decides the device: :func:`array_module` returns
``numpy`` for host arrays and ``cupy`` for device arrays.
"""
from __future__ import annotations

import functools
import logging
from typing import Any, Literal

import numpy as np

logger = logging.getLogger(__name__)

Device = Literal["auto", "cpu", "cuda"]
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")


@functools.lru_cache(maxsize=1)
def _cupy() -> Any | None:
    """The cupy module if it imports and sees at least one GPU, else None (cached)."""
    try:
        import cupy  # noqa: PLC0415 - lazy by design
    except Exception as exc:  # ImportError, or a broken CUDA install
        logger.debug("CuPy unavailable: %s", exc)
        return None
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return None
    except Exception as exc:
        logger.debug("CuPy present but no usable GPU: %s", exc)
        return None
    return cupy


def cuda_available() -> bool:
    """True when CuPy imports and a CUDA device is visible."""
    return _cupy() is not None


def resolve_device(device: str) -> str:
    """Map ``"auto" | "cpu" | "cuda"`` to ``"cpu"`` or ``"cuda"``.

    Raises ValueError for an unknown name and RuntimeError when ``"cuda"`` is
    asked for on a machine without a usable GPU.
    """
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    if device == "auto":
        return "cuda" if cuda_available() else "cpu"
    if device == "cuda" and not cuda_available():
        raise RuntimeError(
            "device='cuda' requested but no CUDA GPU is usable (CuPy missing or no device); "
            "install the 'gpu' extra on a machine with an NVIDIA GPU, or use device='cpu'"
        )
    return device


def is_device_array(a: Any) -> bool:
    """True for a CuPy (device) array."""
    cp = _cupy()
    return cp is not None and isinstance(a, cp.ndarray)


def array_module(*arrays: Any) -> Any:
    """``numpy`` or ``cupy``, chosen by where the arrays live.

    Raises ValueError when host and device arrays are mixed.
    """
    flags = {is_device_array(a) for a in arrays if a is not None}
    if len(flags) > 1:
        raise ValueError("arrays live on different devices (mixed NumPy and CuPy inputs)")
    if flags == {True}:
        return _cupy()
    return np


def to_device(a: np.ndarray, device: str) -> Any:
    """Copy a host array to ``device`` (``"cpu"`` or ``"cuda"``); a no-op when already there."""
    dev = resolve_device(device)
    if dev == "cuda":
        return _cupy().asarray(a)
    return to_host(a)


def to_host(a: Any) -> np.ndarray:
    """A NumPy array with the data of ``a`` (copied from the GPU when needed)."""
    if is_device_array(a):
        return a.get()
    return np.asarray(a)


def device_of(a: Any) -> str:
    """``"cuda"`` for a CuPy array, ``"cpu"`` otherwise."""
    return "cuda" if is_device_array(a) else "cpu"
