"""``recon demo``: simulate a Tc-99m MDP bone SPECT study of the torso phantom, reconstruct it with
attenuation, collimator-response and scatter correction, calibrate to Bq/mL and SUV, and report
recovery against the phantom's truth. ``--modality pet``: the F-18 NaF bone PET study of the same
torso (:mod:`recon.commands.demo_pet`)."""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from recon.commands.progress import osem_progress_bar
from recon.commands import common_options
from recon.backend import DEVICES
from recon.commands.spect import options_from_args
from recon.data.grid import ImageGrid
from recon.io.hdf5 import write_projections, write_volume
from recon.io.png import write_overview_png
from recon.quant.calibration import SPECTCalibration, calibrate
from recon.quant.voi import BONE_SPECT_TC99M_CUTOFFS, CUTOFF_DISCLAIMER, classify_cutoffs
from recon.spect.reconstruct import reconstruct_spect
from recon.spect.simulate import AcquisitionProtocol, circular_orbit_radius_mm, simulate_spect

logger = logging.getLogger(__name__)

SIZES = {128: (128, 4.8, 120), 64: (64, 9.6, 60)}  # voxels per side, voxel mm, views


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="simulate, reconstruct and quantify a bone-SPECT (or NaF PET) study",
                       description=__doc__, parents=[common_options()])
    p.add_argument("--modality", choices=("spect", "pet"), default="spect",
                   help="spect: Tc-99m MDP bone SPECT (default); pet: F-18 NaF bone PET")
    p.add_argument("--size", type=int, choices=sorted(SIZES), default=128,
                   help="128: 128^3 voxels of 4.8 mm, 120 views (default); 64: 64^3 of 9.6 mm, 60 views. "
                        "PET: 128: 4 mm voxels, crystals binned 2x2 (default); 64: 6 mm, binned 3x3")
    p.add_argument("--out", type=Path, default=Path("recon-output"), help="output directory (default recon-output)")
    p.add_argument("--seed", type=int, default=2026, help="seed of the Poisson noise")
    p.add_argument("--noise-free", action="store_true", help="simulate expected counts, no Poisson noise")
    p.add_argument("--overwrite", action="store_true", help="replace outputs of an earlier demo")
    p.add_argument("--iterations", type=int, help="OSEM iterations (default: SPECT 4, PET 3)")
    p.add_argument("--subsets", type=int, help="OSEM subsets (default: SPECT 8, PET 8)")
    p.add_argument("--no-attenuation", action="store_true", help="do not model attenuation")
    p.add_argument("--no-psf", action="store_true", help="do not model the resolution (collimator response / PET PSF)")
    p.add_argument("--scatter", choices=("none", "dew", "tew", "sss"),
                   help="scatter estimate: SPECT none/dew/tew (default tew); PET none/sss (default sss)")
    p.add_argument("--device", choices=DEVICES, default="auto", help="cpu, cuda or auto (default)")
    p.set_defaults(func=run)


def _region_report(name: str, truth_bqml: float, fraction: np.ndarray, image: np.ndarray, suv_per_bqml: float,
                   grid: ImageGrid) -> dict[str, Any]:
    """Recovery of one region: mean over voxels fully inside it; max anywhere a lesion touches (its SUVmax),
    or over the fully-inside voxels for extended regions (so neighbouring lesions do not count)."""
    core = fraction >= 0.999
    if not core.any():
        core = fraction >= fraction.max() * 0.99
    focal = name.startswith(("lesion_", "degenerative_"))
    mean = float(image[core].mean())
    peak = float(image[fraction > 0.0].max() if focal else image[core].max())
    return {
        "region": name,
        "true_bq_ml": truth_bqml,
        "true_suv": truth_bqml * suv_per_bqml,
        "mean_bq_ml": mean,
        "max_bq_ml": peak,
        "recovery_mean": mean / truth_bqml if truth_bqml > 0 else float("nan"),
        "recovery_max": peak / truth_bqml if truth_bqml > 0 else float("nan"),
        "suv_max": peak * suv_per_bqml,
        "volume_ml": float(fraction.sum() * grid.voxel_volume_ml),
    }


def report_regions(phantom: Any) -> dict[str, np.ndarray]:
    """Regions to report: each lesion and degenerative focus, normal bone, soft tissue and the bladder."""
    out: dict[str, np.ndarray] = {}
    for name in phantom.regions:
        if name.startswith(("lesion_", "degenerative_")):
            out[name] = phantom.regions[name]
    for name in ("normal_bone", "soft_tissue", "bladder"):
        if name in phantom.regions:
            out[name] = phantom.regions[name]
    return out


def _check_out_dir(out: Path) -> None:
    """--out must be a writable directory, or creatable in the nearest existing parent (checked before compute)."""
    from recon.io.atomic import check_writable_directory  # noqa: PLC0415

    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} is a file, not a directory")
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    check_writable_directory(existing)


