"""Numba CPU launchers of the Joseph PET projector (``prange`` over LORs / events).

The per-element math lives in :mod:`kernels.pet_math`; this module only loops. Back projection
cannot add into one image from many threads (Numba has no CPU atomics): each of ``n_chunks``
contiguous blocks of LORs scatters into its own row of a ``(n_chunks, n_voxels)`` buffer, and the
rows are summed in a fixed order (deterministic for a given ``n_chunks``).
"""
from __future__ import annotations

import numba
import numpy as np
from numba import prange

from kernels import pet_math as pm

# LLVM fast-math without the no-NaN / no-Inf assumptions (non-finite data stay well defined) and without
# approximate functions: reassociation and contraction only change float rounding (forward and back
# remain transposes to rounding; measured 1.2-1.4x on the non-TOF forward, ~1.05x elsewhere).
FASTMATH = {"nsz", "arcp", "contract", "reassoc"}
_math = pm.compile_math(numba.njit(inline="always", fastmath=FASTMATH))
_lor_forward = _math["lor_forward"]
_lor_back = _math["lor_back"]
_sinogram_lor = _math["sinogram_lor"]

TOF_ONE = pm.TOF_ONE


@numba.njit(parallel=True, cache=True, fastmath=FASTMATH)
def forward_lors(img, geom, dims, a, b, tof_mode, tofp, tbins, out):
    """out[i, :] = projection of flat ``img`` along LOR a[i] -> b[i] (mm)."""
    for i in prange(a.shape[0]):
        tb = tbins[i] if tof_mode == TOF_ONE else 0
        _lor_forward(img, geom, dims, a[i, 0], a[i, 1], a[i, 2], b[i, 0], b[i, 1], b[i, 2],
                     tof_mode, tofp, tb, out, i, 1.0)


@numba.njit(parallel=True, cache=True, fastmath=FASTMATH)
def _reduce_chunks(buf, out):
    """out[j] += sum over rows of buf[:, j] (parallel over voxels, rows in order)."""
    n_chunks, n = buf.shape
    for j in prange(n):
        acc = np.float32(0.0)
        for c in range(n_chunks):
            acc += buf[c, j]
        out[j] += acc


@numba.njit(parallel=True, cache=True, fastmath=FASTMATH)
def _back_lors_chunks(y, geom, dims, a, b, tof_mode, tofp, tbins, buf):
    n_chunks = buf.shape[0]
    n = a.shape[0]
    for c in prange(n_chunks):
        row = buf[c]
        row[:] = 0.0
        for i in range((c * n) // n_chunks, ((c + 1) * n) // n_chunks):
            tb = tbins[i] if tof_mode == TOF_ONE else 0
            _lor_back(row, geom, dims, a[i, 0], a[i, 1], a[i, 2], b[i, 0], b[i, 1], b[i, 2],
                      tof_mode, tofp, tb, y, i, 1.0)


def back_lors(y, geom, dims, a, b, tof_mode, tofp, tbins, buf, out) -> None:
    """out (flat) += back projection of y (n, n_tof or 1) along the LORs, via per-chunk buffers ``buf``."""
    _back_lors_chunks(y, geom, dims, a, b, tof_mode, tofp, tbins, buf)
    _reduce_chunks(buf, out)


@numba.njit(parallel=True, cache=True, fastmath=FASTMATH)
def forward_sino(img, geom, dims, views, xy_a, xy_b, z_a, z_b, plane_w, tx_w, place, tof_mode, tofp, out):
    """out[e, :] for flat (selected view, plane, radial) index e: weighted projection of that sinogram bin."""
    dummy = np.zeros(1, np.int32)
    for e in prange(out.shape[0]):
        v, p, r, ax, ay, az, bx, by, bz = _sinogram_lor(e, views, xy_a, xy_b, z_a, z_b, place)
        _lor_forward(img, geom, dims, ax, ay, az, bx, by, bz, tof_mode, tofp, dummy[0], out, e,
                     plane_w[p] * tx_w[v, r])


@numba.njit(parallel=True, cache=True, fastmath=FASTMATH)
def _back_sino_chunks(y, geom, dims, views, xy_a, xy_b, z_a, z_b, plane_w, tx_w, place, tof_mode, tofp, buf):
    n_chunks = buf.shape[0]
    n = y.shape[0]
    for c in prange(n_chunks):
        row = buf[c]
        row[:] = 0.0
        for e in range((c * n) // n_chunks, ((c + 1) * n) // n_chunks):
            v, p, r, ax, ay, az, bx, by, bz = _sinogram_lor(e, views, xy_a, xy_b, z_a, z_b, place)
            _lor_back(row, geom, dims, ax, ay, az, bx, by, bz, tof_mode, tofp, 0, y, e, plane_w[p] * tx_w[v, r])


def back_sino(y, geom, dims, views, xy_a, xy_b, z_a, z_b, plane_w, tx_w, place, tof_mode, tofp, buf, out) -> None:
    """out (flat) += transpose of :func:`forward_sino` applied to y (n_sel * planes * radial, n_tof or 1)."""
    _back_sino_chunks(y, geom, dims, views, xy_a, xy_b, z_a, z_b, plane_w, tx_w, place, tof_mode, tofp, buf)
    _reduce_chunks(buf, out)
