"""SPECT reconstruction: the SPECT system model and scatter term, handed to the generic OSEM.

y_theta = M . PSF_d . Att_theta . Rot_theta x + s_theta (:mod:`recon.spect.system_model`), with the
scatter expectation s from the energy windows (:mod:`recon.spect.scatter`) and M the detector's
fully sensitive rows read from the projections (:func:`recon.spect.detector_rows.row_mask`; the
identity when every row holds counts). Slices on masked rows are set to 0 in the result. The
reconstruction grid is the acquisition's, placed in patient space (``acq.image_grid``); a mu-map
must be on it.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from recon.algorithms.osem import OSEMProgress
from recon.algorithms.reconstruct import OSEMOptions, reconstruct
from recon.backend import to_host
from recon.data.grid import Volume
from recon.data.spect import SPECTAcquisition
from recon.spect.detector_rows import row_mask
from recon.spect.scatter import estimate_scatter
from recon.spect.plausibility import check_acquisition
from recon.spect.system_model import SPECTSystemModel

logger = logging.getLogger(__name__)


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
    detector_rows: bool = True  # model the detector's axial field of view (rows outside or partial: weight 0)

    def __post_init__(self) -> None:
        self.osem  # noqa: B018 - validates iterations, subsets and progress

    @property
    def osem(self) -> OSEMOptions:
        """The algorithm's share of these options (validated there)."""
        return OSEMOptions(self.n_iterations, self.n_subsets, self.progress)


def reconstruct_spect(
    acq: SPECTAcquisition,
    mu_map: Volume | None = None,
    options: SPECTReconOptions | None = None,
    callback: Callable[[OSEMProgress], None] | None = None,
) -> Volume:
    """OSEM reconstruction of the photopeak; returns a Volume in counts (per view duration) on the host,
    on ``acq.image_grid`` in the acquisition's frame of reference.

    ``mu_map`` (1/mm at the photopeak energy, on ``acq.image_grid``) is required when
    ``options.attenuation`` is True.
    """
    opts = options or SPECTReconOptions()
    osem_opts = opts.osem
    check_acquisition(acq)  # angles in radians or all equal refused; implausible frame duration or arc warned
    if opts.attenuation and mu_map is None:
        raise ValueError("attenuation correction requested but no mu-map given (use attenuation=False to skip)")
    rows = row_mask(acq) if opts.detector_rows else None
    if rows is not None and (rows < 1).any():
        on = np.nonzero(rows)[0]
        if on.size == 0:
            raise ValueError("no detector row holds counts: nothing to reconstruct")
        logger.info("detector rows %d-%d of %d fully sensitive: the other rows (outside the field of view or "
                    "partially shielded) are left out of the model and their slices set to 0", on[0], on[-1],
                    rows.size)
    model = SPECTSystemModel(
        acq.geometry,
        acq.collimator,
        acq.photon_energy_kev,
        mu_map=mu_map if opts.attenuation else None,
        psf=opts.psf,
        device=opts.device,
        grid=acq.image_grid,
        row_weights=rows,
    )
    scatter = estimate_scatter(acq, opts.scatter)
    if opts.progress:
        logger.info("SPECT OSEM: attenuation=%s, psf=%s, scatter=%s", model.attenuation is not None, opts.psf,
                    opts.scatter)
    x = to_host(reconstruct(model, acq.photopeak_counts, scatter, osem_opts, callback=callback))
    if model.row_weights is not None:
        x = x * (rows > 0).astype(x.dtype)[:, None, None]  # slices on rows the detector does not see fully
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
    if model.row_weights is not None:
        on = np.nonzero(rows)[0]
        meta["detector_rows"] = [int(on[0]), int(on[-1])]
    return Volume(x, model.grid, unit="counts", metadata=meta,
                  frame_of_reference_uid=acq.info.frame_of_reference_uid)
