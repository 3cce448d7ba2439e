"""numba.cuda launchers of the rotate-and-sum SPECT projector (CuPy arrays in, via __cuda_array_interface__).

Imported lazily, only when device arrays reach :mod:`kernels.spect_projector`
(or by the tests). The per-element math is :mod:`kernels.spect_math`, the same
functions the CPU path compiles.

Work decomposition:
- forward: one thread block per view; the block walks the depth planes far to
  near, blurring the running (row, column) sum with 3-tap passes and adding the
  attenuated bilinear samples of the next plane (one launch per subset).
- back: one block per view runs the adjoint blur recursion into per-plane
  buffers, then the threads gather voxels (grid-stride) through the exact
  transpose of the bilinear rotation (deterministic, no atomics).
- attenuation factors: the threads walk rays (view, row, column), grid-stride.
The block kernels loop over elements in steps of the block size and the others
stride over the grid, so any launch size gives the same result.
"""
from __future__ import annotations

import math

import numba
import numpy as np
from numba import cuda

from kernels import spect_math as sm

_math = sm.compile_math(cuda.jit(device=True, inline="always"))
_rotated_to_image = _math["rotated_to_image"]
_image_to_rotated = _math["image_to_rotated"]
_bilinear_taps = _math["bilinear_taps"]
_tap_sum = _math["tap_sum"]
_bilinear_weight = _math["bilinear_weight"]
_attenuation_step = _math["attenuation_step"]
_blur_passes = _math["blur_passes"]
_blur_weight = _math["blur_weight"]
_blur3_axis0_at = _math["blur3_axis0_at"]
_blur3_axis1_at = _math["blur3_axis1_at"]


@cuda.jit(device=True, inline="always")
def _block_blur(acc, tmp, var_z, var_c):
    """Blur 2-D ``acc`` in place, all threads of the block cooperating."""
    n = _blur_passes(var_z, var_c)
    if n == 0:
        return
    wz = _blur_weight(var_z, n)
    wc = _blur_weight(var_c, n)
    nz = acc.shape[0]
    nc = acc.shape[1]
    size = nz * nc
    for _ in range(n):
        for e in range(cuda.threadIdx.x, size, cuda.blockDim.x):
            z = e // nc
            c = e - z * nc
            tmp[z, c] = _blur3_axis0_at(acc, z, c, wz)
        cuda.syncthreads()
        for e in range(cuda.threadIdx.x, size, cuda.blockDim.x):
            z = e // nc
            c = e - z * nc
            acc[z, c] = _blur3_axis1_at(tmp, z, c, wc)
        cuda.syncthreads()


