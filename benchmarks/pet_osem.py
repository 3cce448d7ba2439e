"""PET OSEM benchmark: forward, back and full OSEM (sinogram non-TOF and TOF, list-mode), as JSON.

    python benchmarks/pet_osem.py --case small --device cpu
    python benchmarks/pet_osem.py --case clinical --device cuda --events 1e7
    python benchmarks/pet_osem.py --case clinical --device cpu --rings 8 --events 2e5   # reduced, for a small CPU

Cases (attenuation + normalisation + randoms as stored corrections, image-space PSF, OSEM 3 iterations):
  small:    small_test scanner (128 crystals x 8 rings), 40 x 40 x 8 voxels of 4 mm, span 1.
  clinical: Discovery MI-like (544 crystals x 36 rings, 385 ps TOF, 29 TOF bins), 200 x 200 voxels of
            3.5 mm x 71 slices of 2.76 mm (half the ring pitch), sinogram span 11, list-mode span 1.
``--rings N`` keeps only N rings of the clinical scanner (and its slices): the transaxial size stays
clinical while the axial work shrinks, for machines where the full case does not fit the time.
The data: a water cylinder (r 150 mm) with hot spheres, projected through the model itself
(m G R x) plus 15 % flat randoms, with Poisson noise (seeded): a timing study, not a recovery test.
List-mode: ``--events`` N events drawn from the TOF data (default 1e6).
Results go to benchmarks/results/pet_osem_<case>_<device>_<processor>.json.
"""
from __future__ import annotations

import argparse
import json
import logging
import re
import resource
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.spect_osem import device_description, timed, versions  # noqa: E402
from recon import backend  # noqa: E402
from recon.backend import resolve_device, to_device  # noqa: E402
from recon.data.grid import ImageGrid, Volume  # noqa: E402
from recon.data.pet import PETSinogram, ScannerPlacement, SinogramCorrections  # noqa: E402
from recon.data.pet_histogram import histogram_events  # noqa: E402
from recon.data.pet_presets import get_pet_scanner  # noqa: E402
from recon.data.pet_sinogram import SinogramLayout  # noqa: E402
from recon.pet.reconstruct import PETReconOptions, prepare_model, reconstruct_pet, reconstruct_pet_listmode  # noqa: E402
from recon.pet.simulate import events_from_sinogram  # noqa: E402

logger = logging.getLogger("benchmarks.pet_osem")

CASES: dict[str, dict[str, Any]] = {
    "small": {"scanner": "small_test", "shape": (8, 40, 40), "spacing": (4.0, 4.0, 4.0), "span": 1, "fov_mm": 200.0},
    "clinical": {"scanner": "discovery_mi_like", "shape": (71, 200, 200), "spacing": (2.76, 3.5, 3.5), "span": 11,
                 "fov_mm": 600.0},
}


def make_case(case: str, rings: int | None) -> tuple[Any, ImageGrid]:
    """(scanner, grid) of the case, with only ``rings`` rings (and 2 rings - 1 slices) when given."""
    spec = CASES[case]
    sc = get_pet_scanner(spec["scanner"])
    shape = spec["shape"]
    if rings is not None and rings < sc.n_rings:
        sc = replace(sc, name=f"{sc.name}_{rings}rings", n_rings=rings, max_ring_difference=rings - 1)
        if case == "clinical":
            shape = (2 * rings - 1, shape[1], shape[2])
    return sc, ImageGrid.centered(shape, spec["spacing"])


def phantom(grid: ImageGrid) -> tuple[Volume, Volume]:
    """Activity (cylinder of r 150 mm, capped to the grid, with 4 hot spheres, a.u.) and its 511 keV mu-map."""
    z, y, x = np.indices(grid.shape)
    p = grid.index_to_mm(np.stack([z, y, x], axis=-1))
    r = min(150.0, 0.45 * grid.shape[2] * grid.spacing_mm[2])
    body = np.hypot(p[..., 0], p[..., 1]) < r
    act = body.astype(np.float32)
    for k, d in enumerate((10.0, 17.0, 28.0, 37.0)):
        a = 2 * np.pi * k / 4
        c = (0.5 * r * np.cos(a), 0.5 * r * np.sin(a), 0.0)
        act[((p - np.asarray(c)) ** 2).sum(-1) < (d / 2) ** 2] = 4.0
    return Volume(act, grid, "Bq/mL"), Volume(body.astype(np.float32) * 0.0096, grid, "1/mm")


def make_data(layout: SinogramLayout, grid: ImageGrid, act: Volume, mu: Volume, counts: float, device: str,
              rng: np.random.Generator) -> tuple[PETSinogram, SinogramCorrections]:
    """Prompts ~ Poisson(m G R x + r) with ``counts`` expected trues and 15 % randoms (flat)."""
    sino0 = PETSinogram(layout, np.zeros(layout.shape, np.float32), 600.0, image_grid=grid)
    opts = PETReconOptions(1, 1, attenuation=True, randoms="none", scatter="none", device=device, progress=False)
    model, _, _ = prepare_model(sino0, mu, None, opts)
    mean = np.asarray(backend.to_host(model.forward(to_device(act.data, model.device))), np.float64)
    mean *= counts / max(mean.sum(), 1e-30)
    nontof = mean.sum(-1) if layout.tof else mean
    randoms = (nontof > 0) * (0.15 / 0.85 * counts / max(int((nontof > 0).sum()), 1))
    full = mean + (randoms[..., None] / layout.n_tof if layout.tof else randoms)
    prompts = rng.poisson(full).astype(np.float32)
    return (replace(sino0, prompts=prompts),
            SinogramCorrections(layout, randoms=randoms.astype(np.float32)))


