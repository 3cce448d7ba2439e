"""Data objects: arrays with their physical metadata (units in mm, s, keV, Bq)."""
from recon.data.collimator import COLLIMATOR_PRESETS, Collimator, get_collimator, lead_mu_per_mm
from recon.data.grid import ImageGrid, Volume
from recon.data.spect import EnergyWindow, SPECTAcquisition, SPECTGeometry
from recon.data.study import AcquisitionInfo, DoseInfo, PatientInfo

__all__ = [
    "AcquisitionInfo",
    "DoseInfo",
    "PatientInfo",
    "COLLIMATOR_PRESETS",
    "Collimator",
    "EnergyWindow",
    "ImageGrid",
    "SPECTAcquisition",
    "SPECTGeometry",
    "Volume",
    "get_collimator",
    "lead_mu_per_mm",
]
