"""Per-element math of the ray-driven (Joseph) PET projector, written once for both targets.

Plain Python functions on scalars and arrays; :func:`compile_math` compiles them with
``numba.njit`` (:mod:`kernels.pet_cpu`) or ``numba.cuda.jit(device=True)`` (:mod:`kernels.pet_cuda`).
The only target-specific piece is :func:`accumulate` (``+=`` on the CPU, an atomic add on the GPU),
replaced through ``overrides``.

Joseph's method. A line of response (LOR) from ``a`` to ``b`` (LPS x, y, z, mm) is converted to
voxel-index coordinates ``(p - origin) / voxel_size``. Its principal axis is the index axis along
which it advances most; the LOR is sampled once per image plane perpendicular to that axis, at the
points where it crosses the plane centres, by bilinear interpolation in the plane (zero outside the
image). Each sample weighs ``step_mm = voxel_p * |b - a| / |b_p - a_p|`` (the path length between two
planes). Only planes between ``a`` and ``b`` are sampled. A LOR with coincident ends projects to 0.
The back projector scatters with the same taps and weights: the exact transpose.

TOF. A sample at signed distance ``s`` (mm) from the LOR midpoint towards ``b`` contributes to TOF
bin ``t`` of ``n`` (centre ``c_t = (t - (n - 1) / 2) * w``) with the weight of a Gaussian of standard
deviation ``sigma`` centred at ``s``, truncated at ``n_sigmas * sigma`` and renormalised to unit area,
integrated exactly over the bin ``[c_t - w/2, c_t + w/2]`` (erf differences). Hence the TOF weights of
a sample sum to exactly 1 whenever ``[s - n_sigmas sigma, s + n_sigmas sigma]`` lies within the TOF
range ``[-n w / 2, n w / 2]``: the sum over bins equals the non-TOF projection for activity within
``|s| <= n w / 2 - n_sigmas sigma`` of the LOR midpoint (less is lost beyond).

Cost of TOF. The loops go over samples (planes) outside and over the sample's bins inside (the
bin-outer order, each bin over the planes within its reach, needs a bilinear sample and two erfs per
(bin, sample) pair and measured 2x slower on the CPU). Bins t and t + 1 share the edge between them,
so a sample costs one erf per bin edge strictly inside ``(s - n_sigmas sigma, s + n_sigmas sigma)``
(about ``2 n_sigmas sigma / w``; the two outer edges are clipped to +-erf(n_sigmas / sqrt 2) without
an erf), and the truncation normalisation is a per-launch constant (:func:`tof_consts`).

Array conventions: images are passed flat (``nz * ny * nx``, index ``(z * ny + y) * nx + x``);
``dims = (nx, ny, nz)`` int64; ``geom = (ox, oy, oz, dx, dy, dz)`` float64 (mm); ``tofp =
(n_bins, bin_width_mm, sigma_mm, n_sigmas)`` float64. Geometry is computed in float64.

Numba's on-disk cache of :mod:`kernels.pet_cpu` checks only that file's time stamp: after editing
this module, delete ``kernels/__pycache__/pet_cpu.*.nb[ic]`` (touching ``pet_cpu.py`` once left a stale
``forward_sino`` in use here, so deleting is the safe habit before tests and benchmarks).
"""
from __future__ import annotations

import math
from typing import Any, Callable

from kernels.jit_math import compile_functions

SQRT2 = math.sqrt(2.0)

# TOF modes of the launchers
TOF_NONE = 0  # non-TOF: one value per LOR
TOF_ALL = 1  # sinogram TOF: all bins per LOR
TOF_ONE = 2  # list-mode TOF: the event's own bin


def accumulate(arr: Any, idx: int, val: float) -> None:
    """arr[idx] += val (the CUDA build replaces it with an atomic add)."""
    arr[idx] += val


def _axis_interval(c0: float, dc: float, n: int, k_lo: float, k_hi: float) -> tuple[float, float]:
    """Narrow [k_lo, k_hi] to the k with -1 < c0 + k dc < n (the bilinear taps touch the image)."""
    if dc == 0.0:
        if c0 <= -1.0 or c0 >= n:
            return 1.0, 0.0
        return k_lo, k_hi
    e1 = (-1.0 - c0) / dc
    e2 = (n - c0) / dc
    lo = min(e1, e2)
    hi = max(e1, e2)
    return max(k_lo, lo), min(k_hi, hi)


