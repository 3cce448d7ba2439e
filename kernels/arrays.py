"""Where arrays live and which array module they belong to, for the public kernel entries.

A device array is one that exposes ``__cuda_array_interface__``; its array module is the package of
its type (e.g. cupy), found without importing it. Host arrays belong to NumPy.
"""
from __future__ import annotations

import sys
from typing import Any

import numpy as np

# What a device array's package must provide to be used as its array module.
_NAMESPACE_NEEDS: tuple[str, ...] = ("empty", "zeros", "arange", "asarray", "isfinite", "float32", "int64")


def is_device_array(a: Any) -> bool:
    """True for a GPU array (one that exposes ``__cuda_array_interface__``)."""
    return hasattr(a, "__cuda_array_interface__")


def location(a: Any) -> tuple:
    """("cpu",) for host arrays, ("cuda", device id) for device arrays."""
    if not is_device_array(a):
        return ("cpu",)
    dev = getattr(a, "device", None)
    return ("cuda", getattr(dev, "id", getattr(dev, "index", None)))


def describe(loc: tuple) -> str:
    """Words for a :func:`location`."""
    return "the host (NumPy)" if loc[0] == "cpu" else f"CUDA device {loc[1]}"


def namespace_of(name: str, a: Any) -> Any:
    """The array module of ``a``: numpy on the host, the package of its type (e.g. cupy) on the device."""
    if not is_device_array(a):
        return np
    xp = sys.modules.get(type(a).__module__.split(".")[0])
    if xp is None or not all(hasattr(xp, attr) for attr in _NAMESPACE_NEEDS):
        raise TypeError(f"{name}: device arrays of type {type(a).__module__}.{type(a).__name__} are not supported "
                        "(use CuPy arrays)")
    return xp


def array_module(**named: Any) -> Any:
    """The one array module of the named arrays (None entries ignored).

    Raises ValueError naming the first argument that lives on another device than the first one.
    """
    first_name, first_loc, xp = None, None, np
    for name, a in named.items():
        if a is None:
            continue
        loc = location(a)
        if first_name is None:
            first_name, first_loc, xp = name, loc, namespace_of(name, a)
        elif loc != first_loc:
            raise ValueError(f"{name} is on {describe(loc)} but {first_name} is on {describe(first_loc)}; "
                             "all arrays must live on one device")
    return xp


def module_device_key(xp: Any) -> tuple:
    """A cache key for arrays made with array module ``xp`` on its current device: (id(xp), device number),
    the number from ``xp.cuda.runtime.getDevice()`` where the module has it (CuPy), else None. Geometry
    copies cached under it are never handed to kernels on another GPU of the same process."""
    runtime = getattr(getattr(xp, "cuda", None), "runtime", None)
    return (id(xp), None if runtime is None else int(runtime.getDevice()))
