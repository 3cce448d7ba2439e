"""The CUDA path without a GPU: every kernel compiles to PTX for Hopper (sm_90), and the launch
logic runs under Numba's CUDA simulator against the CPU path. With a GPU, the real parity test."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_under_cuda_simulator

numba_cuda = pytest.importorskip("numba.cuda", reason="numba-cuda is not installed (pip install .[test])")

ROOT = Path(__file__).resolve().parents[1]


def _signatures():
    """Argument types of every kernel, as the launchers pass them (also used by benchmarks/ptxas_report.py)."""
    from kernels.spect_cuda import kernel_signatures

    return kernel_signatures()


@pytest.mark.parametrize("kernel", ["transpose", "total_transmission", "forward_samples", "blur_columns", "depth_sum",
                                    "depth_spread", "back_attenuate", "gather", "column_band"])
def test_kernel_compiles_to_ptx_for_hopper(kernel):
    from numba import cuda

    from kernels import spect_cuda

    assert set(spect_cuda.KERNEL_BODIES) == set(_signatures())
    ptx, _ = cuda.compile_ptx(spect_cuda.KERNEL_BODIES[kernel], _signatures()[kernel], cc=(9, 0))
    assert ".target sm_90" in ptx
    assert ".entry" in ptx
    if kernel in spect_cuda.BLOCK_STRIDE:
        assert "bar.sync" in ptx  # the tile and column kernels synchronise around shared memory
        if spect_cuda.shared_bytes(kernel, 128, 128) > 0:
            assert ".extern .shared" in ptx  # dynamic shared memory, sized at launch
        else:
            assert ".shared .align" in ptx  # a fixed tile (transpose: 32 x 33 float32)


def test_launch_configuration_fills_a_hopper_gpu_for_the_128_case():
    """128^3, 120 views, 8 subsets (15 views each): every kernel launches at least 4 blocks per SM of an
    H100 (132 SMs), the blur steps included (views x planes x row tiles, views x columns), and their
    shared memory fits a Hopper SM several times over. Pure arithmetic: no GPU."""
    from kernels import spect_cuda

    cfg = spect_cuda.launch_config(n_sub_views=15, n_views=120, nz=128, ny=128, nx=128, nc=128)
    assert set(cfg) == set(spect_cuda.KERNEL_BODIES)
    for name, (blocks, threads) in cfg.items():
        assert threads % 32 == 0 and threads <= 1024, name
        assert blocks >= 4 * 132, (name, blocks)
        assert spect_cuda.shared_bytes(name, 128, 128) <= 48 * 1024, name  # no opt-in attribute needed
    assert cfg["forward_samples"] == (15 * 128 * 128 // 128, 128)
    assert cfg["blur_columns"] == (15 * 128 * (128 // 32), 256)
    assert cfg["depth_sum"] == cfg["depth_spread"] == (15 * 128, 128)
    assert cfg["gather"] == (128 ** 3 // 256, 256)
    assert spect_cuda.shared_bytes("blur_columns", 128, 128) == 128 * 32 * 4
    assert spect_cuda.shared_bytes("depth_sum", 128, 128) == 2 * 128 * 4
    small = spect_cuda.launch_config(n_sub_views=8, n_views=64, nz=64, ny=64, nx=64, nc=64)
    assert all(blocks >= 132 for blocks, _ in small.values()), small  # the 64 case still covers every SM
    wide = spect_cuda.launch_config(n_sub_views=15, n_views=120, nz=256, ny=1024, nx=1024, nc=1024, n_depth=1024)
    assert spect_cuda.z_tile_rows(1024) == 8 and spect_cuda.shared_bytes("blur_columns", 256, 1024) == 1024 * 8 * 4
    assert wide["blur_columns"][0] == 15 * 1024 * (256 // 8)
    with pytest.raises(ValueError, match="depth_spread: a detector of 8000 rows x 8 columns needs 64000 bytes of shared memory"):
        spect_cuda.launch_config(1, 1, 8000, 8, 8, 8)  # 8000 detector rows: a column does not fit
    with pytest.raises(ValueError, match="multiple of 32"):
        spect_cuda.launch_config(15, 120, 128, 128, 128, 128, threads={"blur_columns": 48})


def test_kernels_package_imports_neither_recon_nor_cupy():
    """kernels/ is pure array code: no recon import, no CuPy import (the array decides the device)."""
    code = ("import sys; import kernels.spect_projector, kernels.spect_cpu, kernels.spect_cuda; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('recon', 'cupy')); print(bad); "
            "sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    for path in (ROOT / "kernels").glob("*.py"):
        text = path.read_text()
        assert "import cupy" not in text and "from recon" not in text and "import recon" not in text, path.name


def test_cuda_launchers_match_cpu_under_simulator():
    """The CUDA kernels (simulated) against the CPU path, several elements per thread, several blur passes,
    the CUDA path's split blur (column band, row recursion) against the CPU's joint one, and the projector's
    device branch end to end on NumPy arrays posing as device arrays.

    Tolerances (max |cuda - cpu| / max |cpu|): 1e-6 for one attenuation / forward / back call, i.e.
    a few float32 roundings (both paths run the same kernels.spect_math functions; they differ in
    summation order and fused multiply-adds); 1e-5 after 3 OSEM iterations x 3 subsets.
    """
    r = run_under_cuda_simulator("_cudasim_parity.py")
    assert r["column_elements_per_thread"] > 1
    assert r["columns_per_block"] > 1 and r["tiles_per_block"] > 1
    assert r["band_half_width"] >= 1  # the columns are blurred through a band (its truncation: test_spect_band.py)
    assert r["zlast"] == 0.0
    assert r["gather_elements_per_thread"] > 1
    assert r["attenuation_rays_per_thread"] > 1
    assert r["max_blur_passes_per_plane"] > 1
    assert r["blur_passes_final"] > 1
    assert r["band_profiles_equal"] == 1
    assert r["band_device_vs_host"] < 1e-7 and r["band_narrow_device_vs_host"] < 1e-7  # column band built on the GPU
    assert r["band_narrow_half"][0] == r["band_narrow_half"][1] < 23  # truncated, the same width on both
    widened = r["band_widened_half"]  # with a limit of 0: doubled until no weight at all is dropped, on both
    assert widened[0] == widened[1] > r["band_narrow_half"][0]
    for case, z_tile in (("tall", 32), ("tall_8_row_tiles", 8)):  # 33 rows: a short tail tile; a truncated band
        t = r[case]
        assert t["z_tile"] == z_tile and t["half"] < 9, (case, t)
        assert t["forward"] < 1e-6 and t["back"] < 1e-6 and t["adjoint"] < 1e-6, (case, t)
    assert r["device_branch_types"] == 1  # kernels.spect_projector's device branch returned device arrays
    for key in ("attenuation", "forward", "forward_no_att_subset", "back", "adjoint_cuda", "device_branch_forward",
                "device_branch_back"):
        assert r[key] < 1e-6, (key, r[key])
    assert r["osem_3x3"] < 1e-5


@pytest.mark.gpu
def test_cpu_and_gpu_give_same_projections_and_osem(rng):
    from recon.backend import to_device, to_host
    from recon.data import SPECTGeometry, Volume, get_collimator
    from recon.algorithms.reconstruct import build_subsets
    from recon.algorithms.osem import osem
    from recon.spect.system_model import SPECTSystemModel
    from tests.conftest import supersampled_cylinder

    geo = SPECTGeometry(np.arange(64) * 5.625, 200.0 + 10 * np.sin(np.arange(64)), n_rows=24, n_cols=48,
                        pixel_size_mm=4.8)
    mu = Volume(supersampled_cylinder((24, 48, 48), (4.8,) * 3, 90.0, 1e3, n_sub=2) * 0.0154, geo.image_grid(),
                "1/mm")
    models = {d: SPECTSystemModel(geo, get_collimator("SY-LEHR"), 140.5, mu, True, device=d) for d in ("cpu", "cuda")}
    x = rng.random(models["cpu"].image_shape).astype(np.float32)
    p_cpu = models["cpu"].forward(x)
    p_gpu = to_host(models["cuda"].forward(to_device(x, "cuda")))
    assert np.abs(p_gpu - p_cpu).max() / np.abs(p_cpu).max() < 1e-4
    b_cpu = models["cpu"].back(p_cpu)
    b_gpu = to_host(models["cuda"].back(to_device(p_cpu, "cuda")))
    assert np.abs(b_gpu - b_cpu).max() / np.abs(b_cpu).max() < 1e-4
    data = p_cpu * 50 + 1
    scatter = np.ones_like(data)
    images = {}
    for d, m in models.items():
        images[d] = osem(build_subsets(m, data, scatter, 8), 4, progress=False)
    img_gpu = to_host(images["cuda"])
    assert np.abs(img_gpu - images["cpu"]).max() / np.abs(images["cpu"]).max() < 1e-3


class _FakeDeviceArray:
    """Just enough of a GPU array for the dispatch checks (nothing is launched)."""

    __cuda_array_interface__ = {"shape": (2, 4, 4), "typestr": "<f4", "data": (0, False), "version": 3}

    def __init__(self, shape=(2, 4, 4)):
        self.shape, self.ndim, self.size, self.dtype = shape, len(shape), int(np.prod(shape)), np.dtype(np.float32)
        self.flags = type("Flags", (), {"c_contiguous": True})()
        self.device = type("Device", (), {"id": 0})()


def _tiny_geometry():
    from kernels import spect_projector as sp

    theta = np.deg2rad([0.0, 90.0])
    return sp.RotateSumGeometry(np.cos(theta), np.sin(theta), np.zeros((2, 5)), np.zeros((2, 5)),
                                np.array([1.5, 1.5, 1.5, 1.5]))


def test_mixed_host_and_device_arrays_are_refused_by_name():
    from kernels import spect_projector as sp

    x = np.zeros((2, 4, 4), np.float32)
    views = np.arange(2, dtype=np.int64)
    with pytest.raises(ValueError, match=r"^out is on CUDA device 0 but image is on the host"):
        sp.forward(x, _tiny_geometry(), views, out=_FakeDeviceArray((2, 2, 4)))


def test_device_array_of_unknown_package_is_refused_by_name():
    from kernels import spect_projector as sp

    with pytest.raises(TypeError, match=r"^image: device arrays of type .*_FakeDeviceArray are not supported"):
        sp.forward(_FakeDeviceArray(), _tiny_geometry(), np.arange(2, dtype=np.int64))


def test_compiled_math_equals_the_python_functions():
    """compile_math binds the functions' calls to each other's compiled versions; same numbers as plain Python
    (to float32 rounding: NumPy scalars keep float32 where Numba widens to float64)."""
    import numba

    from kernels import spect_math as sm

    cm = sm.compile_math(numba.njit)
    src = np.arange(12, dtype=np.float32).reshape(3, 4) ** 1.5
    for z in range(3):
        for c in range(4):
            assert cm["blur3_axis0_at"](src, z, c, 0.2) == pytest.approx(sm.blur3_axis0_at(src, z, c, 0.2), rel=1e-6)
            assert cm["blur3_axis1_at"](src, z, c, 0.2) == pytest.approx(sm.blur3_axis1_at(src, z, c, 0.2), rel=1e-6)
    for iy, ix in ((1.25, 2.5), (-0.5, 0.3), (2.9, 3.99), (5.0, -2.0)):
        assert cm["bilinear_taps"](iy, ix, 3, 4) == sm.bilinear_taps(iy, ix, 3, 4)
    flat = src.reshape(1, 12)
    taps = sm.bilinear_taps(1.25, 2.5, 3, 4)
    assert cm["tap_sum"](flat, 0, *taps) == pytest.approx(sm.tap_sum(flat, 0, *taps), rel=1e-6)
    expected = 0.75 * 0.5 * (src[1, 2] + src[1, 3]) + 0.25 * 0.5 * (src[2, 2] + src[2, 3])  # by hand
    assert sm.tap_sum(flat, 0, *taps) == pytest.approx(expected)
    t_py, t_nb = np.ones(2, np.float32), np.ones(2, np.float32)
    f_py, f_nb = sm.attenuation_step(t_py, 1, 0.3), cm["attenuation_step"](t_nb, 1, 0.3)
    assert f_nb == pytest.approx(f_py) == pytest.approx(np.exp(-0.15))
    assert t_nb[1] == pytest.approx(t_py[1]) == pytest.approx(np.exp(-0.3), rel=1e-6)
    assert cm["attenuation_step"](t_nb, 0, 0.0) == 1.0 and t_nb[0] == 1.0
    assert cm["blur_passes"](1.2, 0.3) == sm.blur_passes(1.2, 0.3) == 3


def test_every_kernel_fits_an_sm90_multiprocessor_at_its_launch_size():
    """ptxas (from the nvidia-cuda-nvcc-cu12 wheel) on each kernel's sm_90 PTX: registers x threads per block
    must leave room for at least one block per SM, or the launch fails on the GPU."""
    sys.path.insert(0, str(ROOT))
    from benchmarks.ptxas_report import find_ptxas, report

    if find_ptxas() is None:
        pytest.skip("ptxas not installed (pip install nvidia-cuda-nvcc-cu12)")
    r = report()
    for name, k in r["kernels"].items():
        assert k["blocks_per_sm"] >= 1, (name, k)
        assert k["spill_store_bytes"] == 0, (name, k)


@pytest.mark.gpu
def test_cpu_and_gpu_agree_on_the_benchmark_study():
    """Full size: the benchmark's bone-scan torso (64^3 by default; RECON_PARITY_CASE=128 for 128^3 x 120 views,
    as benchmarks/gpu_session.sh runs it), attenuation + PSF + TEW: projections and back projections within
    1e-4 of the CPU path, the OSEM 4 x 8 image within 1e-3 (max |gpu - cpu| / max |cpu|)."""
    sys.path.insert(0, str(ROOT))
    from benchmarks.spect_osem import make_study
    from recon.backend import to_device, to_host
    from recon.spect.reconstruct import SPECTReconOptions, reconstruct_spect
    from recon.spect.system_model import SPECTSystemModel

    case = os.environ.get("RECON_PARITY_CASE", "64")
    phantom, acq = make_study(case, 1, "cpu")
    models = {d: SPECTSystemModel(acq.geometry, acq.collimator, acq.photon_energy_kev, phantom.mu_map, True, d)
              for d in ("cpu", "cuda")}
    x = np.asarray(phantom.activity.data, dtype=np.float32)
    p_cpu = models["cpu"].forward(x)
    p_gpu = to_host(models["cuda"].forward(to_device(x, "cuda")))
    assert np.abs(p_gpu - p_cpu).max() / np.abs(p_cpu).max() < 1e-4
    y = np.ascontiguousarray(acq.photopeak_counts, dtype=np.float32)
    b_cpu = models["cpu"].back(y)
    b_gpu = to_host(models["cuda"].back(to_device(y, "cuda")))
    assert np.abs(b_gpu - b_cpu).max() / np.abs(b_cpu).max() < 1e-4
    images = {d: reconstruct_spect(acq, phantom.mu_map, SPECTReconOptions(4, 8, device=d, progress=False)).data
              for d in ("cpu", "cuda")}
    assert np.abs(images["cuda"] - images["cpu"]).max() / np.abs(images["cpu"]).max() < 1e-3


def test_exp_small_is_float32_exact_over_the_attenuation_range():
    """The branch-free exponential of the passes against math.exp, with the squarings exp_squarings chooses:
    within 3e-7 relative for half-steps m / 2 up to 1/4 (no squaring: every human mu-map at 4.8 mm steps),
    within 3e-6 up to 4 (mu up to 1.6 /mm; each squaring doubles the float32 rounding)."""
    import math

    import numba

    from kernels import spect_math as sm

    cm = sm.compile_math(numba.njit)
    for a in np.concatenate([np.linspace(0.0, 0.25, 26), np.linspace(0.3, 4.0, 38)]):
        n_sq = sm.exp_squarings(float(a))
        for arg in (np.float32(-a), np.float32(a)):
            got = float(cm["exp_small"](arg, n_sq))
            assert got == pytest.approx(math.exp(float(arg)), rel=3e-7 if a <= 0.25 else 3e-6), (a, n_sq)
    half, full = cm["attenuation_split"](np.float32(0.2), 0)
    assert half == pytest.approx(math.exp(-0.1), rel=1e-7) and full == pytest.approx(math.exp(-0.2), rel=2e-7)
    assert cm["exp_small"](np.float32(0.0), 0) == 1.0  # air: exactly no attenuation


class _ForeignDeviceArray:
    """A CuPy-like array description: pointer, shape, stream (nothing is read or launched)."""

    def __init__(self, ptr: int, stream: int | None):
        self.__cuda_array_interface__ = {"shape": (4,), "typestr": "<f4", "data": (ptr, False), "version": 3,
                                         "strides": None, "stream": stream}


def test_launch_wraps_device_arrays_once_without_host_sync_on_their_stream(monkeypatch):
    """kernels.cuda_launch: a CuPy array becomes a Numba view with sync=False (Numba's default would
    synchronise its stream: one host sync per argument per launch), wrapped once per buffer, and the
    kernel goes to the stream the array names (ordered after the work that wrote it)."""
    from kernels import cuda_launch

    wrapped, launched = [], {}
    monkeypatch.setattr(cuda_launch, "_VIEWS", {})
    monkeypatch.setattr(cuda_launch, "_STREAMS", {})
    monkeypatch.setattr(cuda_launch.cuda, "from_cuda_array_interface",
                        lambda desc, owner=None, sync=True: wrapped.append((desc["data"][0], owner, sync)) or
                        ("view", desc["data"][0]))
    monkeypatch.setattr(cuda_launch.cuda, "external_stream", lambda ptr: ("stream", ptr))

    class Kernel:
        def __getitem__(self, cfg):
            def run(*args):
                launched["cfg"], launched["args"] = cfg, args
            return run

    a, b = _ForeignDeviceArray(1000, 77), _ForeignDeviceArray(2000, 77)
    for _ in range(3):
        cuda_launch.launch(Kernel(), 10, 128, (a, 3, b, np.float64(0.5)), shared_bytes=64)
    assert wrapped == [(1000, None, False), (2000, None, False)]  # once per buffer, no sync, no reference held
    assert launched["cfg"] == (10, 128, ("stream", 77), 64)
    assert launched["args"][:3] == (("view", 1000), 3, ("view", 2000))
    cuda_launch.launch(Kernel(), 1, 32, (_ForeignDeviceArray(3000, None), np.zeros(2)))
    assert launched["cfg"][2] == 0  # no stream named: the default stream
    host = np.zeros(3)
    cuda_launch.launch(Kernel(), 1, 32, (host,))
    assert launched["args"][0] is host and launched["cfg"][2] == 0  # NumPy (simulator) arrays pass through


def test_geometry_copies_are_cached_per_gpu(monkeypatch):
    """RotateSumGeometry's device copies are keyed by the array module and its current device, so a model
    on a second GPU of the same process never receives the first GPU's copies."""
    import types

    from kernels import spect_projector as sp

    current = {"device": 0}
    made = []
    fake = types.SimpleNamespace(cuda=types.SimpleNamespace(runtime=types.SimpleNamespace(
        getDevice=lambda: current["device"])), asarray=lambda a: made.append(current["device"]) or ("copy", current["device"]))
    g = _tiny_geometry()
    first = g.arrays(fake)
    assert g.arrays(fake) is first and len(made) == 5  # cached on device 0
    current["device"] = 1
    second = g.arrays(fake)
    assert second is not first and all(c == ("copy", 1) for c in second) and len(made) == 10