def lor_setup(ax: float, ay: float, az: float, bx: float, by: float, bz: float, geom: Any, dims: Any) -> tuple:
    """Plane walk of the LOR a -> b (mm) through the image.

    Returns ``(k_lo, k_hi, sp, nq, sq, u0, du, nr, sr, v0, dv, s0, ds, step_mm)``: planes
    ``k_lo..k_hi`` (empty when k_lo > k_hi) of the principal axis (flat stride ``sp``); in plane k the
    other two index coordinates are ``u0 + k du`` (size nq, stride sq) and ``v0 + k dv`` (nr, sr); the
    signed distance from the LOR midpoint towards b is ``s0 + k ds`` (mm); each sample weighs step_mm.
    """
    nx = dims[0]
    ny = dims[1]
    nz = dims[2]
    pax = (ax - geom[0]) / geom[3]
    pay = (ay - geom[1]) / geom[4]
    paz = (az - geom[2]) / geom[5]
    qx = (bx - ax) / geom[3]
    qy = (by - ay) / geom[4]
    qz = (bz - az) / geom[5]
    length = math.sqrt((bx - ax) ** 2 + (by - ay) ** 2 + (bz - az) ** 2)
    fx = abs(qx)
    fy = abs(qy)
    fz = abs(qz)
    if length == 0.0:
        return 1, 0, 0, 1, 0, 0.0, 0.0, 1, 0, 0.0, 0.0, 0.0, 0.0, 0.0
    if fx >= fy and fx >= fz:
        np_, sp, a_p, d_p = nx, 1, pax, qx
        nq, sq, a_q, d_q = ny, nx, pay, qy
        nr, sr, a_r, d_r = nz, nx * ny, paz, qz
    elif fy >= fz:
        np_, sp, a_p, d_p = ny, nx, pay, qy
        nq, sq, a_q, d_q = nx, 1, pax, qx
        nr, sr, a_r, d_r = nz, nx * ny, paz, qz
    else:
        np_, sp, a_p, d_p = nz, nx * ny, paz, qz
        nq, sq, a_q, d_q = nx, 1, pax, qx
        nr, sr, a_r, d_r = ny, nx, pay, qy
    du = d_q / d_p
    dv = d_r / d_p
    u0 = a_q - a_p * du
    v0 = a_r - a_p * dv
    dt = 1.0 / d_p  # t(k) = (k - a_p) / d_p, t = 0 at a, 1 at b
    ds = dt * length
    s0 = (-a_p * dt - 0.5) * length
    lo = max(0.0, min(a_p, a_p + d_p))
    hi = min(np_ - 1.0, max(a_p, a_p + d_p))
    lo, hi = _axis_interval(u0, du, nq, lo, hi)
    lo, hi = _axis_interval(v0, dv, nr, lo, hi)
    step_mm = length / abs(d_p)
    return (int(math.ceil(lo)), int(math.floor(hi)), sp, nq, sq, u0, du, nr, sr, v0, dv, s0, ds, step_mm)


def plane_taps(k: int, sp: int, nq: int, sq: int, u: float, nr: int, sr: int, v: float) -> tuple:
    """Bilinear taps of plane k at in-plane index coordinates (u, v): (o00, o01, o10, o11, w00, w01, w10, w11).

    Offsets are flat, clamped into the image; weights are zero for taps outside it (zero padding).
    """
    uf = math.floor(u)
    vf = math.floor(v)
    u0 = int(uf)
    v0 = int(vf)
    fu = u - uf
    fv = v - vf
    if 0 <= u0 and u0 + 1 < nq and 0 <= v0 and v0 + 1 < nr:  # all four taps inside: no clamping (most samples)
        o = k * sp + u0 * sq + v0 * sr
        return (o, o + sq, o + sr, o + sq + sr,
                (1.0 - fu) * (1.0 - fv), fu * (1.0 - fv), (1.0 - fu) * fv, fu * fv)
    wu0 = 1.0 - fu if 0 <= u0 < nq else 0.0
    wu1 = fu if 0 <= u0 + 1 < nq else 0.0
    wv0 = 1.0 - fv if 0 <= v0 < nr else 0.0
    wv1 = fv if 0 <= v0 + 1 < nr else 0.0
    base = k * sp
    ou0 = min(max(u0, 0), nq - 1) * sq
    ou1 = min(max(u0 + 1, 0), nq - 1) * sq
    ov0 = min(max(v0, 0), nr - 1) * sr
    ov1 = min(max(v0 + 1, 0), nr - 1) * sr
    return (base + ou0 + ov0, base + ou1 + ov0, base + ou0 + ov1, base + ou1 + ov1,
            wu0 * wv0, wu1 * wv0, wu0 * wv1, wu1 * wv1)


