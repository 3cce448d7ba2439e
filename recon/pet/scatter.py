"""Scatter sinogram by single scatter simulation (Watson's method), scaled to the emission tails.

Model (:mod:`kernels.scatter_sss` for the formula): every coarse cell of the mu-map whose mean
attenuation exceeds ``mu_threshold_per_mm`` is one scatter point, placed at the cell's mu-weighted
centroid with weight ``mu dV`` = the cell's sum of mu x voxel volume (mm^2), so the total
scattering strength of the body is kept exactly whatever the cell size. The integrals of mu
(511 keV) and of the activity from each scatter point to detectors at ``n_angle_samples`` angles
and ``n_ring_samples`` axial positions (evenly from the first to the last ring) are ray-marched
(trilinear samples, step ``step_mm``) and interpolated in angle to the crystals. The scatter of
``n_radial_samples`` radial bins (default all) of ``n_view_samples`` views, for every pair of
axial samples, sums over the scatter points the Klein-Nishina density, the energy-window acceptance of the unscattered (511 keV)
and the scattered photon (Gaussian energy resolution, :class:`recon.pet.energy.PETEnergyWindow`),
the attenuation of the scattered photon at its energy (water-like scaling
``mu(E') = mu(511) mu_w(E')/mu_w(511)``), the detector area and obliquity ``sigma cos / R^2`` on
both sides, and ``1/(2 pi)``. By default it is exact along the radial direction (where scatter
changes fastest, down to the tails) and interpolated linearly over views and bilinearly over the two rings
of every ring pair, summed over the ring pairs of each plane (span > 1).

Units. The activity is read as a concentration per mL (Bq/mL, or relative); the emission density
per mm^3 is value / 1000. With Bq/mL the unscaled sinogram is in single-scatter coincidences per
second (positron branching and dead time aside). Only single scatter is modelled; multiple
scatter and model errors are absorbed by the tail fit.

Tail scaling. LORs that miss the body (attenuation factor >= ``threshold``, eroded by
``margin_bins`` radial bins away from the body) see no trues: there prompts - randoms (-
unscattered estimate) is scatter, and the SSS sinogram is scaled to it (least squares by
default, or Poisson ML; scale and optional offset; :func:`fit_tail_scale` says why).

TOF. ``estimate_scatter`` on a TOF layout computes a TOF SSS by default
(:mod:`kernels.scatter_sss_tof`: for each scatter point and term, the measured position along the
LOR follows from the two photons' path lengths; the emission's spread along its segment is taken
as a Gaussian with the activity's mean and variance there, convolved with the TOF kernel and
integrated over each bin; after Watson 2007). ``tof_mode="uniform"`` instead spreads the non-TOF
estimate evenly over the TOF bins (divided by ``n_tof``), which ignores how TOF localises scatter.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from kernels.scatter_sss import lor_integrals, point_detector_integrals, sss_lors, views_rings_to_bins
from kernels.scatter_sss_tof import sss_lors_tof
from recon.data.grid import Volume
from recon.data.pet import ScannerPlacement
from recon.data.pet_sinogram import SinogramLayout
from recon.pet.attenuation import check_mu_map_511
from recon.pet.crystal_pairs import ring_pairs
from recon.pet.energy import PETEnergyWindow, water_mu_table_per_mm
from recon.pet.scatter_tails import fit_tail_scale, tail_mask

logger = logging.getLogger(__name__)

__all__ = ["SSSOptions", "ScatterEstimate", "attenuation_factors_from_mu", "check_mu_map_511", "estimate_scatter",
           "fit_tail_scale", "single_scatter_simulation", "tail_mask"]

TARGET_SCATTER_POINTS = 1500
"""Scatter points aimed at by the default cell size (Watson: a few hundred to a few thousand suffice)."""


@dataclass(frozen=True)
class SSSOptions:
    """Sampling of the single scatter simulation (``None``: chosen from the scanner).

    ``cell_mm``: scatter-cell size (z, y, x) in mm (default: cubic, about ``TARGET_SCATTER_POINTS``
    cells over the body, at least 12 mm); ``mu_threshold_per_mm``: cells of lower mean
    mu are skipped; ``n_view_samples``: views at which the SSS is evaluated (evenly spaced, first and
    last included; default a quarter of the views, 8 to 32); ``n_radial_samples``: radial bins at
    which it is evaluated (evenly spaced, both ends included; default all: exact along the radial
    direction, where scatter changes fastest: on the MC phantom of ``tests/test_pet_scatter.py``
    every 4th radial bin, interpolated linearly, lowered the tail-scaled total by 8 %, since the
    tails that set the scale are interpolated across the body edge); ``n_ring_samples``: axial detector
    positions (evenly from the first to the last ring; default one per ~16 mm, at least 2);
    ``n_angle_samples``: detector angles at which the ray integrals are computed (interpolated to the
    crystals; default all crystals up to 128); ``step_mm``: ray-marching step (default the smallest
    voxel spacing)."""

    cell_mm: tuple[float, float, float] | None = None
    mu_threshold_per_mm: float = 0.002
    n_view_samples: int | None = None
    n_radial_samples: int | None = None
    n_ring_samples: int | None = None
    n_angle_samples: int | None = None
    step_mm: float | None = None

    def __post_init__(self) -> None:
        if self.cell_mm is not None:
            cell = tuple(float(c) for c in self.cell_mm)
            if len(cell) != 3 or not all(math.isfinite(c) and c > 0 for c in cell):
                raise ValueError(f"cell_mm must be 3 positive sizes (z, y, x) in mm, got {self.cell_mm!r}")
            object.__setattr__(self, "cell_mm", cell)
        if not math.isfinite(self.mu_threshold_per_mm) or self.mu_threshold_per_mm < 0:
            raise ValueError(f"mu_threshold_per_mm must be >= 0 (1/mm), got {self.mu_threshold_per_mm!r}")
        if self.step_mm is not None and not (math.isfinite(self.step_mm) and self.step_mm > 0):
            raise ValueError(f"step_mm must be positive (mm), got {self.step_mm!r}")


@dataclass(frozen=True)
class ScatterEstimate:
    """Scaled scatter in the layout's shape, the unscaled SSS (non-TOF), the fit and its tail mask."""

    sinogram: np.ndarray
    unscaled: np.ndarray
    scale: float
    offset: float
    tail_mask: np.ndarray


