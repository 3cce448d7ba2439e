"""Adjointness test of a linear operator: <A x, y> = <x, A^T y>, normalised by |A| |x| |y|.

The normalisation makes the error a property of the operator pair, independent of scale
(parallelproj's and ODL's tests): an exact pair gives float32 round-off (about 1e-7 per term,
more for long sums); a wrong adjoint gives an error of the order of its mistake.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from recon.algorithms.protocol import LinearOperator

DEFAULT_TOLERANCE = 1e-4


@dataclass(frozen=True)
class AdjointTestResult:
    """Inner products (float64 sums of float32 arrays), norms and the normalised error."""

    forward_inner: float  # <A x, y>
    adjoint_inner: float  # <x, A^T y>
    operator_norm: float  # |A| (spectral norm), from power iterations on A^T A
    x_norm: float
    y_norm: float

    @property
    def relative_error(self) -> float:
        """|<A x, y> - <x, A^T y>| / (|A| |x| |y|)."""
        scale = self.operator_norm * self.x_norm * self.y_norm
        diff = abs(self.forward_inner - self.adjoint_inner)
        if scale == 0.0:
            return 0.0 if diff == 0.0 else float("inf")
        return diff / scale


def _random(rng: np.random.Generator, shape: tuple[int, ...], signed: bool, xp: Any) -> Any:
    host = rng.uniform(-1.0 if signed else 0.0, 1.0, size=shape).astype(np.float32)
    return xp.asarray(host)


def _inner(a: Any, b: Any) -> float:
    return float((a.astype("float64") * b.astype("float64")).sum())


def _norm(a: Any) -> float:
    return _inner(a, a) ** 0.5


def operator_norm(op: LinearOperator, rng: np.random.Generator, xp: Any = np, n_iterations: int = 8) -> float:
    """Estimate of the spectral norm |A| by power iterations on A^T A from a random non-negative start.

    An under-estimate that converges from below; a few iterations suffice for a normalisation.
    """
    v = _random(rng, tuple(op.in_shape), False, xp)
    v_norm = _norm(v)
    if v_norm == 0.0:
        return 0.0
    v = v / v_norm
    estimate = 0.0
    for _ in range(max(1, int(n_iterations))):
        w = op.adjoint(op.apply(v))
        w_norm = _norm(w)  # |A^T A v| with |v| = 1 -> |A|^2
        if w_norm == 0.0:
            return 0.0
        estimate = w_norm ** 0.5
        v = w / w_norm
    return estimate


def adjointness_test(
    op: LinearOperator,
    rng: np.random.Generator,
    xp: Any = np,
    signed: bool = False,
    n_power_iterations: int = 8,
) -> AdjointTestResult:
    """Compare <A x, y> with <x, A^T y> for random float32 x, y in ``xp`` (numpy or cupy).

    x, y are uniform in [0, 1) (``signed``: [-1, 1)), drawn from ``rng`` on the host, so a test gives
    the same numbers on every device.
    """
    x = _random(rng, tuple(op.in_shape), signed, xp)
    y = _random(rng, tuple(op.out_shape), signed, xp)
    ax = op.apply(x)
    aty = op.adjoint(y)
    if tuple(ax.shape) != tuple(op.out_shape):
        raise ValueError(f"apply returned shape {tuple(ax.shape)}, the operator declares {tuple(op.out_shape)}")
    if tuple(aty.shape) != tuple(op.in_shape):
        raise ValueError(f"adjoint returned shape {tuple(aty.shape)}, the operator declares {tuple(op.in_shape)}")
    return AdjointTestResult(
        forward_inner=_inner(ax, y),
        adjoint_inner=_inner(x, aty),
        operator_norm=operator_norm(op, rng, xp, n_power_iterations),
        x_norm=_norm(x),
        y_norm=_norm(y),
    )


def assert_adjoint(
    op: LinearOperator,
    rng: np.random.Generator,
    xp: Any = np,
    tolerance: float = DEFAULT_TOLERANCE,
    signed: bool = False,
    n_power_iterations: int = 8,
) -> AdjointTestResult:
    """Run :func:`adjointness_test`; raise AssertionError when the relative error exceeds ``tolerance``."""
    result = adjointness_test(op, rng, xp, signed, n_power_iterations)
    if not result.relative_error <= tolerance:  # also catches NaN
        raise AssertionError(
            f"{type(op).__name__} {tuple(op.in_shape)} -> {tuple(op.out_shape)} is not adjoint: relative error "
            f"{result.relative_error:.3g} > {tolerance:g} (<Ax,y> = {result.forward_inner:.9g}, "
            f"<x,A^T y> = {result.adjoint_inner:.9g}, |A| ~ {result.operator_norm:.4g})"
        )
    return result
