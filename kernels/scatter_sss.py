"""Single scatter simulation (Watson) hot loops: ray integrals from scatter points to detectors,
the scatter of sampled LORs (:func:`sss_lors`), and interpolation onto sinogram bins.

Pure functions of arrays and plain numbers (no ``recon`` imports); the per-element physics is in
:mod:`kernels.compton_math`. Geometry in the scanner frame (mm). Volumes are sampled trilinearly
(zero outside) at index coordinates ``i = a * p + b`` per axis (``a``, ``b`` from the image grid and
the scanner placement; ``axis_coef`` rows are x, y, z and map to array axes 2, 1, 0).

Scatter of the LOR between detectors A and B (Watson 1996; 2000), per scatter point in
:func:`sss_point_terms`::

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
    """Integrals along the segment p0 -> p1 (scanner mm) of vol1, of vol2, and of vol2 times the
    distance x from p0 and x^2 (the first two moments of vol2 along the ray, for TOF); midpoint
    rule with steps of at most ``step_mm``, clipped to the volume's bounding box."""
    shape = (vol1.shape[2], vol1.shape[1], vol1.shape[0])  # x, y, z sizes
    t0, t1 = 0.0, 1.0
    for ax in range(3):
        a, b = axis_coef[ax, 0], axis_coef[ax, 1]
        i0 = a * p0[ax] + b
        di = a * (p1[ax] - p0[ax])
        lo, hi = -1.0, shape[ax]  # trilinear support reaches one voxel beyond the centres
        if abs(di) < 1e-12:
            if i0 <= lo or i0 >= hi:
                return 0.0, 0.0, 0.0, 0.0
            continue
        ta = (lo - i0) / di
        tb = (hi - i0) / di
        if ta > tb:
            ta, tb = tb, ta
        t0 = max(t0, ta)
        t1 = min(t1, tb)
    if t1 <= t0:
        return 0.0, 0.0, 0.0, 0.0
    full = math.sqrt((p1[0] - p0[0]) ** 2 + (p1[1] - p0[1]) ** 2 + (p1[2] - p0[2]) ** 2)
    length = full * (t1 - t0)
    n = max(1, int(math.ceil(length / step_mm)))
    ds = length / n
    s1 = 0.0
    s2 = 0.0
    s2x = 0.0
    s2xx = 0.0
    for k in range(n):
        t = t0 + (t1 - t0) * (k + 0.5) / n
        fx = axis_coef[0, 0] * (p0[0] + t * (p1[0] - p0[0])) + axis_coef[0, 1]
        fy = axis_coef[1, 0] * (p0[1] + t * (p1[1] - p0[1])) + axis_coef[1, 1]
        fz = axis_coef[2, 0] * (p0[2] + t * (p1[2] - p0[2])) + axis_coef[2, 1]
        s1 += _trilinear(vol1, fz, fy, fx)
        v2 = _trilinear(vol2, fz, fy, fx)
        x = t * full
        s2 += v2
        s2x += v2 * x
        s2xx += v2 * x * x
    return s1 * ds, s2 * ds, s2x * ds, s2xx * ds


@numba.njit(cache=True, parallel=True)
def point_detector_integrals(mu, act, axis_coef, points, detectors, step_mm):
    """(n_points, n_det) integrals of mu and of activity from each scatter point to each detector,
    and the activity's first and second moments in the distance from the scatter point (mm, mm^2)."""
    n_s = points.shape[0]
    n_d = detectors.shape[0]
    m = np.zeros((n_s, n_d))
    lam = np.zeros((n_s, n_d))
    lam1 = np.zeros((n_s, n_d))
    lam2 = np.zeros((n_s, n_d))
    for s in numba.prange(n_s):
        for d in range(n_d):
            m[s, d], lam[s, d], lam1[s, d], lam2[s, d] = ray_integrals(mu, act, axis_coef, points[s], detectors[d],
                                                                        step_mm)
    return m, lam, lam1, lam2


def sss_point_terms(ux, uy, uz, wx, wy, wz, na_x, na_y, nb_x, nb_y, m_a, m_b, l_a, l_b, weight, area_mm2,
                    k_table, e_lo, e_hi, fwhm_frac, sigma_kn, eff511):
    """One scatter point's contribution to the LOR (A, B) (module formula) as its two terms
    (unscattered photon at A, unscattered photon at B); ``u = S - A``, ``w = B - S``, ``n_a``, ``n_b``
    the detectors' transaxial normals, ``m``/``l`` the mu/activity integrals from S to A and to B."""
    ra2 = ux * ux + uy * uy + uz * uz
    rb2 = wx * wx + wy * wy + wz * wz
    ra = math.sqrt(ra2)
    rb = math.sqrt(rb2)
    cos_t = (ux * wx + uy * wy + uz * wz) / (ra * rb)
    e1 = _e_scat(511.0, cos_t)
    eff1 = _eff(e1, e_lo, e_hi, fwhm_frac)
    if eff1 <= 0.0:
        return 0.0, 0.0
    cos_a = abs(ux * na_x + uy * na_y) / ra
    cos_b = abs(wx * nb_x + wy * nb_y) / rb
    ki = int(e1)
    fk = e1 - ki
    k = k_table[ki] * (1.0 - fk) + k_table[min(ki + 1, k_table.shape[0] - 1)] * fk
    geo = (area_mm2 * cos_a / ra2) * (area_mm2 * cos_b / rb2) / (2.0 * math.pi)
    c = weight * _kn(511.0, cos_t, sigma_kn) * geo * eff511 * eff1
    return c * math.exp(-m_a - k * m_b) * l_a, c * math.exp(-m_b - k * m_a) * l_b


