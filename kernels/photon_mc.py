"""Monte Carlo of annihilation photon pairs in a water cylinder with a hot rod, detected on a ring cylinder.

An independent truth for scatter estimates (plain numbers in, detector ids out; no ``recon``
imports). Geometry in the scanner frame (mm): a water cylinder of radius ``cyl_r`` and half-length
``cyl_h`` on the z axis; activity uniform in it plus an extra uniform activity in a rod
(radius ``rod_r`` at ``(rod_x, rod_y)``, full length). A pair is emitted from the rod with
probability ``p_rod`` (else uniformly in the cylinder), back to back, isotropic.

Transport: free paths from the total attenuation ``mu(E)`` of water (``mu_table`` per keV);
every interaction is a Compton scatter (coherent and photoelectric, < 2 % of water's attenuation
above 150 keV, are folded into it), its angle sampled from Klein-Nishina by rejection on
``cos t`` (the density in ``cos t`` is at most its value 2 at ``cos t = 1``), no Doppler
broadening. Photons below ``e_cut`` are dropped. A photon leaving the cylinder flies in
vacuum to the detector cylinder of radius ``det_r``: it is detected if it lands within the
rings' axial extent, on crystal ``round(phi / (2 pi / cpr))`` and ring ``round((z - z0) / pitch)``,
and if its energy blurred by a Gaussian of FWHM ``f 511 sqrt(E/511)`` lies in the window.
No crystal penetration, dead time or randoms.

Each coincidence also records its TOF position ``(path_a - path_b) / 2`` (mm from the LOR midpoint
towards detector b), from the photons' actual path lengths. Classes of a detected coincidence: 0 true (no scatter), 1 single scatter (one Compton in the pair),
2 multiple scatter (two or more).
"""
from __future__ import annotations

import math

import numba
import numpy as np

_TWO_PI = 2.0 * math.pi
_ME = 510.99895


@numba.njit(cache=True, inline="always")
def _mu(mu_table, e):
    i = int(e)
    if i >= mu_table.shape[0] - 1:
        return mu_table[mu_table.shape[0] - 1]
    f = e - i
    return mu_table[i] * (1.0 - f) + mu_table[i + 1] * f


@numba.njit(cache=True, inline="always")
def _exit_distance(x, y, z, ux, uy, uz, r, h):
    a = ux * ux + uy * uy
    t = 1e30
    if a > 1e-14:
        b = x * ux + y * uy
        c = x * x + y * y - r * r
        disc = b * b - a * c
        if disc < 0.0:
            disc = 0.0
        t = (-b + math.sqrt(disc)) / a
    if uz > 1e-14:
        t = min(t, (h - z) / uz)
    elif uz < -1e-14:
        t = min(t, (-h - z) / uz)
    return max(t, 0.0)


