"""Where an NM TOMO file puts the reconstruction grid in patient space, per vendor, and the patient position.

Two conventions for the Image Position (Patient) (0020,0032) of a Detector
Information Sequence item are met in practice (``docs/dicom.md``, "Placement
per vendor"):

* ``frame`` (the standard's reading; Siemens layout and our own writer): IPP is
  the centre of the first transmitted pixel of the detector's first view and
  Image Orientation (Patient) gives its row and column directions; the frame
  centre, averaged over detectors, is the centre of the reconstruction grid.
* ``volume-corner`` (GE Discovery / Infinia / Optima NM, Xeleris): IPP is the
  LPS centre of the reconstruction volume's first voxel, the one with the
  smallest x and y and the largest z: the volume runs +x and +y along its
  columns and rows (PixelSpacing) and -z along its slices. IOP only tells the
  detector's first-view column direction and is not used for the position.
  Verified by registration with the CT on the public GE Discovery NM/CT 670
  Lu-177 study (``tools/ge670_lu177.py``).

The patient position (HFS, FFS, ...) is PatientPosition (0018,5100) when
present, else it is built from the Patient Gantry Relationship Code Sequence
(0054,0414: headfirst / feet-first) and the orientation modifier (0054,0412:
supine / prone), which GE writes instead.
"""
from __future__ import annotations

import logging

import numpy as np
from pydicom.dataset import Dataset

logger = logging.getLogger(__name__)

__all__ = ["grid_centre", "patient_position", "placement_convention"]

# code meaning / value (SRT 99SDM legacy codes and SCT) -> our letters
_GANTRY_CODES = {"F-10470": "HF", "102540008": "HF", "F-10480": "FF", "102541007": "FF"}
_MODIFIER_CODES = {"F-10340": "S", "40199007": "S", "F-10310": "P", "1240000": "P",
                   "F-10317": "DR", "102535001": "DR", "F-10319": "DL", "102536000": "DL"}
_GANTRY_MEANINGS = {"headfirst": "HF", "head-first": "HF", "feet-first": "FF", "feetfirst": "FF"}
_MODIFIER_MEANINGS = {"supine": "S", "prone": "P", "right lateral decubitus": "DR", "left lateral decubitus": "DL"}


def placement_convention(ds: Dataset) -> str:
    """``"volume-corner"`` for GE NM files, ``"frame"`` for every other manufacturer."""
    manufacturer = str(ds.get("Manufacturer", "") or "").strip().upper()
    return "volume-corner" if manufacturer.startswith("GE ") or manufacturer in ("GE", "GEMS") else "frame"


def _floats(det: Dataset, keyword: str, n: int) -> np.ndarray | None:
    value = det.get(keyword)
    if not value or len(value) != n:
        return None
    return np.asarray([float(v) for v in value])


def _frame_centre(det: Dataset, n_rows: int, n_cols: int, spacing: list[float]) -> np.ndarray | None:
    """LPS (mm) centre of a detector's first frame from its IPP (first pixel) and IOP, or None."""
    ipp, iop = _floats(det, "ImagePositionPatient", 3), _floats(det, "ImageOrientationPatient", 6)
    if ipp is None or iop is None:
        return None
    return ipp + 0.5 * (n_cols - 1) * spacing[1] * iop[:3] + 0.5 * (n_rows - 1) * spacing[0] * iop[3:]


def _volume_corner_centre(det: Dataset, n_rows: int, n_cols: int, spacing: list[float]) -> np.ndarray | None:
    """LPS (mm) centre of the (rows, cols, cols) reconstruction volume whose first voxel is at IPP:
    +x, +y by the column spacing, -z by the row spacing."""
    ipp = _floats(det, "ImagePositionPatient", 3)
    if ipp is None:
        return None
    half_xy = 0.5 * (n_cols - 1) * spacing[1]
    return ipp + np.array([half_xy, half_xy, -0.5 * (n_rows - 1) * spacing[0]])


def grid_centre(ds: Dataset, det_items: list[Dataset], n_rows: int, n_cols: int,
                spacing: list[float]) -> tuple[float, float, float] | None:
    """LPS (mm) centre of the reconstruction grid by the file's vendor convention (mean over detectors);
    None when no detector has a usable IPP (and IOP for the ``frame`` convention)."""
    convention = placement_convention(ds)
    centre_of = _volume_corner_centre if convention == "volume-corner" else _frame_centre
    centres = [c for c in (centre_of(det, n_rows, n_cols, spacing) for det in det_items) if c is not None]
    if not centres:
        return None
    logger.debug("grid placed by the %s convention of %s", convention, ds.get("Manufacturer", "?"))
    return tuple(float(v) for v in np.mean(centres, axis=0))  # type: ignore[return-value]


def _code_letters(seq: object, by_value: dict[str, str], by_meaning: dict[str, str]) -> str | None:
    if not seq:
        return None
    item = seq[0]  # type: ignore[index]
    value = str(item.get("CodeValue", "") or "").strip()
    meaning = str(item.get("CodeMeaning", "") or "").strip().lower()
    return by_value.get(value) or by_meaning.get(meaning)


def patient_position(ds: Dataset) -> str:
    """PatientPosition (e.g. ``FFS``), else built from the NM gantry-relationship and orientation-modifier
    codes; ``""`` when neither says."""
    position = str(ds.get("PatientPosition", "") or "").strip().upper()
    if position:
        return position
    gantry = _code_letters(ds.get("PatientGantryRelationshipCodeSequence"), _GANTRY_CODES, _GANTRY_MEANINGS)
    if gantry is None:
        return ""
    modifier = None
    orientation = ds.get("PatientOrientationCodeSequence")
    if orientation:
        modifier = _code_letters(orientation[0].get("PatientOrientationModifierCodeSequence"), _MODIFIER_CODES,
                                 _MODIFIER_MEANINGS)
    return gantry + (modifier or "")
