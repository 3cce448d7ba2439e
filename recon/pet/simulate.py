"""Simulated PET acquisitions from a *finer* model than the reconstruction's.

What differs from the reconstruction model (so recovery tests are not an inverse crime):

- the phantom is rasterised on a grid ``fine_factor`` times finer than the reconstruction grid;
- the activity is blurred by ``resolution_fwhm_mm`` (positron range and photon non-collinearity),
  a blur the reconstruction models only through its own image-space PSF;
- each sinogram bin averages ``rays_per_side**2`` sub-LORs whose ends are spread over the two
  crystal faces (transaxially and axially), and each sub-LOR carries its own attenuation
  exp(-integral of mu) along that ray (the reconstruction: one ray per bin, attenuation per bin).

Expected trues in bin i over the frame ``T`` (activity referred to the frame start)::

    t_i = kappa * p_beta * T * D(T) * n_i * mean_k[ exp(-int mu ds) int c ds ]_k

with ``kappa`` the system sensitivity constant (counts per (Bq/mL * mm * s)), ``p_beta`` the positron
fraction, ``D(T) = (1 - exp(-lambda T)) / (lambda T)`` the decay during the frame and ``n_i`` the
normalisation (crystal efficiencies). Randoms follow 2 tau S_a S_b from crystal singles; scatter is an
additive component supplied by the caller or, by default, the single scatter simulation of the phantom.
Prompts and delayed coincidences are Poisson draws; list-mode events are drawn from the prompts.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from kernels.pet_projector import TOFKernel, joseph_forward
from recon.data.grid import ImageGrid, Volume
from recon.data.pet import ListModeEvents, PETSinogram, ScannerPlacement
from recon.data.pet_sinogram import SinogramLayout
from recon.phantoms.phantom import Phantom
from recon.pet.normalisation import component_normalisation
from recon.pet.projector import tof_kernel_of
from recon.pet.randoms import randoms_from_singles, spread_over_tof
from recon.pet.resolution import GaussianPSF

logger = logging.getLogger(__name__)

F18_POSITRON_FRACTION = 0.9686
F18_HALF_LIFE_S = 6586.2


@dataclass(frozen=True)
class PETSimulationProtocol:
    """How the acquisition is simulated (units in the names)."""

    frame_duration_s: float = 600.0
    kappa: float = 1.0e-3  # expected counts per (Bq/mL * mm * s) along an unattenuated LOR, n_i = 1
    positron_fraction: float = F18_POSITRON_FRACTION
    half_life_s: float = F18_HALF_LIFE_S
    randoms_fraction: float = 0.15  # randoms / prompts
    scatter_fraction: float = 0.30  # scatter / (trues + scatter)
    crystal_efficiency_sd: float = 0.05
    fine_factor: int = 2
    rays_per_side: int = 2
    resolution_fwhm_mm: float = 2.5
    noise: bool = True

    def __post_init__(self) -> None:
        for name in ("frame_duration_s", "kappa", "positron_fraction", "half_life_s"):
            v = float(getattr(self, name))
            if not np.isfinite(v) or v <= 0:
                raise ValueError(f"{name} must be positive, got {v}")
        for name in ("randoms_fraction", "scatter_fraction"):
            v = float(getattr(self, name))
            if not 0.0 <= v < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {v}")
        if int(self.fine_factor) < 1 or int(self.rays_per_side) < 1:
            raise ValueError("fine_factor and rays_per_side must be >= 1")

    @property
    def decay_during_frame(self) -> float:
        lam_t = np.log(2.0) / self.half_life_s * self.frame_duration_s
        return float((1.0 - np.exp(-lam_t)) / lam_t)


@dataclass(frozen=True)
class PETSimulation:
    """A simulated frame: the acquisition and every expected component (non-TOF components (view, plane, radial))."""

    sinogram: PETSinogram
    trues: np.ndarray  # expected trues, layout shape
    scatter: np.ndarray  # expected scatter, layout shape
    randoms: np.ndarray  # expected randoms, layout shape
    normalisation: np.ndarray  # n_i, non-TOF shape
    crystal_efficiency: np.ndarray  # (n_rings, crystals_per_ring)
    singles_cps: np.ndarray  # (n_rings, crystals_per_ring)
    phantom: Phantom  # the fine phantom the data came from
    protocol: PETSimulationProtocol
    extra: dict = field(default_factory=dict)


def fine_grid(grid: ImageGrid, factor: int) -> ImageGrid:
    """A grid ``factor`` times finer covering the same box as ``grid``."""
    f = int(factor)
    shape = tuple(s * f for s in grid.shape)
    spacing = tuple(s / f for s in grid.spacing_mm)
    return ImageGrid(shape, spacing).recentred(grid.center_mm)


def _sub_lor_offsets(layout: SinogramLayout, rays_per_side: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified offsets of the LOR ends across the crystal faces: a list of (first, second) offsets
    in the scanner frame, each (n_views, n_radial, 3) for the transaxial tangent plus an axial shift."""
    sc = layout.scanner
    first, second = layout.crystal_pairs()
    ang = 2.0 * np.pi / sc.crystals_per_ring
    angle0 = np.deg2rad(float(sc.first_crystal_angle_deg))
    k = rays_per_side
    frac = (np.arange(k) + 0.5) / k - 0.5  # centres of k strata across the face
    out = []
    tan_first = np.stack([-np.sin(angle0 + first * ang), np.cos(angle0 + first * ang), np.zeros(first.shape)], axis=-1)
    tan_second = np.stack([-np.sin(angle0 + second * ang), np.cos(angle0 + second * ang), np.zeros(second.shape)], axis=-1)
    for ua in frac:
        for ub in frac:
            za = ua * sc.crystal_axial_mm
            zb = -ub * sc.crystal_axial_mm
            oa = tan_first * (ua * sc.crystal_transaxial_mm)
            ob = tan_second * (ub * sc.crystal_transaxial_mm)
            oa[..., 2] = za
            ob[..., 2] = zb
            out.append((oa.astype(np.float32), ob.astype(np.float32)))
    return out