@numba.njit(cache=True)
def _track(rng, x, y, z, ux, uy, uz, mu_table, cyl_r, cyl_h, det_r, z_lo, z_hi, z0, pitch, cpr,
           n_rings, e_lo, e_hi, fwhm_frac, e_cut):
    """Follow one 511 keV photon; returns (detector id or -1, number of Compton scatters, path length mm)."""
    e = _ME
    n_sc = 0
    path = 0.0
    while True:
        t_exit = _exit_distance(x, y, z, ux, uy, uz, cyl_r, cyl_h)
        s = -math.log(1.0 - rng.random()) / _mu(mu_table, e)
        if s >= t_exit:
            x += t_exit * ux
            y += t_exit * uy
            z += t_exit * uz
            path += t_exit
            break
        path += s
        x += s * ux
        y += s * uy
        z += s * uz
        k = e / _ME
        while True:  # Klein-Nishina by rejection on cos(theta)
            c = 2.0 * rng.random() - 1.0
            p = 1.0 / (1.0 + k * (1.0 - c))
            if 2.0 * rng.random() <= p * p * (p + 1.0 / p - (1.0 - c * c)):
                break
        e = e * p
        n_sc += 1
        if e < e_cut:
            return -1, n_sc, path
        sn = math.sqrt(max(0.0, 1.0 - c * c))
        phi = _TWO_PI * rng.random()
        cp, sp = math.cos(phi), math.sin(phi)
        if abs(uz) > 0.99999:
            ux, uy, uz = sn * cp, sn * sp, c * (1.0 if uz > 0 else -1.0)
        else:
            q = math.sqrt(1.0 - uz * uz)
            nx = sn * (ux * uz * cp - uy * sp) / q + ux * c
            ny = sn * (uy * uz * cp + ux * sp) / q + uy * c
            nz = -sn * cp * q + uz * c
            ux, uy, uz = nx, ny, nz
    # fly to the detector cylinder
    a = ux * ux + uy * uy
    if a < 1e-14:
        return -1, n_sc, path
    b = x * ux + y * uy
    cc = x * x + y * y - det_r * det_r
    t = (-b + math.sqrt(max(b * b - a * cc, 0.0))) / a
    zd = z + t * uz
    path += t * math.sqrt(a + uz * uz)
    if zd < z_lo or zd >= z_hi:
        return -1, n_sc, path
    sigma = fwhm_frac * _ME * math.sqrt(e / _ME) / 2.3548200450309493
    em = e + sigma * rng.standard_normal()
    if em < e_lo or em > e_hi:
        return -1, n_sc, path
    ang = math.atan2(y + t * uy, x + t * ux)
    if ang < 0.0:
        ang += _TWO_PI
    crystal = int(math.floor(ang / (_TWO_PI / cpr) + 0.5)) % cpr
    ring = int(math.floor((zd - z0) / pitch + 0.5))
    ring = min(max(ring, 0), n_rings - 1)
    return ring * cpr + crystal, n_sc, path


@numba.njit(cache=True, nogil=True)
def simulate_pairs(rng, n_pairs, cyl_r, cyl_h, rod_x, rod_y, rod_r, p_rod, mu_table, det_r, z0, pitch,
                   n_rings, cpr, e_lo, e_hi, fwhm_frac, e_cut, out_a, out_b, out_class, out_offset):
    """Simulate ``n_pairs`` pairs; fills the first ``n`` entries of the outputs, returns ``n``.
    ``out_offset``: the true TOF position (mm) from the LOR midpoint towards detector b,
    ``(path_a - path_b) / 2`` (no timing blur)."""
    z_lo = z0 - 0.5 * pitch
    z_hi = z0 + (n_rings - 0.5) * pitch
    n = 0
    for _ in range(n_pairs):
        if rng.random() < p_rod:
            rr, cx, cy = rod_r, rod_x, rod_y
        else:
            rr, cx, cy = cyl_r, 0.0, 0.0
        while True:
            px = (2.0 * rng.random() - 1.0) * rr
            py = (2.0 * rng.random() - 1.0) * rr
            if px * px + py * py <= rr * rr:
                break
        x, y = px + cx, py + cy
        z = (2.0 * rng.random() - 1.0) * cyl_h
        uz = 2.0 * rng.random() - 1.0
        phi = _TWO_PI * rng.random()
        st = math.sqrt(1.0 - uz * uz)
        ux, uy = st * math.cos(phi), st * math.sin(phi)
        da, na, pa = _track(rng, x, y, z, ux, uy, uz, mu_table, cyl_r, cyl_h, det_r, z_lo, z_hi, z0, pitch, cpr,
                        n_rings, e_lo, e_hi, fwhm_frac, e_cut)
        if da < 0:
            continue
        db, nb, pb = _track(rng, x, y, z, -ux, -uy, -uz, mu_table, cyl_r, cyl_h, det_r, z_lo, z_hi, z0, pitch, cpr,
                        n_rings, e_lo, e_hi, fwhm_frac, e_cut)
        if db < 0:
            continue
        out_a[n] = da
        out_b[n] = db
        total = na + nb
        out_class[n] = 0 if total == 0 else (1 if total == 1 else 2)
        out_offset[n] = 0.5 * (pa - pb)
        n += 1
    return n


def empty_outputs(n_pairs: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Output buffers for :func:`simulate_pairs` (detector ids a, b as int64; class as int8; offset mm)."""
    return np.empty(n_pairs, np.int64), np.empty(n_pairs, np.int64), np.empty(n_pairs, np.int8), np.empty(n_pairs)
