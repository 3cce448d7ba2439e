"""NM projection geometry: view angles, radii of rotation, row orientation, frame duration, placement.

Angles. The standard (C.8.4.13, Start Angle (0054,0200)) says: "Position of
the detector about the patient for the start of the acquisition, in degrees.
Zero degrees is referenced to the origin at the patient's back. Viewing from
the patient's feet, angle increases in a counter-clockwise direction
(detector normal rotating from the patient's back towards the patient's left
side)", and Rotation Direction (0018,1140) is CW or CC in that same view. So a
DICOM angle phi puts the detector at the patient-space direction (LPS x, y)

    p(phi) = (sin phi, cos phi)        phi = 0 posterior, 90 patient's left, 180 anterior

and a CC rotation makes phi grow (view k: phi_k = start + k * step), a CW
rotation makes it fall (phi_k = start - k * step). Our convention
(:mod:`recon.data.spect`) puts the detector at n(theta) = (sin theta,
-cos theta): theta = 0 anterior, 90 patient's left. Equating p(phi) = n(theta):

    theta = (180 - phi) mod 360        (and back: phi = (180 - theta) mod 360)

so DICOM posterior (0) is our 180, DICOM left (90) is our 90, DICOM anterior
(180) is our 0, and a CW rotation makes our theta increase, CC decrease.

Rows. Pixel rows are flipped when the column direction of Image Orientation
(Patient) (0020,0037) (in the Detector Information Sequence, else at the top
level) points inferior (-z), so that our row index increases towards +z
(superior). Columns are taken as written: vendors store each projection as
seen from the detector, which is our column axis u(theta) = (cos theta,
sin theta); the row cosines of IOP are not used to flip columns because
vendors commonly write one fixed IOP for every detector.

Image position. The centre of the reconstruction grid (the acquisition's
``center_mm``, LPS mm) comes from each detector's Image Position (Patient) by
the vendor's convention (:mod:`recon.io.dicom.nm_placement`): the first
pixel of the first view (standard, Siemens, our writer) or the first voxel of
the reconstruction volume (GE).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset

from recon.io.dicom.nm_layout import FrameLayout
from recon.io.dicom.nm_placement import grid_centre, patient_position as _patient_position
from recon.io.dicom.values import DicomFormatError, present, require, sequence_item, values_of

logger = logging.getLogger(__name__)

__all__ = ["ViewGeometry", "dicom_angle_to_recon_deg", "recon_angle_to_dicom_deg", "view_geometry"]


@dataclass(frozen=True)
class ViewGeometry:
    """Per view: angle (deg, our convention), radius (mm, NaN when the file has none), rows flipped;
    the frame duration (s) and the mean detector frame centre (LPS mm, None without IPP/IOP)."""

    angles_deg: np.ndarray
    radius_mm: np.ndarray
    rows_flipped: np.ndarray
    frame_duration_s: float
    center_mm: tuple[float, float, float] | None


def dicom_angle_to_recon_deg(phi_deg: Any) -> np.ndarray:
    """DICOM Start Angle convention (0 posterior, CC from the feet) -> ours (0 anterior, 90 left): 180 - phi mod 360."""
    theta = np.mod(180.0 - np.asarray(phi_deg, dtype=np.float64), 360.0)
    return np.where(np.isclose(theta, 360.0, rtol=0, atol=1e-9), 0.0, theta)


def recon_angle_to_dicom_deg(theta_deg: Any) -> np.ndarray:
    """Our angle -> DICOM Start Angle convention; the same involution, 180 - theta mod 360."""
    return dicom_angle_to_recon_deg(theta_deg)


def _rows_flipped(item: Dataset, ds: Dataset, patient_position: str) -> bool:
    """True when the stored first row is the most superior one (column direction points to -z)."""
    iop = item.get("ImageOrientationPatient") if item is not None else None
    if not iop:
        iop = ds.get("ImageOrientationPatient")
    if iop and len(iop) == 6:
        col = np.asarray([float(v) for v in iop[3:]])
        if abs(col[2]) < 0.5:
            raise DicomFormatError(
                f"ImageOrientationPatient (0020,0037) column direction {col.tolist()} is not along the patient axis"
            )
        return bool(col[2] < 0)
    logger.warning(
        "ImageOrientationPatient (0020,0037) missing; assuming the display convention (first row superior) "
        "for PatientPosition %r",
        patient_position or "unknown",
    )
    return True


def _radii_for(
    det: Dataset, rot: Dataset, r: int, nv: int, views_in_rot: list[int], dwhere: str, rwhere: str
) -> np.ndarray:
    """Radius (mm) of each view of detector ``det`` in rotation ``r``; NaN when no RadialPosition is found.

    Looks in the detector's RadialPosition (one value per view of all its
    rotations), then the rotation's; a single value is used for every view (logged).
    """
    total = sum(views_in_rot)
    if present(det, "RadialPosition"):
        vals = np.asarray([float(v) for v in values_of(det.RadialPosition)])
        if vals.size == total:
            start = sum(views_in_rot[:r])
            return vals[start : start + nv]
        if vals.size == 1:
            logger.warning("%sRadialPosition has a single value; using %g mm for all %d views", dwhere, vals[0], nv)
            return np.full(nv, vals[0])
        logger.warning("%sRadialPosition has %d values for %d views; ignored", dwhere, vals.size, total)
    if present(rot, "RadialPosition"):
        vals = np.asarray([float(v) for v in values_of(rot.RadialPosition)])
        if vals.size == nv:
            return vals
        if vals.size >= 1:
            logger.warning(
                "%sRadialPosition has %d value(s) for %d views; using the first, %g mm, for all",
                rwhere, vals.size, nv, vals[0],
            )  # fmt: skip
            return np.full(nv, vals[0])
    return np.full(nv, np.nan)


def _check_column_direction(det: Dataset, theta_deg: float, d: int) -> None:
    """Warn when a detector's IOP row cosines oppose our column axis u(theta) at its first view."""
    iop = det.get("ImageOrientationPatient")
    if not iop or len(iop) != 6:
        return
    row_dir = np.asarray([float(v) for v in iop[:2]])
    u = np.array([math.cos(math.radians(theta_deg)), math.sin(math.radians(theta_deg))])
    if float(row_dir @ u) < -0.5:
        logger.warning(
            "DetectorInformationSequence[%d].ImageOrientationPatient row direction %s opposes the column axis "
            "(%.2f, %.2f) expected at its start angle; columns are not flipped (vendors often write one fixed "
            "IOP): check the left-right orientation",
            d, row_dir.tolist(), u[0], u[1],
        )  # fmt: skip


