"""Time-of-flight single scatter simulation: the TOF distribution of each scatter point's terms.

For the term whose unscattered photon reaches A, the annihilation lies on the segment S -> A at a
distance x from S: that photon flies ``R_A - x``, its partner ``x + R_B`` (to S, then scattered to B),
so the measured position is ``(R_A - R_B)/2 - x`` from the LOR midpoint towards B (the second
crystal: ``pet_sinogram``'s TOF sign). For the term at B it is ``(R_A - R_B)/2 + x`` with x on S -> B.
x is distributed as the activity along that segment; it is approximated by a Gaussian with the
activity's mean and variance in x (first and second moments from the ray march), convolved with the
scanner's Gaussian TOF kernel (sigma_tof) and integrated over each TOF bin
(``Phi((c_t + w/2 - d)/s) - Phi((c_t - w/2 - d)/s)``, ``c_t = (t - (n - 1)/2) w``), over +-6 s.
"""
from __future__ import annotations

import math

import numba
import numpy as np

from kernels.scatter_sss import _angle_lookup, _eff, _kn_total, _point_terms


def tof_bin_weights(mean_mm: float, sigma_mm: float, bin_mm: float, n_tof: int, weight: float, out_row) -> None:
    """Add ``weight`` x the Gaussian (mean, sigma, mm) integrated over each TOF bin to ``out_row``."""
    half = 0.5 * (n_tof - 1)
    lo = max(0, int(math.floor((mean_mm - 6.0 * sigma_mm) / bin_mm + half)))
    hi = min(n_tof - 1, int(math.ceil((mean_mm + 6.0 * sigma_mm) / bin_mm + half)))
    if hi < lo:
        return
    r = 1.0 / (math.sqrt(2.0) * sigma_mm)
    prev = 0.5 * (1.0 + math.erf(((lo - half - 0.5) * bin_mm - mean_mm) * r))
    for t in range(lo, hi + 1):
        cur = 0.5 * (1.0 + math.erf(((t - half + 0.5) * bin_mm - mean_mm) * r))
        out_row[t] += weight * (cur - prev)
        prev = cur


_tof_bins = numba.njit(cache=True, inline="always")(tof_bin_weights)


@numba.njit(cache=True, parallel=True)
def sss_lors_tof(points, weights, m_tab, l_tab, l1_tab, l2_tab, det_radius, cpr, z_samples, crystal_a, crystal_b,
                 ring_sample_a, ring_sample_b, area_mm2, k_table, e_lo, e_hi, fwhm_frac, tof_sigma_mm, tof_bin_mm,
                 n_tof):
    """(n, n_tof) TOF single scatter of the LORs of :func:`kernels.scatter_sss.sss_lors` (module docstring);
    ``l1_tab``, ``l2_tab``: the activity's first and second moments in the distance from the point."""
    n = crystal_a.shape[0]
    n_s = points.shape[0]
    n_cs = m_tab.shape[2]
    sigma_kn = _kn_total(511.0)
    eff511 = _eff(511.0, e_lo, e_hi, fwhm_frac)
    s2_tof = tof_sigma_mm * tof_sigma_mm
    out = np.zeros((n, n_tof))
    for i in numba.prange(n):
        pa = 2.0 * math.pi * crystal_a[i] / cpr
        pb = 2.0 * math.pi * crystal_b[i] / cpr
        na_x, na_y = math.cos(pa), math.sin(pa)
        nb_x, nb_y = math.cos(pb), math.sin(pb)
        ax, ay, az = det_radius * na_x, det_radius * na_y, z_samples[ring_sample_a[i]]
        bx, by, bz = det_radius * nb_x, det_radius * nb_y, z_samples[ring_sample_b[i]]
        ca = crystal_a[i] * n_cs / cpr
        cb = crystal_b[i] * n_cs / cpr
        row = out[i]
        for s in range(n_s):
            ux, uy, uz = points[s, 0] - ax, points[s, 1] - ay, points[s, 2] - az
            wx, wy, wz = bx - points[s, 0], by - points[s, 1], bz - points[s, 2]
            m_a = _angle_lookup(m_tab, s, ring_sample_a[i], ca)
            m_b = _angle_lookup(m_tab, s, ring_sample_b[i], cb)
            l_a = _angle_lookup(l_tab, s, ring_sample_a[i], ca)
            l_b = _angle_lookup(l_tab, s, ring_sample_b[i], cb)
            ta, tb = _point_terms(ux, uy, uz, wx, wy, wz, na_x, na_y, nb_x, nb_y, m_a, m_b, l_a, l_b, weights[s],
                                  area_mm2, k_table, e_lo, e_hi, fwhm_frac, sigma_kn, eff511)
            if ta + tb <= 0.0:
                continue
            half_diff = 0.5 * (math.sqrt(ux * ux + uy * uy + uz * uz) - math.sqrt(wx * wx + wy * wy + wz * wz))
            if ta > 0.0:
                x1 = _angle_lookup(l1_tab, s, ring_sample_a[i], ca) / l_a
                var = max(_angle_lookup(l2_tab, s, ring_sample_a[i], ca) / l_a - x1 * x1, 0.0)
                _tof_bins(half_diff - x1, math.sqrt(s2_tof + var), tof_bin_mm, n_tof, ta, row)
            if tb > 0.0:
                x1 = _angle_lookup(l1_tab, s, ring_sample_b[i], cb) / l_b
                var = max(_angle_lookup(l2_tab, s, ring_sample_b[i], cb) / l_b - x1 * x1, 0.0)
                _tof_bins(half_diff + x1, math.sqrt(s2_tof + var), tof_bin_mm, n_tof, tb, row)
    return out
