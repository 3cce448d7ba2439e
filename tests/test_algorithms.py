"""The modality-neutral layer against truth from outside its code: a dense matrix as a system model,
MLEM's count conservation, exact partitions, adjoint identities and a deliberately wrong adjoint."""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from recon.algorithms import (
    AdjointOperator,
    ElementwiseMultiply,
    IdentityOperator,
    OSEMOptions,
    ScalingOperator,
    SystemModel,
    adjoint_of,
    adjointness_test,
    assert_adjoint,
    build_subsets,
    check_partition,
    compose,
    interleaved_subsets,
    operator_norm,
    reconstruct,
)
from recon.data import ImageGrid

ROOT = Path(__file__).resolve().parents[1]


class MatrixOperator:
    """y = reshape(A @ x.ravel()): a dense float32 matrix as a LinearOperator (numpy only)."""

    def __init__(self, a: np.ndarray, in_shape: tuple[int, ...], out_shape: tuple[int, ...], indices=None) -> None:
        assert a.shape == (int(np.prod(out_shape)), int(np.prod(in_shape)))
        self.a = a
        self.in_shape = tuple(in_shape)
        self.out_shape = tuple(out_shape)
        self.indices = indices

    def apply(self, x):
        return (self.a @ x.reshape(-1)).astype(np.float32).reshape(self.out_shape)

    def adjoint(self, y):
        return (self.a.T @ y.reshape(-1)).astype(np.float32).reshape(self.in_shape)


class MatrixModel:
    """A SystemModel on the host: ``n_units`` units of ``unit_size`` measurements each, image on ``grid``."""

    device = "cpu"
    xp = np

    def __init__(self, a: np.ndarray, grid: ImageGrid, unit_size: int) -> None:
        self.a = a
        self.grid = grid
        self.unit_size = unit_size
        self.n_subset_units = a.shape[0] // unit_size
        self.data_shape = (self.n_subset_units, unit_size)

    def _rows(self, indices) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64)
        return (idx[:, None] * self.unit_size + np.arange(self.unit_size)[None, :]).reshape(-1)

    def subset_operator(self, indices) -> MatrixOperator:
        idx = np.asarray(indices, dtype=np.int64)
        return MatrixOperator(self.a[self._rows(idx)], self.grid.shape, (idx.size, self.unit_size), idx)

    def subset_data(self, array, indices):
        return np.ascontiguousarray(np.asarray(array)[np.asarray(indices)], dtype=np.float32)


def _model(rng, n_units=24, unit_size=3, grid_shape=(1, 2, 5)) -> MatrixModel:
    n_vox = int(np.prod(grid_shape))
    a = rng.random((n_units * unit_size, n_vox)).astype(np.float32)
    return MatrixModel(a, ImageGrid(grid_shape, (2.0, 2.0, 2.0)), unit_size)


def _data(model: MatrixModel, x: np.ndarray) -> np.ndarray:
    return (model.a.astype(np.float64) @ x.reshape(-1)).reshape(model.data_shape)


# ----------------------------------------------------------------------------- reconstruct


def test_matrix_model_is_a_system_model(rng):
    assert isinstance(_model(rng), SystemModel)
    assert not isinstance(object(), SystemModel)


def test_noise_free_data_converge_to_the_truth(rng):
    model = _model(rng)
    truth = rng.uniform(0.5, 5.0, model.grid.shape).astype(np.float32)
    additive = np.full(model.data_shape, 0.3, np.float32)
    measured = (_data(model, truth) + additive).astype(np.float32)
    x = reconstruct(model, measured, additive, OSEMOptions(n_iterations=800, n_subsets=4, progress=False))
    assert x.shape == model.grid.shape
    np.testing.assert_allclose(x, truth, rtol=2e-2)


