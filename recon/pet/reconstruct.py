"""PET reconstruction of one frame: corrections, then the shared OSEM.

1. multiplicative factors m = normalisation x attenuation (attenuation from a 511 keV mu-map);
2. randoms: the smoothed delayed coincidences (ML fan-sum singles), or none;
3. scatter: single scatter simulation from a first estimate of the activity, scaled to the
   emission tails, refined ``scatter_iterations`` times;
4. OSEM (:func:`recon.algorithms.reconstruct`) with y ~ Poisson(m G R x + randoms + scatter).

The result is a Volume in "counts" on the frame's grid; :mod:`recon.pet.calibration` turns it
into Bq/mL.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recon.algorithms.osem import OSEMProgress
from recon.algorithms.reconstruct import OSEMOptions, reconstruct
from recon.backend import resolve_device, to_host
from recon.data.grid import ImageGrid, Volume
from recon.data.pet import PETSinogram
from recon.data.pet_sinogram import SinogramLayout
from recon.pet.attenuation import attenuation_factors
from recon.pet.projector import SinogramProjector
from recon.pet.system_model import PETSinogramModel

logger = logging.getLogger(__name__)

SCATTER_METHODS = ("sss", "none")
RANDOMS_METHODS = ("delayed", "none")


@dataclass(frozen=True)
class PETReconOptions:
    """Choices for :func:`reconstruct_pet` (defaults: 3 iterations x 7 subsets, TOF when the data have it)."""

    n_iterations: int = 3
    n_subsets: int = 7
    psf: bool = True
    psf_fwhm_mm: float | None = None  # None: the scanner's spatial resolution
    attenuation: bool = True
    randoms: str = "delayed"
    scatter: str = "sss"
    scatter_iterations: int = 2
    device: str = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        OSEMOptions(self.n_iterations, self.n_subsets, self.progress)  # same checks
        if self.scatter not in SCATTER_METHODS:
            raise ValueError(f"scatter must be one of {SCATTER_METHODS}, got {self.scatter!r}")
        if self.randoms not in RANDOMS_METHODS:
            raise ValueError(f"randoms must be one of {RANDOMS_METHODS}, got {self.randoms!r}")
        if int(self.scatter_iterations) < 1:
            raise ValueError(f"scatter_iterations must be >= 1, got {self.scatter_iterations}")
        if self.psf_fwhm_mm is not None and not (np.isfinite(self.psf_fwhm_mm) and self.psf_fwhm_mm > 0):
            raise ValueError(f"psf_fwhm_mm must be positive (mm), got {self.psf_fwhm_mm}")


@dataclass(frozen=True)
class PETCorrections:
    """The terms of the model used for a frame (non-TOF arrays (view, plane, radial) unless noted)."""

    multiplicative: np.ndarray
    randoms: np.ndarray | None  # layout shape
    scatter: np.ndarray | None  # layout shape
    attenuation: np.ndarray | None
    normalisation: np.ndarray | None
    scatter_scale: float | None = None
    notes: dict[str, Any] = field(default_factory=dict)


def default_grid(layout: SinogramLayout, voxel_mm: float = 4.0, fov_mm: float | None = None) -> ImageGrid:
    """A grid centred in the scanner covering the radial field of view and the axial extent."""
    sc = layout.scanner
    a, b = layout.transaxial_endpoints_mm()
    d = np.abs(a[..., 0] * (b - a)[..., 1] - a[..., 1] * (b - a)[..., 0]) / np.linalg.norm(b - a, axis=-1)
    fov = float(2.0 * d.max()) if fov_mm is None else float(fov_mm)
    n_xy = int(np.ceil(fov / voxel_mm))
    n_z = max(1, int(round(sc.axial_fov_mm / voxel_mm)))
    return ImageGrid.centered((n_z, n_xy, n_xy), (voxel_mm, voxel_mm, voxel_mm))


def _grid_of(sino: PETSinogram, mu_map: Volume | None) -> ImageGrid:
    if sino.image_grid is not None:
        return sino.image_grid
    if mu_map is not None:
        return mu_map.grid
    g = default_grid(sino.layout)
    return g.recentred(sino.placement.field_of_view_centre_mm())


def _randoms(sino: PETSinogram, options: PETReconOptions) -> np.ndarray | None:
    if options.randoms == "none":
        return None
    if sino.delayed is None:
        raise ValueError("randoms='delayed' needs the delayed coincidences; the input has none (use randoms='none')")
    from recon.pet.randoms import randoms_from_delayed  # noqa: PLC0415

    return np.asarray(randoms_from_delayed(sino.layout, sino.delayed), np.float32)


def reconstruct_pet(sino: PETSinogram, mu_map: Volume | None = None, normalisation: np.ndarray | None = None,
                    options: PETReconOptions | None = None,
                    callback: Callable[[OSEMProgress], None] | None = None) -> tuple[Volume, PETCorrections]:
    """Reconstruct one frame; returns the Volume ("counts") and the corrections used."""
    opts = options or PETReconOptions()
    layout = sino.layout
    device = resolve_device(opts.device)
    grid = _grid_of(sino, mu_map)
    norm = None
    if normalisation is not None:
        from recon.pet.normalisation import check_normalisation  # noqa: PLC0415

        norm = check_normalisation(layout, normalisation)
    if opts.attenuation and mu_map is None:
        raise ValueError("attenuation correction needs a 511 keV mu-map (or switch attenuation off)")
    if (opts.attenuation or opts.scatter == "sss") and mu_map is not None and not mu_map.grid.same_as(grid):
        raise ValueError("the mu-map must lie on the reconstruction grid (resample it first)")
    if opts.scatter == "sss" and mu_map is None:
        raise ValueError("scatter estimation (sss) needs the mu-map")
    att = None
    if opts.attenuation:
        att = np.asarray(to_host(attenuation_factors(SinogramProjector(layout, sino.placement, grid, device), mu_map)),
                         np.float32)
    m = np.ones(layout.shape[:3], np.float32)
    if norm is not None:
        m *= norm
    if att is not None:
        m *= att
    randoms = _randoms(sino, opts)
    psf = (opts.psf_fwhm_mm or layout.scanner.spatial_resolution_fwhm_mm) if opts.psf else None
    model = PETSinogramModel(layout, sino.placement, grid, multiplicative=m, psf_fwhm_mm=psf, device=device)
    additive = None if randoms is None else randoms.copy()
    scatter = None
    scale = None
    if opts.scatter == "sss":
        from recon.pet.scatter_update import update_scatter  # noqa: PLC0415

        first = OSEMOptions(1, opts.n_subsets, progress=False)
        for k in range(int(opts.scatter_iterations)):
            x = reconstruct(model, sino.prompts, additive, first)
            scatter, scale = update_scatter(model, to_host(x), sino, mu_map, randoms, norm, att)
            additive = scatter if randoms is None else randoms + scatter
            logger.info("scatter estimate %d/%d: scale %.4g, %.3g counts", k + 1, opts.scatter_iterations, scale,
                        float(scatter.sum()))
    x = reconstruct(model, sino.prompts, additive, OSEMOptions(opts.n_iterations, opts.n_subsets, opts.progress),
                    callback=callback)
    meta = {"modality": "PT", "scanner": layout.scanner.name, "tof": layout.tof, "span": layout.span,
            "iterations": opts.n_iterations, "subsets": opts.n_subsets, "psf_fwhm_mm": psf,
            "attenuation": att is not None, "randoms": opts.randoms, "scatter": opts.scatter}
    volume = Volume(np.asarray(to_host(x), np.float32), grid, "counts", meta, sino.info.frame_of_reference_uid)
    return volume, PETCorrections(m, randoms, scatter, att, norm, scale)