_point_terms = numba.njit(cache=True, inline="always")(sss_point_terms)


@numba.njit(cache=True, inline="always")
def _angle_lookup(tab, s, m, c_frac):
    """tab[s, m, angle sample] linearly interpolated (periodic) at fractional sample ``c_frac``."""
    n = tab.shape[2]
    i0 = int(math.floor(c_frac))
    w = c_frac - i0
    return tab[s, m, i0 % n] * (1.0 - w) + tab[s, m, (i0 + 1) % n] * w


@numba.njit(cache=True, parallel=True)
def sss_lors(points, weights, m_tab, l_tab, det_radius, cpr, z_samples, crystal_a, crystal_b, ring_sample_a,
             ring_sample_b, area_mm2, k_table, e_lo, e_hi, fwhm_frac):
    """(n,) single scatter of LORs between crystal ``crystal_a[i]`` at axial sample ``ring_sample_a[i]`` and
    ``crystal_b[i]`` at ``ring_sample_b[i]``. ``m_tab``, ``l_tab`` (n_points, n_ring_samples, n_angle_samples):
    integrals from each scatter point to detectors at evenly spaced angles (interpolated to the crystal)."""
    n = crystal_a.shape[0]
    n_s = points.shape[0]
    n_cs = m_tab.shape[2]
    sigma_kn = _kn_total(511.0)
    eff511 = _eff(511.0, e_lo, e_hi, fwhm_frac)
    out = np.zeros(n)
    for i in numba.prange(n):
        pa = 2.0 * math.pi * crystal_a[i] / cpr
        pb = 2.0 * math.pi * crystal_b[i] / cpr
        na_x, na_y = math.cos(pa), math.sin(pa)
        nb_x, nb_y = math.cos(pb), math.sin(pb)
        ax, ay, az = det_radius * na_x, det_radius * na_y, z_samples[ring_sample_a[i]]
        bx, by, bz = det_radius * nb_x, det_radius * nb_y, z_samples[ring_sample_b[i]]
        ca = crystal_a[i] * n_cs / cpr
        cb = crystal_b[i] * n_cs / cpr
        acc = 0.0
        for s in range(n_s):
            m_a = _angle_lookup(m_tab, s, ring_sample_a[i], ca)
            m_b = _angle_lookup(m_tab, s, ring_sample_b[i], cb)
            l_a = _angle_lookup(l_tab, s, ring_sample_a[i], ca)
            l_b = _angle_lookup(l_tab, s, ring_sample_b[i], cb)
            ta, tb = _point_terms(points[s, 0] - ax, points[s, 1] - ay, points[s, 2] - az,
                                  bx - points[s, 0], by - points[s, 1], bz - points[s, 2],
                                  na_x, na_y, nb_x, nb_y, m_a, m_b, l_a, l_b, weights[s], area_mm2,
                                  k_table, e_lo, e_hi, fwhm_frac, sigma_kn, eff511)
            acc += ta + tb
        out[i] = acc
    return out


@numba.njit(cache=True, inline="always")
def _clamped_taps(f, n):
    if f <= 0.0:
        return 0, 0, 0.0
    if f >= n - 1:
        return n - 1, n - 1, 0.0
    i0 = int(math.floor(f))
    return i0, i0 + 1, f - i0


@numba.njit(cache=True, parallel=True)
def views_rings_to_bins(table, view0, view1, view_w, rad0, rad1, rad_w, ring_a, ring_b, plane, ring_scale, out):
    """out[v, p, r] += the scatter ``table[view sample, ring sample a, ring sample b, radial sample]``
    interpolated linearly between view samples ``view0[v]``, ``view1[v]`` (weight ``view_w[v]`` on the
    second), between radial samples ``rad0[r]``, ``rad1[r]`` (weight ``rad_w[r]``) and bilinearly at
    the fractional ring samples ``ring * ring_scale`` of every ring pair of plane p."""
    n_views = out.shape[0]
    n_radial = out.shape[2]
    n_rs = table.shape[1]
    for v in numba.prange(n_views):
        for q in range(ring_a.shape[0]):
            p = plane[q]
            a0, a1, wa = _clamped_taps(ring_a[q] * ring_scale, n_rs)
            b0, b1, wb = _clamped_taps(ring_b[q] * ring_scale, n_rs)
            for r in range(n_radial):
                acc = 0.0
                for iv in range(2):
                    vs = view1[v] if iv else view0[v]
                    cv = view_w[v] if iv else 1.0 - view_w[v]
                    for ir in range(2):
                        rs = rad1[r] if ir else rad0[r]
                        cr = rad_w[r] if ir else 1.0 - rad_w[r]
                        acc += cv * cr * ((1.0 - wa) * ((1.0 - wb) * table[vs, a0, b0, rs] + wb * table[vs, a0, b1, rs])
                                          + wa * ((1.0 - wb) * table[vs, a1, b0, rs] + wb * table[vs, a1, b1, rs]))
                out[v, p, r] += acc


@numba.njit(cache=True, parallel=True)
def lor_integrals(vol, axis_coef, a_pts, b_pts, step_mm):
    """(n,) integrals of ``vol`` along the segments a_pts[i] -> b_pts[i] (scanner mm)."""
    n = a_pts.shape[0]
    out = np.zeros(n)
    for i in numba.prange(n):
        out[i] = ray_integrals(vol, vol, axis_coef, a_pts[i], b_pts[i], step_mm)[0]
    return out
