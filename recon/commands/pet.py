"""``recon pet INPUT -o OUT.h5``: reconstruct a PET frame with OSEM.

INPUT is our HDF5 PET sinogram (``recon-pet-sinogram``) or list-mode file (``recon-pet-listmode``),
or a PETSIRD list-mode file. List-mode input is histogrammed into a span-1 sinogram (``--listmode``
reconstructs the events themselves instead). Attenuation and scatter need a 511 keV mu-map:
``--mu-map VOL.h5`` (our volume, 1/mm at 511 keV) or ``--ct DIR`` (a CT series, converted with the
bilinear HU model at 511 keV); stored attenuation factors in the sinogram file also serve for
attenuation. Randoms come from the delayed coincidences (smoothed), scatter from single scatter
simulation scaled to the emission tails. ``--calibration F`` (scanner calibration factor, Bq per
cps) writes Bq/mL; ``--dicom-out DIR`` writes a PET image series (Units BQML with --calibration) with the
patient's weight and the dose, which ``recon suv`` reads.
"""
from __future__ import annotations

import argparse
import logging
from datetime import datetime
from pathlib import Path

import numpy as np

from recon.backend import DEVICES
from recon.commands import check_positive_options, common_options
from recon.commands.progress import osem_progress_bar
from recon.commands.spect import check_outputs
from recon.data.grid import Volume
from recon.data.pet import PETSinogram, SinogramCorrections
from recon.io.hdf5 import FORMAT_PET_LISTMODE, FORMAT_PET_SINOGRAM, format_of, write_volume
from recon.io.nifti import write_nifti
from recon.quant.calibration import calibrate

logger = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pet", help="reconstruct a PET frame (sinogram, list-mode or PETSIRD)", description=__doc__,
                       parents=[common_options()], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", type=Path, help="PET input: recon HDF5 sinogram or list-mode, or a PETSIRD file")
    p.add_argument("-o", "--output", type=Path, required=True, help="output volume (.h5)")
    p.add_argument("--mu-map", type=Path, metavar="VOL.h5", help="mu-map at 511 keV (1/mm), our HDF5 volume")
    p.add_argument("--ct", type=Path, metavar="DIR", help="CT series directory, converted to a 511 keV mu-map")
    p.add_argument("--iterations", type=int, default=3, help="OSEM iterations (default 3)")
    p.add_argument("--subsets", type=int, default=7, help="OSEM subsets, interleaved views (default 7)")
    tof = p.add_mutually_exclusive_group()
    tof.add_argument("--tof", dest="tof", action="store_true", default=None, help="use time of flight (default: when the data have it)")
    tof.add_argument("--no-tof", dest="tof", action="store_false", help="ignore time of flight (sum the TOF bins)")
    psf = p.add_mutually_exclusive_group()
    psf.add_argument("--psf", dest="psf", action="store_true", default=True, help="model the scanner's resolution (default)")
    psf.add_argument("--no-psf", dest="psf", action="store_false", help="no resolution model")
    p.add_argument("--no-attenuation", action="store_true", help="do not correct for attenuation")
    p.add_argument("--scatter", choices=("sss", "none"), default="sss", help="scatter estimate (default sss)")
    p.add_argument("--randoms", choices=("delayed", "none"), default="delayed", help="randoms estimate (default delayed)")
    p.add_argument("--listmode", action="store_true", help="list-mode OSEM of the events (list-mode input only)")
    p.add_argument("--voxel-mm", type=float, default=4.0, help="voxel size of the default grid (mm, default 4)")
    p.add_argument("--calibration", type=float, metavar="BQ_PER_CPS", help="scanner calibration factor: write Bq/mL")
    p.add_argument("--reference-time", type=datetime.fromisoformat, metavar="ISO",
                   help="decay-correct Bq/mL to this time (e.g. the injection); needs --calibration")
    p.add_argument("--dicom-out", type=Path, metavar="DIR", help="also write a DICOM PET image series into DIR")
    p.add_argument("--nifti-out", type=Path, metavar="FILE", help="also write the volume as NIfTI (.nii/.nii.gz)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--device", choices=DEVICES, default="auto", help="cpu, cuda or auto (default)")
    p.set_defaults(func=run)


def _load(path: Path):
    """(PETSinogram or ListModeAcquisition, SinogramCorrections or None) from our HDF5 or PETSIRD."""
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory; give one PET file")
    kind = format_of(path)
    if kind == FORMAT_PET_SINOGRAM:
        from recon.io.hdf5 import read_pet_sinogram  # noqa: PLC0415

        sino, corrections, _ = read_pet_sinogram(path)
        return sino, corrections
    if kind == FORMAT_PET_LISTMODE:
        from recon.io.hdf5 import read_pet_listmode  # noqa: PLC0415

        acq, _ = read_pet_listmode(path)
        return acq, None
    if kind is not None:
        raise ValueError(f"{path} is a recon HDF5 file of kind {kind!r}, not PET data")
    from recon.io.petsird import read_petsird  # noqa: PLC0415

    return read_petsird(path), None


def _mu_map(args: argparse.Namespace, grid) -> Volume | None:
    if args.mu_map is not None and args.ct is not None:
        raise ValueError("give --mu-map or --ct, not both")
    from recon.physics.resample import resample_grid  # noqa: PLC0415

    if args.mu_map is not None:
        from recon.io.hdf5 import read_volume  # noqa: PLC0415

        mu = read_volume(args.mu_map)
        if mu.grid.same_as(grid):
            return mu
        return Volume(resample_grid(mu.data, mu.grid, grid).astype(np.float32), grid, mu.unit, dict(mu.metadata),
                      mu.frame_of_reference_uid)
    if args.ct is not None:
        from recon.io.dicom import read_ct_series  # noqa: PLC0415
        from recon.physics.attenuation import ct_to_mu_map  # noqa: PLC0415

        return ct_to_mu_map(read_ct_series(args.ct), grid, 511.0)
    return None


