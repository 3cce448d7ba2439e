"""PET Joseph projector benchmark: forward + back, sinogram (non-TOF, TOF) and list-mode, as JSON.

    python benchmarks/pet_projection.py --device cpu [--views 2] [--events 1000000]

Cases:
  small_test: the 128-crystal x 8-ring test scanner, span 1, all views; image 8 x 64 x 64 of 4 x 3 x 3 mm.
  biograph_vision_like: span 11, radial bins for a 600 mm FOV, ``--views`` views (a subset; the cost per
    LOR is what scales); image 100 x 200 x 200 of 2.6 x 3 x 3 mm; list-mode ``--events`` random
    coincidences inside the FOV (non-TOF and TOF).
Reported: seconds per call (best of ``--repeats``, after a warm-up that compiles) and ns per LOR / event.
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


def _best(fn: Callable[[], Any], repeats: int) -> float:
    fn()  # warm-up (compilation)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        backend.synchronize(fn())
        best = min(best, time.perf_counter() - t0)
    return best


def _sinogram_case(name: str, layout: SinogramLayout, grid: ImageGrid, views: np.ndarray, device: str,
                   repeats: int, rng: np.random.Generator) -> dict[str, Any]:
    op = SinogramProjector(layout, ScannerPlacement(), grid, device).operator(views)
    x = backend.to_device(rng.random(grid.shape).astype(np.float32), device)
    y = op.apply(x)
    n_lors = int(np.prod(op.out_shape[:3]))
    fwd = _best(lambda: op.apply(x), repeats)
    back = _best(lambda: op.adjoint(y), repeats)
    return {"case": name, "tof": layout.tof, "n_lors": n_lors, "out_shape": list(op.out_shape),
            "image_shape": list(grid.shape), "forward_s": fwd, "back_s": back,
            "forward_ns_per_lor": fwd / n_lors * 1e9, "back_ns_per_lor": back / n_lors * 1e9}


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
    x = backend.to_device(rng.random(grid.shape).astype(np.float32), device)
    y = op.apply(x)
    fwd = _best(lambda: op.apply(x), repeats)
    back = _best(lambda: op.adjoint(y), repeats)
    return {"case": "listmode_" + sc.name, "tof": tof, "n_events": n_events, "image_shape": list(grid.shape),
            "forward_s": fwd, "back_s": back, "forward_ns_per_event": fwd / n_events * 1e9,
            "back_ns_per_event": back / n_events * 1e9}


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
        views = np.linspace(0, layout.n_views - 1, args.views).astype(np.int64)
        results.append(_sinogram_case("biograph_vision_like_span11", layout, grid, views, device, args.repeats, rng))
        logger.info("%s", results[-1])
    for tof in (False, True):
        layout = SinogramLayout.for_fov(vision, 600.0, span=11, tof=tof)
        results.append(_listmode_case(layout, grid, args.events, tof, device, args.repeats, rng))
        logger.info("%s", results[-1])
    info = backend.device_info("cpu")
    if device == "cuda":
        info.update(backend.device_info("cuda"))
    import numba  # noqa: PLC0415

    return {"benchmark": "pet_projection", "device": info, "numba_threads": numba.get_num_threads(),
            "results": results}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")
    p.add_argument("--views", type=int, default=2, help="views of the clinical sinogram subset")
    p.add_argument("--events", type=int, default=1_000_000)
    p.add_argument("--repeats", type=int, default=2)
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