def forward_body(image, att, use_att, views, cos_t, sin_t, var_z, var_c, centers, tmp_ws, out):
    """Block i computes out[i], the projection of view views[i]."""
    i = cuda.blockIdx.x
    if i >= views.size:
        return
    v = views[i]
    nz = image.shape[0]
    ny = image.shape[1]
    nx = image.shape[2]
    img = image.reshape(nz, ny * nx)
    nk = var_z.shape[1] - 1
    nc = out.shape[2]
    size = nz * nc
    acc = out[i]
    tmp = tmp_ws[i]
    kc = centers[0]
    cc = centers[1]
    cy = centers[2]
    cx = centers[3]
    for e in range(cuda.threadIdx.x, size, cuda.blockDim.x):
        acc[e // nc, e % nc] = 0.0
    cuda.syncthreads()
    for k in range(nk):
        _block_blur(acc, tmp, var_z[v, k], var_c[v, k])
        for e in range(cuda.threadIdx.x, size, cuda.blockDim.x):
            z = e // nc
            c = e - z * nc
            iy, ix = _rotated_to_image(k, c, cos_t[v], sin_t[v], kc, cc, cy, cx)
            o00, o01, o10, o11, w00, w01, w10, w11 = _bilinear_taps(iy, ix, ny, nx)
            val = _tap_sum(img, z, o00, o01, o10, o11, w00, w01, w10, w11)
            if use_att:
                val *= att[v, z, k, c]
            acc[z, c] += val
        cuda.syncthreads()
    _block_blur(acc, tmp, var_z[v, nk], var_c[v, nk])


def back_planes_body(proj, att, use_att, views, var_z, var_c, acc_ws, tmp_ws, planes):
    """Block i: adjoint of blur-and-sum for view views[i], into planes[i, z, k, c]."""
    i = cuda.blockIdx.x
    if i >= views.size:
        return
    v = views[i]
    nz = proj.shape[1]
    nc = proj.shape[2]
    nk = var_z.shape[1] - 1
    size = nz * nc
    acc = acc_ws[i]
    tmp = tmp_ws[i]
    for e in range(cuda.threadIdx.x, size, cuda.blockDim.x):
        acc[e // nc, e % nc] = proj[i, e // nc, e % nc]
    cuda.syncthreads()
    _block_blur(acc, tmp, var_z[v, nk], var_c[v, nk])
    for k in range(nk - 1, -1, -1):
        for e in range(cuda.threadIdx.x, size, cuda.blockDim.x):
            z = e // nc
            c = e - z * nc
            val = acc[z, c]
            if use_att:
                val *= att[v, z, k, c]
            planes[i, z, k, c] = val
        cuda.syncthreads()
        _block_blur(acc, tmp, var_z[v, k], var_c[v, k])


def gather_body(planes, views, cos_t, sin_t, centers, out):
    """Grid-stride over voxels: out[z, y, x] += sum over views of the transposed bilinear rotation of planes."""
    nz = out.shape[0]
    ny = out.shape[1]
    nx = out.shape[2]
    nk = planes.shape[2]
    nc = planes.shape[3]
    kc = centers[0]
    cc = centers[1]
    cy = centers[2]
    cx = centers[3]
    for e in range(cuda.grid(1), nz * ny * nx, cuda.gridsize(1)):
        z = e // (ny * nx)
        r = e - z * ny * nx
        iy = r // nx
        ix = r - iy * nx
        total = 0.0
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
                        total += w * planes[i, z, k, c]
        out[z, iy, ix] += total


def attenuation_body(mu, views, cos_t, sin_t, centers, step_mm, out):
    """Grid-stride over rays (view, z, c): walk near to far, out[i, z, k, c] = exp(-mu path to the detector).

    The transmission is carried in float32, as the CPU path stores it.
    """
    nz = mu.shape[0]
    ny = mu.shape[1]
    nx = mu.shape[2]
    mu2 = mu.reshape(nz, ny * nx)
    nk = out.shape[2]
    nc = out.shape[3]
    kc = centers[0]
    cc = centers[1]
    cy = centers[2]
    cx = centers[3]
    step = np.float32(step_mm)
    for e in range(cuda.grid(1), views.size * nz * nc, cuda.gridsize(1)):
        i = e // (nz * nc)
        r = e - i * nz * nc
        z = r // nc
        c = r - z * nc
        v = views[i]
        trans = cuda.local.array(1, numba.float32)  # the CPU path keeps it in a float32 array too
        trans[0] = 1.0
        for k in range(nk - 1, -1, -1):
            iy, ix = _rotated_to_image(k, c, cos_t[v], sin_t[v], kc, cc, cy, cx)
            o00, o01, o10, o11, w00, w01, w10, w11 = _bilinear_taps(iy, ix, ny, nx)
            m = step * _tap_sum(mu2, z, o00, o01, o10, o11, w00, w01, w10, w11)
            out[i, z, k, c] = _attenuation_step(trans, 0, m)


KERNEL_BODIES = {
    "forward": forward_body,
    "back_planes": back_planes_body,
    "gather": gather_body,
    "attenuation": attenuation_body,
}

forward_kernel = cuda.jit(forward_body)
back_planes_kernel = cuda.jit(back_planes_body)
gather_kernel = cuda.jit(gather_body)
attenuation_kernel = cuda.jit(attenuation_body)


def _blocks(n: int, threads: int, max_blocks: int | None) -> int:
    """Blocks of ``threads`` that cover ``n`` elements, at most ``max_blocks`` (the kernels grid-stride)."""
    blocks = max(1, (n + threads - 1) // threads)
    return blocks if max_blocks is None else max(1, min(blocks, max_blocks))


def forward_views(image, att, use_att, views, cos_t, sin_t, var_z, var_c, centers, tmp_ws, out, threads=512):
    """Launch the forward kernel: one block per view of the subset."""
    forward_kernel[views.size, threads](image, att, use_att, views, cos_t, sin_t, var_z, var_c, centers, tmp_ws, out)


def back_views(proj, att, use_att, views, cos_t, sin_t, var_z, var_c, centers, acc_ws, tmp_ws, planes, out,
               threads=512, gather_threads=256, max_blocks=None):
    """Launch the adjoint: blur recursion per view, then the voxel gather (adds into ``out``)."""
    back_planes_kernel[views.size, threads](proj, att, use_att, views, var_z, var_c, acc_ws, tmp_ws, planes)
    n = out.shape[0] * out.shape[1] * out.shape[2]
    gather_kernel[_blocks(n, gather_threads, max_blocks), gather_threads](planes, views, cos_t, sin_t, centers, out)


def attenuation_factors(mu, views, cos_t, sin_t, centers, step_mm, out, threads=256, max_blocks=None):
    """Launch the attenuation-factor kernel over the (view, row, column) rays."""
    n = views.size * mu.shape[0] * out.shape[3]
    attenuation_kernel[_blocks(n, threads, max_blocks), threads](mu, views, cos_t, sin_t, centers, step_mm, out)
