"""Run under NUMBA_ENABLE_CUDASIM=1 (a subprocess of test_osem_inplace): the fused OSEM CUDA launchers on
NumPy arrays against the Numba CPU path. Prints one JSON line: the largest difference of each kernel in
float32 ulps, and the elements each simulated thread handled.

Every launch has 4 threads x 3 blocks for 101 elements (grid-stride: 8 or 9 elements per thread); the
inputs cover e <= 0, 0 < e < 1e-30 (the TINY floor), an additive term that cancels the expectation, and
unseen voxels.
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np

assert os.environ.get("NUMBA_ENABLE_CUDASIM") == "1", "run with NUMBA_ENABLE_CUDASIM=1"
sys.setswitchinterval(5e-4)  # the simulator's threads poll each other; see _cudasim_parity.py

from kernels import osem_cuda  # noqa: E402
from kernels import osem_update  # noqa: E402

N = 101
THREADS, MAX_BLOCKS = 4, 3


def ulps(a: np.ndarray, b: np.ndarray) -> int:
    """Largest distance in float32 units in the last place (0 for equal values, including both 0)."""
    ia = a.astype(np.float32).view(np.int32).astype(np.int64)
    ib = b.astype(np.float32).view(np.int32).astype(np.int64)
    ia = np.where(ia < 0, np.int64(-2**31) - ia, ia)  # order negative floats below positive ones
    ib = np.where(ib < 0, np.int64(-2**31) - ib, ib)
    return int(np.abs(ia - ib).max())


def main() -> None:
    rng = np.random.default_rng(11)
    measured = rng.poisson(4.0, N).astype(np.float32)
    expected = (rng.random(N) * 3 - 0.5).astype(np.float32)
    expected[:3] = np.float32(1e-35)
    expected[3] = 0.0
    additive = (rng.random(N) * 0.2).astype(np.float32)
    additive[5] = -expected[5]
    result: dict[str, int] = {}
    for name, add in (("poisson_ratio", None), ("poisson_ratio_additive", additive)):
        cpu = osem_update.poisson_ratio_into(measured, expected, add, np.empty(N, np.float32))
        gpu = np.full(N, np.nan, np.float32)
        osem_cuda.poisson_ratio(measured, expected, add, gpu, threads=THREADS, max_blocks=MAX_BLOCKS)
        result[name] = ulps(gpu, cpu)
        in_place = expected.copy()  # out is expected itself
        osem_cuda.poisson_ratio(measured, in_place, add, in_place, threads=THREADS, max_blocks=MAX_BLOCKS)
        result[name + "_in_place"] = ulps(in_place, cpu)
    x = rng.uniform(0.1, 10.0, N).astype(np.float32)
    back = rng.random(N).astype(np.float32)
    inv_sens = rng.uniform(0.5, 2.0, N).astype(np.float32)
    unseen = (rng.random(N) < 0.2).astype(np.float32)
    inv_sens[unseen > 0] = 0.0
    x_cpu = osem_update.osem_update_into(x.copy(), back, inv_sens, unseen)
    x_gpu = x.copy()
    osem_cuda.osem_update(x_gpu, back, inv_sens, unseen, threads=THREADS, max_blocks=MAX_BLOCKS)
    result["osem_update"] = ulps(x_gpu, x_cpu)
    result["elements_per_thread"] = -(-N // (THREADS * MAX_BLOCKS))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