def sample_plane(img: Any, k: int, sp: int, nq: int, sq: int, u: float, nr: int, sr: int, v: float) -> float:
    """Bilinear sample of the flat image in plane k at (u, v)."""
    o00, o01, o10, o11, w00, w01, w10, w11 = plane_taps(k, sp, nq, sq, u, nr, sr, v)
    return w00 * img[o00] + w01 * img[o01] + w10 * img[o10] + w11 * img[o11]


def scatter_plane(img: Any, k: int, sp: int, nq: int, sq: int, u: float, nr: int, sr: int, v: float,
                  val: float) -> None:
    """Transpose of :func:`sample_plane`: add ``val`` into the flat image through the same taps."""
    o00, o01, o10, o11, w00, w01, w10, w11 = plane_taps(k, sp, nq, sq, u, nr, sr, v)
    if w00 != 0.0:
        accumulate(img, o00, w00 * val)
    if w01 != 0.0:
        accumulate(img, o01, w01 * val)
    if w10 != 0.0:
        accumulate(img, o10, w10 * val)
    if w11 != 0.0:
        accumulate(img, o11, w11 * val)


def tof_cdf(x: float, sigma: float, n_sigmas: float) -> float:
    """erf of x (mm) clipped to +-n_sigmas sigma, scaled by 1/sigma/sqrt 2 (twice the truncated Gaussian CDF - 1)."""
    lim = n_sigmas * sigma
    xc = min(max(x, -lim), lim)
    return math.erf(xc / (SQRT2 * sigma))


def tof_weight(s: float, t: int, tofp: Any) -> float:
    """Weight of TOF bin t for a sample at s (mm from the LOR midpoint towards b): truncated, normalised Gaussian.

    The reference formula (two erfs and the normalisation per call); the projector loops use
    :func:`tof_consts` and :func:`tof_edge_cdf` instead, one erf per bin edge with the constants hoisted.
    """
    n = tofp[0]
    w = tofp[1]
    sigma = tofp[2]
    nsig = tofp[3]
    c = (t - 0.5 * (n - 1.0)) * w
    lo = c - 0.5 * w - s
    hi = c + 0.5 * w - s
    if hi <= -nsig * sigma or lo >= nsig * sigma:
        return 0.0
    return 0.5 * (tof_cdf(hi, sigma, nsig) - tof_cdf(lo, sigma, nsig)) / math.erf(nsig / SQRT2)


def tof_consts(tofp: Any) -> tuple:
    """Per-launch TOF constants: ``(n, w, e0, lim, inv, erf_lim, half_norm)``.

    Bin t spans the edges ``e0 + t w`` and ``e0 + (t + 1) w`` (``e0 = -n w / 2``); ``lim = n_sigmas sigma``
    (the truncation), ``inv = 1 / (sqrt 2 sigma)``, ``erf_lim = erf(n_sigmas / sqrt 2)`` and
    ``half_norm = 0.5 / erf_lim`` (the renormalisation of the truncated Gaussian). The weight of bin t
    for a sample at s is ``half_norm * (tof_edge_cdf(e0 + (t+1) w - s) - tof_edge_cdf(e0 + t w - s))``,
    :func:`tof_weight` up to float rounding; adjacent bins share an edge, so a sample costs one erf per
    bin edge strictly inside its support (the two outer edges are clipped: no erf).
    """
    n = tofp[0]
    w = tofp[1]
    sigma = tofp[2]
    nsig = tofp[3]
    erf_lim = math.erf(nsig / SQRT2)
    return n, w, -0.5 * n * w, nsig * sigma, 1.0 / (SQRT2 * sigma), erf_lim, 0.5 / erf_lim


