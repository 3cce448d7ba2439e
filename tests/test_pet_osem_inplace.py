"""PET operators in the allocation-free OSEM loop: ``apply_into`` / ``adjoint_into`` of the projectors, the
PSF and the models' subset operators against ``apply`` / ``adjoint``, tracemalloc's view of the PET OSEM
loop after its first iteration, and the projector's device branch under the CUDA simulator (device copies
of the small per-geometry arrays made once)."""
from __future__ import annotations

import logging

import numpy as np
import pytest

from recon.algorithms.operators import adjoint_into, apply_into
from recon.algorithms.osem import osem
from recon.algorithms.reconstruct import build_subsets
from recon.data.grid import ImageGrid
from recon.data.pet import ScannerPlacement
from recon.data.pet_presets import get_pet_scanner
from recon.data.pet_sinogram import SinogramLayout
from recon.pet.projector import ListModeProjector, SinogramProjector
from recon.pet.resolution import GaussianPSF
from recon.pet.simulate import events_from_sinogram
from recon.pet.system_model import PETListModeModel, PETSinogramModel
from tests.conftest import run_under_cuda_simulator
from tests.test_osem_inplace import _peak_growth_after_first_iteration

GRID = ImageGrid.centered((6, 24, 24), (4.0, 4.0, 4.0))
# tracemalloc cases: images of 288 KiB and two subsets, so that the interpreter's own few kB (small objects,
# its free lists) stay a small fraction of an image and of a subset's projections
ALLOC_GRID = ImageGrid.centered((8, 96, 96), (4.0, 2.0, 2.0))
N_ALLOC_SUBSETS = 2
logger = logging.getLogger(__name__)


def _layout(tof: bool, **kwargs) -> SinogramLayout:
    return SinogramLayout.for_fov(get_pet_scanner("small_test"), 100.0, tof=tof, **kwargs)


def _events(layout: SinogramLayout, n: int, seed: int):
    """``n`` random detector pairs (with TOF bins when the layout has TOF), as list-mode events."""
    rng = np.random.default_rng(seed)
    counts = np.zeros(layout.shape, np.int64)
    flat = rng.integers(0, counts.size, n)
    np.add.at(counts.reshape(-1), flat, 1)
    return events_from_sinogram(layout, counts, 60.0, rng)


def _check_into(op, rng, exact: bool = True) -> None:
    """``apply_into`` / ``adjoint_into`` (twice: the second reuses every buffer) equal apply / adjoint;
    ``out`` starts as garbage, so it is overwritten, not added to."""
    for _ in range(2):
        x = rng.random(op.in_shape).astype(np.float32)
        y = rng.random(op.out_shape).astype(np.float32)
        out = np.full(op.out_shape, 7.0, np.float32)
        back = np.full(op.in_shape, 7.0, np.float32)
        assert apply_into(op, x, out) is out
        assert adjoint_into(op, y, back) is back
        compare = np.testing.assert_array_equal if exact else (
            lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6 * float(np.abs(b).max())))
        compare(out, op.apply(x))
        compare(back, op.adjoint(y))


# ----------------------------------------------------------------------------- into-methods
@pytest.mark.parametrize("tof", [False, True])
def test_sinogram_projector_into_methods_equal_apply_and_adjoint(rng, tof):
    op = SinogramProjector(_layout(tof), ScannerPlacement(), GRID, "cpu").operator(np.array([1, 5, 9, 13]))
    assert op.inplace_safe is False
    _check_into(op, rng)


@pytest.mark.parametrize("tof", [False, True])
def test_listmode_projector_into_methods_equal_apply_and_adjoint(rng, tof):
    layout = _layout(tof)
    ev = _events(layout, 400, 2)
    proj = ListModeProjector(layout, ScannerPlacement(), GRID, ev.detector_a, ev.detector_b,
                             ev.tof_bin if tof else None, "cpu")
    _check_into(proj.operator(np.arange(0, 400, 3)), rng)


