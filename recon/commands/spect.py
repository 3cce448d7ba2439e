"""``recon spect INPUT -o OUT.h5``: reconstruct a SPECT acquisition with OSEM.

INPUT is our HDF5 projections file (with its mu-map) or a DICOM NM multi-frame
file (Siemens/GE layouts; ``--ct DIR`` gives the CT series for attenuation).
Several inputs are the beds of one study: each is reconstructed on its own grid
and the beds are stitched in patient space (``docs/multibed.md``).
``--calibration S`` (system sensitivity, cps/MBq) converts the result to Bq/mL,
decay-corrected over the acquisition and, with ``--reference-time``, to that time.
When the input also gives the patient's weight and the injected activity and
time, an SUVbw map is written beside the output (``OUT_suvbw.h5``; ``--no-suv``
skips it). The volume sits where the input places the patient, in its frame of
reference, with or without attenuation correction.
"""
from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from recon.commands import check_positive_options, common_options
from recon.commands.progress import osem_progress_bar
from recon.backend import DEVICES
from recon.data.grid import Volume
from recon.data.series_header import SeriesHeader
from recon.data.spect import SPECTAcquisition
from recon.io.atomic import check_writable_directory, check_writable_target
from recon.io.hdf5 import is_hdf5, read_mu_map, read_projections, write_volume
from recon.io.nifti import check_nifti_suffix, write_nifti
from recon.quant.calibration import Calibration, calibrate
from recon.quant.suv import SUVConversion, suv_factors, suv_volume
from recon.spect.calibration import decay_reference_time, spect_calibration, suv_header
from recon.spect.reconstruct import SPECTReconOptions, reconstruct_spect

if TYPE_CHECKING:
    from recon.io.dicom.nm_recon_write import NMRotation

logger = logging.getLogger(__name__)


def _positive_kev(text: str) -> float:
    value = float(text)
    if not (value > 0 and value < 2000):
        raise argparse.ArgumentTypeError(f"must be a photon energy in keV (0-2000), got {text}")
    return value


def add_recon_options(p: argparse.ArgumentParser) -> None:
    """OSEM and physics options shared by the commands that reconstruct."""
    p.add_argument("--iterations", type=int, default=4, help="OSEM iterations (default 4)")
    p.add_argument("--subsets", type=int, default=8, help="OSEM subsets, interleaved views (default 8)")
    p.add_argument("--no-attenuation", action="store_true", help="do not model attenuation")
    p.add_argument("--no-psf", action="store_true", help="do not model the collimator-detector response")
    p.add_argument("--no-detector-rows", action="store_true",
                   help="model every detector row at full sensitivity (default: where the projections show the "
                        "detector's axial edge, rows outside its useful field and partially shielded edge rows are "
                        "left out; docs/multibed.md)")
    p.add_argument("--scatter", choices=("none", "dew", "tew"), default="tew", help="scatter estimate (default tew)")
    p.add_argument("--device", choices=DEVICES, default="auto", help="cpu, cuda or auto (default)")


