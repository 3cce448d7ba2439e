"""The OSEM loop without allocations or host syncs: the fused kernels (CPU, PTX for sm_90, the CUDA
simulator), the operators' ``apply_into`` / ``adjoint_into``, the loop against the old formula written
out in NumPy, and tracemalloc's view of the loop after its first iteration."""
from __future__ import annotations

import tracemalloc
from types import SimpleNamespace

import numpy as np
import pytest

from kernels import osem_cuda
from kernels.osem_update import osem_update_into, poisson_ratio_into
from recon.algorithms.operators import (
    AdjointOperator,
    ElementwiseMultiply,
    IdentityOperator,
    ScalingOperator,
    adjoint_into,
    apply_into,
    compose,
)
from recon.algorithms.osem import osem
from recon.algorithms.protocol import Subset
from recon.algorithms.reconstruct import build_subsets
from recon.data import SPECTGeometry, get_collimator
from recon.spect.system_model import SPECTSystemModel
from tests.conftest import run_under_cuda_simulator



# ----------------------------------------------------------------------------- fused kernels, CPU
def _old_ratio(measured, expected, additive):
    e = expected.copy()
    if additive is not None:
        e += additive
    return np.where(e > 0, measured / np.maximum(e, 1e-30), 0.0).astype(np.float32)


@pytest.mark.parametrize("with_additive", [False, True])
def test_poisson_ratio_reproduces_the_numpy_formula_bit_for_bit(rng, with_additive):
    shape = (6, 7, 9)
    measured = rng.poisson(3.0, shape).astype(np.float32)
    expected = (rng.random(shape) * 2 - 0.5).astype(np.float32)
    expected[0, 0, :3] = np.float32(1e-35)  # positive, below the 1e-30 floor
    additive = (rng.random(shape) * 0.3).astype(np.float32) if with_additive else None
    if with_additive:
        additive[1, 1, 1] = -expected[1, 1, 1]  # cancels: e == 0
    ref = _old_ratio(measured, expected, additive)
    out = np.full(shape, np.nan, np.float32)
    assert poisson_ratio_into(measured, expected, additive, out) is out
    np.testing.assert_array_equal(out, ref)
    in_place = expected.copy()  # out is expected itself
    poisson_ratio_into(measured, in_place, additive, in_place)
    np.testing.assert_array_equal(in_place, ref)


def test_osem_update_reproduces_the_numpy_formula_bit_for_bit(rng):
    shape = (5, 8, 8)
    x = rng.uniform(0.1, 9.0, shape).astype(np.float32)
    back = rng.random(shape).astype(np.float32)
    inv_sens = rng.uniform(0.2, 3.0, shape).astype(np.float32)
    unseen = (rng.random(shape) < 0.3).astype(np.float32)
    inv_sens[unseen > 0] = 0.0
    factor = back.copy()
    factor *= inv_sens
    factor += unseen
    ref = x * factor
    assert osem_update_into(x, back, inv_sens, unseen) is x
    np.testing.assert_array_equal(x, ref)


def test_fused_kernels_validate_their_arguments_by_name():
    a = np.ones((4, 5), np.float32)
    with pytest.raises(TypeError, match="additive must be float32"):
        poisson_ratio_into(a, a, a.astype(np.float64), a.copy())
    with pytest.raises(ValueError, match="out has shape"):
        poisson_ratio_into(a, a, None, np.ones((5, 4), np.float32))
    with pytest.raises(ValueError, match="inv_sens must be C-contiguous"):
        osem_update_into(a.copy(), a, np.ones((5, 4), np.float32).T, a)
    with pytest.raises(TypeError, match="unseen must be an array"):
        osem_update_into(a.copy(), a, a, 1.0)


# ----------------------------------------------------------------------------- fused kernels, CUDA
@pytest.mark.parametrize("kernel", ["poisson_ratio", "poisson_ratio_additive", "osem_update"])
def test_fused_kernel_compiles_to_ptx_for_hopper(kernel):
    from numba import cuda

    assert set(osem_cuda.KERNEL_BODIES) == set(osem_cuda.kernel_signatures())
    ptx, _ = cuda.compile_ptx(osem_cuda.KERNEL_BODIES[kernel], osem_cuda.kernel_signatures()[kernel], cc=(9, 0))
    assert ".target sm_90" in ptx
    assert ".entry" in ptx


