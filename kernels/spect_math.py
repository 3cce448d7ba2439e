"""Per-element math of the rotate-and-sum SPECT projector, written once for both targets.

These are plain Python functions on scalars and arrays. :func:`compile_math`
compiles all of them with one decorator: ``numba.njit`` in
:mod:`kernels.spect_cpu`, ``numba.cuda.jit(device=True)`` in
:mod:`kernels.spect_cuda`; calls between them resolve to the compiled versions
of the same target. Both launchers call these functions and nothing else for
the arithmetic, so the CPU path is the tested truth for the GPU path.

Geometry in index units (voxel size = detector pixel size in the transaxial
plane). For a view with detector-normal angle theta, the rotated frame has a
depth index k (k = 0 farthest from the detector, increasing towards it) and a
column index c. The rotated sample (k, c) sits in the image at::

    ix = cx + (c - cc) cos(theta) + (k - kc) sin(theta)
    iy = cy + (c - cc) sin(theta) - (k - kc) cos(theta)

with (cx, cy, cc, kc) the centre indices; this is the documented angle
convention of ``recon.data.spect`` (detector normal n = (sin, -cos)).

Image slices are addressed flat: ``plane[z, y * nx + x]`` of a (nz, ny * nx)
view of the (nz, ny, nx) volume, so one tap is one offset.

Numba's on-disk cache of :mod:`kernels.spect_cpu` checks only that file's time
stamp: after editing this module, touch ``spect_cpu.py`` (or delete
``kernels/__pycache__``) so the CPU kernels are recompiled.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from kernels.jit_math import compile_functions

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


def bilinear_taps(iy: float, ix: float, ny: int, nx: int) -> tuple:
    """The four taps of a bilinear sample at fractional (iy, ix) of an ny x nx slice.

    Returns (o00, o01, o10, o11, w00, w01, w10, w11): flat offsets ``y * nx + x``
    of taps (y0, x0), (y0, x1), (y1, x0), (y1, x1), clamped into the slice, and
    their float32 weights, zero for taps outside it (zero padding).
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
    y0c = min(max(y0, 0), ny - 1) * nx
    y1c = min(max(y0 + 1, 0), ny - 1) * nx
    x0c = min(max(x0, 0), nx - 1)
    x1c = min(max(x0 + 1, 0), nx - 1)
    return (y0c + x0c, y0c + x1c, y1c + x0c, y1c + x1c,
            np.float32(wy0 * wx0), np.float32(wy0 * wx1), np.float32(wy1 * wx0), np.float32(wy1 * wx1))


def tap_sum(plane: Any, z: int, o00: int, o01: int, o10: int, o11: int,
            w00: float, w01: float, w10: float, w11: float) -> float:
    """Bilinear sample of slice z of flat ``plane`` (nz, ny * nx) from its taps (:func:`bilinear_taps`)."""
    return w00 * plane[z, o00] + w01 * plane[z, o01] + w10 * plane[z, o10] + w11 * plane[z, o11]


def tap_scatter(plane: Any, z: int, o00: int, o01: int, o10: int, o11: int,
                w00: float, w01: float, w10: float, w11: float, val: float) -> None:
    """Transpose of :func:`tap_sum`: add ``val`` into slice z of ``plane`` through the taps."""
    plane[z, o00] += w00 * val
    plane[z, o01] += w01 * val
    plane[z, o10] += w10 * val
    plane[z, o11] += w11 * val


def tap_sum_t(plane_t: Any, z: int, o00: int, o01: int, o10: int, o11: int,
              w00: float, w01: float, w10: float, w11: float) -> float:
    """:func:`tap_sum` on a z-last slice stack ``plane_t`` (ny * nx, nz): the taps of one column, row z."""
    return w00 * plane_t[o00, z] + w01 * plane_t[o01, z] + w10 * plane_t[o10, z] + w11 * plane_t[o11, z]


def bilinear_weight(py: float, px: float, iy: int, ix: int) -> float:
    """Weight that a bilinear sample at (py, px) gives voxel (iy, ix) (transpose of :func:`bilinear_taps`)."""
    wy = 1.0 - abs(py - iy)
    wx = 1.0 - abs(px - ix)
    if wy <= 0.0 or wx <= 0.0:
        return np.float32(0.0)
    return np.float32(wy * wx)


def attenuation_step(trans: Any, idx: Any, m: float) -> float:
    """One depth sample of the walk from the detector inwards; returns its attenuation factor.

    ``trans[idx]`` holds the transmission (float32) from the detector to the near
    edge of the sample and ``m`` = mu (1/mm) x step (mm) is the sample's
    attenuation. The factor at the sample centre is trans exp(-m/2); ``trans[idx]``
    becomes trans exp(-m), from the same exponential. Samples in air (m = 0)
    cost no exponential and no store.
    """
    t = trans[idx]
    if m > 0.0:
        half = math.exp(-0.5 * m)
        trans[idx] = t * (half * half)
        return t * half
    return t


MAX_EXP_SQUARINGS: int = 3


def exp_squarings(max_abs_arg: float) -> int:
    """Squarings :func:`exp_small` needs so that |argument| / 2^n <= 1/4 for every argument up to
    ``max_abs_arg``, at most :data:`MAX_EXP_SQUARINGS` (0 for the half-steps m / 2 of a human mu-map
    at 4.8 mm voxels, 1 at 9.6 mm)."""
    n = 0
    while n < MAX_EXP_SQUARINGS and max_abs_arg * 0.5 ** n > 0.25:
        n += 1
    return n


