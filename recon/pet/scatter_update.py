"""One scatter update inside a PET reconstruction: SSS from the current image, scaled to the tails.

scatter_i = s * n_i * SSS_i(x_body, mu), with n the normalisation (scattered photons meet the same
crystal efficiencies), x_body the current estimate inside the attenuating body (activity outside it
is what the first, scatter-free estimates put there to explain the scatter tails), and s fitted on the
emission tails (LORs that miss the body, so hold no trues): prompts ~ s * n * SSS + randoms there.
TOF data: the TOF single scatter simulation (:mod:`kernels.scatter_sss_tof`), the tail fit on its sum
over the TOF bins.
"""
from __future__ import annotations

import numpy as np

from recon.backend import to_host
from recon.data.grid import Volume
from recon.data.pet import PETSinogram
from recon.pet.scatter import single_scatter_simulation, tail_mask, fit_tail_scale
from recon.pet.system_model import PETSinogramModel

BODY_MU_PER_MM = 0.002  # mu at 511 keV above this (a fifth of water) counts as body


def _non_tof(layout, a: np.ndarray | None) -> np.ndarray | None:
    if a is None:
        return None
    a = np.asarray(a, np.float64)
    return a.sum(axis=-1) if layout.tof else a


def update_scatter(model: PETSinogramModel, image: np.ndarray, sino: PETSinogram, mu_map: Volume,
                   randoms: np.ndarray | None, normalisation: np.ndarray | None,
                   attenuation: np.ndarray | None) -> tuple[np.ndarray, float]:
    """(scatter in the layout's shape, fitted scale) for the current ``image`` (counts, model grid)."""
    layout = sino.layout
    body = np.asarray(mu_map.data) > BODY_MU_PER_MM
    activity = Volume(np.where(body, np.asarray(image, np.float32), 0.0).astype(np.float32), model.grid, "Bq/mL")
    sss = single_scatter_simulation(activity, mu_map, layout, sino.placement, tof=layout.tof)
    if normalisation is not None:
        n = np.asarray(normalisation, np.float64)
        sss = sss * (n[..., None] if layout.tof else n)
    sss_nt = _non_tof(layout, sss)
    background = None if randoms is None else _non_tof(layout, randoms)
    if attenuation is None:
        from recon.pet.attenuation import attenuation_factors  # noqa: PLC0415
        from recon.pet.projector import SinogramProjector  # noqa: PLC0415

        attenuation = to_host(attenuation_factors(SinogramProjector(layout, sino.placement, model.grid, "cpu"), mu_map))
    mask = tail_mask(np.asarray(attenuation)) & (sss_nt > 0)
    prompts = _non_tof(layout, sino.prompts)
    scale, _ = fit_tail_scale(sss_nt, prompts, mask, background=background)
    return (scale * sss).astype(np.float32), float(scale)
