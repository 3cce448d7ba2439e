"""Small composable linear operators (the :class:`~recon.algorithms.protocol.LinearOperator` protocol).

- :func:`compose` (A o B o C, adjoint C^T o B^T o A^T),
- :class:`ElementwiseMultiply` (a diagonal operator: multiplication by a fixed array, self-adjoint),
- :class:`AdjointOperator` / :func:`adjoint_of` (A^T as an operator),
- :class:`IdentityOperator` and :class:`ScalingOperator` (c I).

Every ``apply`` / ``adjoint`` checks the input shape and returns a new array, in the input's array
module (numpy or cupy), that the caller may modify. Operators holding an array (ElementwiseMultiply)
need their input on the same device as that array.

Every operator here also has ``apply_into(x, out)`` / ``adjoint_into(y, out)``, which overwrite a
preallocated float32 ``out``: without allocating for the elementwise ones (``inplace_safe = True``: ``out``
may be the input itself) and for compositions of allocation-free operators (intermediate results go to
buffers allocated once per composition); by copying ``apply``'s result otherwise. :func:`apply_into` /
:func:`adjoint_into` call them on any operator, falling back to ``apply`` / ``adjoint`` for operators that
lack them.
"""
from __future__ import annotations

from typing import Any

from recon.algorithms.protocol import LinearOperator
from recon.backend import array_module, is_device_array


def _shape(value: Any) -> tuple[int, ...]:
    return tuple(int(s) for s in value)


def _check_shape(name: str, what: str, array: Any, expected: tuple[int, ...]) -> None:
    if tuple(array.shape) != expected:
        raise ValueError(f"{name}: {what} shape {tuple(array.shape)} != expected {expected}")


def _check_out(name: str, what: str, x: Any, out: Any, expected: tuple[int, ...]) -> None:
    """``out`` of an ``*_into`` call: the expected shape, float32, on the input's device."""
    _check_shape(name, f"{what} out", out, expected)
    if out.dtype != "float32":
        raise TypeError(f"{name}: {what} out must be float32, got {out.dtype}")
    if is_device_array(out) != is_device_array(x):
        raise ValueError(f"{name}: {what} out and input live on different devices")


def check_into(name: str, what: str, a: Any, a_shape: tuple[int, ...], out: Any, out_shape: tuple[int, ...]) -> None:
    """The arguments of an ``*_into`` call (``what``: "apply" or "adjoint"): the input's shape, then ``out``'s
    (shape, float32, the input's device); errors name ``name``."""
    _check_shape(name, f"{what} input", a, a_shape)
    _check_out(name, what, a, out, out_shape)


def is_inplace_safe(operator: Any) -> bool:
    """True when ``operator``'s ``apply_into`` / ``adjoint_into`` accept ``out`` = the input (its
    ``inplace_safe`` attribute; absent = False)."""
    return bool(getattr(operator, "inplace_safe", False))


def apply_into(operator: Any, x: Any, out: Any) -> Any:
    """A x written into ``out`` (shape ``out_shape``, float32); returns ``out``. Uses the operator's own
    ``apply_into`` when it has one, else copies ``apply(x)`` into ``out`` (one temporary array)."""
    return _into(getattr(operator, "apply_into", None), operator.apply, x, out)


def adjoint_into(operator: Any, y: Any, out: Any) -> Any:
    """A^T y written into ``out`` (shape ``in_shape``, float32); returns ``out``. Uses the operator's own
    ``adjoint_into`` when it has one, else copies ``adjoint(y)`` into ``out`` (one temporary array)."""
    return _into(getattr(operator, "adjoint_into", None), operator.adjoint, y, out)


def _into(into: Any, fallback: Any, a: Any, out: Any) -> Any:
    """``into(a, out)``, or ``out[...] = fallback(a)`` without one. (Literal attribute names: a name built
    per call, e.g. by an f-string, is a new string that CPython's type attribute cache keeps alive.)"""
    if into is not None:
        return into(a, out)
    out[...] = fallback(a)
    return out