def test_mlem_conserves_counts_at_every_iteration(rng):
    # Classical MLEM property (no additive term, one subset): sum(A x_k) = sum(y) after every update.
    model = _model(rng)
    measured = rng.poisson(_data(model, rng.uniform(1.0, 9.0, model.grid.shape))).astype(np.float32)
    totals = []
    reconstruct(model, measured, None, OSEMOptions(n_iterations=6, n_subsets=1, progress=False),
                callback=lambda p: totals.append(float((model.a.astype(np.float64) @ p.image.reshape(-1)).sum())))
    assert len(totals) == 6
    np.testing.assert_allclose(totals, float(measured.sum()), rtol=1e-5)
    # the start image (ones) does not conserve counts: the property is the update's, not the data's
    assert float(model.a.sum()) != pytest.approx(float(measured.sum()), rel=1e-2)


def test_subsets_hold_every_unit_once_with_their_data(rng):
    model = _model(rng, n_units=23)
    measured = rng.random(model.data_shape).astype(np.float32)
    additive = rng.random(model.data_shape).astype(np.float32)
    subsets = build_subsets(model, measured, additive, 5)
    assert len(subsets) == 5
    seen = np.concatenate([s.operator.indices for s in subsets])
    np.testing.assert_array_equal(np.sort(seen), np.arange(23))
    for s in subsets:
        np.testing.assert_array_equal(s.measured, measured[s.operator.indices])
        np.testing.assert_array_equal(s.additive, additive[s.operator.indices])
        expected = s.operator.a.astype(np.float64).sum(axis=0).reshape(model.grid.shape)
        np.testing.assert_allclose(s.sensitivity, expected, rtol=1e-5)


@pytest.mark.parametrize(("n_units", "n_subsets"), [(120, 8), (23, 5), (7, 7), (5, 1)])
def test_interleaved_subsets_partition_exactly(n_units, n_subsets):
    parts = interleaved_subsets(n_units, n_subsets)
    assert len(parts) == n_subsets
    check_partition(parts, n_units)
    np.testing.assert_array_equal(np.sort(np.concatenate(parts)), np.arange(n_units))
    assert max(p.size for p in parts) - min(p.size for p in parts) <= 1
    np.testing.assert_array_equal(parts[-1][:2], [n_subsets - 1, 2 * n_subsets - 1][: parts[-1].size])


def test_partition_errors():
    with pytest.raises(ValueError, match=r"n_subsets \(9\) exceeds the number of subset units \(8"):
        interleaved_subsets(8, 9)
    with pytest.raises(ValueError, match="n_subsets must be >= 1"):
        interleaved_subsets(8, 0)
    with pytest.raises(TypeError, match="n_subsets must be an integer"):
        interleaved_subsets(8, 2.0)
    with pytest.raises(ValueError, match="1 missing, 1 repeated"):
        check_partition([np.array([0, 1]), np.array([1, 3])], 4)
    with pytest.raises(ValueError, match=r"outside \[0, 4\)"):
        check_partition([np.array([0, 1, 2, 4])], 4)
    with pytest.raises(ValueError, match="subset 1 is empty"):
        check_partition([np.arange(4), np.array([], np.int64)], 4)


def test_bad_shapes_and_options_give_clear_errors(rng):
    model = _model(rng)
    good = np.ones(model.data_shape, np.float32)
    opts = OSEMOptions(1, 2, progress=False)
    with pytest.raises(ValueError, match=r"measured data shape \(24, 2\) does not match the model's data shape \(24, 3\)"):
        reconstruct(model, np.ones((24, 2), np.float32), None, opts)
    with pytest.raises(ValueError, match=r"additive data shape \(3, 24\) does not match"):
        reconstruct(model, good, np.ones((3, 24), np.float32), opts)
    with pytest.raises(ValueError, match=r"x0 shape \(10,\) does not match the model's grid \(1, 2, 5\)"):
        reconstruct(model, good, None, opts, x0=np.ones(10, np.float32))
    with pytest.raises(ValueError, match="measured data contain negative values"):
        reconstruct(model, -good, None, opts)
    with pytest.raises(ValueError, match="additive data contain NaN"):
        reconstruct(model, good, np.full(model.data_shape, np.nan, np.float32), opts)
    with pytest.raises(ValueError, match=r"n_subsets \(25\) exceeds the number of subset units \(24"):
        reconstruct(model, good, None, OSEMOptions(1, 25, progress=False))
    with pytest.raises(ValueError, match="n_iterations must be >= 1"):
        OSEMOptions(n_iterations=0)
    with pytest.raises(TypeError, match="n_subsets must be an integer"):
        OSEMOptions(n_subsets=2.5)
    with pytest.raises(TypeError, match="n_iterations must be an integer"):
        OSEMOptions(n_iterations=True)
    with pytest.raises(TypeError, match="does not implement the SystemModel protocol"):
        reconstruct(object(), good, None, opts)


