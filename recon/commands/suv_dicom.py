"""``recon suv --dicom-seg DIR --dicom-sr FILE`` and ``--mask SEG.dcm``: lesion and VOI masks as DICOM SEG,
lesion measurements as a DICOM SR (TID 1500), and SEG masks read back as VOIs."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["add_dicom_options", "check_dicom_outputs", "is_dicom_seg", "seg_mask", "write_lesion_objects"]


def add_dicom_options(p: argparse.ArgumentParser) -> None:
    """The DICOM SEG/SR output options of ``recon suv``."""
    p.add_argument("--dicom-seg", metavar="DIR", type=Path,
                   help="write the VOI mask and the lesion masks as a DICOM SEG (DIR/seg.dcm) referencing the series")
    p.add_argument("--dicom-sr", metavar="FILE", type=Path,
                   help="write the lesion table as a DICOM SR (TID 1500 measurement report); needs --lesions and "
                        "--dicom-seg")
    p.add_argument("--segment", type=int, metavar="N", help="with --mask SEG.dcm: use segment N only (default: all)")


def check_dicom_outputs(args: argparse.Namespace) -> None:
    """Refuse, before any compute, DICOM outputs that cannot be written."""
    seg_dir, sr = getattr(args, "dicom_seg", None), getattr(args, "dicom_sr", None)
    if sr is not None and (seg_dir is None or not getattr(args, "lesions", False)):
        raise ValueError("--dicom-sr needs --lesions and --dicom-seg (the SR references the lesions' segments)")
    if sr is not None and getattr(args, "suv_type", "bw") != "bw":
        raise ValueError("--dicom-sr reports SUVbw (DCM 126401): use --suv-type bw")
    if seg_dir is not None:
        if seg_dir.exists() and (not seg_dir.is_dir() or any(seg_dir.iterdir())):
            raise FileExistsError(f"{seg_dir} is not an empty directory; refusing to write a DICOM SEG into it")
        if not seg_dir.parent.is_dir():
            raise FileNotFoundError(f"the parent directory of --dicom-seg {seg_dir} does not exist")
    if sr is not None:
        from recon.io.atomic import check_writable_target  # noqa: PLC0415

        check_writable_target(sr, getattr(args, "overwrite", False))


def is_dicom_seg(path: str) -> bool:
    """True when ``path`` is a DICOM Segmentation file."""
    import pydicom  # noqa: PLC0415
    from pydicom.errors import InvalidDicomError  # noqa: PLC0415

    p = Path(path)
    if not p.is_file() or p.name.endswith((".nii", ".nii.gz", ".npy")):
        return False
    try:
        ds = pydicom.dcmread(p, stop_before_pixels=True)
    except (InvalidDicomError, OSError):
        return False
    return str(ds.get("SOPClassUID", "")) == "1.2.840.10008.5.1.4.1.1.66.4"


def seg_mask(path: str, grid: Any, segment: int | None, frame_of_reference_uid: str = "") -> np.ndarray:
    """The union of a SEG's segments (or segment ``segment``) on ``grid`` (refused in another frame)."""
    from recon.io.dicom.seg import read_seg_masks  # noqa: PLC0415

    masks = read_seg_masks(path, grid, frame_of_reference_uid)
    if segment is not None:
        if segment not in masks:
            raise ValueError(f"{path} has no segment {segment}; it has {sorted(masks)}")
        return masks[segment][1]
    return np.any([m for _, m in masks.values()], axis=0)


def write_lesion_objects(args: argparse.Namespace, info: dict[str, Any], mask: np.ndarray | None,
                         labels: np.ndarray | None, table: list[Any]) -> None:
    """The SEG (VOI mask when given, then one segment per lesion) and the SR of the lesion table."""
    from recon.io.dicom.image_base import atomic_directory  # noqa: PLC0415
    from recon.io.dicom.seg import SegmentMask, source_datasets, write_seg  # noqa: PLC0415
    from recon.io.dicom.sr import LesionMeasurement, write_lesion_sr  # noqa: PLC0415

    if not info.get("files"):
        raise ValueError("--dicom-seg/--dicom-sr need a DICOM image series input (the SEG references its images)")
    if args.dicom_sr is not None and not table:
        raise ValueError("--dicom-sr: no lesions found, so there is no measurement to report (nothing written)")
    sources = source_datasets(info["files"], info["slice_order"])
    segments = [SegmentMask(f"VOI {Path(args.mask).name}", mask, lesion=False)] if mask is not None else []
    first_lesion = len(segments) + 1
    segments += [SegmentMask(f"lesion {r.label}", labels == r.label) for r in table]
    if not segments:
        raise ValueError("--dicom-seg: nothing to write (no --mask and no lesions found)")
    with atomic_directory(args.dicom_seg) as tmp:
        write_seg(tmp / "seg.dcm", sources, segments)
        import pydicom  # noqa: PLC0415

        seg = pydicom.dcmread(tmp / "seg.dcm")
    print(f"DICOM SEG written to {args.dicom_seg / 'seg.dcm'} ({len(segments)} segments)")
    if args.dicom_sr is not None:
        lesions = [LesionMeasurement(first_lesion + i, f"lesion {r.label}", r.stats.max, r.stats.peak_search,
                                     r.stats.mean, r.stats.volume_ml,
                                     tuple((c["cutoff"], c["relation"].startswith("above")) for c in r.cutoffs))
                   for i, r in enumerate(table)]
        write_lesion_sr(args.dicom_sr, lesions, seg, sources, modality=str(info.get("modality", "NM")),
                        overwrite=args.overwrite)
        print(f"DICOM SR written to {args.dicom_sr} ({len(lesions)} lesions)")
