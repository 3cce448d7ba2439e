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
from recon.data.pet import ListModeEvents, PETSinogram, SinogramCorrections
from recon.data.pet_sinogram import SinogramLayout
from recon.pet.attenuation import attenuation_factors
from recon.pet.projector import SinogramProjector
from recon.pet.system_model import PETListModeModel, PETSinogramModel

logger = logging.getLogger(__name__)

SCATTER_METHODS = ("sss", "none")
SCATTER_SUBITERATIONS = 16  # OSEM sub-iterations behind each scatter update's image (at least)
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


def prepare_model(sino: PETSinogram, mu_map: Volume | None, corrections: SinogramCorrections | None,
                  options: PETReconOptions) -> tuple[PETSinogramModel, np.ndarray | None, PETCorrections]:
    """The sinogram model of ``sino`` with its multiplicative factors, and the additive term
    (randoms + scatter, layout shape) with the corrections used.

    Stored corrections (``corrections``: randoms, normalisation, attenuation factors) are used where
    given; attenuation factors are computed from ``mu_map`` otherwise; randoms from the delayed
    coincidences; scatter by SSS from a first reconstruction, ``scatter_iterations`` times.
    """
    opts = options
    layout = sino.layout
    device = resolve_device(opts.device)
    grid = _grid_of(sino, mu_map)
    if corrections is not None and corrections.layout.shape[:3] != layout.shape[:3]:
        raise ValueError("the stored corrections were made for another sinogram layout")
    stored = corrections or SinogramCorrections(layout)
    norm = None
    if stored.normalisation is not None:
        from recon.pet.normalisation import check_normalisation  # noqa: PLC0415

        norm = check_normalisation(layout, stored.normalisation)
    if mu_map is not None and not mu_map.grid.same_as(grid):
        raise ValueError("the mu-map must lie on the reconstruction grid (resample it first)")
    att = None
    if opts.attenuation:
        if mu_map is not None:
            proj = SinogramProjector(layout, sino.placement, grid, device)
            att = np.asarray(to_host(attenuation_factors(proj, mu_map)), np.float32)
        elif stored.attenuation_factors is not None:
            att = stored.attenuation_factors
        else:
            raise ValueError("attenuation correction needs a 511 keV mu-map or stored attenuation factors "
                             "(or switch attenuation off)")
    if opts.scatter == "sss" and mu_map is None:
        raise ValueError("scatter estimation (sss) needs the 511 keV mu-map (or scatter='none')")
    m = np.ones(layout.shape[:3], np.float32)
    for factor in (norm, att):
        if factor is not None:
            m *= factor
    if opts.randoms == "none":
        randoms = None
    elif stored.randoms is not None:
        from recon.pet.randoms import spread_over_tof  # noqa: PLC0415

        randoms = np.asarray(spread_over_tof(layout, stored.randoms), np.float32)
    else:
        randoms = _randoms(sino, opts)
    psf = (opts.psf_fwhm_mm or layout.scanner.spatial_resolution_fwhm_mm) if opts.psf else None
    model = PETSinogramModel(layout, sino.placement, grid, multiplicative=m, psf_fwhm_mm=psf, device=device)
    additive = None if randoms is None else randoms.copy()
    scatter = None
    scale = None
    if opts.scatter == "sss":
        from recon.pet.scatter_update import update_scatter  # noqa: PLC0415

        # each update's image: at least SCATTER_SUBITERATIONS OSEM updates, continued from the last one (an
        # image of too few updates has its activity in the wrong place and gives the wrong scatter shape)
        first = OSEMOptions(max(1, -(-SCATTER_SUBITERATIONS // opts.n_subsets)), opts.n_subsets, progress=False)
        x = None
        for k in range(int(opts.scatter_iterations)):
            x = reconstruct(model, sino.prompts, additive, first, x0=x)
            scatter, scale = update_scatter(model, to_host(x), sino, mu_map, randoms, norm, att)
            additive = scatter if randoms is None else randoms + scatter
            logger.info("scatter estimate %d/%d: scale %.4g, %.3g counts", k + 1, opts.scatter_iterations, scale,
                        float(scatter.sum()))
    notes = {"psf_fwhm_mm": psf}
    return model, additive, PETCorrections(m, randoms, scatter, att, norm, scale, notes)


def _volume(x: Any, sino: PETSinogram, model: Any, opts: PETReconOptions, used: PETCorrections, mode: str) -> Volume:
    layout = sino.layout
    meta = {"modality": "PT", "scanner": layout.scanner.name, "tof": layout.tof, "span": layout.span, "mode": mode,
            "iterations": opts.n_iterations, "subsets": opts.n_subsets, "psf_fwhm_mm": used.notes.get("psf_fwhm_mm"),
            "attenuation": used.attenuation is not None, "randoms": opts.randoms, "scatter": opts.scatter}
    return Volume(np.asarray(to_host(x), np.float32), model.grid, "counts", meta, sino.info.frame_of_reference_uid)


def reconstruct_pet(sino: PETSinogram, mu_map: Volume | None = None, *,
                    corrections: SinogramCorrections | None = None, options: PETReconOptions | None = None,
                    callback: Callable[[OSEMProgress], None] | None = None) -> tuple[Volume, PETCorrections]:
    """Sinogram OSEM of one frame; returns the Volume ("counts") and the corrections used."""
    opts = options or PETReconOptions()
    model, additive, used = prepare_model(sino, mu_map, corrections, opts)
    x = reconstruct(model, sino.prompts, additive, OSEMOptions(opts.n_iterations, opts.n_subsets, opts.progress),
                    callback=callback)
    return _volume(x, sino, model, opts, used, "sinogram"), used


def reconstruct_pet_listmode(events: ListModeEvents, sino: PETSinogram, mu_map: Volume | None = None, *,
                             corrections: SinogramCorrections | None = None, options: PETReconOptions | None = None,
                             callback: Callable[[OSEMProgress], None] | None = None) -> tuple[Volume, PETCorrections]:
    """List-mode OSEM of ``events``; ``sino`` is their span-1 histogram (same layout, from
    :func:`recon.data.pet_histogram.histogram_events`), used for the corrections (randoms from the
    delayed events, scatter) and the sensitivity. The additive term of each event is that of its bin."""
    opts = options or PETReconOptions()
    model, additive, used = prepare_model(sino, mu_map, corrections, opts)
    lm = PETListModeModel(sino.layout, sino.placement, model.grid, events, multiplicative=used.multiplicative,
                          psf_fwhm_mm=used.notes.get("psf_fwhm_mm"), device=model.device)
    ones = np.ones(lm.data_shape, np.float32)
    event_additive = None if additive is None else lm.event_values(additive)
    x = reconstruct(lm, ones, event_additive, OSEMOptions(opts.n_iterations, opts.n_subsets, opts.progress),
                    callback=callback)
    return _volume(x, sino, lm, opts, used, "list-mode"), used
