"""recon: quantitative SPECT/PET reconstruction (OSEM with attenuation, scatter and resolution modelling).

The public API is what this module exports; everything else may change.
"""
from recon.data import (
    COLLIMATOR_PRESETS,
    Collimator,
    EnergyWindow,
    ImageGrid,
    SPECTAcquisition,
    SPECTGeometry,
    Volume,
    get_collimator,
)

__version__ = "0.1.0"

__all__ = [
    "COLLIMATOR_PRESETS",
    "Collimator",
    "EnergyWindow",
    "ImageGrid",
    "SPECTAcquisition",
    "SPECTGeometry",
    "Volume",
    "get_collimator",
]