def options_from_args(args: argparse.Namespace) -> SPECTReconOptions:
    return SPECTReconOptions(
        n_iterations=args.iterations, n_subsets=args.subsets, attenuation=not args.no_attenuation,
        psf=not args.no_psf, scatter=args.scatter, device=args.device, progress=not args.quiet,
        detector_rows=not getattr(args, "no_detector_rows", False),
    )


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("spect", help="reconstruct SPECT projections", description=__doc__,
                       parents=[common_options()], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", type=Path, nargs="+",
                   help="projections: recon HDF5 (.h5) or DICOM NM file; several files are the beds of one "
                        "study, reconstructed one by one and stitched in patient space (docs/multibed.md)")
    p.add_argument("-o", "--output", type=Path, required=True, help="output volume (.h5)")
    p.add_argument("--ct", type=Path, help="CT series directory for the mu-map (DICOM input)")
    p.add_argument("--collimator", help="collimator preset, overriding the file's (e.g. SY-LEHR)")
    p.add_argument("--photopeak", metavar="WINDOW", help="name of the photopeak energy window (see the file's windows)")
    p.add_argument("--radionuclide", metavar="NAME",
                   help="radionuclide (e.g. Lu-177), when the file names none or the wrong one")
    p.add_argument("--energy-kev", type=_positive_kev, metavar="KEV",
                   help="photon energy (keV) for attenuation and the collimator response")
    p.add_argument("--calibration", type=float, metavar="CPS_PER_MBQ",
                   help="system sensitivity (cps/MBq): write Bq/mL instead of counts")
    p.add_argument("--reference-time", type=datetime.fromisoformat, metavar="ISO",
                   help="decay-correct Bq/mL to this time, normally the administration time "
                        "(e.g. 2026-11-25T08:00:00); needs --calibration")
    p.add_argument("--dicom-out", type=Path, metavar="DIR",
                   help="also write the volume as one DICOM NM multi-frame file DIR/nm_recon.dcm (Bq/mL with "
                        "--calibration), and the SUVbw map as DIR/nm_suvbw.dcm when it is written")
    p.add_argument("--nifti-out", type=Path, metavar="FILE",
                   help="also write the volume as NIfTI (.nii or .nii.gz, RAS orientation)")
    p.add_argument("--no-suv", action="store_true",
                   help="do not write the SUVbw map even when the input gives weight, dose and injection time")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    add_recon_options(p)
    p.set_defaults(func=run)


def _override(acq: SPECTAcquisition, collimator: str | None, photopeak: str | None, radionuclide: str | None,
              energy_kev: float | None) -> SPECTAcquisition:
    """``acq`` with the user's collimator, photopeak window, radionuclide or photon energy (keV)."""
    from dataclasses import replace  # noqa: PLC0415

    from recon.data.collimator import get_collimator  # noqa: PLC0415
    from recon.data.radionuclides import get_radionuclide  # noqa: PLC0415

    changes: dict[str, object] = {}
    if collimator:
        changes["collimator"] = get_collimator(collimator)
    if photopeak is not None:
        changes["photopeak"] = photopeak
    if radionuclide is not None:
        changes["radionuclide"] = get_radionuclide(radionuclide).name
    if energy_kev is not None:
        changes["photon_energy_kev"] = energy_kev
    return replace(acq, **changes) if changes else acq


def load_input(path: Path, ct_dir: Path | None, collimator: str | None, *, photopeak: str | None = None,
               radionuclide: str | None = None,
               energy_kev: float | None = None) -> tuple[SPECTAcquisition, Volume | None]:
    """Projections and mu-map from our HDF5 or from DICOM NM (+ CT); ``photopeak`` (window name),
    ``radionuclide`` and ``energy_kev`` (photon energy) override what the file says."""
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory; give an HDF5 projections file or one DICOM NM file")
    if is_hdf5(path) or path.suffix.lower() in (".h5", ".hdf5"):
        if ct_dir is not None:
            raise ValueError("--ct applies to DICOM input; the HDF5 file carries its own mu-map")
        acq = _override(read_projections(path), collimator, photopeak, radionuclide, energy_kev)
        return acq, read_mu_map(path)
    from recon.io.dicom import read_nm  # noqa: PLC0415

    acq = read_nm(path, collimator=collimator, photopeak=photopeak, photon_energy_kev=energy_kev,
                  radionuclide=radionuclide)
    mu = None
    if ct_dir is not None:
        from recon.physics.attenuation import ct_to_mu_map  # noqa: PLC0415
        from recon.io.dicom import read_ct_series  # noqa: PLC0415

        ct = read_ct_series(ct_dir)
        nm_frame = acq.info.frame_of_reference_uid
        if ct.frame_of_reference_uid and nm_frame and ct.frame_of_reference_uid != nm_frame:
            logger.warning("the CT (FrameOfReferenceUID %s) and the NM projections (%s) are in different frames of "
                           "reference: the mu-map is placed by patient coordinates as if they were one; register "
                           "them first if the patient moved between scans", ct.frame_of_reference_uid, nm_frame)
        mu = ct_to_mu_map(ct, acq.image_grid, acq.photon_energy_kev)
        from recon.spect.plausibility import check_mu_covers_emission  # noqa: PLC0415

        check_mu_covers_emission(acq, mu.data)
    return acq, mu




