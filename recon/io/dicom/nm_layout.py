"""NM TOMO frame layout: which energy window, detector, rotation and view each frame is.

DICOM PS3.3 C.8.4.8 (NM Multi-frame Module): for Image Type value 3 ``TOMO``
the Frame Increment Pointer (0028,0009) lists the Energy Window Vector
(0054,0010), Detector Vector (0054,0020), Rotation Vector (0054,0050) and
Angular View Vector (0054,0090); each vector has one 1-based entry per frame.
The frame's identity comes from these vectors (any frame order works); our
view order is detector-major: detector 1's views of rotation 1, 2, ..., then
detector 2's.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from recon.io.dicom.values import DicomFormatError, present, require, sequence_item, values_of

logger = logging.getLogger(__name__)

__all__ = ["FrameLayout", "TOMO_FRAME_INCREMENT_POINTER", "frame_identities", "frame_layout"]

TAG_ENERGY_WINDOW_VECTOR = Tag(0x0054, 0x0010)
TAG_DETECTOR_VECTOR = Tag(0x0054, 0x0020)
TAG_ROTATION_VECTOR = Tag(0x0054, 0x0050)
TAG_ANGULAR_VIEW_VECTOR = Tag(0x0054, 0x0090)
_VECTOR_KEYWORDS = {
    TAG_ENERGY_WINDOW_VECTOR: "EnergyWindowVector",
    TAG_DETECTOR_VECTOR: "DetectorVector",
    TAG_ROTATION_VECTOR: "RotationVector",
    TAG_ANGULAR_VIEW_VECTOR: "AngularViewVector",
}
TOMO_FRAME_INCREMENT_POINTER = (
    TAG_ENERGY_WINDOW_VECTOR,
    TAG_DETECTOR_VECTOR,
    TAG_ROTATION_VECTOR,
    TAG_ANGULAR_VIEW_VECTOR,
)


@dataclass(frozen=True)
class FrameLayout:
    """How frames map onto (window, view): counts of windows, detectors, rotations and views.

    ``views_in_rotation[r]`` is the number of views per detector in rotation r;
    ``view_of_frame`` / ``window_of_frame`` give each frame's 0-based view
    (detector-major) and window; ``rotation_offset[r]`` is rotation r's first
    view within a detector's views.
    """

    n_frames: int
    n_windows: int
    n_detectors: int
    n_rotations: int
    views_in_rotation: tuple[int, ...]
    rotation_offset: tuple[int, ...]
    view_of_frame: np.ndarray
    window_of_frame: np.ndarray

    @property
    def views_per_detector(self) -> int:
        """Views of one detector over all rotations."""
        return int(sum(self.views_in_rotation))

    @property
    def n_views(self) -> int:
        """All views (detectors x views per detector)."""
        return self.n_detectors * self.views_per_detector


def frame_identities(ds: Dataset, n_frames: int) -> dict[str, np.ndarray]:
    """Per-frame 0-based window, detector, rotation and view indices from the frame vectors."""
    fip_raw = require(ds, "FrameIncrementPointer")
    fip = [Tag(t) for t in values_of(fip_raw)]
    unknown = [t for t in fip if t not in _VECTOR_KEYWORDS]
    if unknown:
        raise DicomFormatError(
            f"FrameIncrementPointer (0028,0009) points at {', '.join(str(t) for t in unknown)}; "
            "a TOMO acquisition needs only the energy window, detector, rotation and angular view vectors"
        )
    out: dict[str, np.ndarray] = {}
    for tag, keyword in _VECTOR_KEYWORDS.items():
        if tag in fip or present(ds, keyword):
            if not present(ds, keyword):
                raise DicomFormatError(f"missing required DICOM tag {keyword} {tag} (named by FrameIncrementPointer)")
            vec = np.asarray(values_of(ds[keyword].value), dtype=np.int64)
            if vec.size != n_frames:
                raise DicomFormatError(
                    f"inconsistent frame counts: NumberOfFrames (0028,0008) is {n_frames} but {keyword} {tag} "
                    f"has {vec.size} entries"
                )
            if (vec < 1).any():
                raise DicomFormatError(f"{keyword} {tag} holds indices below 1")
            out[keyword] = vec - 1
        else:
            out[keyword] = np.zeros(n_frames, dtype=np.int64)
    if TAG_ANGULAR_VIEW_VECTOR not in fip and not present(ds, "AngularViewVector"):
        raise DicomFormatError("missing required DICOM tag AngularViewVector (0054,0090) for a TOMO acquisition")
    return out


def _declared_counts(ds: Dataset, ids: dict[str, np.ndarray]) -> tuple[int, int, int]:
    n_windows = int(ds.get("NumberOfEnergyWindows", 0) or 0) or int(ids["EnergyWindowVector"].max()) + 1
    n_det = int(ds.get("NumberOfDetectors", 0) or 0) or int(ids["DetectorVector"].max()) + 1
    n_rot = int(ds.get("NumberOfRotations", 0) or 0) or int(ids["RotationVector"].max()) + 1
    for key, n, name in (
        ("EnergyWindowVector", n_windows, "NumberOfEnergyWindows (0054,0011)"),
        ("DetectorVector", n_det, "NumberOfDetectors (0054,0021)"),
        ("RotationVector", n_rot, "NumberOfRotations (0054,0051)"),
    ):
        if ids[key].max() >= n:
            raise DicomFormatError(f"{key} refers to index {ids[key].max() + 1} but {name} is {n}")
    return n_windows, n_det, n_rot


def _views_in_rotations(ds: Dataset, ids: dict[str, np.ndarray], n_frames: int, n_windows: int, n_det: int,
                        n_rot: int) -> list[int]:
    """Views per detector of each rotation: NumberOfFramesInRotation (0054,0053), else the AngularViewVector."""
    views_in_rot = []
    for r in range(n_rot):
        item = sequence_item(ds, "RotationInformationSequence", r, n_rot)
        where = f"RotationInformationSequence[{r}]."
        sel = ids["RotationVector"] == r
        if present(item, "NumberOfFramesInRotation"):
            declared = int(item.NumberOfFramesInRotation)
            per_det = int(ids["AngularViewVector"][sel].max()) + 1 if sel.any() else declared
            if n_det > 1 and declared == n_det * per_det and n_windows * n_det * per_det * n_rot == n_frames:
                # some writers count the views of all detectors together
                logger.warning(
                    "%sNumberOfFramesInRotation %d counts all %d detectors; using %d views per detector",
                    where, declared, n_det, per_det,
                )  # fmt: skip
                declared = per_det
            views_in_rot.append(declared)
        else:
            views_in_rot.append(int(ids["AngularViewVector"][sel].max()) + 1 if sel.any() else 0)
            logger.warning(
                "%sNumberOfFramesInRotation (0054,0053) missing; using %d from AngularViewVector",
                where, views_in_rot[-1],
            )  # fmt: skip
    return views_in_rot


def frame_layout(ds: Dataset) -> FrameLayout:
    """The frame layout of an NM TOMO dataset, checked: every (window, view) exactly once."""
    n_frames = int(require(ds, "NumberOfFrames"))
    ids = frame_identities(ds, n_frames)
    n_windows, n_det, n_rot = _declared_counts(ds, ids)
    views_in_rot = _views_in_rotations(ds, ids, n_frames, n_windows, n_det, n_rot)
    expected = n_windows * n_det * sum(views_in_rot)
    if expected != n_frames:
        raise DicomFormatError(
            f"inconsistent frame counts: NumberOfFrames (0028,0008) is {n_frames} but "
            f"{n_windows} energy windows x {n_det} detectors x {sum(views_in_rot)} views "
            f"(NumberOfFramesInRotation {views_in_rot}) = {expected}"
        )
    for r, nv in enumerate(views_in_rot):
        sel = ids["RotationVector"] == r
        if sel.any() and ids["AngularViewVector"][sel].max() >= nv:
            raise DicomFormatError(
                f"AngularViewVector refers to view {ids['AngularViewVector'][sel].max() + 1} of rotation {r + 1}, "
                f"which has NumberOfFramesInRotation {nv}"
            )
    rot_offset = np.concatenate([[0], np.cumsum(views_in_rot)]).astype(np.int64)
    views_per_det = int(rot_offset[-1])
    n_views = n_det * views_per_det
    view_of_frame = ids["DetectorVector"] * views_per_det + rot_offset[ids["RotationVector"]] + ids["AngularViewVector"]
    seen = np.zeros((n_windows, n_views), dtype=np.int64)
    np.add.at(seen, (ids["EnergyWindowVector"], view_of_frame), 1)
    if (seen != 1).any():
        w, v = np.argwhere(seen != 1)[0]
        raise DicomFormatError(
            f"frame vectors do not describe each (window, view) exactly once: window {w + 1}, view {v + 1} "
            f"occurs {seen[w, v]} times"
        )
    return FrameLayout(n_frames, n_windows, n_det, n_rot, tuple(views_in_rot), tuple(int(o) for o in rot_offset[:-1]),
                       view_of_frame, ids["EnergyWindowVector"].copy())
