"""SPECT OSEM benchmark: forward, back, sensitivity, full OSEM and peak memory, as JSON.

    python benchmarks/spect_osem.py --case 128 --device cpu [--pytomography]

Cases (attenuation + PSF + TEW scatter, OSEM 4 iterations x 8 subsets by default):
  128: 128^3 voxels of 4.8 mm, 120 views of 128 x 128
  64:  64^3 voxels of 9.6 mm, 60 views of 64 x 64
The phantom is the bone-scan torso, simulated with Poisson noise (seeded). With
``--pytomography`` the same projections, scatter term, mu-map, orbit and collimator
geometry are reconstructed by PyTomography in the same run (optional dependency:
``pip install .[bench]``) and the speed ratio and image agreement are recorded.
Results go to benchmarks/results/spect_osem_<case>_<device>_<processor>.json.
"""
from __future__ import annotations

import argparse
import json
import logging
import platform
import resource
import re
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from recon import backend  # noqa: E402
from recon.backend import resolve_device, to_device, to_host  # noqa: E402
from recon.data import ImageGrid  # noqa: E402
from recon.phantoms.library import bone_torso  # noqa: E402
from recon.algorithms.reconstruct import build_subsets  # noqa: E402
from recon.spect.reconstruct import SPECTReconOptions, reconstruct_spect  # noqa: E402
from recon.spect.scatter import estimate_scatter  # noqa: E402
from recon.spect.simulate import AcquisitionProtocol, circular_orbit_radius_mm, simulate_spect  # noqa: E402
from recon.spect.system_model import SPECTSystemModel  # noqa: E402

logger = logging.getLogger("benchmarks.spect_osem")

CASES = {
    "128": {"n": 128, "voxel_mm": 4.8, "views": 120},
    "64": {"n": 64, "voxel_mm": 9.6, "views": 60},
}


def device_description(device: str) -> dict[str, Any]:
    """Name the hardware the numbers were measured on: the host always, the GPU (name, memory,
    compute capability, driver) when ``device`` is "cuda" (from :func:`recon.backend.device_info`)."""
    info: dict[str, Any] = {"kind": device, "platform": platform.platform()}
    host = backend.device_info("cpu")
    info["cpu"], info["cpu_cores"] = host["cpu"], host["cpu_cores"]
    if device == "cuda":
        gpu = backend.device_info("cuda")
        info.update({k: v for k, v in gpu.items() if k not in ("kind", "cupy_version")})
    return info


def _git_commit() -> str:
    """Short hash of the checked-out commit ("" outside a git checkout)."""
    import subprocess  # noqa: PLC0415

    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def versions(device: str) -> dict[str, str]:
    import numba  # noqa: PLC0415

    import recon  # noqa: PLC0415

    out = {"python": platform.python_version(), "numpy": np.__version__, "numba": numba.__version__,
           "recon": recon.__version__, "git_commit": _git_commit()}
    if device == "cuda":
        out["cupy"] = backend.device_info("cuda")["cupy_version"]
    return out


def timed(fn: Callable[[], Any], device: str, repeats: int) -> tuple[float, Any]:
    """Median wall time (s) of ``fn`` over ``repeats`` runs after one warm-up, synchronising the GPU."""
    def sync() -> None:
        if device == "cuda":
            backend.synchronize()

    result = fn()
    sync()
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        result = fn()
        sync()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), result


def make_study(case: str, seed: int, device: str):
    spec = CASES[case]
    n, d = spec["n"], spec["voxel_mm"]
    grid = ImageGrid.centered((n, n, n), (d, d, d))
    phantom = bone_torso(grid)
    proto = AcquisitionProtocol(n_views=spec["views"], radius_mm=circular_orbit_radius_mm(phantom.mu_map))
    acq = simulate_spect(phantom.activity, phantom.mu_map, proto, rng=np.random.default_rng(seed), device=device)
    return phantom, acq


def forward_traffic(model: SPECTSystemModel, seconds: float) -> dict[str, float]:
    """Least bytes a full forward projection reads and writes on the host path (image and mu-map read
    once per view in the z-last layout, projections written once; no stored attenuation factors) and
    the rate achieved, GB/s."""
    nz, ny, nx = model.image_shape
    n_views = model.geometry.n_views
    per_view = nz * ny * nx * 4 * (2 if model.attenuation is not None else 1)
    total = n_views * (per_view + nz * model.geometry.n_cols * 4)
    return {"bytes": float(total), "gb_per_s": total / seconds / 1e9}


def roofline(model: SPECTSystemModel, args: argparse.Namespace, measured: dict[str, float]) -> dict[str, Any]:
    """The CUDA passes' bandwidth bound (:mod:`benchmarks.roofline`) for this case, beside the measured seconds."""
    from benchmarks.roofline import osem_roofline  # noqa: PLC0415

    nz, ny, nx = model.image_shape
    r = osem_roofline(model.geometry.n_views, args.subsets, args.iterations, nz, ny, nx, model.n_depth,
                      model.geometry.n_cols, model.attenuation is not None, model.psf)
    r["measured_seconds"] = {"forward_all_views": measured["forward_all_views"],
                             "back_all_views": measured["back_all_views"],
                             "osem_end_to_end": measured["osem_end_to_end"]}
    return r


