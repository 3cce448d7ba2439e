"""numba.cuda launchers of the rotate-and-sum SPECT projector (CuPy arrays in, via __cuda_array_interface__).

Imported lazily, only when device arrays reach :mod:`kernels.spect_projector`
(or by the tests). The per-element math is :mod:`kernels.spect_math`, the same
functions the CPU path compiles.

Layouts (as on the CPU, z-last, so that consecutive threads read consecutive addresses):
the image and the mu-map as (ny * nx, nz) slice stacks, the rotated samples of a subset as
planes[i, k, c, z] (view, depth, column, row), the total transmissions as (n_views, nc, nz).

Work decomposition: every launch runs over rays, rows, columns or voxels of all views of the
subset, none over views alone, so the 128^3 case with 15 views per subset launches >= 1920 blocks
(132 SMs on an H100). The depth-dependent blur B_{k+1} ... B_K of plane k is separable and its row
(z) and column (c) passes commute exactly, so it splits into two steps that each fill the GPU:
- forward, 3 launches: ``forward_samples`` walks every ray (view, column, row) far to near, one
  thread each, and writes the attenuated bilinear sample of every depth plane; ``blur_columns``
  applies each plane's whole column blur C_{>k} as a banded product (:mod:`kernels.spect_band`),
  one block per (view, plane, 32-row tile) with the tile in shared memory, in place;
  ``depth_sum`` runs the row blur-and-add recursion (incremental blurring along z) of one
  column of one view per block, the column in shared memory.
- back, 4 launches: ``depth_spread`` (the adjoint row recursion per column), ``blur_columns``
  with the transposed band, ``back_attenuate`` (every ray near to far, multiplying in the
  transmission) and ``gather`` (every voxel sums over views through the exact transpose of the
  bilinear rotation, z-last: deterministic, no atomics).
- ``transpose`` (32 x 32 tiles through shared memory: the image's z-last copy before a forward pass, the
  gathered z-last back projection added into the (z, y, x) image after a back pass) and
  ``total_transmission`` (one thread per ray of every view, once per study).
Attenuation is computed on the fly from the mu-map, as on the CPU (:mod:`kernels.spect_cpu`).
Every kernel loops over its elements (grid-stride, or block-stride over tiles and columns), so any
launch size gives the same result; :func:`kernels.spect_launch.launch_config` gives the sizes used, and
:mod:`kernels.cuda_launch` launches on the arrays' own stream without host syncs.
"""
from __future__ import annotations

import math

import numba
import numpy as np
from numba import cuda

from kernels import spect_math as sm
from kernels.cuda_launch import launch
from kernels.spect_launch import (  # noqa: F401 - re-exported: the launch sizes belong with the kernels
    BLOCK_STRIDE, THREADS, capped_blocks, check_shared_memory, launch_config, shared_bytes, z_tile_rows)

_math = sm.compile_math(cuda.jit(device=True, inline="always"))
_rotated_to_image = _math["rotated_to_image"]
_image_to_rotated = _math["image_to_rotated"]
_bilinear_taps = _math["bilinear_taps"]
_tap_sum_t = _math["tap_sum_t"]
_bilinear_weight = _math["bilinear_weight"]
_attenuation_split = _math["attenuation_split"]
_exp_small = _math["exp_small"]
_blur_passes = _math["blur_passes"]
_blur_weight = _math["blur_weight"]
_blur3_1d_at = _math["blur3_1d_at"]
_blur3 = _math["blur3"]



@cuda.jit(device=True, inline="always")
def _ray_of(e, nc, nz):
    """(subset view, column, row) of flat ray index e, rows fastest (consecutive threads: consecutive z)."""
    i = e // (nc * nz)
    r = e - i * nc * nz
    c = r // nz
    return i, c, r - c * nz


