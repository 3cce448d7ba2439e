"""``recon suv SERIES_DIR|NM_FILE|SUV.h5 [--mask MASK] [--lesions] [--json OUT.json]``: SUV statistics of a quantitative PET or SPECT (NM, Units BQML) image series.

Reads the DICOM series (or one multi-frame NM reconstruction, or the SUV map
that ``recon spect`` writes as ``NAME_suvbw.h5``), converts it to SUV (body weight by default) following
the DICOM conventions in :mod:`recon.quant.suv`, prints statistics inside the
mask (a NIfTI-1 .nii/.nii.gz or a NumPy .npy (z, y, x) array; the whole image
without one) and, with ``--lesions``, a per-lesion table with positions in
patient coordinates (LPS mm) and a comparison of each SUVmax with the cut-offs
(reported as above/below cut-off, never as a diagnosis). ``--json`` writes
the same as a machine-readable report.
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from recon.commands import report_error

logger = logging.getLogger(__name__)

__all__ = ["register", "run"]


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``suv`` subcommand to an argparse subparsers object."""
    from recon.commands import common_options  # noqa: PLC0415
    from recon.quant.suv import SUV_KINDS  # noqa: PLC0415
    from recon.quant.voi import BONE_SPECT_TC99M_CUTOFFS  # noqa: PLC0415

    p = subparsers.add_parser(
        "suv",
        help="SUV statistics of a PET or quantitative SPECT DICOM series (optional mask, lesion table)",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        parents=[common_options()],
    )
    p.add_argument("series", metavar="SERIES_DIR",
                   help="DICOM image series directory (one slice per file), one multi-frame NM reconstruction file, "
                        "or a recon SUV volume (.h5)")
    p.add_argument("--mask", metavar="MASK", help="VOI mask: NIfTI-1 .nii/.nii.gz (mapped by its affine), .npy (z, y, x) "
                   "or a DICOM SEG (its segments' union, or --segment N)")
    p.add_argument("--lesions", action="store_true", help="segment lesions and print a per-lesion table")
    p.add_argument("--json", metavar="OUT.json", help="write the report as JSON (never over an existing file)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing JSON report")
    p.add_argument("--suv-type", default="bw", choices=SUV_KINDS, help="SUV normalisation (default: bw)")
    p.add_argument("--reference-time", default="qiba", choices=("qiba", "backcompute", "series"),
                   help="how to find the decay-correction reference time for DecayCorrection START (default: qiba)")
    p.add_argument("--weight-kg", type=float, help="patient weight (kg), overrides PatientWeight")
    p.add_argument("--height-m", type=float, help="patient height (m), overrides PatientSize")
    p.add_argument("--sex", choices=("M", "F", "O"), help="patient sex, overrides PatientSex")
    p.add_argument("--dose-mbq", type=float, help="injected activity (MBq), overrides RadionuclideTotalDose")
    p.add_argument("--half-life-s", type=float, help="half-life (s), overrides RadionuclideHalfLife")
    p.add_argument("--threshold", type=float, default=2.5,
                   help="lesions: fixed SUV threshold, also the seed threshold for --percent (default 2.5)")
    p.add_argument("--percent", type=float, help="lesions: percent of each lesion's local max (e.g. 41)")
    p.add_argument("--min-volume-ml", type=float, default=0.0, help="lesions: drop lesions smaller than this (mL)")
    p.add_argument("--cutoffs", type=float, nargs="*", default=list(BONE_SPECT_TC99M_CUTOFFS),
                   help="SUVmax cut-offs to compare lesions with (default: 7.40 11.26, Tc-99m bone SPECT/CT)")
    from recon.commands.suv_dicom import add_dicom_options  # noqa: PLC0415

    add_dicom_options(p)
    p.set_defaults(func=run)
    return p


def _load_mask(path: str, grid: Any, segment: int | None = None, frame_of_reference_uid: str = "") -> np.ndarray:
    from recon.commands.suv_dicom import is_dicom_seg, seg_mask  # noqa: PLC0415
    from recon.io.nifti import read_mask_on_grid  # noqa: PLC0415

    p = Path(path)
    if is_dicom_seg(path):
        return seg_mask(path, grid, segment, frame_of_reference_uid)
    if p.suffix == ".npy":
        try:
            m = np.load(p)
        except (ValueError, OSError, EOFError) as exc:
            raise ValueError(f"mask {p}: not a readable .npy array ({' '.join(str(exc).split())[:120]})") from None
        if m.shape != grid.shape:
            raise ValueError(f"mask {p} has shape {m.shape}, the series grid is {grid.shape} (z, y, x)")
        return m > 0
    if p.name.endswith((".nii", ".nii.gz")):
        return read_mask_on_grid(p, grid)
    raise ValueError(f"mask {p}: unsupported format (use .nii, .nii.gz, .npy or a DICOM SEG)")