def run(args: argparse.Namespace) -> int:
    from recon.phantoms.library import bone_torso  # noqa: PLC0415

    out = args.out
    if args.modality == "pet":
        if args.scatter in ("dew", "tew"):
            raise ValueError(f"--scatter {args.scatter} is a SPECT energy-window method; PET takes sss or none")
        _check_out_dir(out)
        from recon.commands.demo_pet import run_pet_demo  # noqa: PLC0415

        return run_pet_demo(args, out)
    if args.scatter == "sss":
        raise ValueError("--scatter sss is PET's single scatter simulation; SPECT takes none, dew or tew")
    args.iterations = 4 if args.iterations is None else args.iterations
    args.subsets = 8 if args.subsets is None else args.subsets
    args.scatter = args.scatter or "tew"
    n, voxel_mm, n_views = SIZES[args.size]
    paths = {k: out / f"demo_{k}" for k in ("projections.h5", "recon.h5", "overview.png", "report.json")}
    _check_out_dir(out)
    existing = [p for p in paths.values() if p.exists()]
    if existing and not args.overwrite:
        raise FileExistsError(f"{existing[0]} exists; pass --overwrite or choose --out")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    grid = ImageGrid.centered((n, n, n), (voxel_mm,) * 3)
    phantom = bone_torso(grid)
    injected_bq = float(phantom.metadata["injected_activity_bq"])
    weight_g = float(phantom.metadata["body_weight_kg"]) * 1000.0
    suv_per_bqml = weight_g / injected_bq
    proto = AcquisitionProtocol(n_views=n_views, radius_mm=circular_orbit_radius_mm(phantom.mu_map))
    rng = None if args.noise_free else np.random.default_rng(args.seed)
    opts = options_from_args(args)
    acq = simulate_spect(phantom.activity, phantom.mu_map, proto, rng=rng, device=opts.device)
    logger.info("simulated %d views of %dx%d (%s, %.0f s/view, %.3g photopeak counts in total)", n_views, n, n,
                acq.collimator.name, acq.frame_duration_s, float(acq.photopeak_counts.sum()))
    write_projections(acq, paths["projections.h5"], mu_map=phantom.mu_map, overwrite=args.overwrite)
    t1 = time.perf_counter()
    with osem_progress_bar(opts.progress, opts.n_iterations, opts.n_subsets) as callback:
        counts = reconstruct_spect(acq, phantom.mu_map if opts.attenuation else None, opts, callback=callback)
    t_recon = time.perf_counter() - t1
    volume = calibrate(counts, SPECTCalibration(proto.sensitivity_cps_per_mbq, acq.frame_duration_s))
    image = np.asarray(volume.data)
    rows = [_region_report(name, phantom.concentration_bq_ml[name], fraction, image, suv_per_bqml, grid)
            for name, fraction in report_regions(phantom).items()]
    for row in rows:
        row["cutoffs"] = classify_cutoffs(row["suv_max"], BONE_SPECT_TC99M_CUTOFFS)
    write_volume(volume, paths["recon.h5"], overwrite=args.overwrite)
    write_overview_png(volume, paths["overview.png"])
    report = {
        "settings": {"size": args.size, "views": n_views, "iterations": opts.n_iterations, "subsets": opts.n_subsets,
                     "attenuation": opts.attenuation, "psf": opts.psf, "scatter": opts.scatter,
                     "noise": "none" if args.noise_free else f"Poisson, seed {args.seed}",
                     "injected_activity_mbq": injected_bq / 1e6, "body_weight_kg": weight_g / 1000.0},
        "reconstruction_seconds": t_recon,
        "device": counts.metadata.get("device"),
        "regions": rows,
        "cutoff_note": CUTOFF_DISCLAIMER,
    }
    paths["report.json"].write_text(json.dumps(report, indent=2) + "\n")
    _print_report(report)
    logger.info("wrote %s; total %.1f s", ", ".join(str(p) for p in paths.values()), time.perf_counter() - t0)
    return 0


def _print_report(report: dict[str, Any]) -> None:
    s = report["settings"]
    print(f"\nBone SPECT demo: {s['size']}^3 voxels, {s['views']} views, OSEM {s['iterations']}x{s['subsets']}, "
          f"attenuation={s['attenuation']} psf={s['psf']} scatter={s['scatter']}, {s['noise']}; "
          f"reconstruction {report['reconstruction_seconds']:.1f} s on {report['device']}")
    print(f"{'region':<22}{'true Bq/mL':>12}{'mean':>12}{'RC mean':>9}{'RC max':>8}{'SUVmax':>8}{'true SUV':>9}"
          f"  cut-offs 7.40 / 11.26")
    for r in report["regions"]:
        rel = " / ".join("above" if c["relation"] == "above cut-off" else "below" for c in r["cutoffs"])
        print(f"{r['region']:<22}{r['true_bq_ml']:>12.0f}{r['mean_bq_ml']:>12.0f}{r['recovery_mean']:>9.2f}"
              f"{r['recovery_max']:>8.2f}{r['suv_max']:>8.2f}{r['true_suv']:>9.2f}  {rel}")
    print(f"({report['cutoff_note']})\n")