def exp_small(a: float, n_sq: int) -> float:
    """exp(a) in float32 without a library call or a branch, so loops over it vectorise.

    exp(a) = p(a / 2^n_sq)^(2^n_sq), p the degree-7 Taylor polynomial, n_sq in 0..3 from
    :func:`exp_squarings` of the largest argument. Truncation is below 4e-10 relative while
    |a| / 2^n_sq <= 1/4 and below 6e-8 up to 1/2 (|a| <= 4, i.e. mu <= 1.6 /mm at 4.8 mm steps): the
    error is float32 rounding (a few 1e-8), times 2^n_sq from the squarings. The squarings are
    arithmetic selects (p * (1 + f (p - 1)), f = 0 or 1), not branches.
    """
    f1 = np.float32(1.0) if n_sq > 0 else np.float32(0.0)
    f2 = np.float32(1.0) if n_sq > 1 else np.float32(0.0)
    f3 = np.float32(1.0) if n_sq > 2 else np.float32(0.0)
    scale = (np.float32(1.0) - np.float32(0.5) * f1) * (np.float32(1.0) - np.float32(0.5) * f2) * (
        np.float32(1.0) - np.float32(0.5) * f3)
    b = a * scale
    p = np.float32(1.0) + b * (np.float32(1.0) + b * (np.float32(0.5) + b * (np.float32(1.0 / 6.0) + b * (
        np.float32(1.0 / 24.0) + b * (np.float32(1.0 / 120.0) + b * (np.float32(1.0 / 720.0)
                                                                     + b * np.float32(1.0 / 5040.0)))))))
    p = p * (np.float32(1.0) + f1 * (p - np.float32(1.0)))
    p = p * (np.float32(1.0) + f2 * (p - np.float32(1.0)))
    p = p * (np.float32(1.0) + f3 * (p - np.float32(1.0)))
    return p


def attenuation_split(m: float, n_sq: int) -> tuple[float, float]:
    """(exp(-m/2), exp(-m)) in float32 of one depth sample with attenuation m = mu (1/mm) x step (mm).

    Factor at the sample centre = transmission so far x the first; the transmission past the sample
    = transmission x the second (the walk of :func:`attenuation_step`, without stores).
    """
    half = exp_small(np.float32(-0.5) * m, n_sq)
    return half, half * half


def blur_passes(var_z: float, var_c: float) -> int:
    """Number of 3-tap passes that carry variances (pixel^2) ``var_z`` and ``var_c``."""
    v = max(var_z, var_c)
    if v <= 0.0:
        return 0
    return int(math.ceil(v / MAX_PASS_VARIANCE))


def blur_weight(var: float, n_passes: int) -> float:
    """Side weight w of each of ``n_passes`` 3-tap passes that together carry variance ``var`` (pixel^2).

    One pass [w, 1-2w, w] has variance 2w, and variances of passes add: w = var / (2 n).
    """
    return var / (2.0 * n_passes)


def blur3(left: float, mid: float, right: float, w: float) -> float:
    """3-tap kernel [w, 1-2w, w] (variance 2w pixel^2) applied to three neighbours."""
    return (np.float32(1.0) - np.float32(2.0) * w) * mid + w * (left + right)


def blur3_axis0_at(src: Any, z: int, c: int, w: float) -> float:
    """:func:`blur3` along axis 0 of 2-D ``src`` at (z, c), zero outside."""
    left = src[z - 1, c] if z > 0 else 0.0
    right = src[z + 1, c] if z + 1 < src.shape[0] else 0.0
    return blur3(left, src[z, c], right, w)


def blur3_axis1_at(src: Any, z: int, c: int, w: float) -> float:
    """:func:`blur3` along axis 1 of 2-D ``src`` at (z, c), zero outside."""
    left = src[z, c - 1] if c > 0 else 0.0
    right = src[z, c + 1] if c + 1 < src.shape[1] else 0.0
    return blur3(left, src[z, c], right, w)


def blur3_1d_at(src: Any, i: int, n: int, w: float) -> float:
    """:func:`blur3` at element i of the first ``n`` elements of 1-D ``src``, zero outside."""
    left = src[i - 1] if i > 0 else np.float32(0.0)  # float32 zeros: the sum stays in the data's precision
    right = src[i + 1] if i + 1 < n else np.float32(0.0)
    return blur3(left, src[i], right, w)


FUNCTIONS: tuple[str, ...] = (
    "rotated_to_image", "image_to_rotated", "bilinear_taps", "tap_sum", "tap_scatter", "tap_sum_t", "bilinear_weight",
    "attenuation_step", "exp_squarings", "exp_small", "attenuation_split", "blur_passes", "blur_weight", "blur3", "blur3_axis0_at", "blur3_axis1_at",
    "blur3_1d_at",
)


def compile_math(jit: Callable[[Callable], Any]) -> dict[str, Any]:
    """Every function of :data:`FUNCTIONS` compiled with ``jit`` (e.g. ``numba.njit(inline="always")`` or
    ``numba.cuda.jit(device=True, inline="always")``), calling each other's compiled versions
    (:func:`kernels.jit_math.compile_functions`)."""
    return compile_functions(globals(), FUNCTIONS, jit)
