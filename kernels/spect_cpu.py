"""Numba CPU launchers of the rotate-and-sum SPECT projector (parallel over views or slices).

The per-element math lives in :mod:`kernels.spect_math`; this module only loops.
"""
from __future__ import annotations

import numba
import numpy as np
from numba import prange

from kernels import spect_math as sm

_math = sm.compile_math(numba.njit(inline="always"))
_rotated_to_image = _math["rotated_to_image"]
_bilinear_taps = _math["bilinear_taps"]
_tap_sum = _math["tap_sum"]
_tap_scatter = _math["tap_scatter"]
_attenuation_step = _math["attenuation_step"]
_blur_passes = _math["blur_passes"]
_blur_weight = _math["blur_weight"]
_blur3 = _math["blur3"]
_blur3_axis0_at = _math["blur3_axis0_at"]
_blur3_axis1_at = _math["blur3_axis1_at"]


@numba.njit(cache=True, fastmath=True)
def _blur_plane(acc: np.ndarray, tmp: np.ndarray, var_z: float, var_c: float) -> None:
    """In place: blur 2-D ``acc`` (z, c) by variances (pixel^2) ``var_z``, ``var_c`` via 3-tap passes.

    Interior points call the 3-tap formula with their neighbours directly (branch-free
    rows, vectorisable); the edges call the zero-padded versions. Both are :mod:`kernels.spect_math`.
    """
    n = _blur_passes(var_z, var_c)
    if n == 0:
        return
    wz = _blur_weight(var_z, n)
    wc = _blur_weight(var_c, n)
    nz, nc = acc.shape
    for _ in range(n):
        for z in range(nz):
            if 0 < z < nz - 1:
                for c in range(nc):
                    tmp[z, c] = _blur3(acc[z - 1, c], acc[z, c], acc[z + 1, c], wz)
            else:
                for c in range(nc):
                    tmp[z, c] = _blur3_axis0_at(acc, z, c, wz)
        for z in range(nz):
            acc[z, 0] = _blur3_axis1_at(tmp, z, 0, wc)
            for c in range(1, nc - 1):
                acc[z, c] = _blur3(tmp[z, c - 1], tmp[z, c], tmp[z, c + 1], wc)
            if nc > 1:
                acc[z, nc - 1] = _blur3_axis1_at(tmp, z, nc - 1, wc)


@numba.njit(cache=True)
def _plane_taps(k, nc, ny, nx, cos_t, sin_t, kc, cc, cy, cx, offs, ww):
    """Bilinear taps of every column of rotated plane k, as flat in-slice offsets (y * nx + x).

    Fills offs (nc, 4) and ww (nc, 4); returns (c_lo, c_hi), the columns whose taps touch
    the image (c_lo >= c_hi when none do).
    """
    c_lo = nc
    c_hi = 0
    for c in range(nc):
        iy, ix = _rotated_to_image(k, c, cos_t, sin_t, kc, cc, cy, cx)
        o00, o01, o10, o11, w00, w01, w10, w11 = _bilinear_taps(iy, ix, ny, nx)
        offs[c, 0] = o00
        offs[c, 1] = o01
        offs[c, 2] = o10
        offs[c, 3] = o11
        ww[c, 0] = w00
        ww[c, 1] = w01
        ww[c, 2] = w10
        ww[c, 3] = w11
        if w00 + w01 + w10 + w11 > 0.0:
            if c < c_lo:
                c_lo = c
            c_hi = c + 1
    return c_lo, c_hi


@numba.njit(parallel=True, cache=True, fastmath=True)
def forward_views(image, att, use_att, views, cos_t, sin_t, var_z, var_c, centers, out):
    """out[i] = projection of ``image`` for view ``views[i]`` (rotate, attenuate, depth-blur, sum)."""
    nz, ny, nx = image.shape
    img = image.reshape(nz, ny * nx)
    nk = var_z.shape[1] - 1
    nc = out.shape[2]
    kc, cc, cy, cx = centers[0], centers[1], centers[2], centers[3]
    for i in prange(views.size):
        v = views[i]
        acc = np.zeros((nz, nc), dtype=np.float32)
        tmp = np.empty((nz, nc), dtype=np.float32)
        offs = np.empty((nc, 4), dtype=np.int64)
        ww = np.empty((nc, 4), dtype=np.float32)
        started = False  # blurring zeros is a no-op: skip it until the first non-zero plane
        for k in range(nk):
            if started:
                _blur_plane(acc, tmp, var_z[v, k], var_c[v, k])
            c_lo, c_hi = _plane_taps(k, nc, ny, nx, cos_t[v], sin_t[v], kc, cc, cy, cx, offs, ww)
            plane_sum = 0.0
            for z in range(nz):
                for c in range(c_lo, c_hi):
                    val = _tap_sum(img, z, offs[c, 0], offs[c, 1], offs[c, 2], offs[c, 3],
                                   ww[c, 0], ww[c, 1], ww[c, 2], ww[c, 3])
                    if use_att:
                        val *= att[v, z, k, c]
                    acc[z, c] += val
                    if not started:
                        plane_sum += abs(val)
            if plane_sum > 0.0:
                started = True
        _blur_plane(acc, tmp, var_z[v, nk], var_c[v, nk])
        for z in range(nz):
            for c in range(nc):
                out[i, z, c] = acc[z, c]


