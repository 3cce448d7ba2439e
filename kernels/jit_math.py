"""Compile a module's per-element functions for one target (CPU ``numba.njit`` or CUDA device functions).

Compiled code can only call compiled code: each function is rebuilt over one shared globals dict in
which its siblings are replaced by their compiled versions, so calls between them resolve to the same
target. (Used by :mod:`kernels.spect_math`, :mod:`kernels.pet_math` and :mod:`kernels.osem_math`.)
"""
from __future__ import annotations

import types
from collections.abc import Callable, Iterable
from typing import Any


def compile_functions(namespace: dict[str, Any], names: Iterable[str], jit: Callable[[Callable], Any],
                      overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The functions ``names`` of ``namespace`` (a module's ``globals()``) compiled with ``jit``.

    ``overrides`` maps names to already compiled replacements that the others call instead.
    """
    scope: dict[str, Any] = dict(namespace)
    compiled: dict[str, Any] = dict(overrides or {})
    scope.update(compiled)
    for name in names:
        if name in compiled:
            continue
        f = namespace[name]
        g = types.FunctionType(f.__code__, scope, name, f.__defaults__, f.__closure__)
        g.__doc__, g.__qualname__ = f.__doc__, f.__qualname__
        compiled[name] = jit(g)
        scope[name] = compiled[name]
    return compiled
