"""Run under NUMBA_ENABLE_CUDASIM=1 (a subprocess of test_cuda_kernels): the CUDA launchers on
NumPy arrays against the Numba CPU path, on a tiny problem. Prints one JSON line of relative errors."""
from __future__ import annotations

import json
import os

import numpy as np

assert os.environ.get("NUMBA_ENABLE_CUDASIM") == "1", "run with NUMBA_ENABLE_CUDASIM=1"

from kernels import spect_cuda  # noqa: E402
from kernels import spect_projector as sp  # noqa: E402
from recon.algorithms.osem import osem  # noqa: E402
from recon.algorithms.protocol import Subset  # noqa: E402
from recon.data import SPECTGeometry, get_collimator  # noqa: E402
from recon.spect.system_model import SPECTSystemModel  # noqa: E402

THREADS = 16


class SimCudaOperator:
    """A subset operator that launches the CUDA kernels (simulated) on NumPy arrays."""

    def __init__(self, model: SPECTSystemModel, att: np.ndarray, views: np.ndarray) -> None:
        self.model, self.att, self.views = model, att, views
        nz, nc = model.image_shape[0], model.geometry.n_cols
        self.in_shape = model.image_shape
        self.out_shape = (views.size, model.geometry.n_rows, nc)
        nk = model.n_depth
        self.tmp = np.zeros((views.size, nz, nc), np.float32)
        self.acc = np.zeros((views.size, nz, nc), np.float32)
        self.planes = np.zeros((views.size, nz, nk, nc), np.float32)

    def apply(self, x):
        cos_t, sin_t, var_z, var_c, centers = self.model.proj_geometry.arrays(np)
        out = np.zeros(self.out_shape, np.float32)
        spect_cuda.forward_views(x, self.att, True, self.views, cos_t, sin_t, var_z, var_c, centers, self.tmp, out,
                                 threads=THREADS)
        return out

    def adjoint(self, y):
        cos_t, sin_t, var_z, var_c, centers = self.model.proj_geometry.arrays(np)
        out = np.zeros(self.in_shape, np.float32)
        spect_cuda.back_views(np.ascontiguousarray(y), self.att, True, self.views, cos_t, sin_t, var_z, var_c,
                              centers, self.acc, self.tmp, self.planes, out, threads=THREADS)
        return out


def main() -> None:
    rng = np.random.default_rng(7)
    nz, n, n_views = 2, 6, 8
    angles = np.arange(n_views) * 45.0 + 5.0
    geo = SPECTGeometry(angles, 30.0 + 3.0 * np.arange(n_views), n_rows=nz, n_cols=n, pixel_size_mm=4.0)
    model = SPECTSystemModel(geo, get_collimator("SY-LEHR"), 140.5, mu_map=None, psf=True, device="cpu")
    g = model.proj_geometry
    cos_t, sin_t, var_z, var_c, centers = g.arrays(np)
    views = np.arange(n_views, dtype=np.int64)
    mu = (rng.random((nz, n, n)) * 0.02).astype(np.float32)
    att_gpu = np.zeros((n_views, nz, n, n), np.float32)
    spect_cuda.attenuation_factors(mu, views, cos_t, sin_t, centers, 4.0, att_gpu)
    att_cpu = sp.attenuation_factors(mu, g, 4.0, n)
    result = {"attenuation": float(np.abs(att_gpu - att_cpu).max() / np.abs(att_cpu).max())}

    x = rng.random((nz, n, n)).astype(np.float32)
    op_all = SimCudaOperator(model, att_cpu, views)
    p_gpu = op_all.apply(x)
    p_cpu = sp.forward(x, g, views, att_cpu)
    result["forward"] = float(np.abs(p_gpu - p_cpu).max() / np.abs(p_cpu).max())
    y = rng.random(p_cpu.shape).astype(np.float32)
    b_gpu = op_all.adjoint(y)
    b_cpu = sp.back(y, g, views, x.shape, att_cpu)
    result["back"] = float(np.abs(b_gpu - b_cpu).max() / np.abs(b_cpu).max())

    # OSEM, 4 iterations x 8 subsets: the same update run through each path's operators
    truth = rng.random((nz, n, n)).astype(np.float32) * 10
    data = sp.forward(truth, g, views, att_cpu) + 0.5
    additive = np.full_like(data, 0.5)

    def subsets(make_op):
        out = []
        for b in range(8):
            v = np.array([b], dtype=np.int64)
            op = make_op(v)
            out.append(Subset(op, np.ascontiguousarray(data[v]), np.ascontiguousarray(additive[v]),
                              op.adjoint(np.ones(op.out_shape, np.float32))))
        return out

    class CpuOperator:
        def __init__(self, v):
            self.views = v
            self.in_shape = (nz, n, n)
            self.out_shape = (v.size, nz, n)

        def apply(self, xx):
            return sp.forward(xx, g, self.views, att_cpu)

        def adjoint(self, yy):
            return sp.back(np.ascontiguousarray(yy), g, self.views, (nz, n, n), att_cpu)

    x_cpu = osem(subsets(CpuOperator), 4, progress=False)
    x_gpu = osem(subsets(lambda v: SimCudaOperator(model, att_cpu, v)), 4, progress=False)
    result["osem_4x8"] = float(np.abs(x_gpu - x_cpu).max() / np.abs(x_cpu).max())
    print(json.dumps(result))


if __name__ == "__main__":
    main()
