"""Numba CPU launchers of the rotate-and-sum SPECT projector (parallel over views).

The per-element math lives in :mod:`kernels.spect_math`; this module only loops.

Layout: the kernels work z-last. The image and the mu-map come as (ny * nx, nz) slice stacks
(``to_zlast``) and each view's running sum as (nc, nz), so every bilinear tap of a rotated column
is a contiguous run over z and the inner loops vectorise (no gathers). Attenuation is computed on
the fly from the mu-map sampled with the image's own taps (one fused rotate-attenuate-blur-sum
pass per view, no stored factors): the back pass walks from the detector inwards keeping the
transmission; the forward pass walks outwards from the far side, so it starts from the total
transmission of each ray (``total_transmission``, (n_views, nc, nz), computed once per study)
and divides out the part already walked.
"""
from __future__ import annotations

import numba
import numpy as np
from numba import prange

from kernels import spect_math as sm

_math = sm.compile_math(numba.njit(inline="always"))
_rotated_to_image = _math["rotated_to_image"]
_bilinear_taps = _math["bilinear_taps"]
_tap_sum_t = _math["tap_sum_t"]
_exp_small = _math["exp_small"]
_attenuation_split = _math["attenuation_split"]
_blur_passes = _math["blur_passes"]
_blur_weight = _math["blur_weight"]
_blur3 = _math["blur3"]
_blur3_axis0_at = _math["blur3_axis0_at"]
_blur3_axis1_at = _math["blur3_axis1_at"]


@numba.njit(cache=True, fastmath=True)
def _blur_plane(acc: np.ndarray, tmp: np.ndarray, var_0: float, var_1: float) -> None:
    """In place: blur 2-D ``acc`` by variances (pixel^2) ``var_0`` along axis 0 and ``var_1`` along axis 1
    via 3-tap passes (the kernels call it on (c, z) planes with (var_c, var_z)).

    Interior points call the 3-tap formula with their neighbours directly (branch-free
    rows, vectorisable); the edges call the zero-padded versions. Both are :mod:`kernels.spect_math`.
    """
    var_z, var_c = var_0, var_1
    n = _blur_passes(var_z, var_c)
    if n == 0:
        return
    wz = np.float32(_blur_weight(var_z, n))  # float32 weights: the sweeps stay float32 and vectorise 8 wide
    wc = np.float32(_blur_weight(var_c, n))
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


@numba.njit(parallel=True, cache=True)
def to_zlast(image, out):
    """out[y * nx + x, z] = image[z, y, x]: the z-last slice stack the kernels read."""
    nz, ny, nx = image.shape
    for y in prange(ny):  # one y row at a time: 64 KB blocks of both layouts stay in cache
        for z in range(nz):
            for x in range(nx):
                out[y * nx + x, z] = image[z, y, x]


@numba.njit(parallel=True, cache=True)
def add_parts(parts, out):
    """out[z, y, x] += sum over p of parts[p, y * nx + x, z] (the per-thread back projections)."""
    nz, ny, nx = out.shape
    for y in prange(ny):
        for p in range(parts.shape[0]):
            for z in range(nz):
                for x in range(nx):
                    out[z, y, x] += parts[p, y * nx + x, z]


@numba.njit(parallel=True, cache=True, fastmath=True)
def total_transmission(mu_t, ny, nx, step_mm, views, cos_t, sin_t, centers, n_depth, out):
    """out[i, c, z] = exp(-sum over all depth samples of mu x step) along ray (z, c) of view views[i]."""
    nz = mu_t.shape[1]
    nc = out.shape[1]
    kc, cc, cy, cx = centers[0], centers[1], centers[2], centers[3]
    step = np.float32(step_mm)
    for i in prange(views.size):
        v = views[i]
        total = np.zeros((nc, nz), dtype=np.float64)
        offs = np.empty((nc, 4), dtype=np.int64)
        ww = np.empty((nc, 4), dtype=np.float32)
        for k in range(n_depth):
            c_lo, c_hi = _plane_taps(k, nc, ny, nx, cos_t[v], sin_t[v], kc, cc, cy, cx, offs, ww)
            for c in range(c_lo, c_hi):
                o00, o01, o10, o11 = offs[c, 0], offs[c, 1], offs[c, 2], offs[c, 3]
                w00, w01, w10, w11 = ww[c, 0], ww[c, 1], ww[c, 2], ww[c, 3]
                for z in range(nz):
                    total[c, z] += step * _tap_sum_t(mu_t, z, o00, o01, o10, o11, w00, w01, w10, w11)
        for c in range(nc):
            for z in range(nz):
                out[i, c, z] = np.exp(-total[c, z])


