"""PET scatter validation: single scatter simulation against a photon-pair Monte Carlo truth.

    python benchmarks/pet_scatter_validation.py --pairs 100000000            # default SSS sampling
    python benchmarks/pet_scatter_validation.py --pairs 20000000 --fast      # the CI test's sampling
    python benchmarks/pet_scatter_validation.py --pairs 40000000 --tof       # TOF sinograms, TOF SSS

The small test scanner, a 15 cm x 10 cm water cylinder with a 4:1 hot rod off centre
(``tests/test_pet_scatter.py``), seeded. Writes ``results/pet_scatter_validation_<pairs>[_fast]_cpu.json``:
MC counts by class, SSS tail scale, agreement of the tail-scaled SSS with the MC scatter (single +
multiple) and of the unscaled SSS with the MC single scatter (total and radial / view / plane
profiles: relative L2 and max deviation), and seconds per stage.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from recon.data.grid import ImageGrid  # noqa: E402
from recon.data.pet_presets import get_pet_scanner  # noqa: E402
from recon.data.pet_sinogram import SinogramLayout  # noqa: E402
from recon.pet.mc_phantom import (CylinderPhantom, cylinder_phantom_volumes, scatter_agreement,  # noqa: E402
                                  simulate_cylinder_mc)
from recon.pet.scatter import SSSOptions, estimate_scatter  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=100_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--fast", action="store_true", help="the CI test's coarser SSS sampling")
    parser.add_argument("--tof", action="store_true", help="TOF sinograms and the TOF SSS")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    layout = SinogramLayout.for_fov(get_pet_scanner("small_test"), 260.0, tof=args.tof)
    phantom = CylinderPhantom(radius_mm=75.0, half_length_mm=50.0, rod_xy_mm=(30.0, 15.0), rod_radius_mm=12.0)
    grid = ImageGrid.centered((27, 44, 44), (4.0, 4.0, 4.0))
    options = SSSOptions(n_view_samples=8, n_angle_samples=64, cell_mm=(12.0, 12.0, 12.0)) if args.fast else SSSOptions()
    t0 = time.perf_counter()
    mc = simulate_cylinder_mc(layout, phantom, args.pairs, np.random.default_rng(args.seed))
    t1 = time.perf_counter()
    activity, mu = cylinder_phantom_volumes(phantom, grid, args.pairs)
    est = estimate_scatter(activity, mu, layout, mc.prompts, options=options)
    t2 = time.perf_counter()
    result = {
        "device": "cpu", "machine": platform.processor() or platform.machine(), "pairs": args.pairs,
        "seed": args.seed, "sss_options": repr(options),
        "mc_counts": {"trues": float(mc.trues.sum()), "single_scatter": float(mc.single_scatter.sum()),
                      "multiple_scatter": float(mc.multiple_scatter.sum())},
        "scatter_fraction": float(mc.scatter.sum() / mc.prompts.sum()),
        "tail_scale": est.scale, "tail_lors": int(est.tail_mask.sum()),
        "scaled_sss_vs_mc_scatter": scatter_agreement(est.sinogram, mc.scatter),
        "unscaled_sss_vs_mc_single": scatter_agreement(est.unscaled, mc.single_scatter.sum(-1) if args.tof
                                                       else mc.single_scatter),
        "seconds": {"monte_carlo": t1 - t0, "sss_and_fit": t2 - t1},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"pet_scatter_validation_{args.pairs}{'_fast' if args.fast else ''}{'_tof' if args.tof else ''}_cpu.json"
    (args.out / name).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))  # noqa: T201 - a script's report
    return result


if __name__ == "__main__":
    main()