def test_projector_into_methods_check_their_arguments():
    op = SinogramProjector(_layout(False), ScannerPlacement(), GRID, "cpu").operator(np.array([0, 2]))
    x = np.ones(op.in_shape, np.float32)
    y = np.ones(op.out_shape, np.float32)
    with pytest.raises(ValueError, match="SinogramOperator: apply input shape"):
        op.apply_into(y, np.empty(op.out_shape, np.float32))
    with pytest.raises(ValueError, match="SinogramOperator: apply out shape"):
        op.apply_into(x, np.empty(op.in_shape, np.float32))
    with pytest.raises(TypeError, match="float32"):
        op.adjoint_into(y, np.empty(op.in_shape, np.float64))
    with pytest.raises(ValueError, match="SinogramOperator: adjoint input shape"):
        op.adjoint_into(x, np.empty(op.in_shape, np.float32))


@pytest.mark.parametrize("fwhm", [(5.0, 7.0, 9.0), (0.0, 6.0, 0.0), 0.0])
def test_psf_into_methods_equal_apply_bit_for_bit(rng, fwhm):
    psf = GaussianPSF(GRID, fwhm)
    _check_into(psf, rng)
    x = rng.random(psf.in_shape)  # float64 input: apply converts to float32 first
    np.testing.assert_array_equal(psf.apply(x), psf.apply(x.astype(np.float32)))
    with pytest.raises(ValueError, match="GaussianPSF: apply out shape"):
        psf.apply_into(x.astype(np.float32), np.empty((2, 2, 2), np.float32))


@pytest.mark.parametrize("tof", [False, True])
def test_sinogram_subset_operator_into_methods_equal_apply_and_adjoint(rng, tof):
    layout = _layout(tof)
    m = np.random.default_rng(1).uniform(0.5, 1.0, layout.shape[:3]).astype(np.float32)
    model = PETSinogramModel(layout, ScannerPlacement(), GRID, multiplicative=m, psf_fwhm_mm=5.0, device="cpu")
    _check_into(model.subset_operator(np.arange(2, layout.n_views, 4)), rng)


def test_device_constants_are_keyed_by_their_bytes(monkeypatch):
    """A different geometry or TOF kernel never reuses a stale device copy; the same bytes reuse theirs."""
    from types import SimpleNamespace

    from kernels import pet_projector as kp

    monkeypatch.setattr(kp, "_DEVICE_CONSTANTS", {})
    copies = []
    fake = SimpleNamespace(asarray=lambda a: copies.append(a.copy()) or copies[-1])
    first = kp.device_constant(fake, kp.TOFKernel(5, 6.0, 5.0).params(), ("cuda", 0))
    assert kp.device_constant(fake, kp.TOFKernel(5, 6.0, 5.0).params(), ("cuda", 0)) is first
    other = kp.device_constant(fake, kp.TOFKernel(5, 6.0, 4.0).params(), ("cuda", 0))
    assert other is not first and other[2] == 4.0 and len(copies) == 2
    assert kp.device_constant(fake, kp.TOFKernel(5, 6.0, 5.0).params(), ("cuda", 1)) is not first  # other device


def test_host_back_projection_scratch(rng):
    """With a caller's scratch the host back projection gives the same image bit for bit; a scratch too
    small or of the wrong type is refused by name."""
    from kernels import pet_projector as kp

    proj = SinogramProjector(_layout(True), ScannerPlacement(), GRID, "cpu")
    views = np.array([0, 7], np.int64)
    y = rng.random((2,) + tuple(proj.layout.shape[1:])).astype(np.float32)
    args = (y, GRID.shape, proj._origin, proj._voxel, proj.geometry, views)
    scratch = np.full(kp.cpu_back_scratch_size(GRID.shape), np.nan, np.float32)
    np.testing.assert_array_equal(kp.sinogram_back(*args, tof=proj.tof, scratch=scratch),
                                  kp.sinogram_back(*args, tof=proj.tof))
    with pytest.raises(ValueError, match="scratch holds"):
        kp.sinogram_back(*args, tof=proj.tof, scratch=np.empty(5, np.float32))
    with pytest.raises(ValueError, match="scratch must be a host float32"):
        kp.sinogram_back(*args, tof=proj.tof, scratch=scratch.astype(np.float64))


