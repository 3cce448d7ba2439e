"""Physics both modalities share: CT numbers -> attenuation at any energy, resampling in patient space.

Pure array physics on :mod:`recon.data` objects; imports nothing from
``recon.io``, ``recon.spect``, ``recon.pet`` or ``recon.quant``.
"""
from recon.physics.attenuation import (
    DEFAULT_CT_EFFECTIVE_ENERGY_KEV,
    BilinearHUModel,
    CTCoverageError,
    bilinear_model,
    cortical_bone_hu,
    ct_effective_energy_kev,
    ct_to_mu_map,
    hu_to_mu,
)
from recon.physics.resample import grid_affine, resample, resample_grid

__all__ = [
    "DEFAULT_CT_EFFECTIVE_ENERGY_KEV",
    "BilinearHUModel",
    "CTCoverageError",
    "bilinear_model",
    "cortical_bone_hu",
    "ct_effective_energy_kev",
    "ct_to_mu_map",
    "grid_affine",
    "hu_to_mu",
    "resample",
    "resample_grid",
]
