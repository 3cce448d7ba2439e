"""SPECT reconstruction end to end: system model, scatter term, subsets, OSEM.

Data are moved to the device once here; the OSEM loop runs without host copies.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from recon.algorithms.osem import OSEMProgress, osem
from recon.algorithms.protocol import Subset
from recon.backend import to_device, to_host
from recon.data.grid import Volume
from recon.data.spect import SPECTAcquisition
from recon.spect.scatter import estimate_scatter
from recon.spect.system_model import SPECTSystemModel

logger = logging.getLogger(__name__)


def interleaved_subsets(n_views: int, n_subsets: int) -> list[np.ndarray]:
    """View indices of each subset: subset b holds views b, b + n, b + 2n, ..."""
    if n_subsets < 1:
        raise ValueError(f"n_subsets must be >= 1, got {n_subsets}")
    if n_subsets > n_views:
        raise ValueError(f"n_subsets ({n_subsets}) exceeds the number of views ({n_views})")
    return [np.arange(b, n_views, n_subsets, dtype=np.int64) for b in range(n_subsets)]


def build_subsets(model: SPECTSystemModel, measured: np.ndarray, additive: np.ndarray | None,
                  n_subsets: int) -> list[Subset]:
    """Per-subset operators, data and sensitivity images (A_b^T 1), all on the model's device, computed once."""
    xp = model.xp
    measured_dev = to_device(np.ascontiguousarray(measured, dtype=np.float32), model.device)
    additive_dev = None if additive is None else to_device(np.ascontiguousarray(additive, dtype=np.float32), model.device)
    subsets = []
    for views in interleaved_subsets(model.geometry.n_views, n_subsets):
        op = model.subset_operator(views)
        v = op.views
        y = xp.ascontiguousarray(measured_dev[v])
        r = None if additive_dev is None else xp.ascontiguousarray(additive_dev[v])
        sens = op.adjoint(xp.ones(op.out_shape, dtype=xp.float32))
        subsets.append(Subset(op, y, r, sens))
    return subsets


@dataclass(frozen=True)
class SPECTReconOptions:
    """Choices for :func:`reconstruct_spect`."""

    n_iterations: int = 4
    n_subsets: int = 8
    attenuation: bool = True
    psf: bool = True
    scatter: str = "tew"
    device: str = "auto"
    progress: bool = True


def reconstruct_spect(
    acq: SPECTAcquisition,
    mu_map: Volume | None = None,
    options: SPECTReconOptions | None = None,
    callback: Callable[[OSEMProgress], None] | None = None,
) -> Volume:
    """OSEM reconstruction of the photopeak; returns a Volume in counts (per view duration) on the host.

    ``mu_map`` (1/mm at the photopeak energy, on the projections' grid) is required when
    ``options.attenuation`` is True.
    """
    opts = options or SPECTReconOptions()
    if opts.attenuation and mu_map is None:
        raise ValueError("attenuation correction requested but no mu-map given (use attenuation=False to skip)")
    model = SPECTSystemModel(
        acq.geometry,
        acq.collimator,
        acq.photon_energy_kev,
        mu_map=mu_map if opts.attenuation else None,
        psf=opts.psf,
        device=opts.device,
    )
    scatter = estimate_scatter(acq, opts.scatter)
    subsets = build_subsets(model, acq.photopeak_counts, scatter, opts.n_subsets)
    logger.info(
        "SPECT OSEM: %d iterations x %d subsets on %s (attenuation=%s, psf=%s, scatter=%s)",
        opts.n_iterations, opts.n_subsets, model.device, model.attenuation is not None, opts.psf, opts.scatter,
    )
    x = osem(subsets, opts.n_iterations, callback=callback, progress=opts.progress)
    meta: dict[str, Any] = {
        "algorithm": "OSEM",
        "iterations": opts.n_iterations,
        "subsets": opts.n_subsets,
        "attenuation_correction": model.attenuation is not None,
        "psf": opts.psf,
        "scatter": opts.scatter,
        "collimator": acq.collimator.name,
        "frame_duration_s": acq.frame_duration_s,
        "radionuclide": acq.radionuclide,
        "device": model.device,
    }
    return Volume(to_host(x), model.grid, unit="counts", metadata=meta)