@numba.njit(parallel=True, cache=True, fastmath=True)
def back_views_to_planes(proj, att, use_att, views, var_z, var_c, planes):
    """Adjoint of the blur-and-sum part: planes[i, z, k, c] = gradient w.r.t. rotated plane k of view i."""
    nz = proj.shape[1]
    nc = proj.shape[2]
    nk = var_z.shape[1] - 1
    for i in prange(views.size):
        v = views[i]
        acc = np.empty((nz, nc), dtype=np.float32)
        tmp = np.empty((nz, nc), dtype=np.float32)
        for z in range(nz):
            for c in range(nc):
                acc[z, c] = proj[i, z, c]
        _blur_plane(acc, tmp, var_z[v, nk], var_c[v, nk])
        for k in range(nk - 1, -1, -1):
            for z in range(nz):
                for c in range(nc):
                    val = acc[z, c]
                    if use_att:
                        val *= att[v, z, k, c]
                    planes[i, z, k, c] = val
            _blur_plane(acc, tmp, var_z[v, k], var_c[v, k])


@numba.njit(parallel=True, cache=True, fastmath=True)
def scatter_planes_to_image(planes, views, cos_t, sin_t, centers, n_blocks, out):
    """Adjoint of the rotation: out[z] += bilinear scatter of planes[i, z] for every view.

    Parallel over blocks of slices, so no two threads write the same voxel; the
    taps of each rotated sample are computed once per block.
    """
    nz, ny, nx = out.shape
    img = out.reshape(nz, ny * nx)
    nk = planes.shape[2]
    nc = planes.shape[3]
    kc, cc, cy, cx = centers[0], centers[1], centers[2], centers[3]
    n_blocks = max(1, min(nz, n_blocks))
    for b in prange(n_blocks):
        z_lo = (b * nz) // n_blocks
        z_hi = ((b + 1) * nz) // n_blocks
        offs = np.empty((nc, 4), dtype=np.int64)
        ww = np.empty((nc, 4), dtype=np.float32)
        for i in range(views.size):
            v = views[i]
            for k in range(nk):
                c_lo, c_hi = _plane_taps(k, nc, ny, nx, cos_t[v], sin_t[v], kc, cc, cy, cx, offs, ww)
                for z in range(z_lo, z_hi):
                    for c in range(c_lo, c_hi):
                        _tap_scatter(img, z, offs[c, 0], offs[c, 1], offs[c, 2], offs[c, 3],
                                     ww[c, 0], ww[c, 1], ww[c, 2], ww[c, 3], planes[i, z, k, c])


@numba.njit(parallel=True, cache=True, fastmath=True)
def attenuation_factors(mu, views, cos_t, sin_t, centers, step_mm, out):
    """out[i, z, k, c] = exp(-line integral of mu (1/mm) from the centre of plane k to the detector).

    Walks each ray from the detector inwards keeping the transmission so far
    (:func:`kernels.spect_math.attenuation_step`, float32 like the CUDA path).
    """
    nz, ny, nx = mu.shape
    mu2 = mu.reshape(nz, ny * nx)
    nk = out.shape[2]
    nc = out.shape[3]
    kc, cc, cy, cx = centers[0], centers[1], centers[2], centers[3]
    for i in prange(views.size):
        v = views[i]
        trans = np.ones((nz, nc), dtype=np.float32)
        offs = np.empty((nc, 4), dtype=np.int64)
        ww = np.empty((nc, 4), dtype=np.float32)
        step = np.float32(step_mm)
        for k in range(nk - 1, -1, -1):
            c_lo, c_hi = _plane_taps(k, nc, ny, nx, cos_t[v], sin_t[v], kc, cc, cy, cx, offs, ww)
            for z in range(nz):
                for c in range(nc):
                    m = np.float32(0.0)
                    if c_lo <= c < c_hi:
                        m = step * _tap_sum(mu2, z, offs[c, 0], offs[c, 1], offs[c, 2], offs[c, 3],
                                            ww[c, 0], ww[c, 1], ww[c, 2], ww[c, 3])
                    out[i, z, k, c] = _attenuation_step(trans, (z, c), m)