def tof_edge_cdf(x: float, lim: float, inv: float, erf_lim: float) -> float:
    """erf(x inv) for |x| < lim, +-erf_lim beyond (x: a bin edge minus the sample position, mm)."""
    if x <= -lim:
        return -erf_lim
    if x >= lim:
        return erf_lim
    return math.erf(x * inv)


def tof_bin_range(s: float, tofp: Any) -> tuple[int, int]:
    """First and last TOF bin overlapping [s - n_sigmas sigma, s + n_sigmas sigma] (first > last: none)."""
    n = tofp[0]
    w = tofp[1]
    half = tofp[3] * tofp[2]
    t_lo = int(math.floor((s - half) / w + 0.5 * n))
    t_hi = int(math.floor((s + half) / w + 0.5 * n))
    return max(t_lo, 0), min(t_hi, int(n) - 1)


def tof_plane_range(s0: float, ds: float, t: int, tofp: Any, k_lo: int, k_hi: int) -> tuple[int, int]:
    """Narrow planes k_lo..k_hi to those whose sample (s = s0 + k ds) can reach TOF bin t."""
    c = (t - 0.5 * (tofp[0] - 1.0)) * tofp[1]
    reach = 0.5 * tofp[1] + tofp[3] * tofp[2]
    if ds == 0.0:
        return k_lo, k_hi
    e1 = (c - reach - s0) / ds
    e2 = (c + reach - s0) / ds
    return max(k_lo, int(math.floor(min(e1, e2)))), min(k_hi, int(math.ceil(max(e1, e2))))


def lor_forward(img: Any, geom: Any, dims: Any, ax: float, ay: float, az: float, bx: float, by: float,
                bz: float, tof_mode: int, tofp: Any, tbin: int, out: Any, i: int, scale: float) -> None:
    """out[i, :] = scale x the projection of the LOR a -> b (non-TOF: out[i, 0]; TOF_ALL: every bin;
    TOF_ONE: out[i, 0] for bin ``tbin``)."""
    (k_lo, k_hi, sp, nq, sq, u0, du, nr, sr, v0, dv, s0, ds, step) = lor_setup(ax, ay, az, bx, by, bz, geom, dims)
    f = scale * step
    if tof_mode == TOF_ALL:
        for t in range(out.shape[1]):
            out[i, t] = 0.0
        if f == 0.0:
            return
        n, w, e0, lim, inv, erf_lim, half_norm = tof_consts(tofp)
        for k in range(k_lo, k_hi + 1):
            val = sample_plane(img, k, sp, nq, sq, u0 + k * du, nr, sr, v0 + k * dv)
            if val != 0.0:
                s = s0 + k * ds
                t_lo, t_hi = tof_bin_range(s, tofp)
                fv = f * half_norm * val
                c_lo = tof_edge_cdf(e0 + t_lo * w - s, lim, inv, erf_lim)
                for t in range(t_lo, t_hi + 1):
                    c_hi = tof_edge_cdf(e0 + (t + 1) * w - s, lim, inv, erf_lim)
                    out[i, t] += fv * (c_hi - c_lo)
                    c_lo = c_hi
        return
    acc = 0.0
    if tof_mode == TOF_ONE:
        k_lo, k_hi = tof_plane_range(s0, ds, tbin, tofp, k_lo, k_hi)
    if f != 0.0:
        if tof_mode == TOF_ONE:
            n, w, e0, lim, inv, erf_lim, half_norm = tof_consts(tofp)
            edge_lo = e0 + tbin * w
            edge_hi = e0 + (tbin + 1) * w
            for k in range(k_lo, k_hi + 1):
                val = sample_plane(img, k, sp, nq, sq, u0 + k * du, nr, sr, v0 + k * dv)
                if val != 0.0:
                    s = s0 + k * ds
                    acc += val * (tof_edge_cdf(edge_hi - s, lim, inv, erf_lim)
                                  - tof_edge_cdf(edge_lo - s, lim, inv, erf_lim))
            acc *= half_norm
        else:
            for k in range(k_lo, k_hi + 1):
                acc += sample_plane(img, k, sp, nq, sq, u0 + k * du, nr, sr, v0 + k * dv)
    out[i, 0] = f * acc