def _fmt_stats(name: str, st: Any) -> str:
    x, y, z = st.max_position_mm
    return (
        f"{name}: {st.n_voxels} voxels, {st.volume_ml:.2f} mL\n"
        f"  SUVmax {st.max:.3f} at LPS ({x:.1f}, {y:.1f}, {z:.1f}) mm   SUVmean {st.mean:.3f}   "
        f"SUVmin {st.min:.3f}   SUVmedian {st.median:.3f}\n"
        f"  SUVpeak (1 mL, search) {st.peak_search:.3f}   SUVpeak (1 mL, max-centred) {st.peak_max_centred:.3f}   "
        f"total uptake {st.total_uptake:.2f} {st.unit.split(' ')[0]}.mL"
    )


def _read_series(path: Path) -> Any:
    """An image series directory (PT or NM, one slice per file), or one multi-frame NM RECON TOMO file."""
    from recon.io.dicom import read_image_series, read_nm_recon  # noqa: PLC0415
    from recon.io.dicom.values import dcmread_checked  # noqa: PLC0415

    if path.is_file():
        ds = dcmread_checked(path, stop_before_pixels=True)
        if str(ds.get("Modality", "")) == "NM" and int(ds.get("NumberOfFrames", 1) or 1) > 1:
            return read_nm_recon(path)
    return read_image_series(path, modalities=("PT", "NM"))


def _is_hdf5(path: Path) -> bool:
    from recon.io.hdf5 import is_hdf5  # noqa: PLC0415

    return path.is_file() and (is_hdf5(path) or path.suffix.lower() in (".h5", ".hdf5"))


def load_suv_volume(path: Path, args: argparse.Namespace) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """The SUV volume at ``path`` with its conversion record and a description of the source.

    DICOM input is converted with :func:`recon.quant.suv.suv_volume` (overrides from ``args``); a recon
    HDF5 volume must already be in SUV units (``recon spect`` writes ``NAME_suvbw.h5``).
    """
    from recon.quant.suv import suv_volume  # noqa: PLC0415

    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if _is_hdf5(path):
        from recon.io.hdf5 import read_volume  # noqa: PLC0415

        given = [f"--{key.replace('_', '-')}" for key in ("weight_kg", "height_m", "sex", "half_life_s", "dose_mbq")
                 if getattr(args, key, None) is not None]
        if getattr(args, "suv_type", "bw") != "bw":
            given.append("--suv-type")
        if given:
            raise ValueError(f"{path} is an SUV map already: {', '.join(given)} cannot change it; "
                             "convert from the DICOM series or rerun recon spect instead")
        vol = read_volume(path)
        if not vol.unit.startswith("SUV"):
            raise ValueError(f"{path} holds a volume in {vol.unit!r}, not SUV: recon spect writes NAME_suvbw.h5 "
                             "when the input gives weight, dose and injection time")
        kind = vol.unit.split(" ")[0][3:] or "bw"
        unit = vol.unit.split("(")[-1].rstrip(")") if "(" in vol.unit else ""
        details = dict(vol.metadata.get("suv", {}))
        info = {"series_description": path.name, "modality": "recon HDF5", "manufacturer": "recon",
                "frame_of_reference_uid": vol.frame_of_reference_uid}
        return vol, {"kind": kind, "unit": unit, **details}, info
    series = _read_series(path)
    overrides: dict[str, Any] = {"reference_time": getattr(args, "reference_time", "qiba")}
    for key in ("weight_kg", "height_m", "sex", "half_life_s"):
        if getattr(args, key, None) is not None:
            overrides[key] = getattr(args, key)
    if getattr(args, "dose_mbq", None) is not None:
        overrides["dose_bq"] = args.dose_mbq * 1e6
    suv_vol, conv = suv_volume(series.volume, series.header, getattr(args, "suv_type", "bw"),
                               slice_axis=series.slice_axis, slice_order=series.slice_order, **overrides)
    info = {**series.info, "files": list(series.files), "slice_order": list(series.slice_order)}
    return suv_vol, {"kind": conv.kind, "unit": conv.unit, **conv.details}, info


