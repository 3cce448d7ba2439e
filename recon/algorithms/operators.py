"""Small composable linear operators (the :class:`~recon.algorithms.protocol.LinearOperator` protocol).

- :func:`compose` (A o B o C, adjoint C^T o B^T o A^T),
- :class:`ElementwiseMultiply` (a diagonal operator: multiplication by a fixed array, self-adjoint),
- :class:`AdjointOperator` / :func:`adjoint_of` (A^T as an operator),
- :class:`IdentityOperator` and :class:`ScalingOperator` (c I).

Every ``apply`` / ``adjoint`` checks the input shape and returns a new array, in the input's array
module (numpy or cupy), that the caller may modify. Operators holding an array (ElementwiseMultiply)
need their input on the same device as that array.
"""
from __future__ import annotations

from typing import Any

from recon.algorithms.protocol import LinearOperator
from recon.backend import is_device_array


def _shape(value: Any) -> tuple[int, ...]:
    return tuple(int(s) for s in value)


def _check_shape(name: str, what: str, array: Any, expected: tuple[int, ...]) -> None:
    if tuple(array.shape) != expected:
        raise ValueError(f"{name}: {what} shape {tuple(array.shape)} != expected {expected}")


class _Checked:
    """Shape checks around ``_apply`` / ``_adjoint``; subclasses set in_shape and out_shape."""

    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]

    def apply(self, x: Any) -> Any:
        """A x (shape ``in_shape`` -> ``out_shape``), a new array."""
        _check_shape(type(self).__name__, "apply input", x, self.in_shape)
        return self._apply(x)

    def adjoint(self, y: Any) -> Any:
        """A^T y (shape ``out_shape`` -> ``in_shape``), a new array."""
        _check_shape(type(self).__name__, "adjoint input", y, self.out_shape)
        return self._adjoint(y)

    def _apply(self, x: Any) -> Any:
        raise NotImplementedError

    def _adjoint(self, y: Any) -> Any:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.in_shape} -> {self.out_shape})"


class ComposedOperator(_Checked):
    """A_1 o A_2 o ... o A_n: ``apply`` runs A_n first; ``adjoint`` runs A_1^T first (the reverse)."""

    def __init__(self, operators: tuple[LinearOperator, ...]) -> None:
        if len(operators) < 1:
            raise ValueError("compose needs at least one operator")
        for k in range(len(operators) - 1):
            outer, inner = operators[k], operators[k + 1]
            if _shape(outer.in_shape) != _shape(inner.out_shape):
                raise ValueError(
                    f"cannot compose: operator {k} ({type(outer).__name__}) takes shape {_shape(outer.in_shape)} "
                    f"but operator {k + 1} ({type(inner).__name__}) gives {_shape(inner.out_shape)}"
                )
        self.operators = tuple(operators)
        self.in_shape = _shape(operators[-1].in_shape)
        self.out_shape = _shape(operators[0].out_shape)

    def _apply(self, x: Any) -> Any:
        for op in reversed(self.operators):
            x = op.apply(x)
        return x

    def _adjoint(self, y: Any) -> Any:
        for op in self.operators:
            y = op.adjoint(y)
        return y


def compose(*operators: LinearOperator) -> ComposedOperator:
    """The composition A_1 o A_2 o ... (``compose(A, B).apply(x) == A.apply(B.apply(x))``).

    Nested compositions are flattened; each operator's ``in_shape`` must equal the next one's ``out_shape``.
    """
    flat: list[LinearOperator] = []
    for op in operators:
        if isinstance(op, ComposedOperator):
            flat.extend(op.operators)
        else:
            flat.append(op)
    return ComposedOperator(tuple(flat))


class ElementwiseMultiply(_Checked):
    """x -> w * x for a fixed array w (a diagonal operator, self-adjoint); in and out shape ``w.shape``,
    or ``shape`` when given, to which w must broadcast (e.g. PET factors (view, plane, radial, 1) applied
    to every TOF bin of (view, plane, radial, tof) data).

    w stays where it is (numpy or cupy); inputs must live on the same device. Weights are used as
    given (not copied): do not modify them while the operator is in use.
    """

    def __init__(self, weights: Any, shape: tuple[int, ...] | None = None) -> None:
        if weights.ndim == 0:
            raise ValueError("ElementwiseMultiply needs an array of weights, not a scalar (use ScalingOperator)")
        self.weights = weights
        self.in_shape = _shape(weights.shape if shape is None else shape)
        if shape is not None:
            w = _shape(weights.shape)
            if len(w) != len(self.in_shape) or any(a not in (1, b) for a, b in zip(w, self.in_shape)):
                raise ValueError(f"ElementwiseMultiply: weights of shape {w} do not broadcast to {self.in_shape}")
        self.out_shape = self.in_shape

    def _multiply(self, x: Any) -> Any:
        if is_device_array(x) != is_device_array(self.weights):
            where = {True: "the GPU", False: "the host"}
            raise ValueError(
                f"ElementwiseMultiply: input is on {where[is_device_array(x)]} but the weights are on "
                f"{where[is_device_array(self.weights)]}"
            )
        return x * self.weights

    def _apply(self, x: Any) -> Any:
        return self._multiply(x)

    def _adjoint(self, y: Any) -> Any:
        return self._multiply(y)


class AdjointOperator(_Checked):
    """A^T as an operator: ``apply`` is A's adjoint and ``adjoint`` is A's apply."""

    def __init__(self, operator: LinearOperator) -> None:
        self.operator = operator
        self.in_shape = _shape(operator.out_shape)
        self.out_shape = _shape(operator.in_shape)

    def _apply(self, x: Any) -> Any:
        return self.operator.adjoint(x)

    def _adjoint(self, y: Any) -> Any:
        return self.operator.apply(y)


def adjoint_of(operator: LinearOperator) -> LinearOperator:
    """A^T as an operator; the adjoint of an :class:`AdjointOperator` is the operator it wraps."""
    if isinstance(operator, AdjointOperator):
        return operator.operator
    return AdjointOperator(operator)


class ScalingOperator(_Checked):
    """x -> c x on arrays of ``shape`` (c real; self-adjoint)."""

    def __init__(self, shape: tuple[int, ...], factor: float) -> None:
        self.in_shape = _shape(shape)
        self.out_shape = self.in_shape
        self.factor = float(factor)

    def _apply(self, x: Any) -> Any:
        return x * self.factor

    def _adjoint(self, y: Any) -> Any:
        return self._apply(y)


class IdentityOperator(ScalingOperator):
    """x -> x on arrays of ``shape`` (returns a copy the caller may modify)."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__(shape, 1.0)

    def _apply(self, x: Any) -> Any:
        return x.copy()
