"""OSEM against properties that do not come from its own code: a known image reached from
noise-free data, counts conserved, positivity, zero divisions, subsets and the callback."""
from __future__ import annotations

import numpy as np
import pytest

from recon.algorithms.osem import osem
from recon.algorithms.protocol import Subset
from recon.algorithms.reconstruct import build_subsets
from recon.algorithms.subsets import interleaved_subsets
from recon.backend import to_host
from recon.data import SPECTGeometry, Volume, get_collimator
from recon.spect.system_model import SPECTSystemModel
from tests.conftest import supersampled_cylinder, supersampled_sphere


class MatrixOperator:
    """A dense non-negative matrix as a LinearOperator (truth for the algorithm, no SPECT)."""

    def __init__(self, a: np.ndarray) -> None:
        self.a = a
        self.in_shape = (a.shape[1],)
        self.out_shape = (a.shape[0],)

    def apply(self, x):
        return (self.a @ x).astype(np.float32)

    def adjoint(self, y):
        return (self.a.T @ y).astype(np.float32)


def _matrix_subsets(a, y, r, n_sub):
    subs = []
    for b in range(n_sub):
        rows = np.arange(b, a.shape[0], n_sub)
        op = MatrixOperator(a[rows])
        subs.append(Subset(op, y[rows], None if r is None else r[rows], op.adjoint(np.ones(rows.size, np.float32))))
    return subs


def test_em_converges_to_known_image_from_consistent_data(rng):
    a = rng.random((120, 20)).astype(np.float32)
    truth = rng.uniform(0.5, 5.0, 20).astype(np.float32)
    r = np.full(120, 0.3, np.float32)
    y = (a @ truth + r).astype(np.float32)
    x = osem(_matrix_subsets(a, y, r, 1), 3000, progress=False)
    np.testing.assert_allclose(x, truth, rtol=2e-2)


def test_osem_keeps_positivity_and_handles_zero_expectation(rng):
    a = rng.random((40, 10)).astype(np.float32)
    a[:, 3] = 0.0  # a voxel no detector sees: zero sensitivity
    a[5] = 0.0  # a measurement no voxel reaches: zero expectation
    y = rng.poisson(a @ np.full(10, 3.0) + 0.1).astype(np.float32)
    y[5] = 7.0
    x = osem(_matrix_subsets(a, y, None, 4), 20, progress=False)
    assert np.isfinite(x).all()
    assert (x >= 0).all()
    assert x[3] == 0.0


def test_callback_sees_every_subiteration_and_x0_is_not_modified(rng):
    a = rng.random((24, 6)).astype(np.float32)
    y = (a @ np.ones(6)).astype(np.float32)
    seen = []
    x0 = np.full(6, 2.0, np.float32)
    osem(_matrix_subsets(a, y, None, 3), 2, x0=x0, callback=lambda p: seen.append((p.iteration, p.subset)),
         progress=False)
    assert seen == [(i, b) for i in range(2) for b in range(3)]
    assert (x0 == 2.0).all()


def test_interleaved_subsets_cover_every_view_once():
    subs = interleaved_subsets(120, 8)
    assert len(subs) == 8 and all(s.size == 15 for s in subs)
    assert np.array_equal(np.sort(np.concatenate(subs)), np.arange(120))
    assert np.array_equal(subs[1][:3], [1, 9, 17])
    with pytest.raises(ValueError, match=r"exceeds the number of subset units \(4"):
        interleaved_subsets(4, 8)


def test_spect_osem_conserves_counts_and_recovers_uniform_activity(device):
    n, nz, pixel = 40, 16, 6.0
    geo = SPECTGeometry(np.arange(60) * 6.0, 180.0, n_rows=nz, n_cols=n, pixel_size_mm=pixel)
    grid = geo.image_grid()
    body = supersampled_cylinder((nz, n, n), (pixel,) * 3, 80.0, 1e3, n_sub=4)
    mu = Volume(body * 0.0154, grid, "1/mm")
    truth = body * 100.0 + supersampled_sphere((nz, n, n), (pixel,) * 3, (30.0, 0.0, 0.0), 20.0, 4) * 300.0
    model = SPECTSystemModel(geo, get_collimator("SY-LEHR"), 140.5, mu, psf=True, device=device)
    data = to_host(model.forward(model.xp.asarray(truth.astype(np.float32))))
    scatter = np.full_like(data, 0.2 * data.mean())
    subsets = build_subsets(model, data + scatter, scatter, 6)
    x = osem(subsets, 10, progress=False)
    fwd = sum(float((s.operator.apply(x) + s.additive).sum()) for s in subsets)
    assert fwd == pytest.approx(float((data + scatter).sum()), rel=0.01)
    x = to_host(x)
    interior = supersampled_cylinder((nz, n, n), (pixel,) * 3, 50.0, 30.0, n_sub=1) > 0.99
    interior &= supersampled_sphere((nz, n, n), (pixel,) * 3, (30.0, 0.0, 0.0), 35.0, 1) == 0
    assert x[interior].mean() == pytest.approx(100.0, rel=0.03)


def test_voxel_unseen_by_one_subset_is_kept_not_zeroed(rng):
    a = rng.random((40, 8)).astype(np.float32) + 0.1
    a[0::4, 5] = 0.0  # subset 0 (rows 0, 4, 8, ...) never sees voxel 5; the others do
    truth = np.linspace(1.0, 4.0, 8).astype(np.float32)
    y = (a @ truth).astype(np.float32)
    subsets = _matrix_subsets(a, y, None, 4)
    assert subsets[0].sensitivity[5] == 0.0 and all(s.sensitivity[5] > 0 for s in subsets[1:])
    x = osem(subsets, 500, progress=False)
    np.testing.assert_allclose(x, truth, rtol=2e-2)
