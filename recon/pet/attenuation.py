"""PET attenuation factors: exp(-line integral of mu at 511 keV) per sinogram bin or list-mode event.

The factor of a line of response is ``exp(-integral of mu (1/mm) along the LOR)``, independent of
where on the LOR the annihilation happened, so it is non-TOF: sinogram factors have the non-TOF
shape (views, planes, radial) and broadcast over a TOF axis as ``factors[..., None]``. Line
integrals use the same Joseph projector as the system model, without plane weights and with
block-gap bins included.

The mu-map must be at 511 keV, in 1/mm, on the projector's grid. Values are judged by the median of
the body voxels (mu above half of water), as :mod:`recon.spect.plausibility` does (its helpers are
reused): above ``MU_511_WATER_FACTOR`` x water(511 keV) = 0.0096/mm is refused as a map at a SPECT
energy (water 0.0154/mm at 140 keV); above 3 x water as 1/cm (0.096 per "mm"); a map with no body
voxel, or a body median below ``MU_511_MIN_BODY``, as not in 1/mm at 511 keV (e.g. 10 x too low), since
it would silently under-correct. :func:`check_mu_map_511` is the one check used by the SSS as well.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np

from recon.backend import array_module, to_device, to_host
from recon.data.grid import Volume
from recon.pet.projector import ListModeProjector, SinogramProjector
from recon.spect.plausibility import BODY_FRACTION, check_mu_values, water_and_bone_mu_per_mm

logger = logging.getLogger(__name__)

PET_ENERGY_KEV = 511.0
MU_511_WATER_FACTOR = 1.3  # body median above 1.3 x water(511): a map at a lower energy (140 keV reads 1.6 x)
MU_511_MIN_BODY = 0.0080  # 1/mm: body median below this (fat 0.0093, water 0.0096) is not a 511 keV map in 1/mm


def check_mu_map_511(mu_map: Volume) -> np.ndarray:
    """The mu-map as a float32 host array, refused unless in 1/mm at 511 keV: unit string, negative
    values, 1/cm (body median above 3 x water), a lower energy (body median above
    ``MU_511_WATER_FACTOR`` x water), values far too low (no voxel above half of water, or a body
    median below ``MU_511_MIN_BODY`` /mm: another unit, or an empty map). The one check of every
    PET consumer of a mu-map (attenuation factors, SSS, ``recon pet``)."""
    if not isinstance(mu_map, Volume):
        raise ValueError(f"mu_map must be a Volume in 1/mm, got {type(mu_map).__name__}")
    if mu_map.unit != "1/mm":
        raise ValueError(f"mu_map unit must be '1/mm', got {mu_map.unit!r}")
    mu = np.asarray(to_host(mu_map.data), np.float32)
    check_mu_values(mu, PET_ENERGY_KEV)
    water = water_and_bone_mu_per_mm(PET_ENERGY_KEV)[0]
    body = mu[mu > BODY_FRACTION * water]
    if body.size == 0:
        raise ValueError(f"mu_map has no attenuating body (no voxel above {BODY_FRACTION * water:.2g} 1/mm, half of "
                         "water at 511 keV): not at 511 keV in 1/mm (another unit?) or an empty map")
    median = float(np.median(body))
    if median > MU_511_WATER_FACTOR * water:
        raise ValueError(f"mu_map is not at 511 keV: body values (median {median:.4g} 1/mm) are too high for 511 keV "
                         f"(water 0.0096/mm; above {MU_511_WATER_FACTOR:g} x water): a mu-map at a SPECT energy "
                         "(water 0.0154/mm at 140 keV)? Convert the CT at 511 keV")
    if median < MU_511_MIN_BODY:
        raise ValueError(f"mu_map is not at 511 keV in 1/mm: body values (median {median:.4g} 1/mm) are too low "
                         f"(water 0.0096/mm; below {MU_511_MIN_BODY:g})")
    return mu


def _check_grid(mu_map: Volume, projector: Any) -> None:
    if mu_map.grid != projector.grid:
        raise ValueError(f"mu_map grid {mu_map.grid} differs from the projector's grid {projector.grid}; "
                         "resample the mu-map onto it (recon.physics.attenuation.ct_to_mu_map)")


def attenuation_factors(projector: SinogramProjector | ListModeProjector, mu_map_511: Volume,
                        indices: Any | None = None) -> Any:
    """exp(-line integral of ``mu_map_511`` (1/mm)) on the projector's device.

    SinogramProjector: (len(views), n_planes, n_radial) for the views ``indices`` (default all).
    ListModeProjector: (len(events),) for the events ``indices`` (default all; block-gap events get 1).
    """
    if not isinstance(projector, (SinogramProjector, ListModeProjector)):
        raise ValueError(f"projector must be a SinogramProjector or ListModeProjector, got {type(projector).__name__}")
    host = check_mu_map_511(mu_map_511)
    _check_grid(mu_map_511, projector)
    mu = to_device(host, projector.device)
    integrals = projector.line_integrals(mu, indices)
    xp = array_module(integrals)
    return xp.exp(-integrals).astype(xp.float32)
