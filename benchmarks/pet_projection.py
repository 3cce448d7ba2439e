"""PET Joseph projector benchmark: forward + back, sinogram (non-TOF, TOF) and list-mode, as JSON.

    python benchmarks/pet_projection.py --device cpu [--views 2] [--events 1000000 10000000] [--repeats 3]

Cases:
  small_test: the 128-crystal x 8-ring test scanner, span 1, all views; image 8 x 64 x 64 of 4 x 3 x 3 mm.
  biograph_vision_like: span 11, radial bins for a 600 mm FOV, ``--views`` views spread over the half
    turn (a subset; the cost per LOR is what scales, and the full sinogram is extrapolated from it);
    image 100 x 200 x 200 of 2.6 x 3 x 3 mm; list-mode with each of ``--events`` random coincidences
    inside the FOV (non-TOF and TOF).
Reported: seconds per call (best of ``--repeats`` and all of them, after a warm-up that compiles) and
ns per LOR / event (best, and the range over the repeats).
Results go to benchmarks/results/pet_projection_<device>_<processor>.json.
"""
from __future__ import annotations

import argparse
import json
import logging
import re
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from recon import backend
from recon.data.grid import ImageGrid
from recon.data.pet import ScannerPlacement
from recon.data.pet_presets import get_pet_scanner
from recon.data.pet_sinogram import SinogramLayout
from recon.pet.projector import ListModeProjector, SinogramProjector

logger = logging.getLogger("benchmarks.pet_projection")
ROOT = Path(__file__).resolve().parents[1]


def _times(fn: Callable[[], Any], repeats: int, warm_up: Callable[[], Any] | None = None) -> list[float]:
    """Seconds of each of ``repeats`` calls, after one warm-up call (compilation) of ``warm_up`` or ``fn``."""
    backend.synchronize((warm_up or fn)())
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        backend.synchronize(fn())
        out.append(time.perf_counter() - t0)
    return out


def _timing(prefix: str, times: list[float], n: int, unit: str) -> dict[str, Any]:
    ns = [t / n * 1e9 for t in times]
    return {f"{prefix}_s": min(times), f"{prefix}_s_all": times, f"{prefix}_ns_per_{unit}": min(ns),
            f"{prefix}_ns_per_{unit}_range": [min(ns), max(ns)]}


def _sinogram_case(name: str, layout: SinogramLayout, grid: ImageGrid, views: np.ndarray, device: str,
                   repeats: int, rng: np.random.Generator) -> dict[str, Any]:
    op = SinogramProjector(layout, ScannerPlacement(), grid, device).operator(views)
    x = backend.to_device(rng.random(grid.shape).astype(np.float32), device)
    y = op.apply(x)
    n_lors = int(np.prod(op.out_shape[:3]))
    n_full = layout.n_views * layout.n_planes * layout.n_radial
    r = {"case": name, "tof": layout.tof, "views": [int(v) for v in views], "n_lors": n_lors,
         "out_shape": list(op.out_shape), "image_shape": list(grid.shape), "n_lors_full_sinogram": n_full}
    r.update(_timing("forward", _times(lambda: op.apply(x), repeats), n_lors, "lor"))
    r.update(_timing("back", _times(lambda: op.adjoint(y), repeats), n_lors, "lor"))
    r["full_sinogram_forward_back_s_extrapolated"] = (r["forward_ns_per_lor"] + r["back_ns_per_lor"]) * n_full * 1e-9
    return r


def _listmode_case(layout: SinogramLayout, grid: ImageGrid, n_events: int, tof: bool, device: str, repeats: int,
                   rng: np.random.Generator) -> dict[str, Any]:
    sc = layout.scanner
    n = sc.crystals_per_ring
    ca = rng.integers(0, n, n_events)
    cb = (ca + n // 2 + rng.integers(-n // 5, n // 5 + 1, n_events)) % n  # within ~70 % of the diameter
    ra = rng.integers(0, sc.n_rings, n_events)
    rb = np.clip(ra + rng.integers(-20, 21, n_events), 0, sc.n_rings - 1)
    bins = rng.integers(0, sc.n_tof_bins, n_events) if tof else None
    proj = ListModeProjector(layout, ScannerPlacement(), grid, ra * n + ca, rb * n + cb, bins, device)
    op = proj.operator(np.arange(n_events))
    small = proj.operator(np.arange(min(n_events, 1000)))  # warm-up (compilation) on a few events
    x = backend.to_device(rng.random(grid.shape).astype(np.float32), device)
    y = op.apply(x)
    ys = small.apply(x)
    r = {"case": "listmode_" + sc.name, "tof": tof, "n_events": n_events, "image_shape": list(grid.shape)}
    r.update(_timing("forward", _times(lambda: op.apply(x), repeats, lambda: small.apply(x)), n_events, "event"))
    r.update(_timing("back", _times(lambda: op.adjoint(y), repeats, lambda: small.adjoint(ys)), n_events, "event"))
    return r


def run(args: argparse.Namespace) -> dict[str, Any]:
    device = backend.resolve_device(args.device)
    rng = np.random.default_rng(args.seed)
    results = []
    small = get_pet_scanner("small_test")
    small_grid = ImageGrid.centered((8, 64, 64), (4.0, 3.0, 3.0))
    for tof in (False, True):
        layout = SinogramLayout.for_fov(small, 190.0, tof=tof)
        results.append(_sinogram_case("small_test", layout, small_grid, np.arange(layout.n_views), device,
                                      args.repeats, rng))
        logger.info("%s", results[-1])
    vision = get_pet_scanner("biograph_vision_like")
    grid = ImageGrid.centered((100, 200, 200), (2.6, 3.0, 3.0))
    for tof in (False, True):
        layout = SinogramLayout.for_fov(vision, 600.0, span=11, tof=tof)
        views = (np.arange(args.views) * layout.n_views // args.views + layout.n_views // (4 * args.views)).astype(
            np.int64)  # spread over the half turn, none on an axis
        results.append(_sinogram_case("biograph_vision_like_span11", layout, grid, views, device, args.repeats, rng))
        logger.info("%s", results[-1])
    for n_events in args.events:
        for tof in (False, True):
            layout = SinogramLayout.for_fov(vision, 600.0, span=11, tof=tof)
            results.append(_listmode_case(layout, grid, n_events, tof, device, args.repeats, rng))
            logger.info("%s", results[-1])
    info = backend.device_info("cpu")
    if device == "cuda":
        info.update(backend.device_info("cuda"))
    import numba  # noqa: PLC0415

    return {"benchmark": "pet_projection", "device": info, "numba_threads": numba.get_num_threads(),
            "repeats": args.repeats, "results": results}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")
    p.add_argument("--views", type=int, default=2, help="views of the clinical sinogram subset")
    p.add_argument("--events", type=int, nargs="+", default=[1_000_000, 10_000_000])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    result = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    name = result["device"].get("gpu", result["device"]["cpu"])
    host = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-")[:40]
    path = args.out / f"pet_projection_{result['device']['kind']}_{host}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    logger.info("wrote %s", path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