class _Checked:
    """Shape checks around ``_apply`` / ``_adjoint`` (and ``_apply_into`` / ``_adjoint_into``); subclasses
    set in_shape and out_shape. The default ``*_into`` copies the new array of ``_apply`` / ``_adjoint``
    into ``out``: correct, not allocation-free; subclasses override them where they can do better."""

    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    inplace_safe: bool = False  # True: apply_into / adjoint_into accept out = the input (elementwise)

    def apply(self, x: Any) -> Any:
        """A x (shape ``in_shape`` -> ``out_shape``), a new array."""
        _check_shape(type(self).__name__, "apply input", x, self.in_shape)
        return self._apply(x)

    def adjoint(self, y: Any) -> Any:
        """A^T y (shape ``out_shape`` -> ``in_shape``), a new array."""
        _check_shape(type(self).__name__, "adjoint input", y, self.out_shape)
        return self._adjoint(y)

    def apply_into(self, x: Any, out: Any) -> Any:
        """A x written into ``out`` (shape ``out_shape``, float32, x's device), overwritten; returns ``out``.
        ``out`` may be x only when ``inplace_safe``."""
        check_into(type(self).__name__, "apply", x, self.in_shape, out, self.out_shape)
        return self._apply_into(x, out)

    def adjoint_into(self, y: Any, out: Any) -> Any:
        """A^T y written into ``out`` (shape ``in_shape``, float32, y's device), overwritten (not added to);
        returns ``out``. ``out`` may be y only when ``inplace_safe``."""
        check_into(type(self).__name__, "adjoint", y, self.out_shape, out, self.in_shape)
        return self._adjoint_into(y, out)

    def _apply(self, x: Any) -> Any:
        raise NotImplementedError

    def _adjoint(self, y: Any) -> Any:
        raise NotImplementedError

    def _apply_into(self, x: Any, out: Any) -> Any:
        out[...] = self._apply(x)
        return out

    def _adjoint_into(self, y: Any, out: Any) -> Any:
        out[...] = self._adjoint(y)
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.in_shape} -> {self.out_shape})"


