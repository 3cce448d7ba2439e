"""recon: quantitative SPECT/PET reconstruction (OSEM with attenuation, scatter and resolution modelling).

The public API is what this module exports; everything else may change. Submodules
import lazily where they pull in heavy dependencies (CuPy, pydicom, h5py).
"""
from recon.algorithms import (
    AdjointOperator,
    AdjointTestResult,
    ComposedOperator,
    ElementwiseMultiply,
    IdentityOperator,
    LinearOperator,
    OSEMOptions,
    OSEMProgress,
    ScalingOperator,
    Subset,
    SystemModel,
    adjoint_of,
    adjointness_test,
    assert_adjoint,
    build_subsets,
    check_partition,
    compose,
    interleaved_subsets,
    operator_norm,
    osem,
    reconstruct,
)
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
from recon.quant.calibration import Calibration, SPECTCalibration, calibrate, sensitivity_from_planar, sensitivity_from_reconstruction
from recon.quant.decay import acquisition_decay_factor, decay_factor
from recon.data.radionuclides import Radionuclide, get_radionuclide
from recon.spect.reconstruct import SPECTReconOptions, reconstruct_spect
from recon.spect.scatter import estimate_scatter
from recon.spect.simulate import AcquisitionProtocol, simulate_spect
from recon.spect.system_model import SPECTSystemModel

__version__ = "0.1.0"

__all__ = [
    "AcquisitionProtocol",
    "AdjointOperator",
    "AdjointTestResult",
    "COLLIMATOR_PRESETS",
    "Calibration",
    "Collimator",
    "ComposedOperator",
    "ElementwiseMultiply",
    "EnergyWindow",
    "IdentityOperator",
    "ImageGrid",
    "LinearOperator",
    "OSEMOptions",
    "OSEMProgress",
    "Radionuclide",
    "SPECTAcquisition",
    "SPECTCalibration",
    "SPECTGeometry",
    "SPECTReconOptions",
    "SPECTSystemModel",
    "ScalingOperator",
    "Subset",
    "SystemModel",
    "Volume",
    "acquisition_decay_factor",
    "adjoint_of",
    "adjointness_test",
    "assert_adjoint",
    "build_subsets",
    "calibrate",
    "check_partition",
    "compose",
    "decay_factor",
    "estimate_scatter",
    "get_collimator",
    "get_radionuclide",
    "interleaved_subsets",
    "operator_norm",
    "osem",
    "reconstruct",
    "reconstruct_spect",
    "sensitivity_from_planar",
    "sensitivity_from_reconstruction",
    "simulate_spect",
]
