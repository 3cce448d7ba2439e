"""Which array module and which device: the only place that imports CuPy.

Nothing here runs at import time; CUDA availability is probed lazily on first
use and cached. The array decides the device: :func:`array_module` returns
``numpy`` for host arrays and ``cupy`` for device arrays.
"""
from __future__ import annotations

import functools
import logging
import os
import platform
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


def visible_gpus() -> list[str]:
    """The CUDA devices this process may use, as ``CUDA_VISIBLE_DEVICES`` entries (indices or UUIDs):
    the entries of that variable when it is set, else ``"0" .. "n-1"``; empty without a usable GPU."""
    cp = _cupy()
    if cp is None:
        return []
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    count = int(cp.cuda.runtime.getDeviceCount())
    if listed is not None:
        return [e.strip() for e in listed.split(",") if e.strip()][:count]
    return [str(i) for i in range(count)]


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


def synchronize(a: Any = None) -> None:
    """Wait until the GPU work queued on the device of ``a`` has finished (a CuPy array, the cupy
    module or None for the current device); a no-op for host arrays, numpy, or without CuPy.

    Use it around timings: GPU launches return before the work is done.
    """
    cp = _cupy()
    if cp is None or a is np or isinstance(a, np.ndarray):
        return
    if isinstance(a, cp.ndarray):
        a.device.synchronize()
    else:
        cp.cuda.Device().synchronize()


def device_info(device: str = "cuda", index: int = 0) -> dict[str, Any]:
    """What the numbers were measured on, as plain JSON-able values.

    ``"cpu"``: processor name and logical cores. ``"cuda"``: GPU ``index``'s name, memory (GiB),
    compute capability ("9.0"), driver and runtime versions ("12.4") and the CuPy version.
    Raises RuntimeError for ``"cuda"`` without a usable GPU.
    """
    dev = resolve_device(device)
    if dev == "cpu":
        return {"kind": "cpu", "cpu": _cpu_name(), "cpu_cores": os.cpu_count()}
    cp = _cupy()
    props = cp.cuda.runtime.getDeviceProperties(index)
    name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    return {
        "kind": "cuda",
        "gpu": name,
        "gpu_index": index,
        "gpu_memory_gib": props["totalGlobalMem"] / 2**30,
        "compute_capability": f"{props['major']}.{props['minor']}",
        "driver_version": _cuda_version(cp.cuda.runtime.driverGetVersion()),
        "runtime_version": _cuda_version(cp.cuda.runtime.runtimeGetVersion()),
        "cupy_version": cp.__version__,
    }


def gpu_pool_bytes() -> int:
    """Bytes held by CuPy's default memory pool (the GPU memory our arrays occupy); 0 without CuPy."""
    cp = _cupy()
    return 0 if cp is None else int(cp.get_default_memory_pool().total_bytes())


def _cuda_version(v: int) -> str:
    """CUDA's integer version (12040) as "12.4"."""
    return f"{v // 1000}.{(v % 1000) // 10}"


def _cpu_name() -> str:
    """Processor model name from /proc/cpuinfo, else the platform's answer, else "unknown"."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
