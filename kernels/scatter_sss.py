"""Single scatter simulation (Watson) hot loops: ray integrals from scatter points to detectors,
the scatter of every sampled detector pair, and interpolation onto sinogram bins.

Pure functions of arrays and plain numbers (no ``recon`` imports); the per-element physics is in
:mod:`kernels.compton_math`. Geometry in the scanner frame (mm). Volumes are sampled trilinearly
(zero outside) at index coordinates ``i = a * p + b`` per axis (``a``, ``b`` from the image grid and
the scanner placement; ``axis_coef`` rows are x, y, z and map to array axes 2, 1, 0).

Scatter of the detector pair (A, B) (Watson 1996; 2000)::

    S_AB = sum_S (mu_S dV_S) f_KN(cos t) (sigma_A cos_A / R_A^2) (sigma_B cos_B / R_B^2) / (2 pi)
           * [ e(511) e(E') exp(-M_A - k(E') M_B) L_A  +  e(E') e(511) exp(-M_B - k(E') M_A) L_B ]

``M_X``, ``L_X``: integrals of mu (511 keV) and of the emission density from S to detector X;
``t`` the angle between S - A and B - S (the same for both terms), ``E' = 511 / (2 - cos t)``;
``f_KN`` the Klein-Nishina density (1/sr); ``sigma`` the detector area, ``cos_X`` the obliquity
of the ray on the detector cylinder; ``e`` the energy-window acceptance; ``k(E) = mu_w(E)/mu_w(511)``
(water-like scaling of the attenuation of the scattered photon). The 1/(2 pi) counts pairs whose
line crosses the detector area and the scatter element: 2 (either photon) x 1/(4 pi).
"""
from __future__ import annotations

import math

import numba
import numpy as np

from kernels.compton_math import klein_nishina_density, klein_nishina_total, scattered_energy_kev, window_efficiency

_kn = numba.njit(cache=True, inline="always")(klein_nishina_density)
_kn_total = numba.njit(cache=True)(klein_nishina_total)
_e_scat = numba.njit(cache=True, inline="always")(scattered_energy_kev)
_eff = numba.njit(cache=True)(window_efficiency)


@numba.njit(cache=True, inline="always")
def _trilinear(vol, fz, fy, fx):
    nz, ny, nx = vol.shape
    iz = int(math.floor(fz))
    iy = int(math.floor(fy))
    ix = int(math.floor(fx))
    wz = fz - iz
    wy = fy - iy
    wx = fx - ix
    acc = 0.0
    for dz in range(2):
        z = iz + dz
        if z < 0 or z >= nz:
            continue
        cz = wz if dz else 1.0 - wz
        for dy in range(2):
            y = iy + dy
            if y < 0 or y >= ny:
                continue
            cy = wy if dy else 1.0 - wy
            for dx in range(2):
                x = ix + dx
                if x < 0 or x >= nx:
                    continue
                acc += cz * cy * (wx if dx else 1.0 - wx) * vol[z, y, x]
    return acc


@numba.njit(cache=True)
def ray_integrals(vol1, vol2, axis_coef, p0, p1, step_mm):
    """(integral of vol1, integral of vol2) along the segment p0 -> p1 (scanner mm), midpoint rule
    with steps of at most ``step_mm``, clipped to the volume's bounding box."""
    shape = (vol1.shape[2], vol1.shape[1], vol1.shape[0])  # x, y, z sizes
    t0, t1 = 0.0, 1.0
    for ax in range(3):
        a, b = axis_coef[ax, 0], axis_coef[ax, 1]
        i0 = a * p0[ax] + b
        di = a * (p1[ax] - p0[ax])
        lo, hi = -1.0, shape[ax]  # trilinear support reaches one voxel beyond the centres
        if abs(di) < 1e-12:
            if i0 <= lo or i0 >= hi:
                return 0.0, 0.0
            continue
        ta = (lo - i0) / di
        tb = (hi - i0) / di
        if ta > tb:
            ta, tb = tb, ta
        t0 = max(t0, ta)
        t1 = min(t1, tb)
    if t1 <= t0:
        return 0.0, 0.0
    length = math.sqrt((p1[0] - p0[0]) ** 2 + (p1[1] - p0[1]) ** 2 + (p1[2] - p0[2]) ** 2) * (t1 - t0)
    n = max(1, int(math.ceil(length / step_mm)))
    ds = length / n
    s1 = 0.0
    s2 = 0.0
    for k in range(n):
        t = t0 + (t1 - t0) * (k + 0.5) / n
        fx = axis_coef[0, 0] * (p0[0] + t * (p1[0] - p0[0])) + axis_coef[0, 1]
        fy = axis_coef[1, 0] * (p0[1] + t * (p1[1] - p0[1])) + axis_coef[1, 1]
        fz = axis_coef[2, 0] * (p0[2] + t * (p1[2] - p0[2])) + axis_coef[2, 1]
        s1 += _trilinear(vol1, fz, fy, fx)
        s2 += _trilinear(vol2, fz, fy, fx)
    return s1 * ds, s2 * ds


@numba.njit(cache=True, parallel=True)
def point_detector_integrals(mu, act, axis_coef, points, detectors, step_mm):
    """(n_points, n_det) integrals of mu and of activity from each scatter point to each detector."""
    n_s = points.shape[0]
    n_d = detectors.shape[0]
    m = np.zeros((n_s, n_d))
    lam = np.zeros((n_s, n_d))
    for s in numba.prange(n_s):
        for d in range(n_d):
            m[s, d], lam[s, d] = ray_integrals(mu, act, axis_coef, points[s], detectors[d], step_mm)
    return m, lam


