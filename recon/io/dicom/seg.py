"""Lesion and VOI masks as a DICOM Segmentation (highdicom), referencing the image series they were drawn
on, and SEG masks read back onto a grid.

Sources. highdicom places segmentation frames from the source images' Image
Position/Orientation at the top level (single-frame PET) or in functional
groups (enhanced multi-frame). An NM multi-frame file has neither (its
geometry is in the Detector Information Sequence), so highdicom is handed a
copy of the NM header with that geometry restated as shared/per-frame
functional groups; the SEG still references the NM file itself (its SOP
Class/Instance UIDs, frame numbers = Slice Vector entries), which is what
viewers resolve. Supported sources: axial series with rows along +x and
columns along +y (what recon writes).
"""
from __future__ import annotations

import copy
import logging
import os
from collections.abc import Sequence as SequenceOf
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from recon.data.grid import ImageGrid
from recon.io.atomic import atomic_output
from recon.io.dicom.values import DicomFormatError, dcmread_checked, format_ds, values_of

logger = logging.getLogger(__name__)

__all__ = ["SegmentMask", "read_seg_masks", "source_datasets", "write_seg"]

_IDENTITY = np.array([1.0, 0.0, 0.0, 0.0, 1.0, 0.0])


@dataclass(frozen=True)
class SegmentMask:
    """One segment: label, boolean (z, y, x) mask on the source grid, lesion (True) or other VOI (False)."""

    label: str
    mask: np.ndarray
    lesion: bool = True


def _nm_proxy(ds: Dataset, name: str) -> Dataset:
    """The NM header with its Detector Information geometry restated as functional groups (for highdicom)."""
    det = ds.DetectorInformationSequence[0]
    iop = np.array([float(v) for v in det.ImageOrientationPatient])
    if not np.allclose(iop, _IDENTITY, atol=1e-4):
        raise DicomFormatError(f"{name}: SEG export needs ImageOrientationPatient 1\\0\\0\\0\\1\\0, got {iop.tolist()}")
    n = int(ds.NumberOfFrames)
    if [int(v) for v in values_of(ds.get("SliceVector", list(range(1, n + 1))))] != list(range(1, n + 1)):
        raise DicomFormatError(f"{name}: SEG export needs frames in Slice Vector order 1..{n}")
    step = float(ds.get("SpacingBetweenSlices") or ds.SliceThickness)
    proxy = copy.deepcopy(ds)
    pm, po, shared = Dataset(), Dataset(), Dataset()
    pm.PixelSpacing = ds.PixelSpacing
    pm.SliceThickness = ds.get("SliceThickness") or format_ds(abs(step))
    pm.SpacingBetweenSlices = format_ds(step)
    po.ImageOrientationPatient = det.ImageOrientationPatient
    shared.PixelMeasuresSequence, shared.PlaneOrientationSequence = Sequence([pm]), Sequence([po])
    proxy.SharedFunctionalGroupsSequence = Sequence([shared])
    x, y, z = (float(v) for v in det.ImagePositionPatient)
    frames = []
    for k in range(n):
        pp, item = Dataset(), Dataset()
        pp.ImagePositionPatient = [format_ds(x), format_ds(y), format_ds(z + k * step)]
        item.PlanePositionSequence = Sequence([pp])
        frames.append(item)
    proxy.PerFrameFunctionalGroupsSequence = Sequence(frames)
    return proxy


def source_datasets(files: SequenceOf[str | os.PathLike[str]], slice_order: SequenceOf[int]) -> list[Dataset]:
    """The source images for highdicom, in volume z order: one NM multi-frame file (as a proxy, see the module
    note) or the single-frame files of a series (``files`` in header order, ``slice_order`` from the reader)."""
    if len(files) == 1:
        ds = pydicom.dcmread(os.fspath(files[0]))
        if int(ds.get("NumberOfFrames", 1) or 1) > 1 and "DetectorInformationSequence" in ds:
            return [_nm_proxy(ds, Path(files[0]).name)]
    out = []
    for i in slice_order:
        ds = pydicom.dcmread(os.fspath(files[i]))
        iop = np.array([float(v) for v in ds.ImageOrientationPatient])
        if not np.allclose(iop, _IDENTITY, atol=1e-4):
            raise DicomFormatError(f"{Path(files[i]).name}: SEG export needs ImageOrientationPatient 1\\0\\0\\0\\1\\0")
        out.append(ds)
    return out