def run(args: argparse.Namespace) -> dict[str, Any]:
    device = resolve_device(args.device)
    phantom, acq = make_study(args.case, args.seed, device)
    opts = SPECTReconOptions(args.iterations, args.subsets, True, True, "tew", device, progress=False)
    t0 = time.perf_counter()
    model = SPECTSystemModel(acq.geometry, acq.collimator, acq.photon_energy_kev, phantom.mu_map, True, device)
    if device == "cuda":
        backend.synchronize()
    t_model = time.perf_counter() - t0
    x = to_device(np.ones(model.image_shape, np.float32), device)
    y = to_device(np.ascontiguousarray(acq.photopeak_counts), device)
    t_fwd, _ = timed(lambda: model.forward(x), device, args.repeats)
    t_back, _ = timed(lambda: model.back(y), device, args.repeats)
    scatter = estimate_scatter(acq, "tew")
    t_sens, _ = timed(lambda: build_subsets(model, acq.photopeak_counts, scatter, args.subsets), device, 1)
    t_total, volume = timed(lambda: reconstruct_spect(acq, phantom.mu_map, opts), device, args.repeats)
    peak_rss_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    spec = CASES[args.case]
    result: dict[str, Any] = {
        "benchmark": "spect_osem",
        "case": args.case,
        "parameters": {"voxels": [spec["n"]] * 3, "voxel_mm": spec["voxel_mm"], "views": spec["views"],
                       "detector": [spec["n"], spec["n"]], "iterations": args.iterations, "subsets": args.subsets,
                       "attenuation": True, "psf": True, "scatter": "tew", "collimator": acq.collimator.name,
                       "repeats": args.repeats},
        "device": device_description(device),
        "versions": versions(device),
        "seconds": {
            "model_and_attenuation_factors": t_model,
            "forward_all_views": t_fwd,
            "back_all_views": t_back,
            "sensitivity_all_subsets": t_sens,
            "osem_end_to_end": t_total,
        },
        "peak_host_rss_gib": peak_rss_gib,
        "forward_traffic": forward_traffic(model, t_fwd),
    }
    result["roofline_cuda"] = roofline(model, args, result["seconds"])
    if args.kernel_report:
        from benchmarks.ptxas_report import report  # noqa: PLC0415

        result["cuda_kernels_sm90"] = report()
    if device == "cuda":
        result["peak_gpu_pool_gib"] = backend.gpu_pool_bytes() / 2**30
    if args.pytomography:
        result["pytomography"] = run_pytomography(acq, phantom, scatter, args, to_host(volume.data), t_total)
    return result


def run_pytomography(acq, phantom, scatter, args, ours: np.ndarray, ours_s: float) -> dict[str, Any]:
    from benchmarks.pytomography_runner import run_pytomography_osem  # noqa: PLC0415

    c = acq.collimator
    out = run_pytomography_osem(
        projections=acq.photopeak_counts, scatter=scatter, mu_map=to_host(phantom.mu_map.data),
        angles_deg=acq.geometry.angles_deg, radius_mm=acq.geometry.radius_mm, pixel_mm=acq.geometry.pixel_size_mm,
        hole_diameter_mm=c.hole_diameter_mm, hole_length_mm=c.hole_length_mm, intrinsic_fwhm_mm=c.intrinsic_fwhm_mm,
        energy_kev=acq.photon_energy_kev, n_iterations=args.iterations, n_subsets=args.subsets,
    )
    theirs = np.asarray(out.pop("image"), dtype=np.float64)
    body = to_host(phantom.mu_map.data) > 0.005
    a, b = ours[body].astype(np.float64), theirs[body]
    out["speedup_ours_vs_pytomography"] = out["seconds_total"] / ours_s
    out["image_correlation_in_body"] = float(np.corrcoef(a, b)[0, 1])
    out["image_sum_ratio_ours_over_theirs"] = float(a.sum() / b.sum())
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--case", choices=sorted(CASES), default="128")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--iterations", type=int, default=4)
    p.add_argument("--subsets", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--pytomography", action="store_true", help="also run PyTomography on the same study")
    p.add_argument("--kernel-report", action="store_true",
                   help="add registers, shared memory and sm_90 occupancy of the CUDA kernels (ptxas, no GPU needed)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    result = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    name = result["device"].get("gpu", result["device"]["cpu"])
    host = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-")[:40]
    path = args.out / f"spect_osem_{args.case}_{result['device']['kind']}_{host}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    logger.info("wrote %s", path)
    print(json.dumps(result["seconds"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
