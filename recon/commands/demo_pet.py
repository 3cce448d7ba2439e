"""``recon demo --modality pet``: an F-18 NaF bone PET study of the torso phantom, simulated, calibrated
as clinics do, reconstructed and quantified (Bq/mL, SUVbw, SUVmax/SUVpeak per lesion against the truth).

1. Scanner: the Discovery MI-like preset in its 5-ring length (45 rings, 25 cm axial FOV, as sold)
   with its crystals binned 2 x 2 (``--size 128``: 272 crystals of 7.9 mm x 23 rings of 11 mm, 4 mm
   voxels) or 3 x 3 (``--size 64``: 170 x 15 rings, 6 mm voxels), non-TOF, span 3 with a limited
   ring difference: a demo-sized data set.
   The scanner sits at the lumbar/lower thoracic spine, so L4 to T10 (every lesion) is in the FOV.
2. Simulation (:func:`recon.pet.simulate.simulate_pet`, a finer model than the reconstruction's):
   the NaF torso (:mod:`recon.phantoms.naf`) rasterised at half the voxel size and cropped to the
   axial FOV, attenuation at 511 keV, crystal efficiencies, randoms (15 %) and scatter (30 %), Poisson.
3. Calibration: a 20 cm water cylinder of known concentration simulated and reconstructed with the
   same protocol; F (Bq per cps) from its mean (:func:`recon.pet.calibration.calibration_factor_from_cylinder`).
4. Reconstruction: OSEM with attenuation, normalisation (the simulation's crystal efficiencies, as a
   scanner's normalisation scan gives them), randoms from the delayed coincidences, the resolution
   model, and scatter by single scatter simulation scaled to the tails (``--scatter none`` skips it).
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from recon.data.grid import ImageGrid, Volume
from recon.data.pet import PETSinogram, ScannerPlacement, SinogramCorrections
from recon.data.pet_presets import get_pet_scanner
from recon.data.pet_scanner import PETScanner
from recon.data.pet_sinogram import SinogramLayout
from recon.phantoms.phantom import Phantom

logger = logging.getLogger(__name__)

#: --size -> (crystal binning, voxel mm, max ring difference, PSF FWHM mm of the binned scanner)
PET_SIZES: dict[int, tuple[int, float, int, float]] = {128: (2, 4.0, 7, 4.5), 64: (3, 6.0, 4, 6.5)}
FRAME_S = 180.0  # one bed position of a NaF scan
KAPPA = 2.0e-6  # expected counts per (Bq/mL * mm * s) on an unattenuated LOR: ~1e8 prompts per bed
CYLINDER_BQ_ML = 10.0e3
CYLINDER_RADIUS_MM = 100.0
SCANNER_CENTRE_Z_MM = 14.0  # mid-way between the L4 endplate focus and the T10 lesion (torso centre z = 0)
OUTPUTS = ("sinogram.h5", "recon_bqml.h5", "suvbw.h5", "overview.png", "report.json")


def demo_scanner(binning: int) -> PETScanner:
    """Discovery MI-like, 5 rings of blocks (45 crystal rings, 25 cm), crystals binned ``binning`` x ``binning``."""
    dmi = get_pet_scanner("discovery_mi_like")
    rings = -(-45 // binning)
    return replace(dmi, name=f"discovery_mi_like_5ring_bin{binning}", n_rings=rings,
                   crystals_per_block=dmi.crystals_per_block // binning,
                   crystal_transaxial_mm=dmi.crystal_transaxial_mm * binning,
                   crystal_axial_mm=dmi.crystal_axial_mm * binning, ring_spacing_mm=dmi.ring_spacing_mm * binning,
                   tof_fwhm_ps=0.0, tof_bin_width_ps=0.0, n_tof_bins=1, max_ring_difference=rings - 1,
                   source=dmi.source + f" Demo: 5-ring length, crystals binned {binning}x{binning}, TOF off.")


def _grids(voxel_mm: float, scanner: PETScanner) -> tuple[ImageGrid, ScannerPlacement]:
    """Reconstruction grid (covers the 340 x 240 mm torso and the axial FOV) and the scanner placement."""
    nz = int(np.ceil(scanner.axial_fov_mm / voxel_mm))
    ny, nx = int(np.ceil(288.0 / voxel_mm)), int(np.ceil(384.0 / voxel_mm))
    centre = (0.0, 0.0, SCANNER_CENTRE_Z_MM)
    return ImageGrid.centered((nz, ny, nx), (voxel_mm,) * 3).recentred(centre), ScannerPlacement("HFS", centre)


def _torso_on(grid: ImageGrid) -> Phantom:
    """The NaF torso (centred at the LPS origin) on a tall grid aligned with ``grid``, cropped to ``grid``."""
    from recon.phantoms.naf import crop_phantom, naf_bone_torso  # noqa: PLC0415

    dz = grid.spacing_mm[0]
    lo, hi = grid.origin_mm[2], grid.origin_mm[2] + (grid.shape[0] - 1) * dz
    below, above = int(np.ceil((lo + 290.0) / dz)), int(np.ceil((290.0 - hi) / dz))
    tall = ImageGrid((grid.shape[0] + below + above, grid.shape[1], grid.shape[2]), grid.spacing_mm,
                     (grid.origin_mm[0], grid.origin_mm[1], lo - below * dz))
    return crop_phantom(naf_bone_torso(tall, center_mm=(0.0, 0.0, 0.0)), grid)


def _cylinder_on(grid: ImageGrid) -> Phantom:
    from recon.phantoms.library import uniform_cylinder  # noqa: PLC0415

    length = (grid.shape[0] - 2) * grid.spacing_mm[0]
    return uniform_cylinder(grid, CYLINDER_RADIUS_MM, length, CYLINDER_BQ_ML, 511.0)


def _simulate(factory: Any, grid: ImageGrid, layout: SinogramLayout, placement: ScannerPlacement,
              rng: np.random.Generator, noise: bool) -> Any:
    from recon.pet.simulate import PETSimulationProtocol, simulate_pet  # noqa: PLC0415

    proto = PETSimulationProtocol(frame_duration_s=FRAME_S, kappa=KAPPA, rays_per_side=2, noise=noise)
    return simulate_pet(factory, grid, layout, placement, proto, rng)


def _reconstruct(sim: Any, mu: Volume, opts: Any, callback: Any = None) -> Volume:
    from recon.pet.reconstruct import reconstruct_pet  # noqa: PLC0415

    corr = SinogramCorrections(sim.sinogram.layout, normalisation=sim.normalisation)
    volume, _ = reconstruct_pet(sim.sinogram, mu, corrections=corr, options=opts, callback=callback)
    return volume


def _lesion_rows(phantom: Phantom, suv: np.ndarray, true_suv: np.ndarray, grid: ImageGrid,
                 suv_per_bqml: float) -> list[dict[str, Any]]:
    """SUVmax, SUVpeak (1 mL sphere, searched over the region) and SUVmean of each reported region, true and measured."""
    from recon.quant.voi import suv_peak  # noqa: PLC0415

    rows = []
    names = [n for n in phantom.regions if n.startswith(("lesion_", "degenerative_"))]
    names += [n for n in ("normal_bone", "soft_tissue") if n in phantom.regions]
    for name in names:
        fraction = phantom.regions[name]
        touched = fraction > 0.0
        core = fraction >= 0.999
        if not core.any():
            core = fraction >= fraction.max() * 0.99
        focal = name.startswith(("lesion_", "degenerative_"))
        vmax = suv[touched].max() if focal else suv[core].max()
        peak_mask = touched if focal else core
        rows.append({
            "region": name,
            "true_suv": phantom.concentration_bq_ml[name] * suv_per_bqml,
            "true_suvmax_on_grid": float(true_suv[peak_mask].max()),
            "true_suvpeak_on_grid": suv_peak(true_suv, grid, peak_mask)[0],
            "suv_mean": float(suv[core].mean()),
            "suv_max": float(vmax),
            "suv_peak": suv_peak(suv, grid, peak_mask)[0],
            "volume_ml": float(fraction.sum() * grid.voxel_volume_ml),
        })
    return rows


def run_pet_demo(args: argparse.Namespace, out: Path) -> int:
    """The PET demo (module docstring); ``args``: size, seed, noise_free, overwrite, iterations, subsets,
    no_psf, no_attenuation, scatter, device, quiet."""
    from recon.commands.progress import osem_progress_bar  # noqa: PLC0415
    from recon.io.hdf5 import write_pet_sinogram, write_volume  # noqa: PLC0415
    from recon.io.png import write_overview_png  # noqa: PLC0415
    from recon.pet.calibration import calibration_factor_from_cylinder, pet_calibration  # noqa: PLC0415
    from recon.pet.reconstruct import PETReconOptions  # noqa: PLC0415
    from recon.pet.simulate import F18_HALF_LIFE_S  # noqa: PLC0415
    from recon.quant.calibration import calibrate  # noqa: PLC0415

    binning, voxel_mm, mrd, psf_mm = PET_SIZES[args.size]
    paths = {k: out / f"demo_pet_{k}" for k in OUTPUTS}
    existing = [p for p in paths.values() if p.exists()]
    if existing and not args.overwrite:
        raise FileExistsError(f"{existing[0]} exists; pass --overwrite or choose --out")
    scatter = args.scatter or "sss"
    opts = PETReconOptions(3 if args.iterations is None else args.iterations, 8 if args.subsets is None else args.subsets, psf=not args.no_psf, psf_fwhm_mm=psf_mm,
                           attenuation=not args.no_attenuation, scatter=scatter, device=args.device,
                           progress=not args.quiet)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    scanner = demo_scanner(binning)
    layout = SinogramLayout.for_fov(scanner, 400.0, span=3, max_ring_difference=min(mrd, scanner.n_rings - 1))
    grid, placement = _grids(voxel_mm, scanner)
    rng = np.random.default_rng(args.seed)
    noise = not args.noise_free
    cyl = _simulate(_cylinder_on, grid, layout, placement, rng, noise)
    cyl_phantom = _cylinder_on(grid)
    cyl_counts = _reconstruct(cyl, cyl_phantom.mu_map, replace(opts, progress=False))
    z, y, x = np.indices(grid.shape)
    xyz = grid.index_to_mm(np.stack([z, y, x], axis=-1))
    r = np.hypot(xyz[..., 0] - grid.center_mm[0], xyz[..., 1] - grid.center_mm[1])
    mask = (r < 0.7 * CYLINDER_RADIUS_MM) & (np.abs(xyz[..., 2] - grid.center_mm[2]) < 0.3 * grid.shape[0] * voxel_mm)
    factor = calibration_factor_from_cylinder(cyl_counts, mask, CYLINDER_BQ_ML, FRAME_S, F18_HALF_LIFE_S)
    logger.info("calibration: cylinder %.0f Bq/mL -> F = %.4g Bq per cps (%.1f s)", CYLINDER_BQ_ML, factor,
                time.perf_counter() - t0)
    sim = _simulate(_torso_on, grid, layout, placement, rng, noise)
    phantom = _torso_on(grid)
    injected = float(phantom.metadata["injected_activity_bq"])
    weight_g = float(phantom.metadata["body_weight_kg"]) * 1000.0
    suv_per_bqml = weight_g / injected
    write_pet_sinogram(sim.sinogram, paths["sinogram.h5"],
                       SinogramCorrections(layout, normalisation=sim.normalisation),
                       metadata={"demo": "F-18 NaF bone PET", "kappa": KAPPA}, overwrite=args.overwrite)
    t1 = time.perf_counter()
    with osem_progress_bar(opts.progress, opts.n_iterations, opts.n_subsets) as callback:
        counts = _reconstruct(sim, phantom.mu_map, opts, callback)
    t_recon = time.perf_counter() - t1
    bqml = calibrate(counts, pet_calibration(sim.sinogram, factor, half_life=F18_HALF_LIFE_S))
    suv_vol = Volume(np.asarray(bqml.data) * suv_per_bqml, grid, "SUVbw (g/mL)", dict(bqml.metadata))
    true_suv = np.asarray(phantom.activity.data, np.float64) * suv_per_bqml
    rows = _lesion_rows(phantom, np.asarray(suv_vol.data, np.float64), true_suv, grid, suv_per_bqml)
    write_volume(bqml, paths["recon_bqml.h5"], overwrite=args.overwrite)
    write_volume(suv_vol, paths["suvbw.h5"], overwrite=args.overwrite)
    write_overview_png(suv_vol, paths["overview.png"])
    report = {
        "settings": {"modality": "PET", "radiopharmaceutical": "F-18 NaF", "size": args.size,
                     "scanner": scanner.name, "sinogram": list(layout.shape), "span": layout.span,
                     "max_ring_difference": layout.max_ring_difference, "voxel_mm": voxel_mm,
                     "iterations": opts.n_iterations, "subsets": opts.n_subsets, "psf_fwhm_mm": psf_mm if opts.psf else None,
                     "attenuation": opts.attenuation, "scatter": scatter, "randoms": opts.randoms,
                     "noise": "none" if args.noise_free else f"Poisson, seed {args.seed}",
                     "frame_s": FRAME_S, "prompts": float(sim.sinogram.prompts.sum()),
                     "injected_activity_mbq": injected / 1e6, "body_weight_kg": weight_g / 1000.0,
                     "calibration_factor_bq_per_cps": factor},
        "reconstruction_seconds": t_recon,
        "total_seconds": time.perf_counter() - t0,
        "device": counts.metadata.get("device"),
        "regions": rows,
    }
    tmp = paths["report.json"].with_suffix(".json.part")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    tmp.replace(paths["report.json"])
    _print_report(report)
    logger.info("wrote %s; total %.1f s", ", ".join(str(p) for p in paths.values()), report["total_seconds"])
    return 0


def _print_report(report: dict[str, Any]) -> None:
    s = report["settings"]
    print(f"\nNaF bone PET demo: {s['scanner']}, sinogram {tuple(s['sinogram'])} span {s['span']}, "
          f"{s['voxel_mm']:g} mm voxels, OSEM {s['iterations']}x{s['subsets']}, psf={s['psf_fwhm_mm']} "
          f"scatter={s['scatter']}, {s['prompts']:.3g} prompts, {s['noise']}; reconstruction "
          f"{report['reconstruction_seconds']:.1f} s, total {report['total_seconds']:.1f} s")
    print(f"{'region':<18}{'true SUV':>9}{'SUVmax':>8}{'(true*)':>8}{'SUVpeak':>9}{'(true*)':>8}{'SUVmean':>9}")
    for r in report["regions"]:
        print(f"{r['region']:<18}{r['true_suv']:>9.2f}{r['suv_max']:>8.2f}{r['true_suvmax_on_grid']:>8.2f}"
              f"{r['suv_peak']:>9.2f}{r['true_suvpeak_on_grid']:>8.2f}{r['suv_mean']:>9.2f}")
    print("(true*: the phantom's truth rasterised on the reconstruction grid, partial-volume included)\n")
