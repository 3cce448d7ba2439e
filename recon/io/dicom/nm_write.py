"""Write a :class:`SPECTAcquisition` as a DICOM NM multi-frame TOMO file in a vendor's layout.

Frame layout, angle and row conventions are the reader's (:mod:`recon.io.dicom.nm_layout`,
:mod:`recon.io.dicom.nm_geometry`); the typed metadata (placement, start time,
patient, dose) are written where the reader finds them, so a write -> read
round trip preserves them.
"""
from __future__ import annotations

import copy
import datetime as _dt
import logging
import math
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from recon.data.spect import SPECTAcquisition
from recon.io.dicom.nm_collimator import VENDORS, vendor_collimator_name
from recon.io.dicom.nm_geometry import recon_angle_to_dicom_deg
from recon.io.dicom.nm_layout import TOMO_FRAME_INCREMENT_POINTER
from recon.io.dicom.nm_metadata import acquisition_start
from recon.io.dicom.values import format_ds, present
from recon.io.dicom.write_common import (
    NM_IMAGE_STORAGE,
    fill_patient_study,
    new_instance,
    radiopharmaceutical_sequence,
    write_patient,
)

logger = logging.getLogger(__name__)

__all__ = ["write_nm"]

def _split_detectors(phi: np.ndarray, n_det: int) -> tuple[list[float], float, str]:
    """Start angle per detector, angular step and direction for views split into ``n_det`` contiguous blocks."""
    n_views = phi.size
    if n_views % n_det:
        raise ValueError(f"{n_views} views cannot be split evenly over {n_det} detectors")
    m = n_views // n_det
    blocks = phi.reshape(n_det, m)
    if m == 1:
        return [float(b[0]) for b in blocks], 360.0 / n_views, "CW"
    diffs = np.mod(np.diff(blocks, axis=1) + 180.0, 360.0) - 180.0
    step = float(diffs[0, 0])
    if abs(step) < 1e-9 or not np.allclose(diffs, step, rtol=0, atol=1e-6):
        raise ValueError(
            f"view angles cannot be written as {n_det} detector(s) stepping by one common angle "
            "(DICOM AngularStep); pass n_detectors= matching the acquisition"
        )
    return [float(b[0]) for b in blocks], abs(step), ("CC" if step > 0 else "CW")


def _counts_pixel_data(acq: SPECTAcquisition) -> tuple[np.ndarray, float]:
    """Stored uint16 frames (window, view, row, col) and the RescaleSlope they need."""
    stack = np.stack([acq.counts[w.name] for w in acq.windows]).astype(np.float64)
    top = float(stack.max()) if stack.size else 0.0
    if np.array_equal(stack, np.round(stack)) and top <= 65535:
        return stack.astype(np.uint16), 1.0
    slope = float(format_ds(top / 65535.0 if top > 0 else 1.0))
    logger.warning(
        "counts are not integers in 0..65535 (max %g); stored with RescaleSlope %g, not exactly", top, slope
    )
    return np.clip(np.round(stack / slope), 0, 65535).astype(np.uint16), slope


