"""A Monte Carlo truth for scatter: a water cylinder with a hot rod on a ring scanner.

:func:`simulate_cylinder_mc` runs :mod:`kernels.photon_mc` (photon pairs, Klein-Nishina Compton
scatter in water, energy blurring and window, detection on the ring cylinder) in fixed chunks,
each with its own child generator spawned from the caller's ``numpy.random.Generator`` (the
result does not depend on the thread count), and histograms the coincidences into the layout's
sinogram with ``layout.bins_of_events`` (TOF layouts: the TOF position from the photons' path
lengths, blurred by the scanner's Gaussian timing resolution; positions beyond the outer bins are
put in them), separated into trues, single scatter and multiple scatter. :func:`cylinder_phantom_volumes` rasterises the same phantom (activity in pairs
per mL, mu at 511 keV in 1/mm) with sub-voxel sampling for the estimate under test.

Scanner frame = patient LPS here (HFS, table at 0): the phantom's axis is the scanner axis.
"""
from __future__ import annotations

import logging
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from kernels.photon_mc import empty_outputs, simulate_pairs
from recon.data.grid import ImageGrid, Volume
from recon.data.materials import linear_mu_per_mm
from recon.data.pet_sinogram import SinogramLayout
from recon.pet.energy import PETEnergyWindow, water_mu_table_per_mm

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CylinderPhantom:
    """Water cylinder (radius, half-length, mm) on the scanner axis with a full-length hot rod.

    ``rod_extra_ratio``: the rod's activity concentration above the background, as a multiple of
    the background (3 gives a rod at 4:1)."""

    radius_mm: float = 100.0
    half_length_mm: float = 50.0
    rod_xy_mm: tuple[float, float] = (40.0, 20.0)
    rod_radius_mm: float = 15.0
    rod_extra_ratio: float = 3.0

    def __post_init__(self) -> None:
        if not (0 < self.rod_radius_mm and math.hypot(*self.rod_xy_mm) + self.rod_radius_mm <= self.radius_mm):
            raise ValueError("the rod must lie inside the cylinder")
        if self.radius_mm <= 0 or self.half_length_mm <= 0 or self.rod_extra_ratio < 0:
            raise ValueError("cylinder radius and half-length must be positive, the rod ratio >= 0")

    @property
    def rod_probability(self) -> float:
        """Fraction of the pairs emitted from the rod's extra activity."""
        v_cyl = self.radius_mm ** 2
        v_rod = self.rod_extra_ratio * self.rod_radius_mm ** 2
        return v_rod / (v_cyl + v_rod)

    def background_pairs_per_mm3(self, n_pairs: float) -> float:
        """Background concentration (pairs/mm^3) when ``n_pairs`` are emitted in all."""
        vol = 2 * self.half_length_mm * math.pi * (self.radius_mm ** 2 + self.rod_extra_ratio * self.rod_radius_mm ** 2)
        return float(n_pairs) / vol


@dataclass(frozen=True)
class MCResult:
    """Sinograms (float64 counts, the layout's shape) of the detected coincidences by class."""

    trues: np.ndarray
    single_scatter: np.ndarray
    multiple_scatter: np.ndarray
    n_pairs: int

    @property
    def scatter(self) -> np.ndarray:
        return self.single_scatter + self.multiple_scatter

    @property
    def prompts(self) -> np.ndarray:
        return self.trues + self.scatter


