"""Run under NUMBA_ENABLE_CUDASIM=1 (a subprocess of test_cuda_kernels): the CUDA launchers on NumPy
arrays against the Numba CPU path, on a tiny problem. Prints one JSON line: relative errors
(max |cuda - cpu| / max |cpu|) and the launch facts the test checks.

Every kernel is launched with fewer threads than elements, so each thread loops over several
elements, and the blur variance increments are large enough that several 3-tap passes run.
"""
from __future__ import annotations

import json
import os
import sys
import types

import numpy as np

assert os.environ.get("NUMBA_ENABLE_CUDASIM") == "1", "run with NUMBA_ENABLE_CUDASIM=1"
# The simulator runs each CUDA thread as a Python thread and its scheduler polls them while they wait at
# barriers; with the default 5 ms GIL switch interval that polling starves the threads (measured here:
# 220 s for this script), with 0.5 ms it takes 24 s.
sys.setswitchinterval(5e-4)

from kernels import spect_cuda  # noqa: E402
from kernels import spect_launch  # noqa: E402
from kernels import spect_math as sm  # noqa: E402
from kernels import spect_projector as sp  # noqa: E402

NZ, NY, NX, NK, NC, N_VIEWS = 3, 7, 7, 9, 8, 6
STEP_MM = 4.0
COLUMN_THREADS = 2     # depth_sum / depth_spread: 2 threads for NZ = 3 rows of a column
TILE_THREADS = 32      # blur_columns: one 32-row tile wide, so each thread loops over all NC columns
GRID_THREADS = 4       # the ray and voxel kernels: 4 threads x MAX_BLOCKS blocks, grid-stride
MAX_BLOCKS = 2         # every kernel: several rays / voxels / tiles / columns per block
LAUNCH_THREADS = {"depth_sum": COLUMN_THREADS, "depth_spread": COLUMN_THREADS, "blur_columns": TILE_THREADS,
                  "forward_samples": GRID_THREADS, "back_attenuate": GRID_THREADS, "gather": GRID_THREADS,
                  "total_transmission": GRID_THREADS, "transpose": 64}


class SimDeviceArray(np.ndarray):
    """A NumPy array posing as a device array (it exposes ``__cuda_array_interface__``), so that
    kernels.spect_projector takes its device branch and the simulator runs the CUDA launchers on it."""

    @property
    def __cuda_array_interface__(self) -> dict:
        return {"shape": self.shape, "typestr": self.dtype.str, "data": (self.ctypes.data, False), "version": 3,
                "strides": None, "stream": None}

    @property
    def device(self) -> types.SimpleNamespace:
        return types.SimpleNamespace(id=0)


def _sim_module() -> types.ModuleType:
    """The array module of SimDeviceArray (what kernels.spect_projector finds from the array's type)."""
    mod = types.ModuleType("simxp")
    for name in ("empty", "zeros", "arange", "asarray", "isfinite"):
        mod.__dict__[name] = (lambda f: lambda *a, **k: np.asarray(f(*a, **k)).view(SimDeviceArray))(getattr(np, name))
    for name in ("float32", "float64", "int64", "uint8"):
        setattr(mod, name, getattr(np, name))
    sys.modules["simxp"] = mod
    SimDeviceArray.__module__ = "simxp"
    return mod


def geometry(rng: np.random.Generator) -> sp.RotateSumGeometry:
    """Views at irregular angles; variance increments up to 1.4 pixel^2 per plane and 2.3 at the end."""
    theta = np.deg2rad(np.arange(N_VIEWS) * 360.0 / N_VIEWS + 7.0)
    var_z = rng.random((N_VIEWS, NK + 1)) * 0.4
    var_c = rng.random((N_VIEWS, NK + 1)) * 0.4
    var_z[:, 2], var_c[:, 5] = 1.4, 0.9
    var_z[:, NK], var_c[:, NK] = 2.3, 1.7
    centers = np.array([(NK - 1) / 2, (NC - 1) / 2, (NY - 1) / 2, (NX - 1) / 2])
    return sp.RotateSumGeometry(np.cos(theta), np.sin(theta), var_z, var_c, centers)


def rel(a: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - ref).max() / np.abs(ref).max())


