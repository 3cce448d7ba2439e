"""Per-element math of the rotate-and-sum SPECT projector, written once.

These are plain Python functions on scalars and arrays. ``kernels.spect_cpu``
compiles them with ``numba.njit`` and ``kernels.spect_cuda`` with
``numba.cuda.jit(device=True)``, so the CPU path is the tested truth for the
GPU path.

Geometry in index units (voxel size = detector pixel size in the transaxial
plane). For a view with detector-normal angle theta, the rotated frame has a
depth index k (k = 0 farthest from the detector, increasing towards it) and a
column index c. The rotated sample (k, c) sits in the image at::

    ix = cx + (c - cc) cos(theta) + (k - kc) sin(theta)
    iy = cy + (c - cc) sin(theta) - (k - kc) cos(theta)

with (cx, cy, cc, kc) the centre indices; this is the documented angle
convention of ``recon.data.spect`` (detector normal n = (sin, -cos)).
"""
from __future__ import annotations

import math

# Largest variance (pixel^2) one 3-tap pass may carry; larger increments are
# split into several passes so each kernel [w, 1 - 2w, w] stays Gaussian-like.
MAX_PASS_VARIANCE: float = 0.5


def rotated_to_image(k: float, c: float, cos_t: float, sin_t: float,
                     kc: float, cc: float, cy: float, cx: float) -> tuple[float, float]:
    """Image indices (iy, ix) of rotated-frame sample (k, c)."""
    dc = c - cc
    dk = k - kc
    return cy + dc * sin_t - dk * cos_t, cx + dc * cos_t + dk * sin_t


def image_to_rotated(iy: float, ix: float, cos_t: float, sin_t: float,
                     kc: float, cc: float, cy: float, cx: float) -> tuple[float, float]:
    """Rotated-frame indices (k, c) of image position (iy, ix); inverse of :func:`rotated_to_image`."""
    dx = ix - cx
    dy = iy - cy
    return kc + dx * sin_t - dy * cos_t, cc + dx * cos_t + dy * sin_t


def bilinear_setup(iy: float, ix: float, ny: int, nx: int) -> tuple[int, int, int, int, float, float, float, float]:
    """Taps of a bilinear sample at fractional (iy, ix) on an ny x nx plane.

    Returns (y0, y1, x0, x1, w00, w01, w10, w11): tap indices clamped into the
    plane and weights, zero for taps outside it (zero padding).
    """
    y0f = math.floor(iy)
    x0f = math.floor(ix)
    y0 = int(y0f)
    x0 = int(x0f)
    fy = iy - y0f
    fx = ix - x0f
    wy0 = 1.0 - fy if 0 <= y0 < ny else 0.0
    wy1 = fy if 0 <= y0 + 1 < ny else 0.0
    wx0 = 1.0 - fx if 0 <= x0 < nx else 0.0
    wx1 = fx if 0 <= x0 + 1 < nx else 0.0
    y0c = min(max(y0, 0), ny - 1)
    y1c = min(max(y0 + 1, 0), ny - 1)
    x0c = min(max(x0, 0), nx - 1)
    x1c = min(max(x0 + 1, 0), nx - 1)
    return y0c, y1c, x0c, x1c, wy0 * wx0, wy0 * wx1, wy1 * wx0, wy1 * wx1


def make_bilinear_sample(setup):
    """Build ``bilinear_sample(vol, z, iy, ix)`` around a compiled :func:`bilinear_setup`.

    Compiled functions can only call compiled functions, so each target passes
    its own compiled ``setup``; the formula stays here, once.
    """

    def bilinear_sample(vol, z, iy, ix):
        """Bilinear interpolation of ``vol[z]`` at fractional (iy, ix); zero outside."""
        y0, y1, x0, x1, w00, w01, w10, w11 = setup(iy, ix, vol.shape[1], vol.shape[2])
        return w00 * vol[z, y0, x0] + w01 * vol[z, y0, x1] + w10 * vol[z, y1, x0] + w11 * vol[z, y1, x1]

    return bilinear_sample


def bilinear_weight(py: float, px: float, iy: int, ix: int) -> float:
    """Weight that a bilinear sample at (py, px) gives voxel (iy, ix)."""
    wy = 1.0 - abs(py - iy)
    wx = 1.0 - abs(px - ix)
    if wy <= 0.0 or wx <= 0.0:
        return 0.0
    return wy * wx


def blur_passes(var_z: float, var_c: float) -> int:
    """Number of 3-tap passes that carry variances (pixel^2) ``var_z`` and ``var_c``."""
    v = max(var_z, var_c)
    if v <= 0.0:
        return 0
    return int(math.ceil(v / MAX_PASS_VARIANCE))


def blur3_axis0_at(src, z: int, c: int, w: float) -> float:
    """3-tap kernel [w, 1-2w, w] along axis 0 of 2-D ``src`` at (z, c), zero outside."""
    val = (1.0 - 2.0 * w) * src[z, c]
    if z > 0:
        val += w * src[z - 1, c]
    if z + 1 < src.shape[0]:
        val += w * src[z + 1, c]
    return val


def blur3_axis1_at(src, z: int, c: int, w: float) -> float:
    """3-tap kernel [w, 1-2w, w] along axis 1 of 2-D ``src`` at (z, c), zero outside."""
    val = (1.0 - 2.0 * w) * src[z, c]
    if c > 0:
        val += w * src[z, c - 1]
    if c + 1 < src.shape[1]:
        val += w * src[z, c + 1]
    return val