def suv_output_path(output: Path) -> Path:
    """Where the SUVbw map of ``output`` goes: ``NAME_suvbw.h5`` beside it."""
    return output.with_name(f"{output.stem}_suvbw{output.suffix or '.h5'}")


def input_paths(args: argparse.Namespace) -> list[Path]:
    """The input file(s): one study, or the beds of one study."""
    return list(args.input) if isinstance(args.input, (list, tuple)) else [args.input]


def check_outputs(args: argparse.Namespace, paths: list[Path]) -> None:
    """Refuse, before any compute, outputs that would overwrite the input or an existing file, or whose
    directory does not exist."""
    for path in paths:
        if any(path.resolve() == p.resolve() for p in input_paths(args)):
            raise ValueError(f"output path {path} equals the input path; refusing to overwrite the input")
        check_writable_target(path, args.overwrite)
    if args.nifti_out is not None:
        check_nifti_suffix(args.nifti_out)
    if args.dicom_out is not None:
        if args.dicom_out.exists() and (not args.dicom_out.is_dir() or any(args.dicom_out.iterdir())):
            raise FileExistsError(f"{args.dicom_out} is not an empty directory; refusing to write a DICOM series into it")
        if not args.dicom_out.parent.is_dir():
            raise FileNotFoundError(f"the parent directory of --dicom-out {args.dicom_out} does not exist")
        check_writable_directory(args.dicom_out if args.dicom_out.is_dir() else args.dicom_out.parent)


def _calibration_and_suv(args: argparse.Namespace, acq: SPECTAcquisition
                         ) -> tuple[Calibration | None, SeriesHeader | None, SUVConversion | None]:
    """The calibration (with --calibration) and, when the input allows it, the SUVbw header and factors:
    inconsistent dose or times are refused and implausible ones warned here, before any compute."""
    if args.calibration is None:
        return None, None, None
    cal = spect_calibration(acq, args.calibration, args.reference_time)
    if args.no_suv:
        return cal, None, None
    header, why_not = suv_header(acq, cal)
    if header is None:
        logger.info("no SUV map: %s", why_not)
        return cal, None, None
    conversion = suv_factors(header, "bw")
    check_outputs(args, [suv_output_path(args.output)])
    return cal, header, conversion


def run(args: argparse.Namespace,
        adjust: Callable[[SPECTAcquisition], SPECTAcquisition] | None = None) -> int:
    """Run ``recon spect``; ``adjust`` (used by ``recon batch`` for patient and dose overrides) may replace
    the loaded acquisition's typed metadata before anything is derived from it."""
    if args.reference_time is not None and args.calibration is None:
        raise ValueError("--reference-time needs --calibration")
    check_positive_options(args, ("calibration",))
    check_outputs(args, [args.output] + ([args.nifti_out] if args.nifti_out is not None else []))
    if len(input_paths(args)) > 1:
        if adjust is not None:
            raise ValueError("patient or dose overrides apply to one input; give the beds one by one")
        from recon.commands.spect_multibed import run_beds  # noqa: PLC0415

        return run_beds(args)
    args.input = input_paths(args)[0]
    acq, mu = load_input(args.input, args.ct, args.collimator, photopeak=args.photopeak,
                         radionuclide=args.radionuclide, energy_kev=args.energy_kev)
    if adjust is not None:
        acq = adjust(acq)
    opts = options_from_args(args)
    if opts.attenuation and mu is None:
        raise ValueError(f"no mu-map for {args.input}: give --ct DIR (DICOM) or a file with a mu-map, "
                         "or pass --no-attenuation")
    try:  # calibration and SUV factors before any compute; errors name the input
        cal, header, conversion = _calibration_and_suv(args, acq)
    except (ValueError, KeyError) as exc:  # e.g. an unknown radionuclide, an injection after the scan
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        raise ValueError(f"{args.input}: {message}") from None
    with osem_progress_bar(opts.progress, opts.n_iterations, opts.n_subsets) as callback:
        volume = reconstruct_spect(acq, mu, opts, callback=callback)
    if cal is not None:
        volume = calibrate(volume, cal)
    write_volume(volume, args.output, overwrite=args.overwrite)
    logger.info("wrote %s (%s, %d x %d x %d voxels)", args.output, volume.unit, *volume.grid.shape)
    suv = None
    if header is not None:
        suv, _ = suv_volume(volume, header, "bw", conversion=conversion)
        write_volume(suv, suv_output_path(args.output), overwrite=args.overwrite)
        logger.info("wrote %s (%s)", suv_output_path(args.output), suv.unit)
    if args.nifti_out is not None:
        write_nifti(volume, args.nifti_out, overwrite=args.overwrite)
        logger.info("wrote %s", args.nifti_out)
    if args.dicom_out is not None:
        write_dicom_series(volume, args.dicom_out, acq, mu, cal, opts, suv)
    return 0