def test_fused_launch_configuration_fills_an_h100():
    """Pure arithmetic: 128^3 voxels fill the 132 SMs with 8 blocks of 256 threads each (2048 resident
    threads per SM) and stride over the rest; small arrays get just the blocks they need."""
    blocks, threads = osem_cuda.launch_config(128 ** 3)
    assert threads == 256 and threads % 32 == 0
    assert blocks == 132 * 8
    assert osem_cuda.launch_config(32 * 128 * 128) == (132 * 8, 256)  # 32 views of 128 x 128
    assert osem_cuda.launch_config(1000) == (4, 256)
    assert osem_cuda.launch_config(0) == (1, 256)
    with pytest.raises(ValueError):
        osem_cuda.launch_config(10, threads=0)


def test_fused_cuda_kernels_match_cpu_under_simulator():
    """Several elements per simulated thread; every kernel within 1 ulp of the CPU path (equal in fact:
    the simulator has no fused multiply-add)."""
    r = run_under_cuda_simulator("_cudasim_osem_parity.py")
    assert r["elements_per_thread"] > 1
    for key in ("poisson_ratio", "poisson_ratio_in_place", "poisson_ratio_additive",
                "poisson_ratio_additive_in_place", "osem_update"):
        assert r[key] <= 1, (key, r[key])


# ----------------------------------------------------------------------------- operators
class DenseOperator:
    """A dense matrix with apply/adjoint only (a third-party operator: no *_into, no inplace_safe)."""

    def __init__(self, a: np.ndarray, in_shape: tuple, out_shape: tuple) -> None:
        self.a, self.in_shape, self.out_shape = a, in_shape, out_shape

    def apply(self, x):
        return (self.a @ x.reshape(-1)).reshape(self.out_shape).astype(np.float32)

    def adjoint(self, y):
        return (self.a.T @ y.reshape(-1)).reshape(self.in_shape).astype(np.float32)


class CopyScale:
    """c x with allocation-free *_into, declared not in-place safe (exercises the composition's buffers)."""

    inplace_safe = False

    def __init__(self, shape: tuple, c: float) -> None:
        self.in_shape = self.out_shape = shape
        self.c = np.float32(c)

    def apply(self, x):
        return x * self.c

    adjoint = apply

    def apply_into(self, x, out):
        np.multiply(x, self.c, out=out)
        return out

    adjoint_into = apply_into


def _operators(rng):
    img, proj = (3, 4, 5), (2, 3, 7)
    w_img = rng.uniform(0.5, 2.0, img).astype(np.float32)
    w_proj = rng.uniform(0.5, 2.0, proj).astype(np.float32)
    w_rows = rng.uniform(0.5, 2.0, (1, 3, 1)).astype(np.float32)
    dense = DenseOperator(rng.random((int(np.prod(proj)), int(np.prod(img)))).astype(np.float32), img, proj)
    square = DenseOperator(rng.random((60, 60)).astype(np.float32), img, img)
    return {
        "elementwise": ElementwiseMultiply(w_img),
        "elementwise_broadcast": ElementwiseMultiply(w_rows, shape=proj),
        "scaling": ScalingOperator(img, 2.5),
        "identity": IdentityOperator(img),
        "adjoint_of_elementwise": AdjointOperator(ElementwiseMultiply(w_img)),
        "adjoint_of_dense": AdjointOperator(dense),
        "composed_all_in_place": compose(ElementwiseMultiply(w_img), ScalingOperator(img, 0.5), IdentityOperator(img)),
        "composed_dense": compose(ElementwiseMultiply(w_rows, shape=proj), ElementwiseMultiply(w_proj), dense,
                                  ElementwiseMultiply(w_img), ScalingOperator(img, 3.0)),
        "composed_buffers": compose(ElementwiseMultiply(w_img), CopyScale(img, 2.0), ElementwiseMultiply(w_img),
                                    CopyScale(img, 0.5), ScalingOperator(img, 1.5)),
        "composed_square": compose(square, ScalingOperator(img, 2.0)),
        "composed_adjoint_inside": compose(ScalingOperator(img, 2.0), AdjointOperator(dense),
                                           ElementwiseMultiply(w_proj)),
    }


@pytest.mark.parametrize("name", ["elementwise", "elementwise_broadcast", "scaling", "identity",
                                  "adjoint_of_elementwise", "adjoint_of_dense", "composed_all_in_place",
                                  "composed_dense", "composed_buffers", "composed_square",
                                  "composed_adjoint_inside"])