def write_seg(path: str | os.PathLike[str], sources: list[Dataset], segments: SequenceOf[SegmentMask], *,
              overwrite: bool = False, series_number: int = 2001) -> Path:
    """Write the ``segments`` (masks on the sources' grid, (z, y, x) = (frame, row, column)) as a binary
    DICOM SEG referencing ``sources`` (from :func:`source_datasets`); returns the path."""
    try:
        import highdicom as hd  # noqa: PLC0415 (optional dependency: the 'dicom' extra)
    except ImportError:
        raise ImportError("DICOM SEG/SR output needs highdicom: pip install 'recon[dicom]'") from None
    from pydicom.sr.codedict import codes  # noqa: PLC0415

    if not segments:
        raise ValueError("no segments to write")
    n_frames = int(sources[0].get("NumberOfFrames", 1) or 1) if len(sources) == 1 else len(sources)
    shape = (n_frames, int(sources[0].Rows), int(sources[0].Columns))
    labels = np.zeros(shape, dtype=np.uint16)
    stack = np.zeros((*shape, len(segments)), dtype=np.uint8)
    descriptions = []
    # thresholding of the SUV map into connected components: CID 7162 "Histogram Analysis"
    algorithm = hd.AlgorithmIdentificationSequence(name="recon lesions", version="1",
                                                   family=codes.cid7162.HistogramAnalysis)
    for k, seg in enumerate(segments, start=1):
        if seg.mask.shape != shape:
            raise ValueError(f"segment {seg.label!r}: mask shape {seg.mask.shape} differs from the source {shape}")
        stack[..., k - 1] = seg.mask.astype(bool)
        labels[seg.mask.astype(bool)] = k
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=k, segment_label=seg.label[:64],
            segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure if seg.lesion else codes.SCT.Tissue,
            segmented_property_type=codes.SCT.Lesion if seg.lesion else codes.SCT.Tissue,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC, algorithm_identification=algorithm,
        ))
    segmentation = hd.seg.Segmentation(
        source_images=sources, pixel_array=stack, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions, series_instance_uid=hd.UID(), series_number=series_number,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="recon", manufacturer_model_name="recon",
        software_versions="1", device_serial_number="0", series_description="recon lesion and VOI masks",
        omit_empty_frames=False,
    )
    with atomic_output(path, overwrite, suffix=".dcm") as tmp:
        segmentation.save_as(tmp)
    logger.info("wrote DICOM SEG %s (%d segments)", path, len(segments))
    return Path(path)


def _functional_group(ds: Dataset, frame: Dataset, keyword: str, name: str) -> Dataset:
    """A functional group macro item for one frame: its per-frame item, else the shared one."""
    for holder in (frame, *(ds.get("SharedFunctionalGroupsSequence") or [])):
        seq = holder.get(keyword)
        if seq:
            return seq[0]
    raise DicomFormatError(f"{name}: {keyword} is in neither the per-frame nor the shared functional groups")


def read_seg_masks(path: str | os.PathLike[str], grid: ImageGrid,
                   frame_of_reference_uid: str = "") -> dict[int, tuple[str, np.ndarray]]:
    """The segments of a DICOM SEG as boolean masks on ``grid``: {segment number: (label, mask)}.

    Each frame's pixel centres (from its Plane Position, the shared orientation and spacing) must fall on
    voxel centres of ``grid`` (within 0.01 voxel); frames outside the grid are refused, and so is a SEG in
    another frame of reference than ``frame_of_reference_uid`` (when both are known).
    """
    p = Path(path)
    ds = dcmread_checked(os.fspath(p))
    if str(ds.get("SOPClassUID", "")) != "1.2.840.10008.5.1.4.1.1.66.4":
        raise DicomFormatError(f"{p.name}: not a DICOM Segmentation (SOPClassUID {ds.get('SOPClassUID', '?')})")
    seg_frame = str(ds.get("FrameOfReferenceUID", "") or "")
    if seg_frame and frame_of_reference_uid and seg_frame != frame_of_reference_uid:
        raise DicomFormatError(f"{p.name}: the SEG is in frame of reference {seg_frame}, the image in "
                               f"{frame_of_reference_uid}: it belongs to another study or needs registration")
    names = {int(s.SegmentNumber): str(s.get("SegmentLabel", "")) for s in ds.SegmentSequence}
    frames = list(ds.get("PerFrameFunctionalGroupsSequence") or [])
    if not frames:
        raise DicomFormatError(f"{p.name}: no PerFrameFunctionalGroupsSequence (5200,9230)")
    first = frames[0]
    iop = np.array([float(v) for v in _functional_group(ds, first, "PlaneOrientationSequence", p.name)
                    .ImageOrientationPatient])
    row_spacing, col_spacing = (float(v) for v in _functional_group(ds, first, "PixelMeasuresSequence", p.name)
                                .PixelSpacing)
    pixels = ds.pixel_array.reshape(int(ds.NumberOfFrames), int(ds.Rows), int(ds.Columns))
    rr, cc = np.meshgrid(np.arange(int(ds.Rows)), np.arange(int(ds.Columns)), indexing="ij")
    origin, spacing = np.array(grid.origin_mm), np.array(grid.spacing_mm[::-1])  # x, y, z
    masks = {n: np.zeros(grid.shape, dtype=bool) for n in names}
    for f, item in enumerate(frames):
        number = int(_functional_group(ds, item, "SegmentIdentificationSequence", p.name).ReferencedSegmentNumber)
        ipp = np.array([float(v) for v in _functional_group(ds, item, "PlanePositionSequence", p.name)
                        .ImagePositionPatient])
        pts = ipp + cc[..., None] * col_spacing * iop[:3] + rr[..., None] * row_spacing * iop[3:]
        idx = (pts - origin) / spacing  # (rows, cols, xyz) in voxels
        near = np.rint(idx)
        if np.abs(idx - near).max() > 0.01:
            raise DicomFormatError(f"{p.name}: frame {f + 1} does not lie on the image grid's voxel centres")
        near = near.astype(np.int64)
        on = pixels[f] > 0
        x, y, z = near[..., 0][on], near[..., 1][on], near[..., 2][on]
        if on.any() and (x.min() < 0 or y.min() < 0 or z.min() < 0 or x.max() >= grid.shape[2]
                         or y.max() >= grid.shape[1] or z.max() >= grid.shape[0]):
            raise DicomFormatError(f"{p.name}: frame {f + 1} has segment pixels outside the image grid")
        masks[number][z, y, x] = True
    return {n: (names[n], masks[n]) for n in sorted(masks)}
