"""Launch sizes of the SPECT CUDA kernels (:mod:`kernels.spect_cuda`): pure arithmetic, no GPU and no
numba.cuda needed, so models and tests can check a detector against the device's limits before any compute."""
from __future__ import annotations

# Rows per shared-memory tile of ``blur_columns``: one warp's width (the tile's rows are contiguous), fewer
# for detectors so wide that a tile would exceed the 48 KiB of dynamic shared memory a launch gets without
# an opt-in attribute (Numba sets none): :func:`z_tile_rows`.
Z_TILE: int = 32
SHARED_LIMIT_BYTES: int = 48 * 1024

# kernels that loop over tiles or columns with the whole block (shared memory, barriers); the others
# grid-stride one element per thread
BLOCK_STRIDE: frozenset = frozenset({"transpose", "blur_columns", "depth_sum", "depth_spread", "column_band"})
THREADS: dict[str, int] = {"transpose": 256, "total_transmission": 128, "forward_samples": 128, "blur_columns": 256,
                           "depth_sum": 128, "depth_spread": 128, "back_attenuate": 128, "gather": 256,
                           "column_band": 128}


def _blocks(n: int, threads: int, max_blocks: int | None) -> int:
    """Blocks of ``threads`` that cover ``n`` elements, at most ``max_blocks`` (the kernels grid-stride)."""
    blocks = max(1, (n + threads - 1) // threads)
    return blocks if max_blocks is None else max(1, min(blocks, max_blocks))


def capped_blocks(n: int, max_blocks: int | None) -> int:
    """``n`` blocks (one per tile or column), at most ``max_blocks``, at least 1."""
    return max(1, n if max_blocks is None else min(n, max_blocks))


def z_tile_rows(nc: int) -> int:
    """Rows per ``blur_columns`` tile for ``nc`` detector columns: 32, or the largest power of two below it whose
    n_cols x rows float32 tile fits :data:`SHARED_LIMIT_BYTES` (a warp then spans 32 / rows columns, still
    free of shared-memory bank conflicts)."""
    rows = Z_TILE
    while rows > 1 and nc * rows * 4 > SHARED_LIMIT_BYTES:
        rows //= 2
    return rows


def shared_bytes(name: str, nz: int, nc: int) -> int:
    """Dynamic shared memory (bytes) of one block of kernel ``name`` (0 for the grid-stride kernels)."""
    if name == "blur_columns":
        return nc * z_tile_rows(nc) * 4
    if name in ("depth_sum", "depth_spread"):
        return 2 * nz * 4
    if name == "column_band":
        return 2 * (nc + 2) * 8
    return 0


def check_shared_memory(nz: int, nc: int) -> None:
    """Raise ValueError naming the kernel when a detector this size needs more dynamic shared memory per block
    than :data:`SHARED_LIMIT_BYTES` (the launch would fail on the GPU)."""
    for name in sorted(BLOCK_STRIDE):
        need = shared_bytes(name, nz, nc)
        if need > SHARED_LIMIT_BYTES:
            raise ValueError(f"{name}: a detector of {nz} rows x {nc} columns needs {need} bytes of shared memory per "
                             f"block, more than the {SHARED_LIMIT_BYTES} a CUDA launch gets; use the CPU")


def launch_config(n_sub_views: int, n_views: int, nz: int, ny: int, nx: int, nc: int, n_depth: int | None = None,
                  max_blocks: int | None = None, threads: dict[str, int] | None = None) -> dict[str, tuple[int, int]]:
    """(blocks, threads per block) of every kernel for a subset of ``n_sub_views`` views; pure arithmetic,
    no GPU needed (the launchers below use it, and the tests check it). ``n_depth`` defaults to ``nc``."""
    t = dict(THREADS, **(threads or {}))
    if t["blur_columns"] % 32:
        raise ValueError(f"blur_columns needs a multiple of 32 threads, got {t['blur_columns']}")
    check_shared_memory(nz, nc)
    nk = nc if n_depth is None else n_depth
    rays = n_sub_views * nz * nc
    return {
        "transpose": (capped_blocks(-(-nz // 32) * -(-(ny * nx) // 32), max_blocks), t["transpose"]),
        "total_transmission": (_blocks(n_views * nz * nc, t["total_transmission"], max_blocks), t["total_transmission"]),
        "forward_samples": (_blocks(rays, t["forward_samples"], max_blocks), t["forward_samples"]),
        "blur_columns": (capped_blocks(n_sub_views * nk * -(-nz // z_tile_rows(nc)), max_blocks), t["blur_columns"]),
        "depth_sum": (capped_blocks(n_sub_views * nc, max_blocks), t["depth_sum"]),
        "depth_spread": (capped_blocks(n_sub_views * nc, max_blocks), t["depth_spread"]),
        "back_attenuate": (_blocks(rays, t["back_attenuate"], max_blocks), t["back_attenuate"]),
        "gather": (_blocks(nz * ny * nx, t["gather"], max_blocks), t["gather"]),
        "column_band": (capped_blocks(n_views * nc, max_blocks), t["column_band"]),  # one profile per view at most
    }