def test_into_methods_equal_apply_and_adjoint(rng, name):
    op = _operators(rng)[name]
    for _ in range(2):  # the second call reuses the composition's buffers
        x = rng.random(op.in_shape).astype(np.float32)
        y = rng.random(op.out_shape).astype(np.float32)
        out = np.full(op.out_shape, np.nan, np.float32)  # overwritten, not added to
        assert apply_into(op, x, out) is out
        np.testing.assert_allclose(out, op.apply(x), rtol=1e-6)
        back = np.full(op.in_shape, np.nan, np.float32)
        assert adjoint_into(op, y, back) is back
        np.testing.assert_allclose(back, op.adjoint(y), rtol=1e-6)
        if tuple(op.in_shape) == tuple(op.out_shape):  # in place: out is the input
            ref, ref_t = op.apply(x), op.adjoint(x)
            x2 = x.copy()
            apply_into(op, x2, x2)
            np.testing.assert_allclose(x2, ref, rtol=1e-6)
            x3 = x.copy()
            adjoint_into(op, x3, x3)
            np.testing.assert_allclose(x3, ref_t, rtol=1e-6)


def test_inplace_safe_marks_the_elementwise_operators(rng):
    ops = _operators(rng)
    safe = {name for name, op in ops.items() if getattr(op, "inplace_safe", False)}
    assert safe == {"elementwise", "elementwise_broadcast", "scaling", "identity", "adjoint_of_elementwise",
                    "composed_all_in_place"}


def test_into_methods_check_out(rng):
    op = ElementwiseMultiply(np.ones((2, 3), np.float32))
    x = np.ones((2, 3), np.float32)
    with pytest.raises(ValueError, match="out shape"):
        op.apply_into(x, np.empty((3, 2), np.float32))
    with pytest.raises(TypeError, match="float32"):
        op.adjoint_into(x, np.empty((2, 3), np.float64))


def _spect_model(n=16, n_views=12, row_weights=None):
    angles = np.linspace(0.0, 360.0, n_views, endpoint=False) + 3.0
    geo = SPECTGeometry(angles, np.full(n_views, 140.0), n_rows=n, n_cols=n, pixel_size_mm=4.8)
    return SPECTSystemModel(geo, get_collimator("SY-LEHR"), 140.5, None, psf=True, device="cpu",
                            row_weights=row_weights)


@pytest.mark.parametrize("weighted", [False, True])
def test_spect_operator_into_methods_equal_apply_and_adjoint(rng, weighted):
    weights = np.where(np.arange(16) < 2, 0.0, 1.0) if weighted else None
    model = _spect_model(row_weights=weights)
    op = model.subset_operator(np.array([1, 4, 7, 10]))
    for _ in range(2):
        x = rng.random(op.in_shape).astype(np.float32)
        y = rng.random(op.out_shape).astype(np.float32)
        out = np.full(op.out_shape, 7.0, np.float32)
        np.testing.assert_array_equal(apply_into(op, x, out), op.apply(x))
        back = np.full(op.in_shape, 7.0, np.float32)  # overwritten, not added to
        np.testing.assert_array_equal(adjoint_into(op, y, back), op.adjoint(y))


# ----------------------------------------------------------------------------- the loop
def _old_osem(subsets, n_iterations, callback=None):
    """The OSEM loop as it was before the fused, allocation-free one (plain NumPy)."""
    x = np.ones(subsets[0].operator.in_shape, np.float32)
    inv_sens = [np.where(s.sensitivity > 0, 1.0 / np.maximum(s.sensitivity, 1e-30), 0.0).astype(np.float32)
                for s in subsets]
    unseen = [(s.sensitivity <= 0).astype(np.float32) for s in subsets]
    x *= (sum(s.sensitivity for s in subsets) > 0).astype(np.float32)
    for it in range(n_iterations):
        for b, s in enumerate(subsets):
            expected = s.operator.apply(x)
            if s.additive is not None:
                expected += s.additive
            ratio = np.where(expected > 0, s.measured / np.maximum(expected, 1e-30), 0.0).astype(np.float32)
            factor = s.operator.adjoint(ratio)
            factor *= inv_sens[b]
            factor += unseen[b]
            x *= factor
            if callback is not None:
                callback(SimpleNamespace(iteration=it, subset=b, n_iterations=n_iterations, n_subsets=len(subsets)))
    return x


def test_osem_equals_the_old_formula_on_a_spect_model(rng):
    """Four subsets with an additive term, two views without counts, and one voxel that subset 0 does not
    see (an image-side mask composed into its operator): the images agree within 1e-6 relative."""
    model = _spect_model()
    truth = np.zeros(model.image_shape, np.float32)
    truth[4:12, 5:11, 4:12] = rng.uniform(1.0, 4.0, (8, 6, 8))
    clean = model.forward(truth)
    measured = rng.poisson(clean * 20 + 0.5).astype(np.float32)
    measured[[2, 9]] = 0.0  # views without counts
    additive = np.full(model.data_shape, 0.5, np.float32)
    subsets = build_subsets(model, measured, additive, 4)
    hidden = np.ones(model.image_shape, np.float32)
    hidden[8, 8, 8] = 0.0
    op0 = compose(subsets[0].operator, ElementwiseMultiply(hidden))
    subsets[0] = Subset(op0, subsets[0].measured, subsets[0].additive, op0.adjoint(np.ones(op0.out_shape, np.float32)))
    assert subsets[0].sensitivity[8, 8, 8] == 0 and subsets[1].sensitivity[8, 8, 8] > 0
    old = _old_osem(subsets, 3)
    new = osem(subsets, 3, progress=False)
    assert np.abs(new - old).max() <= 1e-6 * np.abs(old).max()
    assert new[8, 8, 8] > 0