def _sinogram_of(data, tof: bool | None) -> PETSinogram:
    """A span-1 sinogram of list-mode data (TOF when the scanner has it unless ``tof`` is False)."""
    from recon.data.pet_histogram import histogram_events  # noqa: PLC0415
    from recon.data.pet_sinogram import SinogramLayout  # noqa: PLC0415

    use_tof = data.scanner.has_tof if tof is None else bool(tof)
    if use_tof and not data.scanner.has_tof:
        raise ValueError(f"--tof: scanner {data.scanner.name!r} of the input has no time of flight")
    layout = SinogramLayout.for_fov(data.scanner, 0.8 * data.scanner.ring_diameter_mm, tof=use_tof)
    return histogram_events(data, layout)


def _drop_tof(sino: PETSinogram) -> PETSinogram:
    from dataclasses import replace  # noqa: PLC0415

    from recon.data.pet_sinogram import SinogramLayout  # noqa: PLC0415

    lay = sino.layout
    flat = SinogramLayout(lay.scanner, lay.n_radial, lay.span, lay.max_ring_difference, tof=False)
    return replace(sino, layout=flat, prompts=sino.prompts.sum(axis=-1))


def run(args: argparse.Namespace) -> int:
    from recon.pet.calibration import frame_start, pet_calibration  # noqa: PLC0415
    from recon.pet.reconstruct import PETReconOptions, default_grid, reconstruct_pet  # noqa: PLC0415

    if args.reference_time is not None and args.calibration is None:
        raise ValueError("--reference-time needs --calibration")
    check_positive_options(args, ("calibration", "voxel_mm"))
    check_outputs(args, [args.output] + ([args.nifti_out] if args.nifti_out is not None else []))
    opts = PETReconOptions(args.iterations, args.subsets, psf=args.psf, attenuation=not args.no_attenuation,
                           randoms=args.randoms, scatter=args.scatter, device=args.device, progress=not args.quiet)
    data, corrections = _load(args.input)
    if isinstance(data, PETSinogram):
        if args.listmode:
            raise ValueError("--listmode needs list-mode input; the input is a sinogram")
        sino = data
        if args.tof is True and not sino.layout.tof:
            raise ValueError(f"--tof: the sinogram in {args.input} has no TOF bins")
        if args.tof is False and sino.layout.tof:
            sino = _drop_tof(sino)
            if corrections is not None:
                corrections = SinogramCorrections(sino.layout, corrections.randoms, corrections.normalisation,
                                                  corrections.attenuation_factors)
    else:
        sino = _sinogram_of(data, args.tof)
    grid = sino.image_grid or default_grid(sino.layout, args.voxel_mm).recentred(sino.placement.field_of_view_centre_mm())
    mu = _mu_map(args, grid)
    if mu is not None:
        from recon.pet.attenuation import check_mu_map_511  # noqa: PLC0415

        check_mu_map_511(mu)  # units and energy, before any compute
    if mu is None and (opts.attenuation or opts.scatter == "sss"):
        stored = corrections is not None and corrections.attenuation_factors is not None
        if not stored or opts.scatter == "sss":
            raise ValueError(f"no 511 keV mu-map for {args.input}: give --mu-map or --ct, or pass "
                             "--no-attenuation and --scatter none")
    cal = None if args.calibration is None else pet_calibration(sino, args.calibration, args.reference_time)
    from dataclasses import replace  # noqa: PLC0415

    sino = replace(sino, image_grid=grid)
    with osem_progress_bar(opts.progress, opts.n_iterations, opts.n_subsets) as callback:
        if args.listmode:
            from recon.pet.reconstruct import reconstruct_pet_listmode  # noqa: PLC0415

            volume, _ = reconstruct_pet_listmode(data.events, sino, mu, corrections=corrections, options=opts,
                                                 callback=callback)
        else:
            volume, _ = reconstruct_pet(sino, mu, corrections=corrections, options=opts, callback=callback)
    if cal is not None:
        volume = calibrate(volume, cal)
    write_volume(volume, args.output, overwrite=args.overwrite)
    logger.info("wrote %s (%s, %d x %d x %d voxels)", args.output, volume.unit, *volume.grid.shape)
    if args.nifti_out is not None:
        write_nifti(volume, args.nifti_out, overwrite=args.overwrite)
    if args.dicom_out is not None:
        from recon.io.dicom.image_series import write_volume_series  # noqa: PLC0415

        decayed = cal is not None and cal.half_life is not None
        factors = volume.metadata.get("calibration", {})
        write_volume_series(volume, args.dicom_out, modality="PT", patient=sino.patient, dose=sino.dose,
                            frame_duration_s=sino.frame_duration_s,
                            decay_correction="START" if decayed else "NONE",
                            # the values are at the frame start, or at --reference-time: SeriesDate/Time say when
                            decay_reference_time=(cal.reference_time or frame_start(sino)) if decayed else None,
                            decay_factor=(factors.get("decay_during_acquisition_factor", 1.0)
                                          * factors.get("decay_to_reference_factor", 1.0)) if decayed else None)
        logger.info("wrote the PET image series %s", args.dicom_out)
    return 0