def zlast(a: np.ndarray) -> np.ndarray:
    """(nz, ny, nx) -> (ny * nx, nz) through the CUDA transpose kernel."""
    out = np.zeros((a.shape[1] * a.shape[2], a.shape[0]), np.float32)
    spect_cuda.to_zlast(a, out, threads=LAUNCH_THREADS, max_blocks=MAX_BLOCKS)
    return out


def cuda_forward(x, g, views, att):
    """The CUDA forward (simulated) with att = (mu_t (ny * nx, nz), trans_total, n_sq) or None."""
    cos_t, sin_t, var_z, var_c, centers = g.arrays(np)
    profile, band = g.column_band(np, NC)
    out = np.zeros((views.size, NZ, NC), np.float32)
    planes = np.zeros((views.size, NK, NC, NZ), np.float32)
    use_att = att is not None
    mu, trans, n_sq = att if use_att else (np.zeros((1, 1), np.float32), np.zeros((1, 1, 1), np.float32), 0)
    spect_cuda.forward_views(zlast(x), NY, NX, mu, trans, use_att, STEP_MM, n_sq, views, cos_t, sin_t, var_z, var_c,
                             centers, profile, band, planes, out, threads=LAUNCH_THREADS, max_blocks=MAX_BLOCKS)
    return out


def cuda_back(y, g, views, att):
    cos_t, sin_t, var_z, var_c, centers = g.arrays(np)
    profile, band = g.column_band(np, NC)
    out = np.zeros((NZ, NY, NX), np.float32)
    planes = np.zeros((views.size, NK, NC, NZ), np.float32)
    mu, _, n_sq = att
    spect_cuda.back_views(np.ascontiguousarray(y), NY, NX, mu, True, STEP_MM, n_sq, views, cos_t, sin_t, var_z, var_c,
                          centers, profile, band, planes, np.zeros((NY * NX, NZ), np.float32), out,
                          threads=LAUNCH_THREADS, max_blocks=MAX_BLOCKS)
    return out


