"""What an algorithm is handed: linear operators and per-subset terms. Nothing modality-specific."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class LinearOperator(Protocol):
    """A linear map with its exact adjoint; arrays stay in the caller's array module."""

    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]

    def apply(self, x: Any) -> Any:
        """A x, a new array the caller may modify."""
        ...

    def adjoint(self, y: Any) -> Any:
        """A^T y, a new array the caller may modify."""
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
