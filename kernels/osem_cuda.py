"""numba.cuda launchers of the fused OSEM elementwise steps (CuPy arrays in, via ``__cuda_array_interface__``).

Imported lazily, only when device arrays reach :mod:`kernels.osem_update` (or by the tests). The
per-element math is :mod:`kernels.osem_math`, the same functions the CPU path compiles.

Every kernel is a grid-stride loop over the flat (C-contiguous) arrays, so any launch size gives the
same result; :func:`launch_config` gives the size used (pure arithmetic, checked by the tests).

Launched through :mod:`kernels.cuda_launch`: on the stream the arrays name, without Numba's host
synchronisation per array argument.

Bit-for-bit equality with the CPU: the ratio has no multiply-add; in the update, NVVM may contract
``back_ratio * inv_sens + unseen`` into one fused multiply-add, which equals the CPU's two roundings
whenever one of the two terms is 0, as it always is in OSEM (``inv_sens = 0`` exactly where ``unseen = 1``);
otherwise the two differ by at most 1 ulp of the factor.
"""
from __future__ import annotations

from typing import Any

from numba import cuda

from kernels import osem_math as om
from kernels.cuda_launch import launch

_math = om.compile_math(cuda.jit(device=True, inline="always"))
_poisson_ratio = _math["poisson_ratio"]
_expected_with_additive = _math["expected_with_additive"]
_osem_factor = _math["osem_factor"]

# Threads per block of every kernel, and the block count that fills a Hopper GPU: 2048 resident threads
# per SM = 8 blocks of 256, on the 132 SMs of an H100 (SXM); more blocks only add scheduling.
THREADS: int = 256
N_SM: int = 132
BLOCKS_PER_SM: int = 8


def poisson_ratio_body(measured, expected, out):
    """Grid-stride over bins i: out[i] = measured[i] / expected[i] where expected[i] > 0, else 0."""
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[i] = _poisson_ratio(measured[i], expected[i])


def poisson_ratio_additive_body(measured, expected, additive, out):
    """Grid-stride over bins i: :func:`poisson_ratio_body` of expected[i] + additive[i]."""
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[i] = _poisson_ratio(measured[i], _expected_with_additive(expected[i], additive[i]))


def osem_update_body(x, back_ratio, inv_sens, unseen):
    """Grid-stride over voxels i: x[i] *= back_ratio[i] * inv_sens[i] + unseen[i]."""
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        x[i] = _osem_factor(x[i], back_ratio[i], inv_sens[i], unseen[i])


KERNEL_BODIES = {
    "poisson_ratio": poisson_ratio_body,
    "poisson_ratio_additive": poisson_ratio_additive_body,
    "osem_update": osem_update_body,
}

poisson_ratio_kernel = cuda.jit(poisson_ratio_body)
poisson_ratio_additive_kernel = cuda.jit(poisson_ratio_additive_body)
osem_update_kernel = cuda.jit(osem_update_body)


def kernel_signatures() -> dict[str, tuple]:
    """Numba argument types of every kernel as the launchers pass them (flat float32 arrays), for
    ``compile_ptx`` without a GPU."""
    from numba import types as t  # noqa: PLC0415

    f32 = t.float32[::1]
    return {"poisson_ratio": (f32, f32, f32), "poisson_ratio_additive": (f32, f32, f32, f32),
            "osem_update": (f32, f32, f32, f32)}


def launch_config(n: int, threads: int = THREADS, n_sm: int = N_SM,
                  blocks_per_sm: int = BLOCKS_PER_SM) -> tuple[int, int]:
    """(blocks, threads per block) of a grid-stride launch over ``n`` elements: enough blocks to cover
    them, at most ``blocks_per_sm`` per multiprocessor of an ``n_sm``-SM GPU. Pure arithmetic."""
    if n < 0 or threads < 1 or n_sm < 1 or blocks_per_sm < 1:
        raise ValueError(f"bad launch request: n={n}, threads={threads}, n_sm={n_sm}, blocks_per_sm={blocks_per_sm}")
    blocks = max(1, -(-int(n) // int(threads)))
    return min(blocks, n_sm * blocks_per_sm), int(threads)


def _launch(kernel: Any, arrays: tuple, threads: int | None, max_blocks: int | None) -> None:
    """Launch over the flat arrays (all of one size) through :func:`kernels.cuda_launch.launch`."""
    blocks, t = launch_config(int(arrays[0].size), threads or THREADS)
    if max_blocks is not None:
        blocks = max(1, min(blocks, max_blocks))
    launch(kernel, blocks, t, tuple(a.reshape(-1) for a in arrays))


def poisson_ratio(measured: Any, expected: Any, additive: Any | None, out: Any,
                  threads: int | None = None, max_blocks: int | None = None) -> None:
    """Launch the Poisson ratio (arrays already validated by :mod:`kernels.osem_update`)."""
    if additive is None:
        _launch(poisson_ratio_kernel, (measured, expected, out), threads, max_blocks)
    else:
        _launch(poisson_ratio_additive_kernel, (measured, expected, additive, out), threads, max_blocks)


def osem_update(x: Any, back_ratio: Any, inv_sens: Any, unseen: Any,
                threads: int | None = None, max_blocks: int | None = None) -> None:
    """Launch the in-place update of ``x`` (arrays already validated)."""
    _launch(osem_update_kernel, (x, back_ratio, inv_sens, unseen), threads, max_blocks)