def _axis_coefficients(grid, placement: ScannerPlacement) -> np.ndarray:
    """(3, 2): voxel index = a * scanner-frame mm + b for x, y, z (array axes 2, 1, 0)."""
    signs = np.asarray(placement.axis_signs, np.float64)
    dz, dy, dx = grid.spacing_mm
    spacing = (dx, dy, dz)
    coef = np.empty((3, 2))
    for ax in range(3):
        coef[ax, 0] = signs[ax] / spacing[ax]
        coef[ax, 1] = (placement.table_position_mm[ax] - grid.origin_mm[ax]) / spacing[ax]
    return coef


def _scatter_points(mu: np.ndarray, grid, placement: ScannerPlacement, cell_mm, threshold: float):
    """(points (n, 3) scanner mm, weights mu dV (n,) mm^2) of the coarse cells above ``threshold``."""
    spacing = grid.spacing_mm
    block = [max(1, int(round(c / s))) for c, s in zip(cell_mm, spacing)]
    pad = [(((-n) % b) // 2, (-n) % b - ((-n) % b) // 2) for n, b in zip(mu.shape, block)]  # cells centred on the grid
    m = np.pad(mu.astype(np.float64), pad)
    shp = (m.shape[0] // block[0], block[0], m.shape[1] // block[1], block[1], m.shape[2] // block[2], block[2])
    idx = [np.pad(np.arange(n, dtype=np.float64), p, constant_values=0.0) for n, p in zip(mu.shape, pad)]
    mb = m.reshape(shp)
    wsum = mb.sum(axis=(1, 3, 5))
    count = np.prod(block)
    keep = wsum / count > threshold
    cz = (mb * idx[0].reshape(shp[0], shp[1])[:, :, None, None, None, None]).sum(axis=(1, 3, 5))
    cy = (mb * idx[1].reshape(shp[2], shp[3])[None, None, :, :, None, None]).sum(axis=(1, 3, 5))
    cx = (mb * idx[2].reshape(shp[4], shp[5])[None, None, None, None, :, :]).sum(axis=(1, 3, 5))
    w = wsum[keep]
    iz, iy, ix = cz[keep] / w, cy[keep] / w, cx[keep] / w
    lps = grid.index_to_mm(np.stack([iz, iy, ix], axis=-1))
    signs = np.asarray(placement.axis_signs, np.float64)
    points = (lps - np.asarray(placement.table_position_mm)) * signs
    return np.ascontiguousarray(points, np.float64), w * float(np.prod(spacing))


def _even_samples(n: int, n_samples: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sample indices (evenly spaced, both ends) and, for every index 0..n-1, the two neighbouring
    samples and the linear weight on the second."""
    samples = np.unique(np.round(np.linspace(0, n - 1, max(2, min(n_samples, n)))).astype(np.int64))
    if samples.size == 1:
        zeros = np.zeros(n, np.int64)
        return samples, zeros, zeros, np.zeros(n)
    idx = np.arange(n)
    j = np.clip(np.searchsorted(samples, idx, side="right") - 1, 0, samples.size - 2)
    w = (idx - samples[j]) / (samples[j + 1] - samples[j])
    return samples, j.astype(np.int64), (j + 1).astype(np.int64), np.clip(w, 0.0, 1.0)


def _samples(layout: SinogramLayout, options: SSSOptions) -> tuple[int, int, int]:
    sc = layout.scanner
    n_vs = options.n_view_samples or min(32, max(8, layout.n_views // 4))
    n_rs = options.n_ring_samples
    if n_rs is None:
        n_rs = max(2, int(math.ceil((sc.n_rings - 1) * sc.ring_spacing_mm / 16.0)) + 1)
    n_rs = min(int(n_rs), sc.n_rings)
    n_cs = options.n_angle_samples or min(sc.crystals_per_ring, 128)
    if not 2 <= n_vs <= layout.n_views:
        raise ValueError(f"n_view_samples must be in 2..{layout.n_views}, got {n_vs}")
    if not 8 <= n_cs <= sc.crystals_per_ring:
        raise ValueError(f"n_angle_samples must be in 8..{sc.crystals_per_ring}, got {n_cs}")
    if n_rs < 1 or (n_rs == 1 and sc.n_rings > 1):
        raise ValueError(f"n_ring_samples must be in 2..{sc.n_rings}, got {n_rs}")
    return int(n_vs), int(n_rs), int(n_cs)


def single_scatter_simulation(activity: Volume, mu_map: Volume, layout: SinogramLayout,
                              placement: ScannerPlacement = ScannerPlacement(),
                              window: PETEnergyWindow = PETEnergyWindow(),
                              options: SSSOptions = SSSOptions(), tof: bool = False) -> np.ndarray:
    """Unscaled single scatter (float64): the layout's non-TOF shape, or with ``tof=True`` (a TOF
    layout) its TOF shape by :mod:`kernels.scatter_sss_tof`; module docstring for the model.

    ``activity`` (per mL) and ``mu_map`` (1/mm at 511 keV) must share one grid, in patient LPS mm;
    ``placement`` puts the scanner frame in patient space. The SSS is evaluated exactly on the
    sampled views, radial bins (default all) and axial positions, then interpolated linearly over
    views and radial bins and bilinearly over the two rings of each ring pair.

    Cost: ray integrals ``n_points x n_ring_samples x n_angle_samples`` rays, then
    ``n_points x n_view_samples x n_radial_samples x n_ring_samples^2`` point terms.
    """
    if not activity.grid.same_as(mu_map.grid):
        raise ValueError("activity and mu-map must lie on the same grid (shape, spacing and origin)")
    if tof and not layout.tof:
        raise ValueError("a TOF scatter estimate needs a TOF sinogram layout (tof=True)")
    mu = check_mu_map_511(mu_map)
    act = np.asarray(activity.data if isinstance(activity.data, np.ndarray) else activity.to_host().data, np.float64)
    if (act < 0).any():
        raise ValueError("activity estimate contains negative values")
    grid = mu_map.grid
    sc = layout.scanner
    cpr = sc.crystals_per_ring
    n_vs, n_rs, n_cs = _samples(layout, options)
    step = float(options.step_mm or min(grid.spacing_mm))
    cell_mm = options.cell_mm
    if cell_mm is None:
        body_mm3 = float((mu > options.mu_threshold_per_mm).sum()) * float(np.prod(grid.spacing_mm))
        cell_mm = (max(12.0, (body_mm3 / TARGET_SCATTER_POINTS) ** (1.0 / 3.0)),) * 3
    points, weights = _scatter_points(mu, grid, placement, cell_mm, options.mu_threshold_per_mm)
    if points.shape[0] == 0:
        raise ValueError(f"no scatter points: no mu-map cell has a mean mu above {options.mu_threshold_per_mm} /mm")
    # ray integrals from every scatter point to detectors at n_cs angles and n_rs axial positions
    angles = 2.0 * np.pi * np.arange(n_cs) / n_cs
    z_rings = sc.ring_z_mm()
    z_samples = np.linspace(z_rings[0], z_rings[-1], n_rs) if n_rs > 1 else z_rings[:1].copy()
    det = np.empty((n_rs * n_cs, 3))
    det[:, 0] = np.tile(sc.lor_radius_mm * np.cos(angles), n_rs)
    det[:, 1] = np.tile(sc.lor_radius_mm * np.sin(angles), n_rs)
    det[:, 2] = np.repeat(z_samples, n_cs)
    coef = _axis_coefficients(grid, placement)
    m_int, l_int, l1_int, l2_int = point_detector_integrals(np.ascontiguousarray(mu, np.float64), np.ascontiguousarray(act / 1000.0),
                                            coef, points, det, step)
    m_tab = np.ascontiguousarray(m_int.reshape(-1, n_rs, n_cs))
    l_tab = np.ascontiguousarray(l_int.reshape(-1, n_rs, n_cs))
    # SSS on the sampled views and radial bins, for every pair of axial samples
    view_samples, v0, v1, wv = _even_samples(layout.n_views, n_vs)
    radial_samples, r0, r1, wr = _even_samples(layout.n_radial, options.n_radial_samples or layout.n_radial)
    first, second = layout.crystal_pairs()
    fa = first[np.ix_(view_samples, radial_samples)]
    sb = second[np.ix_(view_samples, radial_samples)]
    shape = (view_samples.size, n_rs, n_rs, radial_samples.size)
    # the kernels place crystal c at 2 pi c / cpr; a scanner whose crystal 0 is not on +x (PETSIRD) is
    # handled by a fractional index shift (the angle tables are periodic and start at 0)
    shift = np.deg2rad(float(sc.first_crystal_angle_deg)) * cpr / (2.0 * np.pi)
    ca = np.broadcast_to(fa[:, None, None, :], shape).ravel().astype(np.float64) + shift
    cb = np.broadcast_to(sb[:, None, None, :], shape).ravel().astype(np.float64) + shift
    ma = np.broadcast_to(np.arange(n_rs)[None, :, None, None], shape).ravel().astype(np.int64)
    mb = np.broadcast_to(np.arange(n_rs)[None, None, :, None], shape).ravel().astype(np.int64)
    area = 2.0 * np.pi * sc.lor_radius_mm / cpr * sc.ring_spacing_mm
    k_table = water_mu_table_per_mm() / float(water_mu_table_per_mm()[511])
    energy = (float(window.lower_kev), float(window.upper_kev), float(window.resolution_fwhm))
    if tof:
        l1_tab = np.ascontiguousarray(l1_int.reshape(-1, n_rs, n_cs))
        l2_tab = np.ascontiguousarray(l2_int.reshape(-1, n_rs, n_cs))
        values = sss_lors_tof(points, weights, m_tab, l_tab, l1_tab, l2_tab, float(sc.lor_radius_mm), float(cpr),
                              z_samples, ca, cb, ma, mb, area, k_table, *energy, float(sc.tof_sigma_mm),
                              float(sc.tof_bin_width_mm), int(layout.n_tof))
        tables = [np.ascontiguousarray(values[:, t].reshape(shape)) for t in range(layout.n_tof)]
    else:
        values = sss_lors(points, weights, m_tab, l_tab, float(sc.lor_radius_mm), float(cpr), z_samples,
                          ca, cb, ma, mb, area, k_table, *energy)
        tables = [np.ascontiguousarray(values.reshape(shape))]
    rp = ring_pairs(layout)
    ring_scale = (n_rs - 1) / max(sc.n_rings - 1, 1)
    out = np.zeros(layout.shape[:3] + ((layout.n_tof,) if tof else ()))
    for t, table in enumerate(tables):
        part = np.zeros(layout.shape[:3])
        views_rings_to_bins(table, v0, v1, wv, r0, r1, wr, rp[:, 0].copy(), rp[:, 1].copy(), rp[:, 2].copy(),
                            float(ring_scale), part)
        if tof:
            out[..., t] = part
        else:
            out = part
    present = layout.transaxial_present()[:, None, :]
    out *= present[..., None] if tof else present
    logger.info("SSS: %d scatter points, %d views x %d axial samples evaluated, total %.4g",
                points.shape[0], view_samples.size, n_rs, out.sum())
    return out


def attenuation_factors_from_mu(mu_map: Volume, layout: SinogramLayout,
                                placement: ScannerPlacement = ScannerPlacement(), step_mm: float | None = None) -> np.ndarray:
    """exp(-integral of mu) along every LOR (non-TOF shape, float64) by ray marching with trilinear
    samples: a simple estimate for the tail mask, not the system model's projector."""
    mu = check_mu_map_511(mu_map)
    a, b = layout.lor_endpoints_mm()
    coef = _axis_coefficients(mu_map.grid, placement)
    line = lor_integrals(np.ascontiguousarray(mu, np.float64), coef, a.reshape(-1, 3).astype(np.float64),
                         b.reshape(-1, 3).astype(np.float64), float(step_mm or min(mu_map.grid.spacing_mm) / 2))
    return np.exp(-line).reshape(layout.shape[:3])


def estimate_scatter(activity: Volume, mu_map: Volume, layout: SinogramLayout, prompts: np.ndarray,
                     placement: ScannerPlacement = ScannerPlacement(), window: PETEnergyWindow = PETEnergyWindow(),
                     randoms: np.ndarray | None = None, unscattered: np.ndarray | None = None,
                     attenuation_factors: np.ndarray | None = None, tail_threshold: float = 0.99,
                     margin_bins: int = 2, method: str = "lsq", fit_offset: bool = False,
                     options: SSSOptions = SSSOptions(), tof_mode: str = "sss") -> ScatterEstimate:
    """SSS scaled to the emission tails of ``prompts`` (module docstring). Sinograms in the layout's
    shape or non-TOF (TOF inputs are summed over TOF bins for the fit); the returned ``sinogram``
    is in the layout's shape. TOF layouts: ``tof_mode="sss"`` computes the TOF SSS
    (:mod:`kernels.scatter_sss_tof`), ``"uniform"`` spreads the non-TOF SSS evenly over the bins.
    ``unscaled`` is always non-TOF (the TOF SSS summed over its bins); the offset, if fitted, is
    spread evenly over TOF bins."""
    if tof_mode not in ("sss", "uniform"):
        raise ValueError(f"tof_mode must be 'sss' or 'uniform', got {tof_mode!r}")
    shape3 = layout.shape[:3]

    def non_tof(name: str, a: np.ndarray | None) -> np.ndarray | None:
        if a is None:
            return None
        arr = np.asarray(a, np.float64)
        if layout.tof and arr.shape == layout.shape:
            arr = arr.sum(axis=-1)
        if arr.shape != shape3:
            raise ValueError(f"{name} has shape {np.shape(a)}; expected {layout.shape} or non-TOF {shape3}")
        if not np.isfinite(arr).all() or (arr < 0).any():
            raise ValueError(f"{name} contains NaN, infinite or negative values")
        return arr

    y = non_tof("prompts", prompts)
    bg = None
    for name, extra in (("randoms", randoms), ("unscattered estimate", unscattered)):
        e = non_tof(name, extra)
        if e is not None:
            bg = e if bg is None else bg + e
    att = non_tof("attenuation factors", attenuation_factors)
    if att is None:
        att = attenuation_factors_from_mu(mu_map, layout, placement)
    mask = tail_mask(att, tail_threshold, margin_bins) & layout.transaxial_present()[:, None, :]
    tof_sss = layout.tof and tof_mode == "sss"
    sss_full = single_scatter_simulation(activity, mu_map, layout, placement, window, options, tof=tof_sss)
    sss = sss_full.sum(axis=-1) if tof_sss else sss_full
    scale, offset = fit_tail_scale(sss, y, mask, bg, method=method, fit_offset=fit_offset)
    logger.info("scatter: tail scale %.4g, offset %.4g over %d tail LORs", scale, offset, int(mask.sum()))
    if tof_sss:
        out = scale * sss_full + (offset / layout.n_tof) * (sss > 0)[..., None]
    else:
        out = scale * sss + offset * (sss > 0)
        if layout.tof:
            out = np.repeat(out[..., None] / layout.n_tof, layout.n_tof, axis=-1)
    out = np.ascontiguousarray(out, np.float32)
    return ScatterEstimate(sinogram=out, unscaled=sss, scale=float(scale), offset=float(offset), tail_mask=mask)