def bench_sinogram(layout: SinogramLayout, grid: ImageGrid, act: Volume, mu: Volume, args: argparse.Namespace,
                   device: str, rng: np.random.Generator) -> dict[str, Any]:
    sino, corr = make_data(layout, grid, act, mu, args.counts, device, rng)
    opts = PETReconOptions(args.iterations, args.subsets, psf=True, scatter="none", device=device, progress=False)
    t0 = time.perf_counter()
    model, _, _ = prepare_model(sino, mu, corr, opts)
    if device == "cuda":
        backend.synchronize()
    t_model = time.perf_counter() - t0
    x = to_device(np.ones(grid.shape, np.float32), device)
    t_fwd, y = timed(lambda: model.forward(x), device, args.repeats)
    op = model.subset_operator(np.arange(layout.n_views))
    t_back, _ = timed(lambda: op.adjoint(y), device, args.repeats)
    t_total, _ = timed(lambda: reconstruct_pet(sino, mu, corrections=corr, options=opts), device, 1)
    return {"sinogram_shape": list(layout.shape), "lors": int(np.prod(layout.shape[:3])),
            "prompts": float(sino.prompts.sum()),
            "seconds": {"model_and_attenuation_factors": t_model, "forward_full": t_fwd, "back_full": t_back,
                        "osem_end_to_end": t_total}}


def bench_listmode(scanner: Any, grid: ImageGrid, act: Volume, mu: Volume, args: argparse.Namespace, device: str,
                   rng: np.random.Generator) -> dict[str, Any]:
    """List-mode OSEM of ``args.events`` TOF events (span-1 layout)."""
    layout = SinogramLayout.for_fov(scanner, CASES[args.case]["fov_mm"], tof=scanner.has_tof)
    sino, _ = make_data(layout, grid, act, mu, 0.85 * args.events, device, rng)  # + 15 % randoms: ~N events
    events = events_from_sinogram(layout, sino.prompts, sino.frame_duration_s, rng)
    hist = replace(histogram_events(events_acq(scanner, events), layout), image_grid=grid)
    opts = PETReconOptions(args.iterations, args.subsets, psf=True, randoms="none", scatter="none", device=device,
                           progress=False)
    t_total, _ = timed(lambda: reconstruct_pet_listmode(events, hist, mu, options=opts), device, 1)
    return {"events": int(events.n_events), "tof": layout.tof, "span": 1,
            "seconds": {"osem_end_to_end": t_total}}


def events_acq(scanner: Any, events: Any) -> Any:
    from recon.data.pet import ListModeAcquisition  # noqa: PLC0415

    return ListModeAcquisition(scanner, events, ScannerPlacement())


def result_path(args: argparse.Namespace, result: dict[str, Any]) -> Path:
    name = result["device"].get("gpu", result["device"]["cpu"])
    host = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-")[:40]
    tag = args.case + (f"_{args.rings}rings" if args.rings else "")
    return args.out / f"pet_osem_{tag}_{result['device']['kind']}_{host}.json"


def save(args: argparse.Namespace, result: dict[str, Any]) -> Path:
    """Write the result atomically (after every mode, so a run cut short keeps what it measured)."""
    result["peak_host_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    if result["device"]["kind"] == "cuda":
        result["peak_gpu_pool_gib"] = backend.gpu_pool_bytes() / 2**30
    args.out.mkdir(parents=True, exist_ok=True)
    path = result_path(args, result)
    tmp = path.with_suffix(".json.part")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(path)
    return path


def run(args: argparse.Namespace) -> dict[str, Any]:
    device = resolve_device(args.device)
    rng = np.random.default_rng(args.seed)
    scanner, grid = make_case(args.case, args.rings)
    act, mu = phantom(grid)
    spec = CASES[args.case]
    result: dict[str, Any] = {
        "benchmark": "pet_osem", "case": args.case,
        "parameters": {"scanner": scanner.name, "rings": scanner.n_rings, "crystals_per_ring": scanner.crystals_per_ring,
                       "voxels": list(grid.shape), "voxel_mm": list(grid.spacing_mm), "span": spec["span"],
                       "iterations": args.iterations, "subsets": args.subsets, "psf": True, "attenuation": True,
                       "randoms": "stored", "scatter": "none", "counts": args.counts, "events": args.events,
                       "repeats": args.repeats},
        "device": device_description(device), "versions": versions(device), "modes": {},
    }
    modes = [m for m in args.modes.split(",") if m]
    for mode in modes:
        t0 = time.perf_counter()
        if mode in ("nontof", "tof"):
            tof = mode == "tof"
            if tof and not scanner.has_tof:
                continue
            layout = SinogramLayout.for_fov(scanner, spec["fov_mm"], span=spec["span"], tof=tof)
            result["modes"][f"sinogram_{mode}"] = bench_sinogram(layout, grid, act, mu, args, device, rng)
        elif mode == "listmode":
            result["modes"]["listmode"] = bench_listmode(scanner, grid, act, mu, args, device, rng)
        else:
            raise SystemExit(f"unknown mode {mode!r}: nontof, tof, listmode")
        logger.info("%s done in %.1f s; wrote %s", mode, time.perf_counter() - t0, save(args, result))
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--case", choices=sorted(CASES), default="small")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--iterations", type=int, default=3)
    p.add_argument("--subsets", type=int, default=8)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--counts", type=float, default=5e7, help="expected trues of the sinogram data")
    p.add_argument("--events", type=float, default=1e6, help="list-mode events (default 1e6)")
    p.add_argument("--rings", type=int, help="keep only this many rings (reduced run of the clinical case)")
    p.add_argument("--modes", default="nontof,tof,listmode", help="comma-separated: nontof, tof, listmode")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    result = run(args)
    logger.info("wrote %s", save(args, result))
    print(json.dumps({k: v["seconds"] for k, v in result["modes"].items()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
