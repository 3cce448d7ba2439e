"""The PET CUDA path without a GPU: every kernel compiles to PTX for Hopper (sm_90), the launchers run
under Numba's CUDA simulator against the CPU path, and the launch configuration is checked."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_under_cuda_simulator

pytest.importorskip("numba.cuda", reason="numba-cuda is not installed (pip install .[test])")

ROOT = Path(__file__).resolve().parents[1]


def _signatures():
    from numba import types as t

    f32_1, f32_2, f32_3 = t.float32[::1], t.float32[:, ::1], t.float32[:, :, ::1]
    f64, i64, i32 = t.float64[::1], t.int64[::1], t.int32[::1]
    lors = (f64, i64, f32_2, f32_2, t.int64, f64, i32)
    sino = (f64, i64, i64, f32_3, f32_3, f32_1, f32_1, f32_1, f32_2, f64, t.int64, f64)
    return {
        "forward_lors": (f32_1,) + lors + (f32_2,),
        "back_lors": (f32_2,) + lors + (f32_1,),
        "forward_sino": (f32_1,) + sino + (f32_2,),
        "back_sino": (f32_2,) + sino + (f32_1,),
    }


@pytest.mark.parametrize("kernel", ["forward_lors", "back_lors", "forward_sino", "back_sino"])
def test_pet_kernel_compiles_to_ptx_for_hopper(kernel):
    from numba import cuda

    from kernels import pet_cuda

    assert set(pet_cuda.KERNEL_BODIES) == set(_signatures())
    ptx, _ = cuda.compile_ptx(pet_cuda.KERNEL_BODIES[kernel], _signatures()[kernel], cc=(9, 0))
    assert ".target sm_90" in ptx and ".entry" in ptx
    if kernel.startswith("back"):
        assert "atom.global.add.f32" in ptx or "red.global.add.f32" in ptx  # matched adjoint via atomics


def test_pet_kernels_import_neither_recon_nor_cupy():
    code = ("import sys; import kernels.pet_projector, kernels.pet_cpu, kernels.pet_cuda; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('recon', 'cupy')); print(bad); "
            "sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]


def test_pet_cuda_launchers_match_cpu_under_simulator():
    """All four kernels in every TOF mode, several LORs per thread: within 1e-6 of the CPU path (a few
    float32 roundings: same pet_math functions, different summation order of the atomic adds)."""
    r = run_under_cuda_simulator("_cudasim_pet_parity.py")
    assert r["lors_per_thread"] > 1 and r["sino_bins_per_thread"] > 1
    assert r["sino_nonzero_none"] > 0.3 and r["sino_nonzero_all"] > 0.1
    keys = [k for k in r if k.startswith(("forward_", "back_"))]
    assert len(keys) == 10
    for key in keys:
        assert r[key] < 1e-6, (key, r[key])


def test_launch_configuration_fills_an_h200_for_a_clinical_subset():
    """A Vision-like TOF sinogram subset (380 views / 19 subsets, span 11) gives >= 4 x 132 blocks of 256
    threads in a grid-stride launch, computed without a GPU."""
    from kernels.pet_projector import cuda_launch_config
    from recon.data.pet_presets import get_pet_scanner
    from recon.data.pet_sinogram import SinogramLayout

    layout = SinogramLayout.for_fov(get_pet_scanner("biograph_vision_like"), 600.0, span=11, tof=True)
    n_lors = (layout.n_views // 19) * layout.n_planes * layout.n_radial
    blocks, threads = cuda_launch_config(n_lors)
    assert blocks >= 4 * 132 and threads == 256
    assert blocks <= 132 * 32  # capped: the threads then stride over the rest
    assert cuda_launch_config(10) == (1, 256)
    with pytest.raises(ValueError, match="bad launch request"):
        cuda_launch_config(-1)


def test_device_array_of_unknown_package_is_refused_by_name():
    from kernels import pet_projector as kp

    class Fake:
        __cuda_array_interface__ = {"shape": (2, 2, 2), "typestr": "<f4", "data": (0, False), "version": 3}
        shape, ndim, dtype = (2, 2, 2), 3, np.dtype(np.float32)
        flags = type("Flags", (), {"c_contiguous": True})()

    with pytest.raises(TypeError, match=r"^image: device arrays of type .*Fake are not supported"):
        kp.joseph_forward(Fake(), (0, 0, 0), (1, 1, 1), np.zeros((1, 3), np.float32), np.ones((1, 3), np.float32))