@cuda.jit(device=True, inline="always")
def _column_blur(acc, tmp, nz, var_z, var_c):
    """Blur ``acc[:nz]`` (one detector column, along z) in place by the row passes of a depth step:
    the passes that carry (var_z, var_c), with the row weight; all threads of the block cooperate."""
    n = _blur_passes(var_z, var_c)
    if n == 0:
        return
    w = np.float32(_blur_weight(var_z, n))
    for _ in range(n):
        for z in range(cuda.threadIdx.x, nz, cuda.blockDim.x):
            tmp[z] = _blur3_1d_at(acc, z, nz, w)
        cuda.syncthreads()
        for z in range(cuda.threadIdx.x, nz, cuda.blockDim.x):
            acc[z] = tmp[z]
        cuda.syncthreads()


def transpose_body(src, dst, accumulate):
    """dst[b, a] = src[a, b] (``accumulate``: +=) for 2-D src (A, B) and dst (B, A), block-stride over 32 x 32
    tiles staged in shared memory (one padding column: no bank conflicts), so that reads and writes are both
    contiguous across a warp. Threads: a multiple of 32."""
    tile = cuda.shared.array((32, 33), dtype=numba.float32)
    n_a, n_b = src.shape
    tiles_a = (n_a + 31) // 32
    tiles_b = (n_b + 31) // 32
    tx = cuda.threadIdx.x % 32
    ty = cuda.threadIdx.x // 32
    rows = cuda.blockDim.x // 32
    for t in range(cuda.blockIdx.x, tiles_a * tiles_b, cuda.gridDim.x):
        a0 = (t // tiles_b) * 32
        b0 = (t - (t // tiles_b) * tiles_b) * 32
        for r in range(ty, 32, rows):
            if a0 + r < n_a and b0 + tx < n_b:
                tile[r, tx] = src[a0 + r, b0 + tx]
        cuda.syncthreads()
        for r in range(ty, 32, rows):
            if b0 + r < n_b and a0 + tx < n_a:
                if accumulate:
                    dst[b0 + r, a0 + tx] += tile[tx, r]
                else:
                    dst[b0 + r, a0 + tx] = tile[tx, r]
        cuda.syncthreads()


def total_transmission_body(mu_t, ny, nx, views, cos_t, sin_t, centers, step_mm, n_depth, out):
    """Grid-stride over rays (i, c, z): out[i, c, z] = exp(-sum over depth of mu x step) for view views[i]."""
    nz = mu_t.shape[1]
    nc = out.shape[1]
    kc, cc, cy, cx = centers[0], centers[1], centers[2], centers[3]
    step = np.float32(step_mm)
    for e in range(cuda.grid(1), views.size * nc * nz, cuda.gridsize(1)):
        i, c, z = _ray_of(e, nc, nz)
        v = views[i]
        total = 0.0
        for k in range(n_depth):
            iy, ix = _rotated_to_image(k, c, cos_t[v], sin_t[v], kc, cc, cy, cx)
            o00, o01, o10, o11, w00, w01, w10, w11 = _bilinear_taps(iy, ix, ny, nx)
            total += step * _tap_sum_t(mu_t, z, o00, o01, o10, o11, w00, w01, w10, w11)
        out[i, c, z] = math.exp(-total)


def forward_samples_body(image_t, ny, nx, mu_t, trans_total, use_att, step_mm, n_sq, views, cos_t, sin_t, centers,
                         planes):
    """Grid-stride over rays (i, c, z) of the subset, far plane to near:
    planes[i, k, c, z] = a_k x bilinear sample of plane k, a_k = trans_total x exp(m walked) x exp(m_k / 2)."""
    nz = image_t.shape[1]
    nk = planes.shape[1]
    nc = planes.shape[2]
    kc, cc, cy, cx = centers[0], centers[1], centers[2], centers[3]
    step = np.float32(step_mm)
    for e in range(cuda.grid(1), views.size * nc * nz, cuda.gridsize(1)):
        i, c, z = _ray_of(e, nc, nz)
        v = views[i]
        grow = np.float32(1.0)
        t_tot = trans_total[v, c, z] if use_att else np.float32(1.0)
        for k in range(nk):
            iy, ix = _rotated_to_image(k, c, cos_t[v], sin_t[v], kc, cc, cy, cx)
            o00, o01, o10, o11, w00, w01, w10, w11 = _bilinear_taps(iy, ix, ny, nx)
            val = _tap_sum_t(image_t, z, o00, o01, o10, o11, w00, w01, w10, w11)
            if use_att:
                m = step * _tap_sum_t(mu_t, z, o00, o01, o10, o11, w00, w01, w10, w11)
                h = _exp_small(np.float32(0.5) * m, n_sq)
                val = val * (t_tot * grow * h)
                grow = grow * (h * h)
            planes[i, k, c, z] = val


def blur_columns_body(planes, views, profile, band, transpose, z_tile):
    """Block-stride over tiles (i, k, z_tile rows): planes[i, k, :, tile] <- C_{>k} (or its transpose) times it,
    C_{>k} = band[profile[views[i]], k] (:mod:`kernels.spect_band`); the tile sits in dynamic shared
    memory (n_cols x z_tile float32). Threads: a multiple of 32 (z_tile divides 32), row = thread % z_tile."""
    tile = cuda.shared.array(0, dtype=numba.float32)
    n_sub, nk, nc, nz = planes.shape
    width = band.shape[3]
    half = (width - 1) // 2
    n_zt = (nz + z_tile - 1) // z_tile
    zt = cuda.threadIdx.x % z_tile
    c_first = cuda.threadIdx.x // z_tile
    c_step = cuda.blockDim.x // z_tile
    for t in range(cuda.blockIdx.x, n_sub * nk * n_zt, cuda.gridDim.x):
        i = t // (nk * n_zt)
        r = t - i * nk * n_zt
        k = r // n_zt
        z = (r - k * n_zt) * z_tile + zt
        p = profile[views[i]]
        for c in range(c_first, nc, c_step):
            tile[c * z_tile + zt] = planes[i, k, c, z] if z < nz else np.float32(0.0)
        cuda.syncthreads()
        if z < nz:
            for c in range(c_first, nc, c_step):
                j_lo = max(0, half - c)
                j_hi = min(width, nc - c + half)
                s = np.float32(0.0)
                if transpose:
                    for j in range(j_lo, j_hi):
                        s += band[p, k, c + j - half, width - 1 - j] * tile[(c + j - half) * z_tile + zt]
                else:
                    for j in range(j_lo, j_hi):
                        s += band[p, k, c, j] * tile[(c + j - half) * z_tile + zt]
                planes[i, k, c, z] = s
        cuda.syncthreads()


def depth_sum_body(planes, views, var_z, var_c, out):
    """Block-stride over columns (i, c): out[i, :, c] = Z_K(planes[K-1] + Z_{K-1}(... Z_1(planes[0]))) along z,
    the row half of the blur recursion; the column and its scratch in dynamic shared memory (2 nz float32)."""
    col = cuda.shared.array(0, dtype=numba.float32)
    n_sub, nk, nc, nz = planes.shape
    acc, tmp = col[:nz], col[nz:2 * nz]
    for t in range(cuda.blockIdx.x, n_sub * nc, cuda.gridDim.x):
        i = t // nc
        c = t - i * nc
        v = views[i]
        for z in range(cuda.threadIdx.x, nz, cuda.blockDim.x):
            acc[z] = planes[i, 0, c, z]
        cuda.syncthreads()
        for k in range(1, nk):
            _column_blur(acc, tmp, nz, var_z[v, k], var_c[v, k])
            for z in range(cuda.threadIdx.x, nz, cuda.blockDim.x):
                acc[z] += planes[i, k, c, z]
            cuda.syncthreads()
        _column_blur(acc, tmp, nz, var_z[v, nk], var_c[v, nk])
        for z in range(cuda.threadIdx.x, nz, cuda.blockDim.x):
            out[i, z, c] = acc[z]
        cuda.syncthreads()


def depth_spread_body(proj, views, var_z, var_c, planes):
    """Block-stride over columns (i, c): the adjoint of :func:`depth_sum_body`, planes[i, k, c, :] =
    Z_{k+1} ... Z_K proj[i, :, c] (Z_K first); shared memory as there."""
    col = cuda.shared.array(0, dtype=numba.float32)
    n_sub, nk, nc, nz = planes.shape
    acc, tmp = col[:nz], col[nz:2 * nz]
    for t in range(cuda.blockIdx.x, n_sub * nc, cuda.gridDim.x):
        i = t // nc
        c = t - i * nc
        v = views[i]
        for z in range(cuda.threadIdx.x, nz, cuda.blockDim.x):
            acc[z] = proj[i, z, c]
        cuda.syncthreads()
        _column_blur(acc, tmp, nz, var_z[v, nk], var_c[v, nk])
        for k in range(nk - 1, -1, -1):
            for z in range(cuda.threadIdx.x, nz, cuda.blockDim.x):
                planes[i, k, c, z] = acc[z]
            if k > 0:
                _column_blur(acc, tmp, nz, var_z[v, k], var_c[v, k])
        cuda.syncthreads()


def back_attenuate_body(mu_t, ny, nx, step_mm, n_sq, views, cos_t, sin_t, centers, planes):
    """Grid-stride over rays (i, c, z), near plane to far: planes[i, k, c, z] *= transmission to the detector."""
    nz = mu_t.shape[1]
    nk = planes.shape[1]
    nc = planes.shape[2]
    kc, cc, cy, cx = centers[0], centers[1], centers[2], centers[3]
    step = np.float32(step_mm)
    for e in range(cuda.grid(1), views.size * nc * nz, cuda.gridsize(1)):
        i, c, z = _ray_of(e, nc, nz)
        v = views[i]
        trans = np.float32(1.0)
        for k in range(nk - 1, -1, -1):
            iy, ix = _rotated_to_image(k, c, cos_t[v], sin_t[v], kc, cc, cy, cx)
            o00, o01, o10, o11, w00, w01, w10, w11 = _bilinear_taps(iy, ix, ny, nx)
            m = step * _tap_sum_t(mu_t, z, o00, o01, o10, o11, w00, w01, w10, w11)
            half, full = _attenuation_split(m, n_sq)
            planes[i, k, c, z] = planes[i, k, c, z] * (trans * half)
            trans = trans * full


def gather_body(planes, views, cos_t, sin_t, centers, ny, nx, out_t):
    """Grid-stride over voxels (y, x, z), z fastest: out_t[y * nx + x, z] = sum over views of the transposed
    bilinear rotation of planes (consecutive threads read consecutive rows of one rotated column and write
    consecutive z of the z-last result)."""
    nz = out_t.shape[1]
    nk = planes.shape[1]
    nc = planes.shape[2]
    kc, cc, cy, cx = centers[0], centers[1], centers[2], centers[3]
    for e in range(cuda.grid(1), nz * ny * nx, cuda.gridsize(1)):
        yx = e // nz
        z = e - yx * nz
        iy = yx // nx
        ix = yx - iy * nx
        total = np.float32(0.0)
        for i in range(views.size):
            v = views[i]
            kf, cf = _image_to_rotated(float(iy), float(ix), cos_t[v], sin_t[v], kc, cc, cy, cx)
            k0 = int(math.floor(kf)) - 1
            c0 = int(math.floor(cf)) - 1
            for k in range(max(k0, 0), min(k0 + 4, nk)):
                for c in range(max(c0, 0), min(c0 + 4, nc)):
                    py, px = _rotated_to_image(k, c, cos_t[v], sin_t[v], kc, cc, cy, cx)
                    w = _bilinear_weight(py, px, iy, ix)
                    if w > 0.0:
                        total += w * planes[i, k, c, z]
        out_t[yx, z] = total


def column_band_body(var_z, var_c, band, partial):
    """Block-stride over rows (p, r) of the column blurs of profile p: band[p, k, r, j] = C_{>k}[r, r + j - half]
    (the host builder's :func:`kernels.spect_band._fill_band`, float64 rows in dynamic shared memory,
    2 (nc + 2) float64); partial[p, r, thread] = that thread's largest |weight| outside the band over k
    (their sum bounds the weight a row loses)."""
    sh = cuda.shared.array(0, dtype=numba.float64)
    n_prof = band.shape[0]
    nk = band.shape[1]
    nc = band.shape[2]
    width = band.shape[3]
    half = (width - 1) // 2
    row, tmp = sh[:nc + 2], sh[nc + 2:2 * (nc + 2)]
    tid = cuda.threadIdx.x
    for t in range(cuda.blockIdx.x, n_prof * nc, cuda.gridDim.x):
        p = t // nc
        r = t - p * nc
        for c in range(tid, nc + 2, cuda.blockDim.x):
            row[c] = 1.0 if c == r + 1 else 0.0
            tmp[c] = 0.0
        cuda.syncthreads()
        worst = 0.0
        for k in range(nk - 1, -1, -1):
            n = _blur_passes(var_z[p, k + 1], var_c[p, k + 1])
            if n > 0:
                w32 = np.float32(_blur_weight(var_c[p, k + 1], n))
                for _ in range(n):
                    for c in range(tid, nc, cuda.blockDim.x):
                        tmp[c + 1] = _blur3(row[c], row[c + 1], row[c + 2], w32)
                    cuda.syncthreads()
                    for c in range(tid, nc, cuda.blockDim.x):
                        row[c + 1] = tmp[c + 1]
                    cuda.syncthreads()
            for j in range(tid, width, cuda.blockDim.x):
                c = r + j - half
                band[p, k, r, j] = np.float32(row[c + 1]) if 0 <= c < nc else np.float32(0.0)
            out = 0.0
            for c in range(tid, nc, cuda.blockDim.x):
                if c < r - half or c > r + half:
                    out += abs(row[c + 1])
            worst = max(worst, out)
        partial[p, r, tid] = worst
        cuda.syncthreads()


KERNEL_BODIES = {
    "transpose": transpose_body,
    "total_transmission": total_transmission_body,
    "forward_samples": forward_samples_body,
    "blur_columns": blur_columns_body,
    "depth_sum": depth_sum_body,
    "depth_spread": depth_spread_body,
    "back_attenuate": back_attenuate_body,
    "gather": gather_body,
    "column_band": column_band_body,
}
KERNELS = {name: cuda.jit(body) for name, body in KERNEL_BODIES.items()}


def kernel_signatures() -> dict[str, tuple]:
    """Numba argument types of every kernel as the launchers pass them (for ``compile_ptx`` without a GPU)."""
    from numba import types as t  # noqa: PLC0415

    f32_2, f32_3, f32_4 = t.float32[:, ::1], t.float32[:, :, ::1], t.float32[:, :, :, ::1]
    i64, f64, f64_2 = t.int64[::1], t.float64[::1], t.float64[:, ::1]
    n = t.int64
    return {
        "transpose": (f32_2, f32_2, t.boolean),
        "total_transmission": (f32_2, n, n, i64, f64, f64, f64, t.float64, n, f32_3),
        "forward_samples": (f32_2, n, n, f32_2, f32_3, t.boolean, t.float64, n, i64, f64, f64, f64, f32_4),
        "blur_columns": (f32_4, i64, i64, f32_4, t.boolean, n),
        "depth_sum": (f32_4, i64, f64_2, f64_2, f32_3),
        "depth_spread": (f32_3, i64, f64_2, f64_2, f32_4),
        "back_attenuate": (f32_2, n, n, t.float64, n, i64, f64, f64, f64, f32_4),
        "gather": (f32_4, i64, f64, f64, f64, n, n, f32_2),
        "column_band": (f64_2, f64_2, f32_4, t.float64[:, :, ::1]),
    }


def _run(name: str, cfg: dict, args: tuple, nz: int = 0, nc: int = 0) -> None:
    blocks, threads = cfg[name]
    launch(KERNELS[name], blocks, threads, args, shared_bytes(name, nz, nc))


def to_zlast(image, out, threads=None, max_blocks=None):
    """out (ny * nx, nz) = the z-last copy of ``image`` (nz, ny, nx), through shared-memory tiles."""
    nz, ny, nx = image.shape
    cfg = launch_config(1, 1, nz, ny, nx, 1, 1, max_blocks, threads)
    _run("transpose", cfg, (image.reshape(nz, ny * nx), out, False))


def forward_views(image_t, ny, nx, mu_t, trans_total, use_att, step_mm, n_sq, views, cos_t, sin_t, var_z, var_c,
                  centers, profile, band, planes, out, threads=None, max_blocks=None):
    """Launch the forward projection of a subset from the z-last image: attenuated samples over rays, the
    column blur per plane tile (skipped when ``band`` is None: no blur), the row recursion per column."""
    nz = image_t.shape[1]
    nk, nc = planes.shape[1], planes.shape[2]
    cfg = launch_config(views.size, cos_t.size, nz, ny, nx, nc, nk, max_blocks, threads)
    _run("forward_samples", cfg, (image_t, ny, nx, mu_t, trans_total, use_att, step_mm, n_sq, views, cos_t, sin_t,
                                  centers, planes))
    if band is not None:
        _run("blur_columns", cfg, (planes, views, profile, band, False, z_tile_rows(nc)), nz, nc)
    _run("depth_sum", cfg, (planes, views, var_z, var_c, out), nz, nc)


def back_views(proj, ny, nx, mu_t, use_att, step_mm, n_sq, views, cos_t, sin_t, var_z, var_c, centers, profile,
               band, planes, scratch_t, out, threads=None, max_blocks=None):
    """Launch the adjoint: row recursion per column, transposed column blur, attenuation over rays, the voxel
    gather into the z-last ``scratch_t`` (ny * nx, nz), then its transpose added into ``out`` (nz, ny, nx)."""
    nz, nc = proj.shape[1], proj.shape[2]
    nk = planes.shape[1]
    cfg = launch_config(views.size, cos_t.size, nz, ny, nx, nc, nk, max_blocks, threads)
    _run("depth_spread", cfg, (proj, views, var_z, var_c, planes), nz, nc)
    if band is not None:
        _run("blur_columns", cfg, (planes, views, profile, band, True, z_tile_rows(nc)), nz, nc)
    if use_att:
        _run("back_attenuate", cfg, (mu_t, ny, nx, step_mm, n_sq, views, cos_t, sin_t, centers, planes))
    _run("gather", cfg, (planes, views, cos_t, sin_t, centers, ny, nx, scratch_t))
    _run("transpose", cfg, (scratch_t, out.reshape(nz, ny * nx), True))


def total_transmission(mu_t, ny, nx, views, cos_t, sin_t, centers, step_mm, n_depth, out, threads=None,
                       max_blocks=None):
    """Launch the total-transmission kernel over the (view, column, row) rays of all views (z-last mu-map)."""
    nz = mu_t.shape[1]
    cfg = launch_config(views.size, views.size, nz, ny, nx, out.shape[1], n_depth, max_blocks, threads)
    _run("total_transmission", cfg, (mu_t, ny, nx, views, cos_t, sin_t, centers, step_mm, n_depth, out))


def column_band(var_z, var_c, band, partial, threads=None, max_blocks=None):
    """Launch the column-blur band builder: one block per (profile, row) (``partial`` (n_profiles, nc,
    threads) float64, zeroed by the caller)."""
    n_prof, nk, nc, _ = band.shape
    t = dict(THREADS, **(threads or {}))["column_band"]
    if partial.shape != (n_prof, nc, t):
        raise ValueError(f"partial must be {(n_prof, nc, t)}, got {tuple(partial.shape)}")
    blocks = capped_blocks(n_prof * nc, max_blocks)
    launch(KERNELS["column_band"], blocks, t, (var_z, var_c, band, partial), shared_bytes("column_band", 0, nc))
