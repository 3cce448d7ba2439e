"""Run under NUMBA_ENABLE_CUDASIM=1 (a subprocess of test_pet_osem_inplace): the device branch of every
public entry of kernels.pet_projector, on NumPy arrays posing as device arrays (tests/_cudasim_parity.py's
SimDeviceArray and its "simxp" module), each called twice against the CPU path. Prints one JSON line:
relative errors, and what the second round created in the array module (it must create nothing: the
small per-geometry arrays are copied to the "device" once, and the outputs are preallocated).
"""
from __future__ import annotations

import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import numpy as np

assert os.environ.get("NUMBA_ENABLE_CUDASIM") == "1", "run with NUMBA_ENABLE_CUDASIM=1"
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _cudasim_parity import SimDeviceArray, _sim_module  # noqa: E402  (also sets the switch interval)
from _cudasim_pet_parity import ORIGIN, SHAPE, TOF, VOXEL, random_lors, rel, sinogram_geometry  # noqa: E402

from kernels import pet_projector as kp  # noqa: E402

CREATORS = ("empty", "zeros", "arange", "asarray")


def counting_module() -> tuple[Any, Counter]:
    """The simxp module with its array creators counted by name."""
    xp, calls = _sim_module(), Counter()
    for name in CREATORS:
        def counted(*args: Any, _f: Callable = getattr(xp, name), _name: str = name, **kwargs: Any) -> Any:
            calls[_name] += 1
            return _f(*args, **kwargs)
        setattr(xp, name, counted)
    return xp, calls


def cases(rng: np.random.Generator) -> list[tuple[str, Callable, tuple, dict, np.ndarray]]:
    """(name, entry, host arguments, keywords, output shape) of each entry in each TOF mode."""
    a, b, tb = random_lors(rng)
    n = a.shape[0]
    g = sinogram_geometry(rng)
    views = np.array([3, 0, 2], np.int64)
    out = []
    for label, tof, bins, width in (("none", None, None, ()), ("all", TOF, None, (TOF.n_bins,)),
                                    ("one", TOF, tb, ())):
        kw = {"tof": tof, "tof_bins": bins}
        y = rng.random((n,) + width).astype(np.float32)
        out.append((f"forward_lors_{label}", kp.joseph_forward, (None, ORIGIN, VOXEL, a, b), kw, (n,) + width))
        out.append((f"back_lors_{label}", kp.joseph_back, (y, SHAPE, ORIGIN, VOXEL, a, b), kw, SHAPE))
    for label, tof, width in (("none", None, ()), ("all", TOF, (TOF.n_bins,))):
        y = rng.random((views.size, 3, 5) + width).astype(np.float32)
        out.append((f"forward_sino_{label}", kp.sinogram_forward, (None, ORIGIN, VOXEL, g, views), {"tof": tof},
                    (views.size, 3, 5) + width))
        out.append((f"back_sino_{label}", kp.sinogram_back, (y, SHAPE, ORIGIN, VOXEL, g, views), {"tof": tof}, SHAPE))
    return out


def on_device(xp: Any, value: Any) -> Any:
    """Arrays moved to the (simulated) device; everything else as it is."""
    return xp.asarray(value) if isinstance(value, np.ndarray) else value


def main() -> None:
    rng = np.random.default_rng(11)
    img = rng.random(SHAPE).astype(np.float32)
    kp.LAUNCH.update(threads=4, blocks_per_sm=2)  # the simulator runs each thread as a Python thread
    xp, calls = counting_module()
    todo = []
    for name, entry, args, kw, shape in cases(rng):
        args = (img,) + args[1:] if args[0] is None else args
        ref = entry(*args, **kw)
        dev_args = tuple(on_device(xp, v) for v in args)
        dev_kw = {k: on_device(xp, v) for k, v in kw.items()}
        todo.append((name, entry, dev_args, dev_kw, xp.zeros(shape, dtype=np.float32), ref))
    result: dict[str, Any] = {}
    for round_ in (1, 2):
        calls.clear()
        constants = len(kp._DEVICE_CONSTANTS)
        for name, entry, dev_args, dev_kw, out, ref in todo:
            out.fill(0)  # the back projections add into out
            got = entry(*dev_args, **dev_kw, out=out)
            result[f"{name}_round{round_}"] = rel(np.asarray(got), ref) if isinstance(got, SimDeviceArray) else 1.0
        result[f"created_round{round_}"] = dict(calls)
        result[f"new_constants_round{round_}"] = len(kp._DEVICE_CONSTANTS) - constants
    result["sm_counts_cached"] = len(kp._SM_COUNT)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