def lor_back(img: Any, geom: Any, dims: Any, ax: float, ay: float, az: float, bx: float, by: float,
             bz: float, tof_mode: int, tofp: Any, tbin: int, y: Any, i: int, scale: float) -> None:
    """Transpose of :func:`lor_forward`: add scale x the back projection of y[i, :] into the flat image."""
    (k_lo, k_hi, sp, nq, sq, u0, du, nr, sr, v0, dv, s0, ds, step) = lor_setup(ax, ay, az, bx, by, bz, geom, dims)
    f = scale * step
    if f == 0.0:
        return
    if tof_mode == TOF_NONE:
        fy = f * y[i, 0]
        if fy == 0.0:
            return
        for k in range(k_lo, k_hi + 1):
            scatter_plane(img, k, sp, nq, sq, u0 + k * du, nr, sr, v0 + k * dv, fy)
        return
    n, w, e0, lim, inv, erf_lim, half_norm = tof_consts(tofp)
    if tof_mode == TOF_ONE:
        fy = f * half_norm * y[i, 0]
        if fy == 0.0:
            return
        k_lo, k_hi = tof_plane_range(s0, ds, tbin, tofp, k_lo, k_hi)
        edge_lo = e0 + tbin * w
        edge_hi = e0 + (tbin + 1) * w
        for k in range(k_lo, k_hi + 1):
            s = s0 + k * ds
            val = tof_edge_cdf(edge_hi - s, lim, inv, erf_lim) - tof_edge_cdf(edge_lo - s, lim, inv, erf_lim)
            if val != 0.0:
                scatter_plane(img, k, sp, nq, sq, u0 + k * du, nr, sr, v0 + k * dv, fy * val)
        return
    fh = f * half_norm
    for k in range(k_lo, k_hi + 1):
        s = s0 + k * ds
        t_lo, t_hi = tof_bin_range(s, tofp)
        val = 0.0
        c_lo = tof_edge_cdf(e0 + t_lo * w - s, lim, inv, erf_lim)
        for t in range(t_lo, t_hi + 1):
            c_hi = tof_edge_cdf(e0 + (t + 1) * w - s, lim, inv, erf_lim)
            val += (c_hi - c_lo) * y[i, t]
            c_lo = c_hi
        if val != 0.0:
            scatter_plane(img, k, sp, nq, sq, u0 + k * du, nr, sr, v0 + k * dv, fh * val)


def sinogram_lor(e: int, views: Any, xy_a: Any, xy_b: Any, z_a: Any, z_b: Any, place: Any) -> tuple:
    """LOR e of a flat (selected view, plane, radial) index: (v, p, r, ax, ay, az, bx, by, bz) in patient mm.

    ``place = (sign_x, sign_y, sign_z, off_x, off_y, off_z)``: patient = sign * scanner + offset.
    """
    n_planes = z_a.shape[0]
    n_radial = xy_a.shape[1]
    i = e // (n_planes * n_radial)
    rem = e - i * n_planes * n_radial
    p = rem // n_radial
    r = rem - p * n_radial
    v = views[i]
    ax = place[0] * xy_a[v, r, 0] + place[3]
    ay = place[1] * xy_a[v, r, 1] + place[4]
    az = place[2] * z_a[p] + place[5]
    bx = place[0] * xy_b[v, r, 0] + place[3]
    by = place[1] * xy_b[v, r, 1] + place[4]
    bz = place[2] * z_b[p] + place[5]
    return v, p, r, ax, ay, az, bx, by, bz


FUNCTIONS: tuple[str, ...] = (
    "accumulate", "_axis_interval", "lor_setup", "plane_taps", "sample_plane", "scatter_plane", "tof_cdf",
    "tof_weight", "tof_consts", "tof_edge_cdf", "tof_bin_range", "tof_plane_range", "lor_forward", "lor_back",
    "sinogram_lor",
)


def compile_math(jit: Callable[[Callable], Any], overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every function of :data:`FUNCTIONS` compiled with ``jit``, calling each other's compiled versions
    (:func:`kernels.jit_math.compile_functions`); ``overrides`` maps names to already compiled
    replacements (the CUDA build's atomic :func:`accumulate`)."""
    return compile_functions(globals(), FUNCTIONS, jit, overrides)