def run(args: argparse.Namespace) -> int:
    """Run ``recon suv``; returns the process exit status (0 success, 2 bad input)."""
    from recon.commands import check_positive_options, check_threshold_options  # noqa: PLC0415
    from recon.io.atomic import check_writable_target  # noqa: PLC0415
    from recon.io.dicom import DicomFormatError  # noqa: PLC0415
    from recon.io.hdf5 import json_default  # noqa: PLC0415
    from recon.io.nifti import NiftiError  # noqa: PLC0415
    from recon.quant.suv import SUVError  # noqa: PLC0415
    from recon.quant.voi import CUTOFF_DISCLAIMER, lesion_table, segment_lesions, voi_statistics  # noqa: PLC0415

    json_out = getattr(args, "json", None)
    try:
        check_positive_options(args, ("weight_kg", "height_m", "dose_mbq", "half_life_s"))
        check_threshold_options(args)
        if getattr(args, "segment", None) is not None and not getattr(args, "mask", None):
            raise ValueError("--segment N needs --mask SEG.dcm (it picks one segment of that SEG)")
        if json_out:
            check_writable_target(json_out, args.overwrite)
    except (ValueError, OSError) as exc:
        report_error("suv", exc)
        return 2
    try:
        from recon.commands.suv_dicom import check_dicom_outputs  # noqa: PLC0415

        check_dicom_outputs(args)
        suv_vol, conversion, info = load_suv_volume(Path(args.series), args)
        mask = (_load_mask(args.mask, suv_vol.grid, getattr(args, "segment", None), suv_vol.frame_of_reference_uid)
                if getattr(args, "mask", None)
                else np.ones(suv_vol.grid.shape, bool))
        if not mask.any():
            raise ValueError(f"mask {args.mask} covers no voxel of the series grid (check its geometry)")
        stats = voi_statistics(suv_vol, mask)
    except (SUVError, DicomFormatError, NiftiError, ValueError, OSError) as exc:
        report_error("suv", exc)
        return 2

    report: dict[str, Any] = {
        "series": {k: v for k, v in info.items() if k != "slice_order"},
        "grid": {"shape_zyx": list(suv_vol.grid.shape), "spacing_mm_zyx": list(suv_vol.grid.spacing_mm),
                 "origin_mm_xyz": list(suv_vol.grid.origin_mm)},
        "suv": conversion,
        "voi": {"mask": getattr(args, "mask", None) or "whole image", **stats.to_dict()},
    }
    print(f"Series {info['series_description']!r} ({info['modality']}, {info['manufacturer']}), "
          f"{suv_vol.grid.shape[0]}x{suv_vol.grid.shape[1]}x{suv_vol.grid.shape[2]} voxels")
    d = conversion
    dose = f"{d['dose_bq'] / 1e6:.2f} MBq" if d.get("dose_bq") else "not used"
    ref = f", reference {d['reference_datetime']} ({d.get('reference_source')})" if "reference_datetime" in d else ""
    if d.get("units") is None:
        print(f"SUV{conversion['kind']} [{conversion['unit']}] as stored in {args.series}")
    else:
        print(f"SUV{conversion['kind']} [{conversion['unit']}] from Units {d.get('units')}, DecayCorrection "
              f"{d.get('decay_correction')}; weight {d.get('weight_kg')} kg, dose {dose}{ref}")
    for note in d.get("notes", []):
        print(f"  note: {note}")
    print(_fmt_stats(report["voi"]["mask"], stats))

    labels, table = None, []
    if getattr(args, "lesions", False):
        labels, n = segment_lesions(
            suv_vol, threshold=args.threshold, percent_of_max=args.percent,
            within=mask, min_volume_ml=args.min_volume_ml,
        )
        table = lesion_table(suv_vol, labels, cutoffs=args.cutoffs)
        method = f"{args.percent:g}% of local max (seeds >= {args.threshold:g})" if args.percent else f"SUV >= {args.threshold:g}"
        report["lesions"] = {"method": method, "cutoff_note": CUTOFF_DISCLAIMER, "table": [r.to_dict() for r in table]}
        print(f"Lesions ({method}): {n}")
        print(f"{'#':>3} {'vol mL':>8} {'SUVmax':>8} {'SUVpeak':>8} {'SUVmean':>8}  {'max at LPS x, y, z (mm)':<28} cut-offs")
        for r in table:
            s = r.stats
            pos = ", ".join(f"{c:.1f}" for c in s.max_position_mm)
            cuts = "; ".join(f"{c['relation']} {c['cutoff']:g}" for c in r.cutoffs)
            print(f"{r.label:>3} {s.volume_ml:>8.2f} {s.max:>8.3f} {s.peak_search:>8.3f} {s.mean:>8.3f}  {pos:<28} {cuts}")
        if table and args.cutoffs:
            print(f"({CUTOFF_DISCLAIMER})")

    if getattr(args, "dicom_seg", None) is not None:
        from recon.commands.suv_dicom import write_lesion_objects  # noqa: PLC0415

        try:
            write_lesion_objects(args, info, mask if getattr(args, "mask", None) else None, labels, table)
        except (DicomFormatError, ValueError, OSError) as exc:
            report_error("suv", exc)
            return 2

    if getattr(args, "json", None):
        from recon.io.atomic import write_text_atomic  # noqa: PLC0415

        write_text_atomic(args.json, json.dumps(report, indent=2, default=json_default), args.overwrite)
        print(f"report written to {args.json}")
    return 0


