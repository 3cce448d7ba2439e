"""Run under NUMBA_ENABLE_CUDASIM=1 (a subprocess of test_pet_cuda_kernels): every PET CUDA launcher on
NumPy arrays against the Numba CPU path, on a tiny problem, each in all its TOF modes. Prints one JSON
line: relative errors (max |cuda - cpu| / max |cpu|) and the launch facts the test checks.

Launches use 4 threads x 2 blocks, fewer than the LORs, so each thread loops over several LORs.
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np

assert os.environ.get("NUMBA_ENABLE_CUDASIM") == "1", "run with NUMBA_ENABLE_CUDASIM=1"
sys.setswitchinterval(5e-4)  # see tests/_cudasim_parity.py: the simulator's threads poll the GIL

from kernels import pet_cuda  # noqa: E402
from kernels import pet_math as pm  # noqa: E402
from kernels import pet_projector as kp  # noqa: E402

THREADS, N_SM, BLOCKS_PER_SM = 4, 1, 2
LAUNCH = dict(threads=THREADS, n_sm=N_SM, blocks_per_sm=BLOCKS_PER_SM)
SHAPE = (4, 6, 7)
ORIGIN, VOXEL = (-9.0, -7.5, -4.5), (3.0, 3.0, 3.0)
TOF = kp.TOFKernel(7, 6.0, 5.0, 3.0)


def rel(a: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - ref).max() / max(np.abs(ref).max(), 1e-30))


def geom_arrays(shape):
    g, d = kp._image_geometry(ORIGIN, VOXEL, shape)
    return g, d


def random_lors(rng: np.random.Generator, n: int = 19) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(first ends, second ends, TOF bins) of ``n`` LORs in random directions through the image."""
    u = rng.normal(size=(n, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    mid = rng.uniform(-4, 4, (n, 3))
    a = (mid - 60 * u).astype(np.float32)
    b = (mid + 60 * u).astype(np.float32)
    return a, b, rng.integers(0, TOF.n_bins, n).astype(np.int32)


def sinogram_geometry(rng: np.random.Generator) -> kp.SinogramGeometry:
    """4 views, 3 planes, 5 radial bins, scanner flipped (FFS-like) and shifted, some bins in gaps."""
    ang = np.linspace(0, np.pi, 4, endpoint=False)[:, None] + np.linspace(-0.3, 0.3, 5)[None, :] * 0.2
    off = np.linspace(-6, 6, 5)[None, :]
    nrm = np.stack([np.cos(ang), np.sin(ang)], -1)
    tan = np.stack([-np.sin(ang), np.cos(ang)], -1)
    xy_a = nrm * off[..., None] - 50 * tan
    xy_b = nrm * off[..., None] + 50 * tan
    return kp.SinogramGeometry(xy_a, xy_b, np.array([-3.0, 0.0, 2.0]), np.array([-3.0, 1.0, -1.0]),
                               np.array([1.0, 2.0, 3.0]), (rng.random((4, 5)) > 0.2).astype(np.float32),
                               (-1.0, 1.0, -1.0), (0.5, -0.5, 1.0))


def main() -> None:
    rng = np.random.default_rng(3)
    img = rng.random(SHAPE).astype(np.float32)
    geom, dims = geom_arrays(SHAPE)
    n = 19
    a, b, tb = random_lors(rng, n)
    result: dict[str, float | int] = {}
    for label, tof, bins, width in (("none", None, None, 1), ("all", TOF, None, TOF.n_bins), ("one", TOF, tb, 1)):
        mode, tofp, _ = kp._tof_setup(tof, bins, n)
        tbins = bins if bins is not None else np.zeros(1, np.int32)
        ref = kp.joseph_forward(img, ORIGIN, VOXEL, a, b, tof=tof, tof_bins=bins).reshape(n, width)
        out = np.zeros((n, width), np.float32)
        pet_cuda.forward_lors(img.reshape(-1), geom, dims, a, b, mode, tofp, tbins, out, **LAUNCH)
        result[f"forward_lors_{label}"] = rel(out, ref)
        y = rng.random((n, width)).astype(np.float32)
        ref_b = kp.joseph_back(y.reshape(ref.shape if width > 1 else (n,)), SHAPE, ORIGIN, VOXEL, a, b, tof=tof,
                               tof_bins=bins)
        out_b = np.zeros(SHAPE, np.float32)
        pet_cuda.back_lors(y, geom, dims, a, b, mode, tofp, tbins, out_b.reshape(-1), **LAUNCH)
        result[f"back_lors_{label}"] = rel(out_b, ref_b)

    # sinogram: 3 of 4 views
    g = sinogram_geometry(rng)
    views = np.array([3, 0, 2], np.int64)
    xa, xb, za, zb, pw, tw, place = g.arrays(np)
    m = views.size * 3 * 5
    for label, tof, width in (("none", None, 1), ("all", TOF, TOF.n_bins)):
        mode, tofp, _ = kp._tof_setup(tof, None, 0)
        ref = kp.sinogram_forward(img, ORIGIN, VOXEL, g, views, tof=tof).reshape(m, width)
        out = np.zeros((m, width), np.float32)
        pet_cuda.forward_sino(img.reshape(-1), geom, dims, views, xa, xb, za, zb, pw, tw, place, mode, tofp, out,
                              **LAUNCH)
        result[f"forward_sino_{label}"] = rel(out, ref)
        result[f"sino_nonzero_{label}"] = float((ref > 0).mean())
        y = rng.random((m, width)).astype(np.float32)
        ref_b = kp.sinogram_back(y.reshape((3, 3, 5) + ((width,) if width > 1 else ())), SHAPE, ORIGIN, VOXEL, g,
                                 views, tof=tof)
        out_b = np.zeros(SHAPE, np.float32)
        pet_cuda.back_sino(y, geom, dims, views, xa, xb, za, zb, pw, tw, place, mode, tofp, out_b.reshape(-1),
                           **LAUNCH)
        result[f"back_sino_{label}"] = rel(out_b, ref_b)
    result["lors_per_thread"] = -(-n // (THREADS * N_SM * BLOCKS_PER_SM))
    result["sino_bins_per_thread"] = -(-m // (THREADS * N_SM * BLOCKS_PER_SM))
    result["tof_modes"] = len({pm.TOF_NONE, pm.TOF_ALL, pm.TOF_ONE})
    print(json.dumps(result))


if __name__ == "__main__":
    main()
