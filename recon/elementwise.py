"""Fused elementwise steps on NumPy or CuPy arrays, in place: the recon-side entry to :mod:`kernels.osem_update`.

``recon/algorithms`` imports no ``kernels`` module directly (its import rule, kept by
``tests/test_algorithms.py``: the kernels package is mostly modality code); these two operations are
modality-free array arithmetic, so the OSEM loop reaches them through this module. The array decides the
device (Numba CPU loops for NumPy, numba.cuda kernels for CuPy); nothing is allocated and the host never
waits for the device.
"""
from __future__ import annotations

from kernels.osem_update import osem_update_into, poisson_ratio_into

__all__ = ["osem_update_into", "poisson_ratio_into"]
