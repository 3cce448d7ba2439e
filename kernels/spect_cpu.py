"""Numba CPU launchers of the rotate-and-sum SPECT projector (parallel over views or slices).

The per-element math lives in :mod:`kernels.spect_math`; this module only loops.
"""
from __future__ import annotations

import math

import numba
import numpy as np
from numba import prange

from kernels import spect_math as sm

_jit = numba.njit(cache=True, inline="always")
_rotated_to_image = _jit(sm.rotated_to_image)
_bilinear_sample = _jit(sm.bilinear_sample)
_bilinear_scatter = _jit(sm.bilinear_scatter)
_blur_passes = _jit(sm.blur_passes)
_blur3_axis0_at = _jit(sm.blur3_axis0_at)
_blur3_axis1_at = _jit(sm.blur3_axis1_at)


@numba.njit(cache=True)
def _blur_plane(acc: np.ndarray, tmp: np.ndarray, var_z: float, var_c: float) -> None:
    """In place: blur 2-D ``acc`` (z, c) by variances (pixel^2) ``var_z``, ``var_c`` via 3-tap passes."""
    n = _blur_passes(var_z, var_c)
    if n == 0:
        return
    wz = var_z / (2.0 * n)
    wc = var_c / (2.0 * n)
    nz, nc = acc.shape
    for _ in range(n):
        for z in range(nz):
            for c in range(nc):
                tmp[z, c] = _blur3_axis0_at(acc, z, c, wz)
        for z in range(nz):
            for c in range(nc):
                acc[z, c] = _blur3_axis1_at(tmp, z, c, wc)


@numba.njit(parallel=True, cache=True)
def forward_views(image, att, use_att, views, cos_t, sin_t, var_z, var_c, centers, out):
    """out[i] = projection of ``image`` for view ``views[i]`` (rotate, attenuate, depth-blur, sum)."""
    nz = image.shape[0]
    nk = var_z.shape[1] - 1
    nc = out.shape[2]
    kc, cc, cy, cx = centers[0], centers[1], centers[2], centers[3]
    for i in prange(views.size):
        v = views[i]
        acc = np.zeros((nz, nc), dtype=np.float32)
        tmp = np.empty((nz, nc), dtype=np.float32)
        pos_y = np.empty(nc, dtype=np.float64)
        pos_x = np.empty(nc, dtype=np.float64)
        for k in range(nk):
            _blur_plane(acc, tmp, var_z[v, k], var_c[v, k])
            for c in range(nc):
                pos_y[c], pos_x[c] = _rotated_to_image(k, c, cos_t[v], sin_t[v], kc, cc, cy, cx)
            for z in range(nz):
                for c in range(nc):
                    val = _bilinear_sample(image, z, pos_y[c], pos_x[c])
                    if use_att:
                        val *= att[v, z, k, c]
                    acc[z, c] += val
        _blur_plane(acc, tmp, var_z[v, nk], var_c[v, nk])
        for z in range(nz):
            for c in range(nc):
                out[i, z, c] = acc[z, c]


@numba.njit(parallel=True, cache=True)
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


@numba.njit(parallel=True, cache=True)
def scatter_planes_to_image(planes, views, cos_t, sin_t, centers, out):
    """Adjoint of the rotation: out[z] += bilinear scatter of planes[i, z] for every view (parallel over z)."""
    nz = out.shape[0]
    nk = planes.shape[2]
    nc = planes.shape[3]
    kc, cc, cy, cx = centers[0], centers[1], centers[2], centers[3]
    for z in prange(nz):
        for i in range(views.size):
            v = views[i]
            for k in range(nk):
                for c in range(nc):
                    val = planes[i, z, k, c]
                    if val != 0.0:
                        iy, ix = _rotated_to_image(k, c, cos_t[v], sin_t[v], kc, cc, cy, cx)
                        _bilinear_scatter(out, z, iy, ix, val)


@numba.njit(parallel=True, cache=True)
def attenuation_factors(mu, views, cos_t, sin_t, centers, step_mm, out):
    """out[v, z, k, c] = exp(-line integral of mu (1/mm) from the centre of plane k to the detector)."""
    nz = mu.shape[0]
    nk = out.shape[2]
    nc = out.shape[3]
    kc, cc, cy, cx = centers[0], centers[1], centers[2], centers[3]
    for i in prange(views.size):
        v = views[i]
        cum = np.zeros((nz, nc), dtype=np.float64)
        for k in range(nk - 1, -1, -1):
            for c in range(nc):
                iy, ix = _rotated_to_image(k, c, cos_t[v], sin_t[v], kc, cc, cy, cx)
                for z in range(nz):
                    m = _bilinear_sample(mu, z, iy, ix) * step_mm
                    out[i, z, k, c] = math.exp(-(cum[z, c] + 0.5 * m))
                    cum[z, c] += m