def _peak_growth_after_first_iteration(run) -> int:
    """Peak traced bytes above the level at the end of iteration 1, over the later iterations."""
    marks: dict[str, int] = {}

    def callback(p):
        if p.iteration == 0 and p.subset == p.n_subsets - 1:
            marks["base"] = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
        elif p.iteration == p.n_iterations - 1 and p.subset == p.n_subsets - 1:
            marks["peak"] = tracemalloc.get_traced_memory()[1]

    tracemalloc.start()
    try:
        run(callback)
    finally:
        tracemalloc.stop()
    return marks["peak"] - marks["base"]


def test_osem_loop_allocates_nothing_after_its_first_iteration():
    """With allocation-free operators (elementwise, composed, one composition step that needs buffers),
    iterations 2..4 of a 64^3 OSEM stay within 5 % of one image's bytes (tracemalloc sees NumPy's and
    Numba's allocations); the old loop allocates several images per sub-iteration."""
    shape = (64, 64, 64)
    rng = np.random.default_rng(3)
    subsets = []
    for b in range(4):
        w = rng.uniform(0.5, 1.5, shape).astype(np.float32)
        op = compose(ElementwiseMultiply(w), CopyScale(shape, 0.5), ScalingOperator(shape, 2.0))
        y = rng.poisson(5.0, shape).astype(np.float32)
        subsets.append(Subset(op, y, np.full(shape, 0.1, np.float32), op.adjoint(np.ones(shape, np.float32))))
    image_bytes = 4 * int(np.prod(shape))
    growth = _peak_growth_after_first_iteration(lambda cb: osem(subsets, 4, callback=cb, progress=False))
    assert growth < 0.05 * image_bytes, f"{growth} bytes = {growth / image_bytes:.2f} images"


def test_osem_loop_on_a_spect_model_allocates_only_the_projectors_scratch():
    """32^3, 32 views, 4 subsets on the CPU: iterations 2..3 grow the traced peak by at most the Numba
    projector's own per-view scratch (measured on bare ``kernels.spect_projector`` calls with preallocated
    outputs, the floor no caller can go below) plus 5 % of one image. The old loop: more than one image."""
    from kernels import spect_projector

    n = 32
    angles = np.linspace(0.0, 360.0, 32, endpoint=False)
    geo = SPECTGeometry(angles, np.full(32, 150.0), n_rows=n, n_cols=n, pixel_size_mm=4.0)
    model = SPECTSystemModel(geo, get_collimator("SY-LEHR"), 140.5, None, psf=True, device="cpu")
    rng = np.random.default_rng(0)
    measured = rng.poisson(5.0, model.data_shape).astype(np.float32)
    subsets = build_subsets(model, measured, np.full(model.data_shape, 0.5, np.float32), 4)
    image_bytes = 4 * n ** 3

    views = subsets[0].operator.views
    ws = model.workspace(int(views.size))
    x = np.ones(model.image_shape, np.float32)
    proj = np.empty(subsets[0].operator.out_shape, np.float32)
    img = np.zeros(model.image_shape, np.float32)

    def bare_calls():
        spect_projector.forward(x, model.proj_geometry, views, None, ws, out=proj)
        spect_projector.back(proj, model.proj_geometry, views, model.image_shape, None, ws, out=img)

    bare_calls()
    floor = 0
    for _ in range(3):
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            bare_calls()
            floor = max(floor, tracemalloc.get_traced_memory()[1] - base)
        finally:
            tracemalloc.stop()
    assert floor < 0.5 * image_bytes  # per-view planes, not images

    growth = _peak_growth_after_first_iteration(lambda cb: osem(subsets, 3, callback=cb, progress=False))
    assert growth <= floor + 0.05 * image_bytes, f"{growth} bytes (projector floor {floor}, image {image_bytes})"

    old_growth = _peak_growth_after_first_iteration(lambda cb: _old_osem(subsets, 3, cb))
    assert old_growth > image_bytes  # the measurement sees what the old loop allocated
