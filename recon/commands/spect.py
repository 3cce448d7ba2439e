"""``recon spect INPUT -o OUT.h5``: reconstruct a SPECT acquisition (our HDF5) with OSEM."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from recon.backend import DEVICES
from recon.io.hdf5 import read_mu_map, read_projections, write_volume
from recon.spect.reconstruct import SPECTReconOptions, reconstruct_spect

logger = logging.getLogger(__name__)


def add_recon_options(p: argparse.ArgumentParser) -> None:
    """OSEM and physics options shared by the commands that reconstruct."""
    p.add_argument("--iterations", type=int, default=4, help="OSEM iterations (default 4)")
    p.add_argument("--subsets", type=int, default=8, help="OSEM subsets, interleaved views (default 8)")
    p.add_argument("--no-attenuation", action="store_true", help="do not model attenuation")
    p.add_argument("--no-psf", action="store_true", help="do not model the collimator-detector response")
    p.add_argument("--scatter", choices=("none", "dew", "tew"), default="tew", help="scatter estimate (default tew)")
    p.add_argument("--device", choices=DEVICES, default="auto", help="cpu, cuda or auto (default)")


def options_from_args(args: argparse.Namespace) -> SPECTReconOptions:
    return SPECTReconOptions(
        n_iterations=args.iterations, n_subsets=args.subsets, attenuation=not args.no_attenuation,
        psf=not args.no_psf, scatter=args.scatter, device=args.device, progress=not args.quiet,
    )


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("spect", help="reconstruct SPECT projections", description=__doc__)
    p.add_argument("input", type=Path, help="projections: recon HDF5 (.h5)")
    p.add_argument("-o", "--output", type=Path, required=True, help="output volume (.h5)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    add_recon_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.output.resolve() == args.input.resolve():
        raise ValueError("output path equals the input path; refusing to overwrite the input")
    acq = read_projections(args.input)
    mu = read_mu_map(args.input)
    opts = options_from_args(args)
    if opts.attenuation and mu is None:
        raise ValueError(f"{args.input} holds no mu-map: add one, or pass --no-attenuation")
    volume = reconstruct_spect(acq, mu, opts)
    write_volume(volume, args.output, overwrite=args.overwrite)
    logger.info("wrote %s (%s, %d x %d x %d voxels)", args.output, volume.unit, *volume.grid.shape)
    return 0