def write_nm(
    acquisition: SPECTAcquisition,
    path: str | Path,
    vendor: str = "siemens",
    *,
    n_detectors: int | None = None,
    reference: Dataset | None = None,
    center_mm: tuple[float, float, float] | None = None,
    series_description: str = "SPECT projections",
) -> Path:
    """Write ``acquisition`` as an NM multi-frame TOMO file in a vendor's layout ('siemens' or 'ge').

    Views are split into ``n_detectors`` contiguous blocks sharing one
    AngularStep and RotationDirection (default: the acquisition's
    ``n_detectors`` when above 1, else 2 when the view count is even, as
    dual-head systems write; the typed default of 1 cannot tell a single head
    from "unknown");
    patient and study attributes are copied from ``reference`` when given.
    ``center_mm`` (LPS) places the detector frames (default: the
    acquisition's ``center_mm``, else the origin). The typed metadata are
    written back: start time (Series/AcquisitionDate/Time), study and frame
    of reference UIDs, patient position, patient (name, ID, weight, height,
    sex) and dose (radionuclide, activity, injection time, half-life) where
    set; they take precedence over ``reference``'s values.
    """
    vendor = vendor.lower()
    if vendor not in ("siemens", "ge"):
        raise ValueError(f"vendor must be 'siemens' or 'ge', got {vendor!r}")
    layout = VENDORS[vendor]
    acq = acquisition
    g = acq.geometry
    if n_detectors is None:
        n_detectors = acq.n_detectors if acq.n_detectors > 1 else (2 if g.n_views % 2 == 0 else 1)
    n_det = n_detectors
    if n_det < 1:
        raise ValueError(f"n_detectors must be >= 1, got {n_det}")
    phi = recon_angle_to_dicom_deg(g.angles_deg)
    starts, step, direction = _split_detectors(phi, n_det)
    m = g.n_views // n_det
    for w in acq.windows:
        if len(w.name) > 16:
            raise ValueError(f"energy window name {w.name!r} is longer than 16 characters (DICOM SH)")
    duration_ms = acq.frame_duration_s * 1000.0
    if abs(duration_ms - round(duration_ms)) > 1e-6:
        logger.warning("frame duration %g s rounded to whole ms for ActualFrameDuration", acq.frame_duration_s)
    stored, slope = _counts_pixel_data(acq)
    if center_mm is None:
        center_mm = acq.center_mm if acq.center_mm is not None else (0.0, 0.0, 0.0)
    centre = np.asarray(center_mm, dtype=np.float64)

    coll_name = vendor_collimator_name(acq.collimator, vendor)

    now = _dt.datetime.now()
    ds = Dataset()
    new_instance(ds, NM_IMAGE_STORAGE)
    ds.SpecificCharacterSet = "ISO_IR 100"

    fill_patient_study(ds, reference, now)
    write_patient(ds, acq.patient)
    if acq.info.study_instance_uid:
        ds.StudyInstanceUID = acq.info.study_instance_uid
    # series, equipment, frame of reference
    ds.Modality = "NM"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = 1
    ds.SeriesDescription = series_description
    start = acq.info.start_time or (acquisition_start(reference) if reference is not None else None) or now
    ds.SeriesDate = start.strftime("%Y%m%d")
    ds.SeriesTime = start.strftime("%H%M%S.%f")
    ds.PatientPosition = acq.info.patient_position or "HFS"
    ds.Manufacturer = layout["manufacturer"]
    ds.ManufacturerModelName = layout["model"]
    has_for = reference is not None and present(reference, "FrameOfReferenceUID")
    ds.FrameOfReferenceUID = (acq.info.frame_of_reference_uid
                              or (str(reference.FrameOfReferenceUID) if has_for else generate_uid()))  # type: ignore
    ds.PositionReferenceIndicator = ""
    ds.InstanceNumber = 1
    ds.ContentDate = now.strftime("%Y%m%d")
    ds.ContentTime = now.strftime("%H%M%S")
    ds.AcquisitionDate = ds.SeriesDate
    ds.AcquisitionTime = ds.SeriesTime
    ds.ImageType = ["ORIGINAL", "PRIMARY", "TOMO", "EMISSION"]
    ds.PatientOrientation = ""

    # image pixel
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = g.n_rows
    ds.Columns = g.n_cols
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelSpacing = [format_ds(g.slice_thickness_mm), format_ds(g.pixel_size_mm)]
    if slope != 1.0:
        ds.RescaleSlope = format_ds(slope)
        ds.RescaleIntercept = format_ds(0.0)

    # multi-frame layout: frames by window, detector, rotation, view
    n_win = len(acq.windows)
    n_frames = n_win * g.n_views
    ds.NumberOfFrames = n_frames
    ds.FrameIncrementPointer = list(TOMO_FRAME_INCREMENT_POINTER)
    win_idx, det_idx, view_idx = np.meshgrid(np.arange(n_win), np.arange(n_det), np.arange(m), indexing="ij")
    ds.EnergyWindowVector = [int(v) + 1 for v in win_idx.ravel()]
    ds.DetectorVector = [int(v) + 1 for v in det_idx.ravel()]
    ds.RotationVector = [1] * n_frames
    ds.AngularViewVector = [int(v) + 1 for v in view_idx.ravel()]
    ds.NumberOfEnergyWindows = n_win
    ds.NumberOfDetectors = n_det
    ds.NumberOfRotations = 1

    # energy windows and radiopharmaceutical
    ewis = Sequence()
    for w in acq.windows:
        rng = Dataset()
        rng.EnergyWindowLowerLimit = format_ds(w.lower_kev)
        rng.EnergyWindowUpperLimit = format_ds(w.upper_kev)
        item = Dataset()
        item.EnergyWindowRangeSequence = Sequence([rng])
        item.EnergyWindowName = w.name
        ewis.append(item)
    ds.EnergyWindowInformationSequence = ewis
    ds.RadiopharmaceuticalInformationSequence = radiopharmaceutical_sequence(acq.radionuclide, acq.dose, reference)

    # detectors: start angle, radii, orientation and position of their first view
    half_c = 0.5 * (g.n_cols - 1) * g.pixel_size_mm
    half_r = 0.5 * (g.n_rows - 1) * g.slice_thickness_mm
    dis = Sequence()
    for d in range(n_det):
        theta0 = math.radians(float(g.angles_deg[d * m]))
        u = np.array([math.cos(theta0), math.sin(theta0), 0.0])
        u[np.abs(u) < 1e-12] = 0.0
        if vendor == "ge":  # GE: the first voxel of the reconstruction volume (recon.io.dicom.nm_placement)
            ipp = centre + np.array([-half_c, -half_c, half_r])
        else:  # the first pixel of the detector's first view
            ipp = centre - half_c * u + np.array([0.0, 0.0, half_r])
        item = Dataset()
        item.CollimatorGridName = coll_name
        item.CollimatorType = "PARA"
        item.FieldOfViewShape = "RECTANGLE"
        item.FieldOfViewDimensions = [
            int(round(g.n_cols * g.pixel_size_mm)),
            int(round(g.n_rows * g.slice_thickness_mm)),
        ]
        item.ZoomFactor = [format_ds(1.0), format_ds(1.0)]
        item.CenterOfRotationOffset = format_ds(0.0)
        item.StartAngle = format_ds(starts[d])
        item.RadialPosition = [format_ds(v) for v in g.radius_mm[d * m : (d + 1) * m]]
        item.ImageOrientationPatient = [format_ds(v) for v in (u[0], u[1], 0.0, 0.0, 0.0, -1.0)]
        item.ImagePositionPatient = [format_ds(v) for v in ipp]
        dis.append(item)
    ds.DetectorInformationSequence = dis

    rot = Dataset()
    rot.StartAngle = format_ds(starts[0])
    rot.AngularStep = format_ds(step)
    rot.RotationDirection = direction
    rot.ScanArc = format_ds(step * m)
    rot.ActualFrameDuration = int(round(duration_ms))
    rot.NumberOfFramesInRotation = m
    if vendor == "ge":
        # GE also states the orbit per rotation: the radius of detector 1 at each view
        rot.RadialPosition = [format_ds(v) for v in g.radius_mm[:m]]
        ds.ActualFrameDuration = int(round(duration_ms))
    ds.RotationInformationSequence = Sequence([rot])
    ds.TypeOfDetectorMotion = "STEP AND SHOOT"

    # pixel data, rows flipped so the first stored row is the most superior (IOP column = -z)
    frames = np.empty((n_frames, g.n_rows, g.n_cols), dtype="<u2")
    for f in range(n_frames):
        e, d, k = int(win_idx.ravel()[f]), int(det_idx.ravel()[f]), int(view_idx.ravel()[f])
        frames[f] = stored[e, d * m + k][::-1]
    ds.PixelData = frames.tobytes()

    path = Path(path)
    ds.save_as(path, enforce_file_format=True)
    logger.info(
        "wrote %s: %d frames (%d windows x %d views, %d detectors, %s)", path, n_frames, n_win, g.n_views, n_det, vendor
    )
    return path