def _rotation_direction(item: Dataset, where: str) -> str:
    direction = str(require(item, "RotationDirection", where)).strip().upper()
    if direction == "CCW":
        logger.warning("%sRotationDirection 'CCW' is not a DICOM value; read as 'CC'", where)
        direction = "CC"
    if direction not in ("CW", "CC"):
        raise DicomFormatError(f"{where}RotationDirection (0018,1140) is {direction!r}; expected 'CW' or 'CC'")
    return direction


def _frame_duration_s(item: Dataset, ds: Dataset, where: str) -> float:
    if present(item, "ActualFrameDuration"):
        return float(item.ActualFrameDuration) / 1000.0
    if present(ds, "ActualFrameDuration"):
        return float(ds.ActualFrameDuration) / 1000.0
    return float(require(item, "ActualFrameDuration", where)) / 1000.0  # absent: raises, naming the tag


def _start_angle(det: Dataset, item: Dataset, first_rot: Dataset, r: int, n_det: int, dwhere: str) -> float:
    if present(det, "StartAngle"):
        start = float(det.StartAngle)
        if r > 0 and present(item, "StartAngle") and present(first_rot, "StartAngle"):
            start += float(item.StartAngle) - float(first_rot.StartAngle)
        return start
    if n_det == 1 and present(item, "StartAngle"):
        return float(item.StartAngle)
    return float(require(det, "StartAngle", dwhere))  # absent: raises, naming the tag


def view_geometry(ds: Dataset, layout: FrameLayout, n_rows: int, n_cols: int, spacing: list[float],
                  radius_mm: float | None = None) -> ViewGeometry:
    """Angles, radii, row flips, frame duration and placement of every view (detector-major order).

    ``radius_mm`` fills views without RadialPosition (0018,1142), with a warning;
    without it such a file is refused.
    """
    n_det, n_rot = layout.n_detectors, layout.n_rotations
    rot_items = [sequence_item(ds, "RotationInformationSequence", r, n_rot) for r in range(n_rot)]
    det_items = [sequence_item(ds, "DetectorInformationSequence", d, n_det) for d in range(n_det)]
    views_in_rot = list(layout.views_in_rotation)
    angles = np.empty(layout.n_views)
    radii = np.full(layout.n_views, np.nan)
    flip_of_view = np.empty(layout.n_views, dtype=bool)
    durations = []
    patient_position = _patient_position(ds)
    for r, item in enumerate(rot_items):
        where = f"RotationInformationSequence[{r}]."
        step = float(require(item, "AngularStep", where))
        sign = 1.0 if _rotation_direction(item, where) == "CC" else -1.0
        durations.append(_frame_duration_s(item, ds, where))
        nv = views_in_rot[r]
        k = np.arange(nv, dtype=np.float64)
        for d, det in enumerate(det_items):
            dwhere = f"DetectorInformationSequence[{d}]."
            start = _start_angle(det, item, rot_items[0], r, n_det, dwhere)
            views = d * layout.views_per_detector + layout.rotation_offset[r] + np.arange(nv)
            angles[views] = dicom_angle_to_recon_deg(start + sign * k * step)
            radii[views] = _radii_for(det, item, r, nv, views_in_rot, dwhere, where)
            flip_of_view[views] = _rows_flipped(det, ds, patient_position)
            if r == 0:
                _check_column_direction(det, float(angles[views[0]]), d)
    if patient_position.startswith("FF"):
        logger.info("patient position %s (feet first): angles, rotation direction and orientation are read in "
                    "patient coordinates as the standard defines them (verified by CT registration on a GE "
                    "feet-first study; docs/dicom.md)", patient_position)
    if np.isnan(radii).any():
        if radius_mm is None:
            raise DicomFormatError(
                "missing required DICOM tag RadialPosition (0018,1142) in DetectorInformationSequence and "
                "RotationInformationSequence; pass radius_mm= to use a fixed radius of rotation"
            )
        n_missing = int(np.isnan(radii).sum())
        logger.warning("RadialPosition (0018,1142) missing for %d views; using radius_mm=%g", n_missing, radius_mm)
        radii[np.isnan(radii)] = float(radius_mm)
    if not np.allclose(durations, durations[0], rtol=1e-9, atol=0):
        raise DicomFormatError(f"ActualFrameDuration (0018,1242) differs between rotations: {durations} s")
    centre = grid_centre(ds, det_items, n_rows, n_cols, spacing)
    return ViewGeometry(angles, radii, flip_of_view, durations[0], centre)  # type: ignore[arg-type]
