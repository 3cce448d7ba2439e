"""Reconstruction algorithms against the SystemModel protocol only (no modality, no I/O).

A modality builds a :class:`SystemModel` (grid, data shape, per-subset operators and data);
:func:`reconstruct` partitions it into subsets and runs :func:`osem`.
"""
from recon.algorithms.adjoint import AdjointTestResult, adjointness_test, assert_adjoint, operator_norm
from recon.algorithms.operators import (
    AdjointOperator,
    ComposedOperator,
    ElementwiseMultiply,
    IdentityOperator,
    ScalingOperator,
    adjoint_of,
    compose,
)
from recon.algorithms.osem import OSEMProgress, osem
from recon.algorithms.protocol import LinearOperator, Subset, SystemModel
from recon.algorithms.reconstruct import OSEMOptions, build_subsets, reconstruct
from recon.algorithms.subsets import check_partition, interleaved_subsets

__all__ = [
    "AdjointOperator",
    "AdjointTestResult",
    "ComposedOperator",
    "ElementwiseMultiply",
    "IdentityOperator",
    "LinearOperator",
    "OSEMOptions",
    "OSEMProgress",
    "ScalingOperator",
    "Subset",
    "SystemModel",
    "adjoint_of",
    "adjointness_test",
    "assert_adjoint",
    "build_subsets",
    "check_partition",
    "compose",
    "interleaved_subsets",
    "operator_norm",
    "osem",
    "reconstruct",
]