class ComposedOperator(_Checked):
    """A_1 o A_2 o ... o A_n: ``apply`` runs A_n first; ``adjoint`` runs A_1^T first (the reverse).

    ``apply_into`` / ``adjoint_into``: the last operator that is not in-place safe writes into ``out`` and
    the in-place-safe ones after it work in place on ``out``; results before it go to intermediate buffers,
    allocated on first use once per composition (and direction, and step) and reused, so the composition
    allocates nothing when its parts do not. In-place safe when all its parts are.
    """

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
        self.inplace_safe = all(is_inplace_safe(op) for op in self.operators)
        self._buffers: dict[tuple[str, int], Any] = {}

    def _apply(self, x: Any) -> Any:
        for op in reversed(self.operators):
            x = op.apply(x)
        return x

    def _adjoint(self, y: Any) -> Any:
        for op in self.operators:
            y = op.adjoint(y)
        return y

    def _apply_into(self, x: Any, out: Any) -> Any:
        steps = [(op, apply_into, _shape(op.out_shape)) for op in reversed(self.operators)]
        return self._chain_into("apply", steps, x, out)

    def _adjoint_into(self, y: Any, out: Any) -> Any:
        steps = [(op, adjoint_into, _shape(op.in_shape)) for op in self.operators]
        return self._chain_into("adjoint", steps, y, out)

    def _buffer(self, direction: str, step: int, shape: tuple[int, ...], like: Any) -> Any:
        """The float32 intermediate of ``step``, allocated once in ``like``'s array module."""
        xp = array_module(like)
        buf = self._buffers.get((direction, step))
        if buf is None or tuple(buf.shape) != shape or array_module(buf) is not xp:
            buf = xp.empty(shape, dtype=xp.float32)
            self._buffers[(direction, step)] = buf
        return buf

    def _chain_into(self, direction: str, steps: list, src: Any, out: Any) -> Any:
        """Run ``steps`` (operator, into-function, result shape) in order from ``src`` into ``out``."""
        last_unsafe = max((k for k, (op, _, _) in enumerate(steps) if not is_inplace_safe(op)), default=-1)
        for k, (op, into, shape) in enumerate(steps):
            if k > last_unsafe:  # in-place safe: work on out (from the input at step 0)
                into(op, src, out)
                src = out
            elif k == last_unsafe and not (k == 0 and array_module(src).may_share_memory(src, out)):
                into(op, src, out)
                src = out
            elif k == last_unsafe:  # out overlaps the input of a step that must not write over it
                buf = self._buffer(direction, k, shape, src)
                into(op, src, buf)
                out[...] = buf
                src = out
            elif k > 0 and is_inplace_safe(op):  # src is one of our buffers: update it in place
                into(op, src, src)
            else:
                buf = self._buffer(direction, k, shape, src)
                into(op, src, buf)
                src = buf
        return out


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
    given (not copied): do not modify them while the operator is in use. In-place safe: ``apply_into(x, x)``
    multiplies x in place.
    """

    inplace_safe = True

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

    def _check_device(self, x: Any) -> None:
        if is_device_array(x) != is_device_array(self.weights):
            where = {True: "the GPU", False: "the host"}
            raise ValueError(
                f"ElementwiseMultiply: input is on {where[is_device_array(x)]} but the weights are on "
                f"{where[is_device_array(self.weights)]}"
            )

    def _multiply(self, x: Any) -> Any:
        self._check_device(x)
        return x * self.weights

    def _multiply_into(self, x: Any, out: Any) -> Any:
        self._check_device(x)
        array_module(x).multiply(x, self.weights, out=out)
        return out

    def _apply(self, x: Any) -> Any:
        return self._multiply(x)

    def _adjoint(self, y: Any) -> Any:
        return self._multiply(y)

    def _apply_into(self, x: Any, out: Any) -> Any:
        return self._multiply_into(x, out)

    def _adjoint_into(self, y: Any, out: Any) -> Any:
        return self._multiply_into(y, out)


class AdjointOperator(_Checked):
    """A^T as an operator: ``apply`` is A's adjoint and ``adjoint`` is A's apply."""

    def __init__(self, operator: LinearOperator) -> None:
        self.operator = operator
        self.in_shape = _shape(operator.out_shape)
        self.out_shape = _shape(operator.in_shape)
        self.inplace_safe = is_inplace_safe(operator)

    def _apply(self, x: Any) -> Any:
        return self.operator.adjoint(x)

    def _adjoint(self, y: Any) -> Any:
        return self.operator.apply(y)

    def _apply_into(self, x: Any, out: Any) -> Any:
        return adjoint_into(self.operator, x, out)

    def _adjoint_into(self, y: Any, out: Any) -> Any:
        return apply_into(self.operator, y, out)


def adjoint_of(operator: LinearOperator) -> LinearOperator:
    """A^T as an operator; the adjoint of an :class:`AdjointOperator` is the operator it wraps."""
    if isinstance(operator, AdjointOperator):
        return operator.operator
    return AdjointOperator(operator)


class ScalingOperator(_Checked):
    """x -> c x on arrays of ``shape`` (c real; self-adjoint; in-place safe)."""

    inplace_safe = True

    def __init__(self, shape: tuple[int, ...], factor: float) -> None:
        self.in_shape = _shape(shape)
        self.out_shape = self.in_shape
        self.factor = float(factor)

    def _apply(self, x: Any) -> Any:
        return x * self.factor

    def _adjoint(self, y: Any) -> Any:
        return self._apply(y)

    def _apply_into(self, x: Any, out: Any) -> Any:
        array_module(x).multiply(x, self.factor, out=out)
        return out

    def _adjoint_into(self, y: Any, out: Any) -> Any:
        return self._apply_into(y, out)


class IdentityOperator(ScalingOperator):
    """x -> x on arrays of ``shape`` (returns a copy the caller may modify; in-place safe)."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__(shape, 1.0)

    def _apply(self, x: Any) -> Any:
        return x.copy()

    def _apply_into(self, x: Any, out: Any) -> Any:
        if out is not x:
            out[...] = x
        return out