def simulate_cylinder_mc(layout: SinogramLayout, phantom: CylinderPhantom, n_pairs: int, rng: np.random.Generator,
                         window: PETEnergyWindow = PETEnergyWindow(), n_chunks: int = 8,
                         n_threads: int = 2) -> MCResult:
    """Simulate ``n_pairs`` annihilations in ``phantom`` on ``layout``'s scanner (module docstring)."""
    if not isinstance(rng, np.random.Generator):
        raise ValueError("rng must be a numpy.random.Generator")
    if int(n_pairs) < 1:
        raise ValueError(f"n_pairs must be >= 1, got {n_pairs}")
    sc = layout.scanner
    if phantom.radius_mm >= sc.lor_radius_mm:
        raise ValueError("the phantom does not fit inside the detector ring")
    mu_table = water_mu_table_per_mm()
    z0 = float(sc.ring_z_mm()[0])
    sizes = [int(n_pairs) // n_chunks + (1 if c < int(n_pairs) % n_chunks else 0) for c in range(n_chunks)]
    children = rng.spawn(n_chunks)

    def run(c: int):
        a, b, k, off = empty_outputs(sizes[c])
        n = simulate_pairs(children[c], sizes[c], float(phantom.radius_mm), float(phantom.half_length_mm),
                           float(phantom.rod_xy_mm[0]), float(phantom.rod_xy_mm[1]), float(phantom.rod_radius_mm),
                           phantom.rod_probability, mu_table, float(sc.lor_radius_mm), z0, float(sc.ring_spacing_mm),
                           sc.n_rings, sc.crystals_per_ring, float(window.lower_kev), float(window.upper_kev),
                           float(window.resolution_fwhm), window.cutoff_kev(), a, b, k, off)
        return a[:n], b[:n], k[:n], off[:n]

    with ThreadPoolExecutor(max_workers=max(1, int(n_threads))) as pool:
        parts = list(pool.map(run, range(n_chunks)))
    det_a = np.concatenate([p[0] for p in parts])
    det_b = np.concatenate([p[1] for p in parts])
    cls = np.concatenate([p[2] for p in parts])
    tof_bin = None
    if layout.tof:  # timing blur (the scanner's TOF resolution) from one more child generator
        offset = np.concatenate([p[3] for p in parts])
        offset = offset + rng.spawn(1)[0].normal(0.0, sc.tof_sigma_mm, offset.size)
        half = (layout.n_tof - 1) / 2.0
        tof_bin = np.clip(np.floor(offset / sc.tof_bin_width_mm + half + 0.5), 0, layout.n_tof - 1).astype(np.int64)
    flat, valid = layout.bins_of_events(det_a, det_b, tof_bin)
    shape = layout.shape
    size = int(np.prod(shape))
    hist = [np.bincount(flat[valid & (cls == c)], minlength=size).astype(np.float64).reshape(shape) for c in range(3)]
    logger.info("MC: %d pairs, %d coincidences detected (%d in the sinogram)", n_pairs, det_a.size, int(valid.sum()))
    return MCResult(trues=hist[0], single_scatter=hist[1], multiple_scatter=hist[2], n_pairs=int(n_pairs))


def cylinder_phantom_volumes(phantom: CylinderPhantom, grid: ImageGrid, n_pairs: float,
                             supersample: int = 4) -> tuple[Volume, Volume]:
    """(activity in pairs/mL, mu at 511 keV in 1/mm) of ``phantom`` on ``grid`` (LPS = scanner frame),
    each voxel the mean over ``supersample^3`` sub-voxel points; ``n_pairs`` sets the concentration."""
    nz, ny, nx = grid.shape
    dz, dy, dx = grid.spacing_mm
    ox, oy, oz = grid.origin_mm
    off = (np.arange(supersample) + 0.5) / supersample - 0.5
    x = (ox + np.arange(nx)[:, None] * dx + off[None, :] * dx).ravel()
    y = (oy + np.arange(ny)[:, None] * dy + off[None, :] * dy).ravel()
    z = (oz + np.arange(nz)[:, None] * dz + off[None, :] * dz).ravel()
    r2 = x[None, :] ** 2 + y[:, None] ** 2
    disk = (r2 <= phantom.radius_mm ** 2).astype(np.float64)
    rx, ry = phantom.rod_xy_mm
    rod = (((x[None, :] - rx) ** 2 + (y[:, None] - ry) ** 2) <= phantom.rod_radius_mm ** 2).astype(np.float64)
    inz = (np.abs(z) <= phantom.half_length_mm).astype(np.float64)
    s = supersample

    def block(a2d: np.ndarray) -> np.ndarray:
        return a2d.reshape(ny, s, nx, s).mean(axis=(1, 3))

    fz = inz.reshape(nz, s).mean(axis=1)
    disk_v = block(disk)
    rod_v = block(rod)
    c = phantom.background_pairs_per_mm3(n_pairs) * 1000.0  # pairs per mL
    activity = fz[:, None, None] * (disk_v + phantom.rod_extra_ratio * rod_v)[None] * c
    mu = fz[:, None, None] * disk_v[None] * linear_mu_per_mm("water", 511.0)
    return (Volume(activity.astype(np.float32), grid, unit="pairs/mL"),
            Volume(mu.astype(np.float32), grid, unit="1/mm"))


def scatter_agreement(estimate: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Relative differences of a scatter estimate from a truth (sinograms of one shape):
    ``total`` = sum(est)/sum(truth) - 1, and for the radial (summed over views and planes), view
    and plane profiles the relative L2 ``|p_est - p_truth| / |p_truth|`` and the largest
    deviation relative to the profile's maximum (``*_max``). TOF sinograms add the TOF profile
    (``tof``) and the (radial, TOF) map summed over views and planes (``radial_tof``)."""
    e = np.asarray(estimate, np.float64)
    t = np.asarray(truth, np.float64)
    if e.shape != t.shape or e.ndim not in (3, 4):
        raise ValueError(f"estimate {e.shape} and truth {t.shape} must be sinograms of one shape")
    out = {"total": float(e.sum() / t.sum() - 1.0)}
    profiles = [("radial", (0, 1)), ("view", (1, 2)), ("plane", (0, 2))]
    if e.ndim == 4:
        profiles = [(n, ax + (3,)) for n, ax in profiles] + [("tof", (0, 1, 2)), ("radial_tof", (0, 1))]
    for name, axes in profiles:
        pe, pt = e.sum(axis=axes), t.sum(axis=axes)
        out[name] = float(np.linalg.norm(pe - pt) / np.linalg.norm(pt))
        out[f"{name}_max"] = float(np.abs(pe - pt).max() / pt.max())
    return out