def _project(image: Volume, a: np.ndarray, b: np.ndarray, tof: TOFKernel | None) -> np.ndarray:
    g = image.grid
    origin = np.asarray(g.origin_mm, np.float32)
    voxel = np.asarray(g.spacing_mm[::-1], np.float32)
    return joseph_forward(np.ascontiguousarray(image.data, np.float32), origin, voxel,
                          a.reshape(-1, 3), b.reshape(-1, 3), tof=tof)


def tof_kernel(layout: SinogramLayout) -> TOFKernel | None:
    """The scanner's TOF kernel for a TOF layout, None otherwise."""
    return tof_kernel_of(layout.scanner) if layout.tof else None


def expected_trues(phantom: Phantom, layout: SinogramLayout, placement: ScannerPlacement,
                   protocol: PETSimulationProtocol) -> np.ndarray:
    """Unnormalised expected trues (layout shape) from the fine phantom: sub-LOR average of exp(-mu L) * line integral."""
    act = phantom.activity
    if protocol.resolution_fwhm_mm > 0:
        blurred = GaussianPSF(act.grid, protocol.resolution_fwhm_mm).apply(np.ascontiguousarray(act.data))
        act = Volume(np.asarray(blurred, np.float32), act.grid, act.unit)
    a0, b0 = layout.lor_endpoints_mm()
    tof = tof_kernel(layout)
    total = np.zeros(layout.shape, np.float64)
    offsets = _sub_lor_offsets(layout, protocol.rays_per_side)
    for oa, ob in offsets:
        a = placement.to_patient(a0 + oa[:, None, :, :])
        b = placement.to_patient(b0 + ob[:, None, :, :])
        att = np.exp(-_project(phantom.mu_map, a, b, None)).reshape(layout.shape[:3])
        line = _project(act, a, b, tof).reshape(layout.shape)
        total += (line * (att[..., None] if layout.tof else att))
    total /= len(offsets)
    total *= layout.plane_weights()[None, :, None, None] if layout.tof else layout.plane_weights()[None, :, None]
    present = layout.transaxial_present()[:, None, :]
    total *= present[..., None] if layout.tof else present
    scale = protocol.kappa * protocol.positron_fraction * protocol.frame_duration_s * protocol.decay_during_frame
    return (total * scale).astype(np.float32)


