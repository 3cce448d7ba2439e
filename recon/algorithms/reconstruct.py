"""Generic reconstruction of any :class:`~recon.algorithms.protocol.SystemModel`: subsets, then OSEM.

The data are moved to the model's device once; each subset's operator, data, additive term and
sensitivity image A_b^T 1 are built once before the iterations. The model is never changed.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from recon.algorithms.osem import OSEMProgress, osem
from recon.algorithms.protocol import Subset, SystemModel
from recon.algorithms.subsets import check_partition, interleaved_subsets
from recon.backend import to_device

logger = logging.getLogger(__name__)


def _check_count(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")


@dataclass(frozen=True)
class OSEMOptions:
    """Choices for :func:`reconstruct`: full passes over the data, subsets per pass, progress logging."""

    n_iterations: int = 4
    n_subsets: int = 8
    progress: bool = True

    def __post_init__(self) -> None:
        _check_count("n_iterations", self.n_iterations)
        _check_count("n_subsets", self.n_subsets)
        if not isinstance(self.progress, bool):
            raise TypeError(f"progress must be True or False, got {self.progress!r}")
        object.__setattr__(self, "n_iterations", int(self.n_iterations))
        object.__setattr__(self, "n_subsets", int(self.n_subsets))


def _full_data(model: SystemModel, name: str, array: Any) -> Any:
    """``array`` checked against the model's data shape, as C-contiguous float32 on the model's device."""
    if not hasattr(array, "shape"):
        array = np.asarray(array)
    expected = tuple(int(s) for s in model.data_shape)
    if tuple(array.shape) != expected:
        raise ValueError(f"{name} data shape {tuple(array.shape)} does not match the model's data shape {expected}")
    xp = model.xp
    dev = xp.ascontiguousarray(to_device(array, model.device), dtype=xp.float32)
    if not bool(xp.isfinite(dev).all()):
        raise ValueError(f"{name} data contain NaN or infinite values")
    if bool((dev < 0).any()):
        raise ValueError(f"{name} data contain negative values (min {float(dev.min())})")
    return dev


def _subset_sensitivity(model: SystemModel, op: Any, indices: Any, b: int) -> Any:
    """A_b^T 1, or the model's own sensitivity for subset b when it offers one.

    A list-mode model's operator maps to the recorded events only; its sensitivity must sum over
    every line of response that could have recorded an event, so such a model provides
    ``subset_sensitivity(indices)`` (an image of ``grid.shape`` on the model's device).
    """
    own = getattr(model, "subset_sensitivity", None)
    if own is None:
        xp = model.xp
        return op.adjoint(xp.ones(tuple(op.out_shape), dtype=xp.float32))
    sens = own(indices)
    if tuple(sens.shape) != tuple(model.grid.shape):
        raise ValueError(f"subset {b} sensitivity has shape {tuple(sens.shape)}, the grid is {tuple(model.grid.shape)}")
    return sens


def build_subsets(model: SystemModel, measured: Any, additive: Any | None, n_subsets: int) -> list[Subset]:
    """Per-subset operators, data, additive terms and sensitivity images A_b^T 1 (or the model's own,
    see :func:`_subset_sensitivity`), on the model's device.

    ``measured`` and ``additive`` (None: no additive term) have the model's ``data_shape``, on the host
    or the model's device; units are partitioned by :func:`interleaved_subsets`.
    """
    if not isinstance(model, SystemModel):
        raise TypeError(f"{type(model).__name__} does not implement the SystemModel protocol")
    measured_dev = _full_data(model, "measured", measured)
    additive_dev = None if additive is None else _full_data(model, "additive", additive)
    parts = interleaved_subsets(model.n_subset_units, n_subsets)
    check_partition(parts, model.n_subset_units)
    image_shape = tuple(model.grid.shape)
    subsets = []
    for b, indices in enumerate(parts):
        op = model.subset_operator(indices)
        if tuple(op.in_shape) != image_shape:
            raise ValueError(f"subset {b} operator takes image shape {tuple(op.in_shape)}, the grid is {image_shape}")
        y = model.subset_data(measured_dev, indices)
        r = None if additive_dev is None else model.subset_data(additive_dev, indices)
        sensitivity = _subset_sensitivity(model, op, indices, b)
        subsets.append(Subset(op, y, r, sensitivity))
    return subsets


def reconstruct(
    model: SystemModel,
    measured: Any,
    additive: Any | None,
    options: OSEMOptions | None = None,
    x0: Any | None = None,
    callback: Callable[[OSEMProgress], None] | None = None,
) -> Any:
    """OSEM estimate of x in y ~ Poisson(A x + additive); returns the image (``model.grid.shape``) on the
    model's device.

    ``measured`` and ``additive`` (same units as A x, e.g. counts; None for no additive term) have shape
    ``model.data_shape``. ``x0`` (default ones) is the non-negative start image, host or device.
    ``callback`` receives an :class:`OSEMProgress` after each sub-iteration.
    """
    opts = options or OSEMOptions()
    if not isinstance(opts, OSEMOptions):
        raise TypeError(f"options must be OSEMOptions, got {type(opts).__name__}")
    subsets = build_subsets(model, measured, additive, opts.n_subsets)
    start = None
    if x0 is not None:
        if not hasattr(x0, "shape"):
            x0 = np.asarray(x0, dtype=np.float32)
        if tuple(x0.shape) != tuple(model.grid.shape):
            raise ValueError(f"x0 shape {tuple(x0.shape)} does not match the model's grid {tuple(model.grid.shape)}")
        start = to_device(x0, model.device)
    if opts.progress:
        logger.info("OSEM: %d iterations x %d subsets of %d units on %s", opts.n_iterations, opts.n_subsets,
                    model.n_subset_units, model.device)
    return osem(subsets, opts.n_iterations, x0=start, callback=callback, progress=opts.progress)