@numba.njit(cache=True, parallel=True)
def sss_detector_pairs(points, weights, detectors, normals, m_int, l_int, area_mm2, k_table,
                       e_lo, e_hi, fwhm_frac):
    """(n_det, n_det) single scatter of every detector pair (module formula), symmetric."""
    n_d = detectors.shape[0]
    n_s = points.shape[0]
    sigma_kn = _kn_total(511.0)
    eff511 = _eff(511.0, e_lo, e_hi, fwhm_frac)
    out = np.zeros((n_d, n_d))
    for a in numba.prange(n_d):
        for b in range(a, n_d):
            acc = 0.0
            for s in range(n_s):
                ux = points[s, 0] - detectors[a, 0]
                uy = points[s, 1] - detectors[a, 1]
                uz = points[s, 2] - detectors[a, 2]
                wx = detectors[b, 0] - points[s, 0]
                wy = detectors[b, 1] - points[s, 1]
                wz = detectors[b, 2] - points[s, 2]
                ra2 = ux * ux + uy * uy + uz * uz
                rb2 = wx * wx + wy * wy + wz * wz
                ra = math.sqrt(ra2)
                rb = math.sqrt(rb2)
                cos_t = (ux * wx + uy * wy + uz * wz) / (ra * rb)
                e1 = _e_scat(511.0, cos_t)
                eff1 = _eff(e1, e_lo, e_hi, fwhm_frac)
                if eff1 <= 0.0:
                    continue
                cos_a = abs(ux * normals[a, 0] + uy * normals[a, 1]) / ra
                cos_b = abs(wx * normals[b, 0] + wy * normals[b, 1]) / rb
                ki = int(e1)
                fk = e1 - ki
                k = k_table[ki] * (1.0 - fk) + k_table[min(ki + 1, k_table.shape[0] - 1)] * fk
                geo = (area_mm2 * cos_a / ra2) * (area_mm2 * cos_b / rb2) / (2.0 * math.pi)
                ta = math.exp(-m_int[s, a] - k * m_int[s, b]) * l_int[s, a]
                tb = math.exp(-m_int[s, b] - k * m_int[s, a]) * l_int[s, b]
                acc += weights[s] * _kn(511.0, cos_t, sigma_kn) * geo * eff511 * eff1 * (ta + tb)
            out[a, b] = acc
            out[b, a] = acc
    return out


@numba.njit(cache=True, inline="always")
def _periodic_taps(f, n):
    i0 = int(math.floor(f))
    w = f - i0
    return i0 % n, (i0 + 1) % n, w


@numba.njit(cache=True, inline="always")
def _clamped_taps(f, n):
    if f <= 0.0:
        return 0, 0, 0.0
    if f >= n - 1:
        return n - 1, n - 1, 0.0
    i0 = int(math.floor(f))
    return i0, i0 + 1, f - i0


@numba.njit(cache=True, parallel=True)
def interpolate_to_bins(pair_scatter, n_cs, n_rs, first, second, ring_a, ring_b, plane, n_planes, cpr, n_rings,
                        log_values, out):
    """out[v, p, r] += 4-linear interpolation of ``pair_scatter`` (detector = ring_sample * n_cs +
    crystal_sample; crystal samples evenly spaced in angle, periodic; ring samples evenly from the
    first to the last ring) at every ring pair of the plane. With ``log_values`` the table holds
    logarithms and the interpolated value is exponentiated (geometric interpolation: no overshoot
    where the scatter falls steeply towards the edge of the field of view)."""
    n_views, n_radial = first.shape
    cs = n_cs / cpr
    rs = (n_rs - 1) / max(n_rings - 1, 1)
    for v in numba.prange(n_views):
        for q in range(ring_a.shape[0]):
            p = plane[q]
            ma0, ma1, wma = _clamped_taps(ring_a[q] * rs, n_rs)
            mb0, mb1, wmb = _clamped_taps(ring_b[q] * rs, n_rs)
            for r in range(n_radial):
                ka0, ka1, wka = _periodic_taps(first[v, r] * cs, n_cs)
                kb0, kb1, wkb = _periodic_taps(second[v, r] * cs, n_cs)
                acc = 0.0
                for ima in range(2):
                    ma = ma1 if ima else ma0
                    cma = wma if ima else 1.0 - wma
                    for ika in range(2):
                        ka = ka1 if ika else ka0
                        cka = wka if ika else 1.0 - wka
                        da = ma * n_cs + ka
                        for imb in range(2):
                            mb = mb1 if imb else mb0
                            cmb = wmb if imb else 1.0 - wmb
                            for ikb in range(2):
                                kb = kb1 if ikb else kb0
                                ckb = wkb if ikb else 1.0 - wkb
                                acc += cma * cka * cmb * ckb * pair_scatter[da, mb * n_cs + kb]
                out[v, p, r] += math.exp(acc) if log_values else acc


@numba.njit(cache=True, parallel=True)
def lor_integrals(vol, axis_coef, a_pts, b_pts, step_mm):
    """(n,) integrals of ``vol`` along the segments a_pts[i] -> b_pts[i] (scanner mm)."""
    n = a_pts.shape[0]
    out = np.zeros(n)
    for i in numba.prange(n):
        out[i], _ = ray_integrals(vol, vol, axis_coef, a_pts[i], b_pts[i], step_mm)
    return out
