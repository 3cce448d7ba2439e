"""numba.cuda launchers of the rotate-and-sum SPECT projector (CuPy arrays in, via __cuda_array_interface__).

Imported lazily, only when device arrays reach :mod:`kernels.spect_projector`
(or by the tests). The per-element math is :mod:`kernels.spect_math`, the same
functions the CPU path compiles.

Work decomposition (the sampling work, which moves the bytes, runs over rays or voxels and fills
the GPU; only the blur recursion, which must see a whole view plane, runs one block per view):
- forward, 2 launches: ``forward_samples`` walks every ray (view, row, column) far to near, one
  thread each, and writes the attenuated bilinear sample of every depth plane into
  planes[i, z, k, c]; ``forward_sum`` (one block per view) runs the incremental blur-and-add
  recursion over those planes.
- back, 3 launches: ``back_planes`` (one block per view) runs the adjoint blur recursion into
  planes[i, z, k, c]; ``back_attenuate`` walks every ray near to far and multiplies in the
  transmission; ``gather`` sums over views for every voxel through the exact transpose of the
  bilinear rotation (deterministic, no atomics).
- ``total_transmission``: one thread per ray of every view, once per study.
Attenuation is computed on the fly from the mu-map, as on the CPU (:mod:`kernels.spect_cpu`).
The block kernels loop over elements in steps of the block size and the others stride over the
grid, so any launch size gives the same result; :func:`launch_config` gives the sizes used.
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
_attenuation_split = _math["attenuation_split"]
_exp_small = _math["exp_small"]
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


def total_transmission_body(mu, views, cos_t, sin_t, centers, step_mm, n_depth, out):
    """Grid-stride over rays (i, c, z): out[i, c, z] = exp(-sum over depth of mu x step) for view views[i]."""
    nz = mu.shape[0]
    ny = mu.shape[1]
    nx = mu.shape[2]
    mu2 = mu.reshape(nz, ny * nx)
    nc = out.shape[1]
    kc = centers[0]
    cc = centers[1]
    cy = centers[2]
    cx = centers[3]
    step = np.float32(step_mm)
    for e in range(cuda.grid(1), views.size * nc * nz, cuda.gridsize(1)):
        i = e // (nc * nz)
        r = e - i * nc * nz
        c = r // nz
        z = r - c * nz
        v = views[i]
        total = 0.0
        for k in range(n_depth):
            iy, ix = _rotated_to_image(k, c, cos_t[v], sin_t[v], kc, cc, cy, cx)
            o00, o01, o10, o11, w00, w01, w10, w11 = _bilinear_taps(iy, ix, ny, nx)
            total += step * _tap_sum(mu2, z, o00, o01, o10, o11, w00, w01, w10, w11)
        out[i, c, z] = math.exp(-total)


def forward_samples_body(image, mu, trans_total, use_att, step_mm, n_sq, views, cos_t, sin_t, centers, planes):
    """Grid-stride over rays (i, z, c) of the subset, far plane to near:
    planes[i, z, k, c] = a_k x bilinear sample of plane k, a_k = trans_total x exp(m walked) x exp(m_k / 2)."""
    nz = image.shape[0]
    ny = image.shape[1]
    nx = image.shape[2]
    img = image.reshape(nz, ny * nx)
    mu2 = mu.reshape(mu.shape[0], mu.shape[1] * mu.shape[2])
    nk = planes.shape[2]
    nc = planes.shape[3]
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
        grow = np.float32(1.0)
        t_tot = trans_total[v, c, z] if use_att else np.float32(1.0)
        for k in range(nk):
            iy, ix = _rotated_to_image(k, c, cos_t[v], sin_t[v], kc, cc, cy, cx)
            o00, o01, o10, o11, w00, w01, w10, w11 = _bilinear_taps(iy, ix, ny, nx)
            val = _tap_sum(img, z, o00, o01, o10, o11, w00, w01, w10, w11)
            if use_att:
                m = step * _tap_sum(mu2, z, o00, o01, o10, o11, w00, w01, w10, w11)
                h = _exp_small(np.float32(0.5) * m, n_sq)
                val = val * (t_tot * grow * h)
                grow = grow * (h * h)
            planes[i, z, k, c] = val


def forward_sum_body(planes, views, var_z, var_c, tmp_ws, out):
    """Block i: out[i] = B_K(planes[k=K-1] + B_{K-1}(... B_1(planes[0]))) for view views[i]."""
    i = cuda.blockIdx.x
    if i >= views.size:
        return
    v = views[i]
    nz = out.shape[1]
    nc = out.shape[2]
    nk = planes.shape[2]
    size = nz * nc
    acc = out[i]
    tmp = tmp_ws[i]
    for e in range(cuda.threadIdx.x, size, cuda.blockDim.x):
        acc[e // nc, e % nc] = 0.0
    cuda.syncthreads()
    for k in range(nk):
        _block_blur(acc, tmp, var_z[v, k], var_c[v, k])
        for e in range(cuda.threadIdx.x, size, cuda.blockDim.x):
            z = e // nc
            c = e - z * nc
            acc[z, c] += planes[i, z, k, c]
        cuda.syncthreads()
    _block_blur(acc, tmp, var_z[v, nk], var_c[v, nk])


def back_planes_body(proj, views, var_z, var_c, acc_ws, tmp_ws, planes):
    """Block i: adjoint of the blur-and-sum recursion for view views[i], into planes[i, z, k, c]."""
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
            planes[i, z, k, c] = acc[z, c]
        cuda.syncthreads()
        _block_blur(acc, tmp, var_z[v, k], var_c[v, k])


def back_attenuate_body(mu, step_mm, n_sq, views, cos_t, sin_t, centers, planes):
    """Grid-stride over rays (i, z, c), near plane to far: planes[i, z, k, c] *= transmission to the detector."""
    ny = mu.shape[1]
    nx = mu.shape[2]
    mu2 = mu.reshape(mu.shape[0], ny * nx)
    nz = planes.shape[1]
    nk = planes.shape[2]
    nc = planes.shape[3]
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
        trans = np.float32(1.0)
        for k in range(nk - 1, -1, -1):
            iy, ix = _rotated_to_image(k, c, cos_t[v], sin_t[v], kc, cc, cy, cx)
            o00, o01, o10, o11, w00, w01, w10, w11 = _bilinear_taps(iy, ix, ny, nx)
            m = step * _tap_sum(mu2, z, o00, o01, o10, o11, w00, w01, w10, w11)
            half, full = _attenuation_split(m, n_sq)
            planes[i, z, k, c] = planes[i, z, k, c] * (trans * half)
            trans = trans * full


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


KERNEL_BODIES = {
    "total_transmission": total_transmission_body,
    "forward_samples": forward_samples_body,
    "forward_sum": forward_sum_body,
    "back_planes": back_planes_body,
    "back_attenuate": back_attenuate_body,
    "gather": gather_body,
}
# per-view kernels: one block per view, looping over the (z, c) plane; the others: grid-stride
BLOCK_PER_VIEW: frozenset = frozenset({"forward_sum", "back_planes"})
THREADS: dict[str, int] = {"total_transmission": 256, "forward_samples": 128, "forward_sum": 512,
                           "back_planes": 512, "back_attenuate": 128, "gather": 256}

total_transmission_kernel = cuda.jit(total_transmission_body)
forward_samples_kernel = cuda.jit(forward_samples_body)
forward_sum_kernel = cuda.jit(forward_sum_body)
back_planes_kernel = cuda.jit(back_planes_body)
back_attenuate_kernel = cuda.jit(back_attenuate_body)
gather_kernel = cuda.jit(gather_body)


def kernel_signatures() -> dict[str, tuple]:
    """Numba argument types of every kernel as the launchers pass them (for ``compile_ptx`` without a GPU)."""
    from numba import types as t  # noqa: PLC0415

    f32_3, f32_4 = t.float32[:, :, ::1], t.float32[:, :, :, ::1]
    i64, f64, f64_2 = t.int64[::1], t.float64[::1], t.float64[:, ::1]
    return {
        "total_transmission": (f32_3, i64, f64, f64, f64, t.float64, t.int64, f32_3),
        "forward_samples": (f32_3, f32_3, f32_3, t.boolean, t.float64, t.int64, i64, f64, f64, f64, f32_4),
        "forward_sum": (f32_4, i64, f64_2, f64_2, f32_3, f32_3),
        "back_planes": (f32_3, i64, f64_2, f64_2, f32_3, f32_3, f32_4),
        "back_attenuate": (f32_3, t.float64, t.int64, i64, f64, f64, f64, f32_4),
        "gather": (f32_4, i64, f64, f64, f64, f32_3),
    }


def _blocks(n: int, threads: int, max_blocks: int | None) -> int:
    """Blocks of ``threads`` that cover ``n`` elements, at most ``max_blocks`` (the kernels grid-stride)."""
    blocks = max(1, (n + threads - 1) // threads)
    return blocks if max_blocks is None else max(1, min(blocks, max_blocks))


def launch_config(n_sub_views: int, n_views: int, nz: int, ny: int, nx: int, nc: int,
                  max_blocks: int | None = None, threads: dict[str, int] | None = None) -> dict[str, tuple[int, int]]:
    """(blocks, threads per block) of every kernel for a subset of ``n_sub_views`` views; pure arithmetic,
    no GPU needed (the launchers below use it, and the tests check it)."""
    t = dict(THREADS, **(threads or {}))
    rays = n_sub_views * nz * nc
    return {
        "total_transmission": (_blocks(n_views * nz * nc, t["total_transmission"], max_blocks), t["total_transmission"]),
        "forward_samples": (_blocks(rays, t["forward_samples"], max_blocks), t["forward_samples"]),
        "forward_sum": (n_sub_views, t["forward_sum"]),
        "back_planes": (n_sub_views, t["back_planes"]),
        "back_attenuate": (_blocks(rays, t["back_attenuate"], max_blocks), t["back_attenuate"]),
        "gather": (_blocks(nz * ny * nx, t["gather"], max_blocks), t["gather"]),
    }


def forward_views(image, mu, trans_total, use_att, step_mm, n_sq, views, cos_t, sin_t, var_z, var_c, centers,
                  planes, tmp_ws, out, threads=None, max_blocks=None):
    """Launch the forward projection of a subset: attenuated samples over rays, then the per-view recursion."""
    nz, ny, nx = image.shape
    cfg = launch_config(views.size, cos_t.size, nz, ny, nx, out.shape[2], max_blocks, threads)
    b, t = cfg["forward_samples"]
    forward_samples_kernel[b, t](image, mu, trans_total, use_att, step_mm, n_sq, views, cos_t, sin_t, centers, planes)
    b, t = cfg["forward_sum"]
    forward_sum_kernel[b, t](planes, views, var_z, var_c, tmp_ws, out)


def back_views(proj, mu, use_att, step_mm, n_sq, views, cos_t, sin_t, var_z, var_c, centers, acc_ws, tmp_ws,
               planes, out, threads=None, max_blocks=None):
    """Launch the adjoint: blur recursion per view, attenuation over rays, then the voxel gather (adds into ``out``)."""
    nz, ny, nx = out.shape
    cfg = launch_config(views.size, cos_t.size, nz, ny, nx, proj.shape[2], max_blocks, threads)
    b, t = cfg["back_planes"]
    back_planes_kernel[b, t](proj, views, var_z, var_c, acc_ws, tmp_ws, planes)
    if use_att:
        b, t = cfg["back_attenuate"]
        back_attenuate_kernel[b, t](mu, step_mm, n_sq, views, cos_t, sin_t, centers, planes)
    b, t = cfg["gather"]
    gather_kernel[b, t](planes, views, cos_t, sin_t, centers, out)


def total_transmission(mu, views, cos_t, sin_t, centers, step_mm, n_depth, out, threads=None, max_blocks=None):
    """Launch the total-transmission kernel over the (view, column, row) rays of all views."""
    nz, ny, nx = mu.shape
    cfg = launch_config(views.size, views.size, nz, ny, nx, out.shape[1], max_blocks, threads)
    b, t = cfg["total_transmission"]
    total_transmission_kernel[b, t](mu, views, cos_t, sin_t, centers, step_mm, n_depth, out)
