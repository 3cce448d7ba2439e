"""Shared test configuration: devices to run on, seeded generators, small geometries."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from recon.backend import cuda_available

DEVICES = ["cpu"] + (["cuda"] if cuda_available() else [])


def pytest_collection_modifyitems(config, items):
    """GPU-marked tests skip cleanly on machines without a usable CUDA device."""
    if cuda_available():
        return
    skip = pytest.mark.skip(reason="no CUDA GPU available (CuPy missing or no device)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    """Each test using this runs once per available device."""
    return request.param


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261125)


def supersampled_sphere(shape, spacing, center_mm, radius_mm, n_sub=8) -> np.ndarray:
    """Fraction of each voxel of a centred grid inside a sphere, by n_sub^3 regular sub-samples.

    Written here, independently of recon.phantoms, so tests do not check code with itself.
    """
    nz, ny, nx = shape
    dz, dy, dx = spacing
    offs = (np.arange(n_sub) + 0.5) / n_sub - 0.5
    frac = np.zeros(shape, dtype=np.float64)
    zc = (np.arange(nz) - (nz - 1) / 2) * dz
    yc = (np.arange(ny) - (ny - 1) / 2) * dy
    xc = (np.arange(nx) - (nx - 1) / 2) * dx
    for oz in offs:
        z = zc + oz * dz - center_mm[2]
        for oy in offs:
            y = yc + oy * dy - center_mm[1]
            for ox in offs:
                x = xc + ox * dx - center_mm[0]
                r2 = z[:, None, None] ** 2 + y[None, :, None] ** 2 + x[None, None, :] ** 2
                frac += r2 <= radius_mm**2
    return (frac / n_sub**3).astype(np.float32)


def supersampled_cylinder(shape, spacing, radius_mm, half_length_mm, n_sub=8, center_xy_mm=(0.0, 0.0)) -> np.ndarray:
    """Fraction of each voxel inside a z-axis cylinder (sub-sampled in x-y; z extent exact to a voxel)."""
    nz, ny, nx = shape
    dz, dy, dx = spacing
    offs = (np.arange(n_sub) + 0.5) / n_sub - 0.5
    yc = (np.arange(ny) - (ny - 1) / 2) * dy - center_xy_mm[1]
    xc = (np.arange(nx) - (nx - 1) / 2) * dx - center_xy_mm[0]
    frac2d = np.zeros((ny, nx))
    for oy in offs:
        for ox in offs:
            frac2d += ((yc[:, None] + oy * dy) ** 2 + (xc[None, :] + ox * dx) ** 2) <= radius_mm**2
    frac2d /= n_sub**2
    zc = (np.arange(nz) - (nz - 1) / 2) * dz
    zin = (np.abs(zc) <= half_length_mm).astype(np.float64)
    return (zin[:, None, None] * frac2d[None]).astype(np.float32)


def run_under_cuda_simulator(script: str, timeout_s: float = 300.0) -> dict:
    """Run ``tests/<script>`` in a subprocess with NUMBA_ENABLE_CUDASIM=1 (the simulator must be chosen before
    numba.cuda is imported) and return the JSON object its last stdout line prints; fail with its stderr."""
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", PYTHONPATH=str(root))
    proc = subprocess.run([sys.executable, str(root / "tests" / script)], env=env, cwd=root, capture_output=True,
                          text=True, timeout=timeout_s)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])
