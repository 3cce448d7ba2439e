"""``recon spect BED1 BED2 ... -o OUT.h5``: the beds of one study reconstructed one by one and stitched.

Every bed is read and checked (inputs, CT, calibration, SUV header) before any
reconstruction. The beds are brought to one scale first: with ``--calibration``
each bed is in Bq/mL decay-corrected to one time (``--reference-time``, else the
earliest bed's start); without it, each bed's counts are scaled to the first
bed's time per view. Stitching: :mod:`recon.spect.multibed` (``docs/multibed.md``).
"""
from __future__ import annotations

import argparse
import logging
from copy import copy

from recon.commands.progress import osem_progress_bar
from recon.data.grid import Volume
from recon.io.hdf5 import write_volume
from recon.io.nifti import write_nifti
from recon.quant.calibration import calibrate
from recon.quant.suv import suv_volume
from recon.spect.multibed import active_rows, overlap_agreement, row_mask, stitch_beds
from recon.spect.reconstruct import reconstruct_spect

logger = logging.getLogger(__name__)

__all__ = ["run_beds"]


def run_beds(args: argparse.Namespace) -> int:
    """Run ``recon spect`` on several beds of one study; the output is the stitched volume."""
    from recon.commands import spect  # noqa: PLC0415 - the single-bed command's helpers

    paths = spect.input_paths(args)
    if len(set(p.resolve() for p in paths)) != len(paths):
        raise ValueError("the same bed is given twice: " + ", ".join(str(p) for p in paths))
    beds = [spect.load_input(p, args.ct, args.collimator, photopeak=args.photopeak, radionuclide=args.radionuclide,
                             energy_kev=args.energy_kev) for p in paths]
    opts = spect.options_from_args(args)
    if opts.attenuation and any(mu is None for _, mu in beds):
        raise ValueError("no mu-map for some beds: give --ct DIR (DICOM) or files with a mu-map, "
                         "or pass --no-attenuation")
    reference = args.reference_time
    starts = [acq.info.start_time for acq, _ in beds]
    if args.calibration is not None and reference is None and all(s is not None for s in starts):
        reference = min(starts)  # type: ignore[type-var]
        logger.info("beds decay-corrected to the earliest bed's start, %s (--reference-time overrides)",
                    reference.isoformat())
    cals, header, conversion = [], None, None
    for b, ((acq, _), path) in enumerate(zip(beds, paths)):
        bed_args = copy(args)
        bed_args.input, bed_args.reference_time = path, reference
        bed_args.no_suv = args.no_suv or b > 0  # the SUV header is the first bed's (same patient and dose)
        try:
            cal, h, conv = spect._calibration_and_suv(bed_args, acq)
        except (ValueError, KeyError) as exc:
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            raise ValueError(f"{path}: {message}") from None
        cals.append(cal)
        if b == 0:
            header, conversion = h, conv

    volumes: list[Volume] = []
    for b, ((acq, mu), path, cal) in enumerate(zip(beds, paths, cals), start=1):
        logger.info("bed %d of %d: %s", b, len(beds), path)
        with osem_progress_bar(opts.progress, opts.n_iterations, opts.n_subsets) as callback:
            volume = reconstruct_spect(acq, mu, opts, callback=callback)
        if cal is not None:
            volume = calibrate(volume, cal)
        else:
            scale = beds[0][0].frame_duration_s / acq.frame_duration_s
            if abs(scale - 1.0) > 1e-9:
                logger.info("bed %d: counts scaled by %.4g to the first bed's %g s per view", b, scale,
                            beds[0][0].frame_duration_s)
                volume = Volume(volume.data * scale, volume.grid, volume.unit, volume.metadata,
                                volume.frame_of_reference_uid)
        volumes.append(volume)
    # a bed's axial sensitivity: its fully sensitive detector rows, the ones its reconstruction modelled
    profiles = [row_mask(acq) if opts.detector_rows else active_rows(acq) for acq, _ in beds]
    stitched, weights = stitch_beds(volumes, profiles)
    for b in range(len(volumes) - 1):
        agree = overlap_agreement(volumes[b], volumes[b + 1], weights[b], weights[b + 1], stitched.grid)
        if agree["n_slices"]:
            logger.info("beds %d and %d overlap over %d slices: correlation %.3f, mean ratio %.3f", b + 1, b + 2,
                        agree["n_slices"], agree["correlation"], agree["mean_ratio"])
    write_volume(stitched, args.output, overwrite=args.overwrite)
    logger.info("wrote %s (%s, %d beds stitched, %d x %d x %d voxels)", args.output, stitched.unit, len(beds),
                *stitched.grid.shape)
    suv = None
    if header is not None:
        suv, _ = suv_volume(stitched, header, "bw", conversion=conversion)
        write_volume(suv, spect.suv_output_path(args.output), overwrite=args.overwrite)
        logger.info("wrote %s (%s)", spect.suv_output_path(args.output), suv.unit)
    if args.nifti_out is not None:
        write_nifti(stitched, args.nifti_out, overwrite=args.overwrite)
        logger.info("wrote %s", args.nifti_out)
    if args.dicom_out is not None:
        spect.write_dicom_series(stitched, args.dicom_out, beds[0][0], None, cals[0], opts, suv)
    return 0