def simulate_pet(phantom_factory: Callable[[ImageGrid], Phantom], grid: ImageGrid, layout: SinogramLayout,
                 placement: ScannerPlacement, protocol: PETSimulationProtocol, rng: np.random.Generator, *,
                 scatter_shape: np.ndarray | None = None) -> PETSimulation:
    """Simulate one frame. ``phantom_factory(grid)`` rasterises the phantom (activity Bq/mL at the frame
    start, mu at 511 keV) on the fine grid; ``grid`` is the reconstruction grid the fine grid refines.

    ``scatter_shape`` (the layout's shape, or non-TOF: then spread evenly over the TOF bins) gives the
    scatter's distribution over bins; it is scaled so that scatter / (trues + scatter) =
    ``protocol.scatter_fraction``. By default it is the single scatter simulation (TOF for TOF data) of
    the phantom rasterised on ``grid``, times the normalisation.
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError("rng must be a numpy.random.Generator")
    fine = fine_grid(grid, protocol.fine_factor)
    phantom = phantom_factory(fine)
    if abs(phantom.energy_kev - 511.0) > 1.0:
        raise ValueError(f"the phantom's mu-map is at {phantom.energy_kev} keV; PET needs 511 keV")
    sc = layout.scanner
    eff = np.clip(1.0 + protocol.crystal_efficiency_sd * rng.standard_normal((sc.n_rings, sc.crystals_per_ring)), 0.5, 1.5)
    eff[:, ~sc.crystal_present()] = 0.0
    norm = component_normalisation(layout, eff.ravel())
    raw = expected_trues(phantom, layout, placement, protocol)
    trues = raw * (norm[..., None] if layout.tof else norm)
    nontof_trues = trues.sum(axis=-1) if layout.tof else trues
    nontof_layout = SinogramLayout(layout.scanner, layout.n_radial, layout.span, layout.max_ring_difference)
    if scatter_shape is None and protocol.scatter_fraction > 0:
        from recon.pet.scatter import single_scatter_simulation  # noqa: PLC0415

        coarse = phantom_factory(grid)
        scatter_shape = single_scatter_simulation(coarse.activity, coarse.mu_map, layout, placement, tof=layout.tof)
        scatter_shape = scatter_shape * (norm[..., None] if layout.tof else norm)
    elif scatter_shape is None:
        scatter_shape = np.zeros(layout.shape[:3])
    scatter_shape = np.asarray(scatter_shape, np.float64)
    if tuple(scatter_shape.shape) not in (tuple(layout.shape[:3]), tuple(layout.shape)):
        raise ValueError(f"scatter_shape has shape {scatter_shape.shape}; expected {layout.shape[:3]} or {layout.shape}")
    if scatter_shape.shape != tuple(layout.shape):  # a non-TOF shape for TOF data: spread evenly over the bins
        scatter_shape = np.asarray(spread_over_tof(layout, scatter_shape.astype(np.float32)), np.float64)
    sf = protocol.scatter_fraction
    target = sf / (1.0 - sf) * float(nontof_trues.sum())
    scatter = (scatter_shape * (target / max(float(scatter_shape.sum()), 1e-30))).astype(np.float32)
    scatter_nt = scatter.sum(axis=-1) if layout.tof else scatter
    singles = eff * 1.0
    randoms_nt = np.asarray(randoms_from_singles(nontof_layout, singles, protocol.frame_duration_s), np.float64)
    rf = protocol.randoms_fraction
    want = rf / (1.0 - rf) * float(nontof_trues.sum() + scatter_nt.sum())
    r_scale = want / max(float(randoms_nt.sum()), 1e-30)
    randoms_nt = (randoms_nt * r_scale).astype(np.float32)
    singles_cps = singles * np.sqrt(r_scale)
    randoms = np.asarray(spread_over_tof(layout, randoms_nt.astype(np.float32)), np.float32)
    mean = trues + scatter + randoms
    if protocol.noise:
        prompts = rng.poisson(mean).astype(np.float32)
        delayed = rng.poisson(randoms_nt).astype(np.float32)
    else:
        prompts = mean.astype(np.float32)
        delayed = randoms_nt.copy()
    sino = PETSinogram(layout, prompts, protocol.frame_duration_s, delayed=delayed, placement=placement,
                       image_grid=grid)
    logger.info("simulated PET frame: %.3g trues, %.3g scatter, %.3g randoms expected", float(trues.sum()),
                float(scatter.sum()), float(randoms.sum()))
    return PETSimulation(sino, trues, scatter, randoms, norm, eff, singles_cps, phantom, protocol)


def events_from_sinogram(layout: SinogramLayout, counts: np.ndarray, frame_duration_s: float,
                         rng: np.random.Generator, scanner_name: str | None = None) -> ListModeEvents:
    """List-mode events that histogram back into ``counts`` (integer counts, layout shape): each count
    becomes one event between a ring pair of its plane, in random detector order (the TOF bin mirrored
    when reversed), at a uniform random time within the frame (sorted)."""
    c = np.asarray(counts)
    if tuple(c.shape) != tuple(layout.shape):
        raise ValueError(f"counts shape {c.shape} != layout {layout.shape}")
    if np.any(c < 0) or np.any(c != np.round(c)):
        raise ValueError("counts must be non-negative integers")
    flat = np.repeat(np.arange(c.size), c.reshape(-1).astype(np.int64))
    sc = layout.scanner
    tof = layout.n_tof
    t_bin = flat % tof
    rest = flat // tof
    radial = rest % layout.n_radial
    rest //= layout.n_radial
    plane = rest % layout.n_planes
    view = rest // layout.n_planes
    first, second = layout.crystal_pairs()
    pairs_of_plane = [np.argwhere(layout.ring_pair_plane() == p) for p in range(layout.n_planes)]
    pick = np.array([len(pairs_of_plane[p]) for p in range(layout.n_planes)])[plane]
    choice = (rng.random(flat.size) * pick).astype(np.int64)
    ring_pairs = np.zeros((flat.size, 2), np.int64)
    for p in np.unique(plane):
        sel = plane == p
        ring_pairs[sel] = pairs_of_plane[p][choice[sel]]
    da = ring_pairs[:, 0] * sc.crystals_per_ring + first[view, radial]
    db = ring_pairs[:, 1] * sc.crystals_per_ring + second[view, radial]
    swap = rng.random(flat.size) < 0.5
    da, db = np.where(swap, db, da), np.where(swap, da, db)
    t = np.where(swap, tof - 1 - t_bin, t_bin) if layout.tof else None
    order = rng.permutation(flat.size)
    times = np.sort(rng.random(flat.size) * frame_duration_s)
    return ListModeEvents(scanner_name or sc.name, da[order].astype(np.int32), db[order].astype(np.int32), times,
                          float(frame_duration_s), None if t is None else t[order].astype(np.int16))