def test_reconstruct_changes_neither_model_nor_inputs(rng):
    model = _model(rng)
    a_before, grid_before = model.a.copy(), model.grid
    measured = rng.random(model.data_shape).astype(np.float32)
    additive = np.full(model.data_shape, 0.1, np.float32)
    x0 = np.full(model.grid.shape, 2.0, np.float32)
    copies = [measured.copy(), additive.copy(), x0.copy()]
    reconstruct(model, measured, additive, OSEMOptions(3, 4, progress=False), x0=x0)
    np.testing.assert_array_equal(model.a, a_before)
    assert model.grid is grid_before
    for before, after in zip(copies, (measured, additive, x0)):
        np.testing.assert_array_equal(before, after)


def test_algorithms_import_no_modality_and_no_io():
    """No modality, I/O or quantification; of kernels/ only the modality-free elementwise OSEM steps."""
    forbidden = ("recon.spect", "recon.pet", "recon.io", "kernels", "recon.commands", "recon.quant")
    allowed = ("kernels.osem_update",)
    for path in sorted((ROOT / "recon" / "algorithms").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name in allowed or not name.startswith(forbidden), f"{path.name} imports {name}"


# ----------------------------------------------------------------------------- operators


def _matrix(rng, m, n, signed=False):
    a = rng.random((m, n))
    return (a - 0.5 if signed else a).astype(np.float32)


def test_composition_equals_applying_in_sequence_and_is_adjoint(rng):
    a = MatrixOperator(_matrix(rng, 12, 20), (4, 5), (3, 4))
    b = MatrixOperator(_matrix(rng, 20, 30, signed=True), (2, 3, 5), (4, 5))
    w = ElementwiseMultiply(rng.uniform(0.5, 2.0, (2, 3, 5)).astype(np.float32))
    op = compose(a, b, w)
    assert (op.in_shape, op.out_shape) == ((2, 3, 5), (3, 4))
    x = rng.random((2, 3, 5)).astype(np.float32)
    y = rng.random((3, 4)).astype(np.float32)
    np.testing.assert_array_equal(op.apply(x), a.apply(b.apply(w.apply(x))))
    np.testing.assert_array_equal(op.adjoint(y), w.adjoint(b.adjoint(a.adjoint(y))))
    assert_adjoint(op, rng)
    assert_adjoint(op, rng, signed=True)
    nested = compose(compose(a, b), w)
    assert len(nested.operators) == 3
    np.testing.assert_array_equal(nested.apply(x), op.apply(x))


def test_composition_shape_mismatch_and_input_checks(rng):
    a = MatrixOperator(_matrix(rng, 12, 20), (4, 5), (3, 4))
    b = MatrixOperator(_matrix(rng, 21, 30), (30,), (21,))
    with pytest.raises(ValueError, match=r"operator 0 \(MatrixOperator\) takes shape \(4, 5\) but operator 1 "
                                         r"\(MatrixOperator\) gives \(21,\)"):
        compose(a, b)
    with pytest.raises(ValueError, match="compose needs at least one operator"):
        compose()
    op = compose(a, IdentityOperator((4, 5)))
    with pytest.raises(ValueError, match=r"ComposedOperator: apply input shape \(20,\) != expected \(4, 5\)"):
        op.apply(np.ones(20, np.float32))
    with pytest.raises(ValueError, match=r"adjoint input shape \(4, 3\) != expected \(3, 4\)"):
        op.adjoint(np.ones((4, 3), np.float32))


def test_elementwise_multiply_is_self_adjoint(rng):
    w = rng.uniform(-1.0, 2.0, (3, 4, 5)).astype(np.float32)
    op = ElementwiseMultiply(w)
    x = rng.random((3, 4, 5)).astype(np.float32)
    np.testing.assert_array_equal(op.apply(x), x * w)
    np.testing.assert_array_equal(op.adjoint(x), x * w)
    assert op.apply(x) is not x
    assert_adjoint(op, rng, signed=True)
    assert operator_norm(op, rng, n_iterations=200) == pytest.approx(float(np.abs(w).max()), rel=1e-2)
    with pytest.raises(ValueError, match=r"ElementwiseMultiply: apply input shape \(3, 4\) != expected \(3, 4, 5\)"):
        op.apply(np.ones((3, 4), np.float32))
    with pytest.raises(ValueError, match="not a scalar"):
        ElementwiseMultiply(np.float32(2.0) * np.ones(()))


def test_adjoint_view_swaps_apply_and_adjoint(rng):
    a = MatrixOperator(_matrix(rng, 12, 20, signed=True), (4, 5), (3, 4))
    at = adjoint_of(a)
    assert isinstance(at, AdjointOperator)
    assert (at.in_shape, at.out_shape) == ((3, 4), (4, 5))
    y = rng.random((3, 4)).astype(np.float32)
    np.testing.assert_array_equal(at.apply(y), a.adjoint(y))
    x = rng.random((4, 5)).astype(np.float32)
    np.testing.assert_array_equal(at.adjoint(x), a.apply(x))
    assert adjoint_of(at) is a
    assert_adjoint(at, rng, signed=True)
    # A^T A is symmetric positive semi-definite: its norm is |A|^2
    norm_a = float(np.linalg.norm(a.a.astype(np.float64), 2))
    assert operator_norm(compose(at, a), rng, n_iterations=100) == pytest.approx(norm_a**2, rel=1e-3)


def test_scaling_and_identity(rng):
    x = rng.random((2, 3)).astype(np.float32)
    s = ScalingOperator((2, 3), -2.5)
    np.testing.assert_array_equal(s.apply(x), np.float32(-2.5) * x)
    assert s.apply(x).dtype == np.float32
    assert_adjoint(s, rng, signed=True)
    ident = IdentityOperator((2, 3))
    out = ident.apply(x)
    np.testing.assert_array_equal(out, x)
    assert out is not x
    assert_adjoint(ident, rng)


def test_operator_norm_matches_the_spectral_norm(rng):
    a = MatrixOperator(_matrix(rng, 30, 20), (20,), (30,))
    assert operator_norm(a, rng, n_iterations=50) == pytest.approx(
        float(np.linalg.norm(a.a.astype(np.float64), 2)), rel=1e-4)


class _WrongAdjoint(MatrixOperator):
    """The adjoint of a slightly different matrix: a mismatched projector pair."""

    def __init__(self, a, error, in_shape, out_shape):
        super().__init__(a, in_shape, out_shape)
        self.wrong = a + error

    def adjoint(self, y):
        return (self.wrong.T @ y.reshape(-1)).astype(np.float32).reshape(self.in_shape)


def test_a_wrong_adjoint_fails_the_test(rng):
    a = _matrix(rng, 30, 20)
    error = np.zeros_like(a)
    error[3, 7] = 0.05 * float(a.max())  # one matrix element off by 5 % of the largest
    broken = _WrongAdjoint(a, error, (20,), (30,))
    result = adjointness_test(broken, rng)
    assert result.relative_error > 1e-4
    with pytest.raises(AssertionError, match=r"_WrongAdjoint \(20,\) -> \(30,\) is not adjoint: relative error"):
        assert_adjoint(broken, rng)
    # the transpose forgotten (A used as its own adjoint) on a square non-symmetric matrix
    sq = _matrix(rng, 16, 16)

    class Untransposed(MatrixOperator):
        def adjoint(self, y):
            return (self.a @ y).astype(np.float32)

    with pytest.raises(AssertionError, match="is not adjoint"):
        assert_adjoint(Untransposed(sq, (16,), (16,)), rng)
    # and the same operators with correct adjoints pass
    assert assert_adjoint(MatrixOperator(a, (20,), (30,)), rng).relative_error < 1e-6
