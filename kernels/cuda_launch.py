"""Launching numba.cuda kernels on CuPy (or any ``__cuda_array_interface__``) arrays without host syncs.

Numba, handed a foreign device array, synchronises the stream that array names in its interface
(``NUMBA_CUDA_ARRAY_INTERFACE_SYNC``, on by default): one host sync per array argument of every
launch. :func:`launch` instead wraps each argument without that sync and launches on the stream the
first array names (CuPy's current stream when it was exported), so the kernel is ordered after the
work that produced its inputs and nothing waits on the host. The wrappers are cached by their
descriptor (pointer, shape, strides, type) and hold no reference to the array, so a buffer reused
every subset is wrapped once.

Under Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) arguments pass through unchanged (NumPy
arrays, or the tests' NumPy arrays posing as device arrays) on stream 0.
"""
from __future__ import annotations

from typing import Any

from numba import config, cuda

_SIMULATOR: bool = bool(getattr(config, "ENABLE_CUDASIM", False))
_VIEWS: dict[tuple, Any] = {}
_STREAMS: dict[int, Any] = {}
_MAX_CACHED_VIEWS = 512


def device_view(a: Any) -> Any:
    """A Numba device array over ``a``'s memory (no copy, no sync); other arguments unchanged."""
    desc = getattr(a, "__cuda_array_interface__", None)
    if desc is None or hasattr(a, "gpu_data") or _SIMULATOR:  # host arrays, scalars, Numba device arrays
        return a
    key = (desc["data"][0], tuple(desc["shape"]), None if desc.get("strides") is None else tuple(desc["strides"]),
           desc["typestr"])
    view = _VIEWS.get(key)
    if view is None:
        if len(_VIEWS) >= _MAX_CACHED_VIEWS:
            _VIEWS.clear()
        view = cuda.from_cuda_array_interface(desc, owner=None, sync=False)
        _VIEWS[key] = view
    return view


def stream_of(args: tuple) -> Any:
    """The stream the first foreign device array among ``args`` was exported on (0, the default stream,
    when none names one, and always under the simulator)."""
    if _SIMULATOR:
        return 0
    for a in args:
        desc = getattr(a, "__cuda_array_interface__", None)
        if desc is None or hasattr(a, "gpu_data"):
            continue
        ptr = desc.get("stream")
        if ptr is None:  # CuPy with stream export switched off: the legacy default stream, which is not
            return 0     # ordered against non-blocking streams (use CuPy's default stream, or export streams)
        if ptr not in _STREAMS:
            _STREAMS[ptr] = cuda.external_stream(ptr)
        return _STREAMS[ptr]
    return 0


def launch(kernel: Any, blocks: int, threads: int, args: tuple, shared_bytes: int = 0) -> None:
    """``kernel[blocks, threads, stream, shared_bytes](*args)`` on the arguments' stream, without host syncs."""
    stream = stream_of(args)
    kernel[blocks, threads, stream, shared_bytes](*(device_view(a) for a in args))