# ----------------------------------------------------------------------------- tracemalloc
def _growth(subsets, n_iterations: int = 2) -> int:
    """Peak traced bytes of ``osem`` over iterations 2.. above the level at the end of iteration 1."""
    return _peak_growth_after_first_iteration(
        lambda callback: osem(subsets, n_iterations, callback=callback, progress=False))


def _budget(subsets, numpy_buffers: int = 0) -> int:
    """5 % of the smaller of one image and one subset's projections (bytes), plus ``numpy_buffers`` of
    NumPy's ufunc iteration buffers (``np.getbufsize()`` float32 values each, freed at the end of the call,
    whatever the array sizes: the TOF factors broadcast over the TOF bins need one)."""
    image = 4 * int(np.prod(subsets[0].operator.in_shape))
    projections = min(4 * int(np.prod(s.operator.out_shape)) for s in subsets)
    return int(0.05 * min(image, projections)) + numpy_buffers * 4 * np.getbufsize()


@pytest.mark.parametrize("tof", [False, True])
def test_pet_sinogram_osem_with_psf_allocates_nothing_after_its_first_iteration(tof):
    layout = _layout(tof, max_ring_difference=2 if tof else None)  # TOF: fewer planes, a faster test
    rng = np.random.default_rng(4)
    m = rng.uniform(0.5, 1.0, layout.shape[:3]).astype(np.float32)
    model = PETSinogramModel(layout, ScannerPlacement(), ALLOC_GRID, multiplicative=m, psf_fwhm_mm=5.0, device="cpu")
    measured = rng.poisson(0.5, layout.shape).astype(np.float32)
    subsets = build_subsets(model, measured, np.full(layout.shape, 0.05, np.float32), N_ALLOC_SUBSETS)
    growth = _growth(subsets)
    budget = _budget(subsets, numpy_buffers=int(tof))
    logger.info("PET sinogram (tof=%s) OSEM: %d bytes after iteration 1 (budget %d)", tof, growth, budget)
    assert growth < budget, f"{growth} bytes, budget {budget}"


def test_pet_listmode_osem_with_psf_allocates_nothing_after_its_first_iteration():
    layout = _layout(True)
    events = _events(layout, 120_000, 6)
    model = PETListModeModel(layout, ScannerPlacement(), ALLOC_GRID, events, psf_fwhm_mm=5.0, device="cpu")
    ones = np.ones(model.data_shape, np.float32)
    subsets = build_subsets(model, ones, np.full(model.data_shape, 1e-3, np.float32), N_ALLOC_SUBSETS)
    growth = _growth(subsets)
    logger.info("PET list-mode OSEM: %d bytes after iteration 1 (budget %d)", growth, _budget(subsets))
    assert growth < _budget(subsets), f"{growth} bytes, budget {_budget(subsets)}"


# ----------------------------------------------------------------------------- device branch, simulated
def test_device_branch_twice_under_the_simulator_copies_its_constants_once():
    """Every public projector entry's device branch (TOF none / all / one) on simulated device arrays, twice:
    within 1e-6 of the CPU path both times; the second round creates no array in the device module (no
    host-to-device copies of the geometry or TOF parameters, no SM-count query, outputs preallocated)."""
    r = run_under_cuda_simulator("_cudasim_pet_device.py")
    errors = {k: v for k, v in r.items() if k.startswith(("forward_", "back_"))}
    assert len(errors) == 2 * 10
    assert all(v < 1e-6 for v in errors.values()), errors
    assert r["created_round1"].get("asarray", 0) > 0 and r["new_constants_round1"] > 0
    assert r["created_round2"] == {} and r["new_constants_round2"] == 0
    assert r["sm_counts_cached"] == 1