@numba.njit(parallel=True, cache=True, fastmath=True)
def forward_views(img_t, ny, nx, mu_t, air, n_sq, trans_total, use_att, step_mm, views, cos_t, sin_t, var_z, var_c,
                  centers, out):
    """out[i] = projection of the z-last image ``img_t`` for view ``views[i]``: rotate, attenuate,
    depth-blur, sum, far plane to near. The factor of sample k is trans_total x exp(sum of m over the
    farther samples) x exp(m_k / 2), i.e. exp(-(m of the nearer samples + m_k / 2))."""
    nz = img_t.shape[1]
    nk = var_z.shape[1] - 1
    nc = out.shape[2]
    kc, cc, cy, cx = centers[0], centers[1], centers[2], centers[3]
    step = np.float32(step_mm)
    for i in prange(views.size):
        v = views[i]
        acc = np.zeros((nc, nz), dtype=np.float32)
        tmp = np.empty((nc, nz), dtype=np.float32)
        grow = np.ones((nc, nz), dtype=np.float32)  # exp(+ sum of m over the samples walked so far)
        vals = np.empty(nz, dtype=np.float32)
        offs = np.empty((nc, 4), dtype=np.int64)
        ww = np.empty((nc, 4), dtype=np.float32)
        started = False  # blurring zeros is a no-op: skip it until the first non-zero plane
        for k in range(nk):
            if started:
                _blur_plane(acc, tmp, var_c[v, k], var_z[v, k])
            c_lo, c_hi = _plane_taps(k, nc, ny, nx, cos_t[v], sin_t[v], kc, cc, cy, cx, offs, ww)
            for c in range(c_lo, c_hi):
                o00, o01, o10, o11 = offs[c, 0], offs[c, 1], offs[c, 2], offs[c, 3]
                w00, w01, w10, w11 = ww[c, 0], ww[c, 1], ww[c, 2], ww[c, 3]
                for z in range(nz):
                    vals[z] = _tap_sum_t(img_t, z, o00, o01, o10, o11, w00, w01, w10, w11)
                if use_att and air[o00] & air[o01] & air[o10] & air[o11]:
                    for z in range(nz):  # all four taps in air for every z: m = 0, grow unchanged
                        acc[c, z] += vals[z] * (trans_total[v, c, z] * grow[c, z])
                elif use_att:
                    a_row, g_row, t_row = acc[c], grow[c], trans_total[v, c]
                    for z in range(nz):
                        m = step * _tap_sum_t(mu_t, z, o00, o01, o10, o11, w00, w01, w10, w11)
                        h = _exp_small(np.float32(0.5) * m, n_sq)
                        g = g_row[z]
                        a_row[z] += vals[z] * (t_row[z] * g * h)
                        g_row[z] = g * (h * h)
                else:
                    for z in range(nz):
                        acc[c, z] += vals[z]
                if not started:
                    for z in range(nz):
                        if vals[z] != 0.0:
                            started = True
        _blur_plane(acc, tmp, var_c[v, nk], var_z[v, nk])
        for z in range(nz):
            for c in range(nc):
                out[i, z, c] = acc[c, z]


@numba.njit(parallel=True, cache=True, fastmath=True)
def back_views(proj, ny, nx, mu_t, air, n_sq, use_att, step_mm, views, cos_t, sin_t, var_z, var_c, centers, parts):
    """Adjoint of :func:`forward_views` into z-last images: parts[p] += the back projection of views
    p, p + P, ... (P = parts.shape[0], one part per thread: no two threads write one voxel).

    Near plane to far: the adjoint blur recursion, each plane attenuated by the transmission walked
    so far (:func:`kernels.spect_math.attenuation_split`) and scattered through the bilinear taps."""
    nz = proj.shape[1]
    nc = proj.shape[2]
    nk = var_z.shape[1] - 1
    n_parts = parts.shape[0]
    kc, cc, cy, cx = centers[0], centers[1], centers[2], centers[3]
    step = np.float32(step_mm)
    for p in prange(n_parts):
        img = parts[p]
        acc = np.empty((nc, nz), dtype=np.float32)
        tmp = np.empty((nc, nz), dtype=np.float32)
        trans = np.empty((nc, nz), dtype=np.float32)
        vals = np.empty(nz, dtype=np.float32)
        offs = np.empty((nc, 4), dtype=np.int64)
        ww = np.empty((nc, 4), dtype=np.float32)
        for i in range(p, views.size, n_parts):
            v = views[i]
            for c in range(nc):
                for z in range(nz):
                    acc[c, z] = proj[i, z, c]
                    trans[c, z] = 1.0
            _blur_plane(acc, tmp, var_c[v, nk], var_z[v, nk])
            for k in range(nk - 1, -1, -1):
                c_lo, c_hi = _plane_taps(k, nc, ny, nx, cos_t[v], sin_t[v], kc, cc, cy, cx, offs, ww)
                for c in range(c_lo, c_hi):
                    o00, o01, o10, o11 = offs[c, 0], offs[c, 1], offs[c, 2], offs[c, 3]
                    w00, w01, w10, w11 = ww[c, 0], ww[c, 1], ww[c, 2], ww[c, 3]
                    if use_att and air[o00] & air[o01] & air[o10] & air[o11]:
                        for z in range(nz):
                            vals[z] = acc[c, z] * trans[c, z]
                    elif use_att:
                        for z in range(nz):
                            m = step * _tap_sum_t(mu_t, z, o00, o01, o10, o11, w00, w01, w10, w11)
                            half, full = _attenuation_split(m, n_sq)
                            t = trans[c, z]
                            vals[z] = acc[c, z] * (t * half)
                            trans[c, z] = t * full
                    else:
                        for z in range(nz):
                            vals[z] = acc[c, z]
                    for z in range(nz):
                        img[o00, z] += w00 * vals[z]
                    for z in range(nz):
                        img[o01, z] += w01 * vals[z]
                    for z in range(nz):
                        img[o10, z] += w10 * vals[z]
                    for z in range(nz):
                        img[o11, z] += w11 * vals[z]
                _blur_plane(acc, tmp, var_c[v, k], var_z[v, k])
