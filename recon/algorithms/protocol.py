"""What an algorithm is handed: a system model, its linear operators and per-subset terms.

Nothing modality-specific: SPECT and PET models implement :class:`SystemModel`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from recon.data.grid import ImageGrid


@runtime_checkable
class LinearOperator(Protocol):
    """A linear map with its exact adjoint; arrays stay in the caller's array module.

    Optional, for loops that must not allocate (OSEM; see :func:`recon.algorithms.operators.apply_into`,
    which falls back to ``apply`` for operators without them):

    - ``apply_into(x, out) -> out``: write A x into the preallocated ``out`` (shape ``out_shape``,
      float32, on x's device), overwriting it;
    - ``adjoint_into(y, out) -> out``: write A^T y into ``out`` (shape ``in_shape``), overwriting it
      (not adding);
    - ``inplace_safe: bool``: True when ``out`` may be the input array itself (elementwise operators);
      absent means False: ``out`` must not overlap the input.
    """

    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]

    def apply(self, x: Any) -> Any:
        """A x, a new array the caller may modify."""
        ...

    def adjoint(self, y: Any) -> Any:
        """A^T y, a new array the caller may modify."""
        ...


@runtime_checkable
class SystemModel(Protocol):
    """The forward model of one study on one device: y ~ Poisson(A x + additive).

    The measured data (shape ``data_shape``) split into ``n_subset_units`` units along their
    first axis or otherwise (SPECT: views; PET: sinogram views or list-mode events); a subset
    is a set of unit indices. Building a subset's operator or data never changes the model.

    Optional: ``subset_sensitivity(indices)`` returns the sensitivity image of a subset when it is not
    ``A_b^T 1`` (list-mode: the operator sees the recorded events only, the sensitivity every LOR).
    """

    grid: ImageGrid  # the image grid in patient space (LPS, mm)
    data_shape: tuple[int, ...]  # shape of the full measured data
    n_subset_units: int  # how many units the data partition into for subsets
    device: str  # "cpu" or "cuda"

    @property
    def xp(self) -> Any:
        """Array module (numpy or cupy) of the model's device."""
        ...

    def subset_operator(self, indices: Any) -> LinearOperator:
        """The linear operator A_b for the units ``indices`` (image -> that part of the data)."""
        ...

    def subset_data(self, array: Any, indices: Any) -> Any:
        """The part of a full ``data_shape`` array (measured or additive) for ``indices``, on the
        model's device, C-contiguous, shaped like ``subset_operator(indices).out_shape``."""
        ...


@dataclass(frozen=True)
class Subset:
    """One subset of the data: y_b ~ Poisson(A_b x + additive_b), with sensitivity A_b^T 1.

    The algorithm never modifies these arrays.
    """

    operator: LinearOperator
    measured: Any
    additive: Any | None
    sensitivity: Any

    def __post_init__(self) -> None:
        if tuple(self.measured.shape) != tuple(self.operator.out_shape):
            raise ValueError(
                f"measured data shape {tuple(self.measured.shape)} != operator output {tuple(self.operator.out_shape)}"
            )
        if self.additive is not None and tuple(self.additive.shape) != tuple(self.operator.out_shape):
            raise ValueError(
                f"additive term shape {tuple(self.additive.shape)} != operator output {tuple(self.operator.out_shape)}"
            )
        if tuple(self.sensitivity.shape) != tuple(self.operator.in_shape):
            raise ValueError(
                f"sensitivity shape {tuple(self.sensitivity.shape)} != operator input {tuple(self.operator.in_shape)}"
            )