def tall_case(rng: np.random.Generator, z_tile_limit: int | None) -> dict[str, float]:
    """33 rows (two 32-row tiles, the second 1 row long; or 8-row tiles when ``z_tile_limit`` lowers the
    shared-memory limit), 10 columns with a band truncated at 6.5 sigma, 64 threads per column tile (several
    columns per thread step), 4 threads per detector column: forward and back with attenuation against the
    CPU path, and the adjoint."""
    nz, ny, nx, nk, nc, n_views = 33, 7, 7, 8, 10, 3
    theta = np.deg2rad(np.arange(n_views) * 120.0 + 11.0)
    var_z = rng.random((n_views, nk + 1)) * 0.06
    var_c = rng.random((n_views, nk + 1)) * 0.06
    var_z[:, 0] = var_c[:, 0] = 0.0
    g = sp.RotateSumGeometry(np.cos(theta), np.sin(theta), var_z, var_c,
                             np.array([(nk - 1) / 2, (nc - 1) / 2, (ny - 1) / 2, (nx - 1) / 2]))
    limit = spect_launch.SHARED_LIMIT_BYTES
    if z_tile_limit is not None:
        spect_launch.SHARED_LIMIT_BYTES = z_tile_limit
    threads = dict(LAUNCH_THREADS, blur_columns=64, depth_sum=4, depth_spread=4)
    views = np.arange(n_views, dtype=np.int64)
    mu = (rng.random((nz, ny, nx)) * 0.05).astype(np.float32)
    att = sp.attenuation_model(mu, g, STEP_MM, nc)
    cos_t, sin_t, var_z, var_c, centers = g.arrays(np)
    profile, band = g.column_band(np, nc)
    x = rng.random((nz, ny, nx)).astype(np.float32)
    y = rng.random((n_views, nz, nc)).astype(np.float32)
    mu_t, x_t = zlast(mu), zlast(x)
    p = np.zeros((n_views, nz, nc), np.float32)
    spect_cuda.forward_views(x_t, ny, nx, mu_t, att.trans_total, True, STEP_MM, att.n_sq, views, cos_t, sin_t, var_z,
                             var_c, centers, profile, band, np.zeros((n_views, nk, nc, nz), np.float32), p,
                             threads=threads, max_blocks=3)
    b = np.zeros((nz, ny, nx), np.float32)
    spect_cuda.back_views(y, ny, nx, mu_t, True, STEP_MM, att.n_sq, views, cos_t, sin_t, var_z, var_c, centers,
                          profile, band, np.zeros((n_views, nk, nc, nz), np.float32), np.zeros((ny * nx, nz), np.float32),
                          b, threads=threads, max_blocks=3)
    out = {"z_tile": spect_cuda.z_tile_rows(nc), "half": int((band.shape[3] - 1) // 2),
           "forward": rel(p, sp.forward(x, g, views, att)), "back": rel(b, sp.back(y, g, views, x.shape, att)),
           "adjoint": abs(float(np.vdot(p.astype(np.float64), y)) - float(np.vdot(x.astype(np.float64), b)))
           / abs(float(np.vdot(p.astype(np.float64), y)))}
    spect_launch.SHARED_LIMIT_BYTES = limit
    return out


def osem(forward, back, data, additive, subsets, n_iter):
    """Plain OSEM (x <- x / s_b * A_b^T (y_b / (A_b x + r_b))), the same update for both paths."""
    x = np.ones((NZ, NY, NX), np.float32)
    sens = [back(np.ones((v.size, NZ, NC), np.float32), v) for v in subsets]
    for _ in range(n_iter):
        for v, s in zip(subsets, sens):
            ratio = data[v] / (forward(x, v) + additive[v])
            x = np.where(s > 0, x * back(ratio.astype(np.float32), v) / np.where(s > 0, s, 1), x).astype(np.float32)
    return x


def main() -> None:
    rng = np.random.default_rng(7)
    g = geometry(rng)
    cos_t, sin_t, _, _, centers = g.arrays(np)
    views = np.arange(N_VIEWS, dtype=np.int64)
    mu = (rng.random((NZ, NY, NX)) * 0.15).astype(np.float32)  # half-steps up to 0.3: exp_small squares once
    mu[:, :, :2] = 0.0  # some air: the attenuation step without an exponential
    trans_cuda = np.zeros((N_VIEWS, NC, NZ), np.float32)
    mu_t = zlast(mu)
    spect_cuda.total_transmission(mu_t, NY, NX, views, cos_t, sin_t, centers, STEP_MM, NK, trans_cuda,
                                  threads=LAUNCH_THREADS, max_blocks=MAX_BLOCKS)
    att = sp.attenuation_model(mu, g, STEP_MM, NC)  # the CPU's
    result: dict[str, float | int] = {"attenuation": rel(trans_cuda, att.trans_total), "n_sq": att.n_sq,
                                      "zlast": float(np.abs(mu_t - att.mu).max())}
    att_c = (mu_t, trans_cuda, att.n_sq)  # the CUDA path's

    x = rng.random((NZ, NY, NX)).astype(np.float32)
    result["forward"] = rel(cuda_forward(x, g, views, att_c), sp.forward(x, g, views, att))
    sub = np.array([4, 1], dtype=np.int64)
    p_sub = sp.forward(x, g, sub, out=np.empty((sub.size, NZ, NC), np.float32))
    result["forward_no_att_subset"] = rel(cuda_forward(x, g, sub, None), p_sub)
    y = rng.random((N_VIEWS, NZ, NC)).astype(np.float32)
    b_cuda = cuda_back(y, g, views, att_c)
    result["back"] = rel(b_cuda, sp.back(y, g, views, x.shape, att))
    lhs = float(np.vdot(cuda_forward(x, g, views, att_c).astype(np.float64), y))
    rhs = float(np.vdot(x.astype(np.float64), b_cuda))
    result["adjoint_cuda"] = abs(lhs - rhs) / abs(lhs)

    # OSEM, 3 iterations x 3 subsets of 2 views, through each path's operators
    truth = rng.random((NZ, NY, NX)).astype(np.float32) * 10
    data = sp.forward(truth, g, views, att) + 0.5
    additive = np.full_like(data, 0.5)
    subsets = [np.array([b, b + 3], dtype=np.int64) for b in range(3)]
    x_cpu = osem(lambda xx, v: sp.forward(xx, g, v, att), lambda yy, v: sp.back(yy, g, v, (NZ, NY, NX), att),
                 data, additive, subsets, 3)
    x_cuda = osem(lambda xx, v: cuda_forward(xx, g, v, att_c), lambda yy, v: cuda_back(yy, g, v, att_c),
                  data, additive, subsets, 3)
    result["osem_3x3"] = rel(x_cuda, x_cpu)

    result["tall"] = tall_case(rng, None)
    result["tall_8_row_tiles"] = tall_case(rng, 10 * 8 * 4)

    # the projector's device branch (workspace, z-last copies, column band, launch sizes) end to end,
    # with the default launch sizes scaled down for the simulator
    xp = _sim_module()
    spect_cuda.THREADS.update({"blur_columns": 32, "depth_sum": 2, "depth_spread": 2, "forward_samples": 4,
                               "back_attenuate": 4, "gather": 4, "transpose": 64, "total_transmission": 4,
                               "column_band": 3})
    from kernels import spect_band  # noqa: PLC0415

    prof_h, band_h, half_h = spect_band.column_band(g.var_z, g.var_c, NC)
    prof_d, band_d, half_d = spect_band.column_band_device(g.var_z, g.var_c, NC, xp)
    result["band_device_vs_host"] = float(np.abs(np.asarray(band_d) - band_h).max()) if half_d == half_h else 1.0
    result["band_profiles_equal"] = int(np.array_equal(np.asarray(prof_d), prof_h))
    # a band narrower than the detector (24 columns), then one widened by a limit nothing meets
    vz, vc = g.var_z * 0.05, g.var_c * 0.05
    _, band_h, half_h = spect_band.column_band(vz, vc, 24)
    _, band_d, half_d = spect_band.column_band_device(vz, vc, 24, xp)
    result["band_narrow_half"] = [half_h, half_d]
    result["band_narrow_device_vs_host"] = float(np.abs(np.asarray(band_d) - band_h).max()) if half_d == half_h else 1.0
    limit = spect_band.DROPPED_WEIGHT_LIMIT
    spect_band.DROPPED_WEIGHT_LIMIT = 0.0
    result["band_widened_half"] = [spect_band.column_band(vz, vc, 24)[2], spect_band.column_band_device(vz, vc, 24, xp)[2]]
    spect_band.DROPPED_WEIGHT_LIMIT = limit
    views_d = xp.asarray(views)
    att_d = sp.attenuation_model(xp.asarray(mu), g, STEP_MM, NC)
    p_d = sp.forward(xp.asarray(x), g, views_d, att_d)
    b_d = sp.back(xp.asarray(y), g, views_d, x.shape, att_d)
    result["device_branch_types"] = int(all(isinstance(a, SimDeviceArray) for a in (p_d, b_d, att_d.mu)))
    result["device_branch_forward"] = rel(np.asarray(p_d), sp.forward(x, g, views, att))
    result["device_branch_back"] = rel(np.asarray(b_d), sp.back(y, g, views, x.shape, att))

    # launch facts: elements per thread > 1 everywhere, and several blur passes per step
    cfg = spect_cuda.launch_config(N_VIEWS, N_VIEWS, NZ, NY, NX, NC, NK, MAX_BLOCKS, LAUNCH_THREADS)
    result["column_elements_per_thread"] = -(-NZ // COLUMN_THREADS)
    result["columns_per_block"] = -(-N_VIEWS * NC // cfg["depth_sum"][0])
    result["tiles_per_block"] = -(-N_VIEWS * NK // cfg["blur_columns"][0])
    result["band_half_width"] = int((g.column_band(np, NC)[1].shape[3] - 1) // 2)
    result["gather_elements_per_thread"] = -(-NZ * NY * NX // (GRID_THREADS * MAX_BLOCKS))
    result["attenuation_rays_per_thread"] = -(-N_VIEWS * NZ * NC // (GRID_THREADS * MAX_BLOCKS))
    result["max_blur_passes_per_plane"] = max(sm.blur_passes(a, b) for a, b in zip(g.var_z[:, :NK].ravel(),
                                                                                  g.var_c[:, :NK].ravel()))
    result["blur_passes_final"] = min(sm.blur_passes(a, b) for a, b in zip(g.var_z[:, NK], g.var_c[:, NK]))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