def dicom_decay_correction(acq: SPECTAcquisition, cal: Calibration | None) -> tuple[str, datetime | None]:
    """DICOM DecayCorrection (0054,1102) and the time it refers to: ADMIN when the values are decay-corrected
    to the injection, START (with its reference time) otherwise, NONE without a calibration."""
    if cal is None:
        return "NONE", None
    reference = decay_reference_time(acq, cal)
    if reference is None:
        return "NONE", None
    injection = acq.dose.injection_time
    if injection is not None and abs((reference - injection).total_seconds()) < 1.0:
        return "ADMIN", reference
    return "START", reference


def _rotation(acq: SPECTAcquisition) -> NMRotation | None:
    """The acquisition's rotation in DICOM terms (start angle, step, CW/CC, views per detector)."""
    from recon.io.dicom.nm_geometry import recon_angle_to_dicom_deg  # noqa: PLC0415
    from recon.io.dicom.nm_recon_write import NMRotation  # noqa: PLC0415

    theta = np.asarray(acq.geometry.angles_deg, dtype=np.float64)
    n_views = max(1, theta.size // max(1, acq.n_detectors))
    if theta.size < 2:
        return None
    step = float(np.median((np.diff(theta) + 180.0) % 360.0 - 180.0))  # our theta grows with a CW rotation
    return NMRotation(float(recon_angle_to_dicom_deg(theta[0])), abs(step), "CW" if step >= 0 else "CC", n_views,
                      acq.frame_duration_s, float(np.mean(acq.geometry.radius_mm)))


def write_dicom_series(volume: Volume, directory: Path, acq: SPECTAcquisition, mu: Volume | None,
                       cal: Calibration | None, opts: SPECTReconOptions, suv: Volume | None = None) -> None:
    """The reconstruction as ONE NM RECON TOMO multi-frame file (and the SUVbw map as a second NM object):
    patient, study and dose from the typed metadata, the photopeak window and rotation from the acquisition,
    in the volume's frame of reference."""
    from dataclasses import replace  # noqa: PLC0415

    from recon.io.dicom.image_base import SeriesFacts  # noqa: PLC0415
    from recon.io.dicom.nm_recon_write import NMStudyFacts, write_nm_recon  # noqa: PLC0415

    decay, reference = dicom_decay_correction(acq, cal)
    corrected = tuple(flag for flag, on in (("ATTN", opts.attenuation), ("SCAT", opts.scatter != "none"),
                                            ("DECY", decay != "NONE")) if on)
    frame_of_reference = volume.frame_of_reference_uid or (mu.frame_of_reference_uid if mu is not None else "")
    window = next(w for w in acq.windows if w.name == acq.photopeak)
    facts = SeriesFacts(acq.metadata.get("dicom_header"), acq.patient, acq.info.study_instance_uid,
                        frame_of_reference or None, "recon OSEM SPECT", 1001, reference, acq.info.patient_position)
    study = NMStudyFacts(acq.radionuclide, acq.dose, ((window.name, window.lower_kev, window.upper_kev),),
                         _rotation(acq), acq.collimator.name, corrected)
    objects = [(volume, facts)]
    if suv is not None:
        objects.append((suv, replace(facts, series_description="recon OSEM SPECT SUVbw", series_number=1002)))
    paths = write_nm_recon(objects, directory, study)
    logger.info("wrote %s", ", ".join(str(p) for p in paths))
