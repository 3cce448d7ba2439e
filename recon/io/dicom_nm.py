"""DICOM NM multi-frame SPECT projections: read into a :class:`SPECTAcquisition`, write back out.

Frame layout (DICOM PS3.3 C.8.4.8, NM Multi-frame Module): for Image Type
value 3 ``TOMO`` the Frame Increment Pointer (0028,0009) lists the Energy
Window Vector (0054,0010), Detector Vector (0054,0020), Rotation Vector
(0054,0050) and Angular View Vector (0054,0090); each vector has one 1-based
entry per frame saying which window, detector, rotation and view the frame
is. The reader takes each frame's identity from these vectors (so any frame
order works); our view order is detector-major: detector 1's views of
rotation 1, 2, ..., then detector 2's, as in the file.

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

Image position. ``write_nm`` writes, per detector, Image Position (Patient)
as the centre of the first transmitted pixel of its first view, projected
onto the plane through the rotation axis parallel to the detector face; the
reader stores the mean frame centre over detectors in
``metadata["frame_center_mm"]`` (for opposed detectors this mean is on the
rotation axis whichever plane a vendor refers to), which :func:`nm_image_grid`
uses to place the reconstruction grid in patient coordinates.
"""
from __future__ import annotations

import copy
import datetime as _dt
import logging
import math
import re
from collections.abc import Sequence as _Seq
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pydicom.valuerep import DSfloat

from recon.data.collimator import COLLIMATOR_PRESETS, Collimator, get_collimator
from recon.data.grid import ImageGrid
from recon.data.spect import EnergyWindow, SPECTAcquisition, SPECTGeometry

logger = logging.getLogger(__name__)

NM_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.20"

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

def _main_photopeak_kev(radionuclide: str | None) -> float | None:
    """The radionuclide's highest-yield photon (keV) from :mod:`recon.quant.radionuclides`, or None."""
    from recon.quant.radionuclides import get_radionuclide  # noqa: PLC0415

    if not radionuclide:
        return None
    try:
        return get_radionuclide(radionuclide).main_photon.energy_kev
    except (KeyError, ValueError):
        return None
_ELEMENTS = {
    "tc": "Tc", "technetium": "Tc", "i": "I", "iodine": "I", "in": "In", "indium": "In",
    "lu": "Lu", "lutetium": "Lu", "ga": "Ga", "gallium": "Ga", "tl": "Tl", "thallium": "Tl",
    "y": "Y", "yttrium": "Y", "f": "F", "fluorine": "F",
}  # fmt: skip

# Vendor layouts written by write_nm: equipment names, and the collimator names each vendor
# writes in CollimatorGridName (0018,1180) for our presets.
_VENDORS: dict[str, dict[str, Any]] = {
    "siemens": {
        "manufacturer": "SIEMENS NM",
        "model": "Symbia Intevo",
        "prefix": "SY",
        "aliases": {"LEHR": "SY-LEHR", "LEAP": "SY-LEAP", "ME": "SY-ME", "MELP": "SY-ME"},
    },
    "ge": {
        "manufacturer": "GE MEDICAL SYSTEMS",
        "model": "Discovery NM/CT 670",
        "prefix": "GI",
        "aliases": {"LEHR": "GI-LEHR", "MEGP": "GI-MEGP", "MEG": "GI-MEGP"},
    },
    "philips": {"manufacturer": "Philips", "model": "BrightView", "prefix": "PB", "aliases": {"LEHR": "PB-LEHR"}},
}


class DicomFormatError(ValueError):
    """A DICOM file is missing a required attribute or holds inconsistent values."""


# ----------------------------------------------------------------------------- helpers


def dicom_angle_to_recon_deg(phi_deg: Any) -> np.ndarray:
    """DICOM Start Angle convention (0 posterior, CC from the feet) -> ours (0 anterior, 90 left): 180 - phi mod 360."""
    theta = np.mod(180.0 - np.asarray(phi_deg, dtype=np.float64), 360.0)
    return np.where(np.isclose(theta, 360.0, rtol=0, atol=1e-9), 0.0, theta)


def recon_angle_to_dicom_deg(theta_deg: Any) -> np.ndarray:
    """Our angle -> DICOM Start Angle convention; the same involution, 180 - theta mod 360."""
    return dicom_angle_to_recon_deg(theta_deg)


def _present(ds: Dataset, keyword: str) -> bool:
    return keyword in ds and ds[keyword].value is not None and ds[keyword].value != ""


def require_tag(ds: Dataset, keyword: str, where: str = "") -> Any:
    """The value of ``keyword`` in ``ds``; DicomFormatError naming the tag when absent or empty."""
    if not _present(ds, keyword):
        tag = pydicom.datadict.tag_for_keyword(keyword)
        tag_txt = f" ({tag >> 16:04X},{tag & 0xFFFF:04X})" if tag is not None else ""
        raise DicomFormatError(f"missing required DICOM tag {where}{keyword}{tag_txt}")
    return ds[keyword].value


def _values(value: Any) -> list[Any]:
    """A DICOM value as a list (multi-valued or single)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, _Seq):
        return [value]
    return list(value)


def format_ds(value: float) -> DSfloat:
    """A float as a DS value of at most 16 characters."""
    return DSfloat(float(value), auto_format=True)


def _sequence_item(ds: Dataset, keyword: str, index: int, count: int) -> Dataset:
    seq = require_tag(ds, keyword)
    if len(seq) < count:
        raise DicomFormatError(f"{keyword} has {len(seq)} items, {count} expected")
    return seq[index]


def _normalise_radionuclide(text: str) -> str | None:
    """'^99m^Technetium', 'Tc-99m', 'Tc99m', '99mTc' -> 'Tc-99m'; None when not recognised."""
    s = re.sub(r"[^a-z0-9]", "", text.lower())
    m = re.search(r"\d+m?", s)
    if not m:
        return None
    element = (s[: m.start()] + s[m.end():]).strip()
    if element not in _ELEMENTS:
        return None
    return f"{_ELEMENTS[element]}-{m.group(0)}"


def _radionuclide_from_header(ds: Dataset) -> str | None:
    seq = ds.get("RadiopharmaceuticalInformationSequence")
    if not seq:
        return None
    item = seq[0]
    for code in item.get("RadionuclideCodeSequence", []) or []:
        for key in ("CodeMeaning", "CodeValue"):
            text = str(code.get(key, "") or "")
            if text:
                found = _normalise_radionuclide(text)
                if found:
                    return found
        meaning = str(code.get("CodeMeaning", "") or "")
        if meaning:
            return meaning
    return None


def _vendor_of(manufacturer: str) -> str | None:
    m = manufacturer.upper()
    if "SIEMENS" in m:
        return "siemens"
    if m.startswith("GE") or "GENERAL ELECTRIC" in m:
        return "ge"
    if "PHILIPS" in m or "ADAC" in m:
        return "philips"
    return None


def collimator_from_dicom_name(name: str, manufacturer: str = "") -> Collimator:
    """The collimator preset for a CollimatorGridName (0018,1180) as a vendor writes it (e.g. 'LEHR' by Siemens)."""
    key = name.strip().upper()
    if key in COLLIMATOR_PRESETS:
        return COLLIMATOR_PRESETS[key]
    vendor = _vendor_of(manufacturer)
    if vendor is not None:
        compact = re.sub(r"[^A-Z]", "", key)
        alias = _VENDORS[vendor]["aliases"].get(compact)
        if alias is not None:
            return COLLIMATOR_PRESETS[alias]
    raise DicomFormatError(
        f"unknown collimator {name!r} (CollimatorGridName (0018,1180), manufacturer {manufacturer!r}); "
        f"known presets: {', '.join(sorted(COLLIMATOR_PRESETS))}; pass collimator= to choose one"
    )


# ----------------------------------------------------------------------------- reader


def _frame_identities(ds: Dataset, n_frames: int) -> dict[str, np.ndarray]:
    """Per-frame 0-based window, detector, rotation and view indices from the frame vectors."""
    fip_raw = require_tag(ds, "FrameIncrementPointer")
    fip = [Tag(t) for t in _values(fip_raw)]
    unknown = [t for t in fip if t not in _VECTOR_KEYWORDS]
    if unknown:
        raise DicomFormatError(
            f"FrameIncrementPointer (0028,0009) points at {', '.join(str(t) for t in unknown)}; "
            "a TOMO acquisition needs only the energy window, detector, rotation and angular view vectors"
        )
    out: dict[str, np.ndarray] = {}
    for tag, keyword in _VECTOR_KEYWORDS.items():
        if tag in fip or _present(ds, keyword):
            if not _present(ds, keyword):
                raise DicomFormatError(f"missing required DICOM tag {keyword} {tag} (named by FrameIncrementPointer)")
            vec = np.asarray(_values(ds[keyword].value), dtype=np.int64)
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
    if TAG_ANGULAR_VIEW_VECTOR not in fip and not _present(ds, "AngularViewVector"):
        raise DicomFormatError("missing required DICOM tag AngularViewVector (0054,0090) for a TOMO acquisition")
    return out


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


def read_nm(
    path: str | Path,
    *,
    collimator: str | Collimator | None = None,
    photopeak: str | None = None,
    photon_energy_kev: float | None = None,
    radius_mm: float | None = None,
) -> SPECTAcquisition:
    """Read an NM multi-frame TOMO file (Siemens, GE and other standard layouts) into a SPECTAcquisition.

    ``collimator`` overrides CollimatorGridName (preset name or a Collimator);
    ``photopeak`` names the photopeak window (default: the window holding
    ``photon_energy_kev``, which defaults to the radionuclide's main photopeak);
    ``radius_mm`` is used, with a warning, only when RadialPosition is absent.
    Counts are RescaleSlope * stored + RescaleIntercept; frame duration in s.
    """
    path = Path(path)
    ds = pydicom.dcmread(path)
    modality = str(ds.get("Modality", "") or "")
    if modality and modality != "NM":
        raise DicomFormatError(f"{path.name}: Modality (0008,0060) is {modality!r}, expected 'NM'")
    image_type = [str(v).upper() for v in _values(ds.get("ImageType", []) or [])]
    if len(image_type) >= 3 and "TOMO" not in image_type[2]:
        raise DicomFormatError(
            f"{path.name}: ImageType (0008,0008) value 3 is {image_type[2]!r}; projections need TOMO"
        )
    if len(image_type) >= 3 and "RECON" in image_type[2]:
        raise DicomFormatError(
            f"{path.name}: ImageType (0008,0008) is {image_type[2]!r}, a reconstruction, not projections"
        )

    n_frames = int(require_tag(ds, "NumberOfFrames"))
    n_rows = int(require_tag(ds, "Rows"))
    n_cols = int(require_tag(ds, "Columns"))
    spacing = [float(v) for v in _values(require_tag(ds, "PixelSpacing"))]
    if len(spacing) != 2:
        raise DicomFormatError(f"PixelSpacing (0028,0030) must have 2 values, got {spacing}")
    ids = _frame_identities(ds, n_frames)

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

    # rotations: views per detector, step, direction, duration
    rot_items = [_sequence_item(ds, "RotationInformationSequence", r, n_rot) for r in range(n_rot)]
    det_items = [_sequence_item(ds, "DetectorInformationSequence", d, n_det) for d in range(n_det)]
    views_in_rot = []
    for r, item in enumerate(rot_items):
        where = f"RotationInformationSequence[{r}]."
        if _present(item, "NumberOfFramesInRotation"):
            declared = int(item.NumberOfFramesInRotation)
            sel = ids["RotationVector"] == r
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
            sel = ids["RotationVector"] == r
            views_in_rot.append(int(ids["AngularViewVector"][sel].max()) + 1 if sel.any() else 0)
            logger.warning(
                "%sNumberOfFramesInRotation (0054,0053) missing; using %d from AngularViewVector",
                where, views_in_rot[-1],
            )  # fmt: skip
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

    # frame -> (window, view) with views ordered detector-major, then rotation, then angular view
    rot_offset = np.concatenate([[0], np.cumsum(views_in_rot)])
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

    # angles and radii per view
    angles = np.empty(n_views)
    radii = np.full(n_views, np.nan)
    durations = []
    patient_position = str(ds.get("PatientPosition", "") or "")
    flip_of_view = np.empty(n_views, dtype=bool)
    frame_centres = []
    for r, item in enumerate(rot_items):
        where = f"RotationInformationSequence[{r}]."
        step = float(require_tag(item, "AngularStep", where))
        direction = str(require_tag(item, "RotationDirection", where)).strip().upper()
        if direction == "CCW":
            logger.warning("%sRotationDirection 'CCW' is not a DICOM value; read as 'CC'", where)
            direction = "CC"
        if direction not in ("CW", "CC"):
            raise DicomFormatError(f"{where}RotationDirection (0018,1140) is {direction!r}; expected 'CW' or 'CC'")
        if _present(item, "ActualFrameDuration"):
            durations.append(float(item.ActualFrameDuration) / 1000.0)
        elif _present(ds, "ActualFrameDuration"):
            durations.append(float(ds.ActualFrameDuration) / 1000.0)
        else:
            require_tag(item, "ActualFrameDuration", where)
        sign = 1.0 if direction == "CC" else -1.0
        nv = views_in_rot[r]
        k = np.arange(nv, dtype=np.float64)
        for d, det in enumerate(det_items):
            dwhere = f"DetectorInformationSequence[{d}]."
            if _present(det, "StartAngle"):
                start = float(det.StartAngle)
                if r > 0 and _present(item, "StartAngle") and _present(rot_items[0], "StartAngle"):
                    start += float(item.StartAngle) - float(rot_items[0].StartAngle)
            elif n_det == 1 and _present(item, "StartAngle"):
                start = float(item.StartAngle)
            else:
                require_tag(det, "StartAngle", dwhere)
            views = d * views_per_det + int(rot_offset[r]) + np.arange(nv)
            angles[views] = dicom_angle_to_recon_deg(start + sign * k * step)
            radii[views] = _radii_for(det, item, r, nv, views_in_rot, dwhere, where)
            flip_of_view[views] = _rows_flipped(det, ds, patient_position)
            if r == 0:
                _check_column_direction(det, float(angles[views[0]]), d)
    if patient_position.upper().startswith("FF"):
        logger.warning(
            "PatientPosition %s (feet first): rows follow ImageOrientationPatient, columns are taken as seen "
            "from the detector; check the left-right orientation of the reconstruction",
            patient_position,
        )
    for d, det in enumerate(det_items):
        centre = _frame_centre(det, n_rows, n_cols, spacing)
        if centre is not None:
            frame_centres.append(centre)
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

    # pixel data
    require_tag(ds, "PixelData")
    raw = np.asarray(ds.pixel_array).reshape(n_frames, n_rows, n_cols)
    slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
    intercept = float(ds.get("RescaleIntercept", 0.0) or 0.0)
    values = raw.astype(np.float64) * slope + intercept

    windows = _energy_windows(ds, n_windows)
    counts = {w.name: np.zeros((n_views, n_rows, n_cols), dtype=np.float32) for w in windows}
    for f in range(n_frames):
        frame = values[f]
        v = int(view_of_frame[f])
        counts[windows[int(ids["EnergyWindowVector"][f])].name][v] = frame[::-1] if flip_of_view[v] else frame

    radionuclide = _radionuclide_from_header(ds)
    energy = photon_energy_kev
    if energy is None:
        energy = _main_photopeak_kev(radionuclide)
    peak = _choose_photopeak(windows, photopeak, energy)
    if energy is None:
        energy = peak.center_kev
        logger.warning(
            "photon energy unknown (radionuclide %r); using photopeak window centre %g keV", radionuclide, energy
        )

    manufacturer = str(ds.get("Manufacturer", "") or "")
    if collimator is None:
        names = {
            str(require_tag(det, "CollimatorGridName", f"DetectorInformationSequence[{d}].")).strip()
            for d, det in enumerate(det_items)
        }
        if len(names) > 1:
            raise DicomFormatError(f"detectors carry different collimators (CollimatorGridName): {sorted(names)}")
        coll = collimator_from_dicom_name(names.pop(), manufacturer)
    elif isinstance(collimator, Collimator):
        coll = collimator
    else:
        coll = get_collimator(collimator)

    geometry = SPECTGeometry(
        angles_deg=angles,
        radius_mm=radii,
        n_rows=n_rows,
        n_cols=n_cols,
        pixel_size_mm=spacing[1],
        slice_thickness_mm=spacing[0],
    )
    header = copy.deepcopy(ds)
    if "PixelData" in header:
        del header.PixelData
    metadata: dict[str, Any] = {
        "source": str(path),
        "manufacturer": manufacturer,
        "model": str(ds.get("ManufacturerModelName", "") or ""),
        "n_detectors": n_det,
        "n_rotations": n_rot,
        "detector_of_view": np.repeat(np.arange(n_det), views_per_det),
        "patient_position": patient_position,
        "study_instance_uid": str(ds.get("StudyInstanceUID", "") or ""),
        "series_instance_uid": str(ds.get("SeriesInstanceUID", "") or ""),
        "frame_of_reference_uid": str(ds.get("FrameOfReferenceUID", "") or ""),
        "dicom_header": header,
    }
    acq_date = str(ds.get("AcquisitionDate", "") or ds.get("SeriesDate", "") or "")
    acq_time = str(ds.get("AcquisitionTime", "") or ds.get("SeriesTime", "") or "")
    if acq_date and acq_time:
        from recon.quant.suv import parse_dicom_datetime  # noqa: PLC0415

        start = parse_dicom_datetime(acq_date + acq_time)
        if start is not None:
            metadata["acquisition_start"] = start.isoformat()
    if frame_centres:
        metadata["frame_center_mm"] = tuple(float(c) for c in np.mean(frame_centres, axis=0))
    return SPECTAcquisition(
        counts=counts,
        windows=tuple(windows),
        photopeak=peak.name,
        geometry=geometry,
        collimator=coll,
        frame_duration_s=durations[0],
        photon_energy_kev=float(energy),
        radionuclide=radionuclide or "unknown",
        metadata=metadata,
    )


def _radii_for(
    det: Dataset, rot: Dataset, r: int, nv: int, views_in_rot: list[int], dwhere: str, rwhere: str
) -> np.ndarray:
    """Radius (mm) of each view of detector ``det`` in rotation ``r``; NaN when no RadialPosition is found.

    Looks in the detector's RadialPosition (one value per view of all its
    rotations), then the rotation's; a single value is used for every view (logged).
    """
    total = sum(views_in_rot)
    if _present(det, "RadialPosition"):
        vals = np.asarray([float(v) for v in _values(det.RadialPosition)])
        if vals.size == total:
            start = sum(views_in_rot[:r])
            return vals[start : start + nv]
        if vals.size == 1:
            logger.warning("%sRadialPosition has a single value; using %g mm for all %d views", dwhere, vals[0], nv)
            return np.full(nv, vals[0])
        logger.warning("%sRadialPosition has %d values for %d views; ignored", dwhere, vals.size, total)
    if _present(rot, "RadialPosition"):
        vals = np.asarray([float(v) for v in _values(rot.RadialPosition)])
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


def _frame_centre(det: Dataset, n_rows: int, n_cols: int, spacing: list[float]) -> np.ndarray | None:
    """Patient position (x, y, z) mm of the frame centre from a detector's IPP and IOP, or None."""
    ipp = det.get("ImagePositionPatient")
    iop = det.get("ImageOrientationPatient")
    if not ipp or not iop or len(ipp) != 3 or len(iop) != 6:
        return None
    row_dir = np.asarray([float(v) for v in iop[:3]])
    col_dir = np.asarray([float(v) for v in iop[3:]])
    return (
        np.asarray([float(v) for v in ipp])
        + 0.5 * (n_cols - 1) * spacing[1] * row_dir
        + 0.5 * (n_rows - 1) * spacing[0] * col_dir
    )


def _energy_windows(ds: Dataset, n_windows: int) -> list[EnergyWindow]:
    seq = require_tag(ds, "EnergyWindowInformationSequence")
    if len(seq) != n_windows:
        raise DicomFormatError(
            f"EnergyWindowInformationSequence (0054,0012) has {len(seq)} items "
            f"but the file has {n_windows} energy windows"
        )
    windows: list[EnergyWindow] = []
    used: set[str] = set()
    for i, item in enumerate(seq):
        where = f"EnergyWindowInformationSequence[{i}]."
        ranges = require_tag(item, "EnergyWindowRangeSequence", where)
        if len(ranges) != 1:
            raise DicomFormatError(
                f"{where}EnergyWindowRangeSequence has {len(ranges)} ranges; one per window is supported"
            )
        lo = float(require_tag(ranges[0], "EnergyWindowLowerLimit", where + "EnergyWindowRangeSequence[0]."))
        hi = float(require_tag(ranges[0], "EnergyWindowUpperLimit", where + "EnergyWindowRangeSequence[0]."))
        name = str(item.get("EnergyWindowName", "") or "").strip() or f"EW{i + 1}"
        if name in used:
            name = f"{name}_{i + 1}"
        used.add(name)
        windows.append(EnergyWindow(name, lo, hi))
    return windows


def _choose_photopeak(windows: list[EnergyWindow], photopeak: str | None, energy_kev: float | None) -> EnergyWindow:
    names = [w.name for w in windows]
    if photopeak is not None:
        for w in windows:
            if w.name == photopeak:
                return w
        raise DicomFormatError(f"photopeak window {photopeak!r} not in the file's energy windows {names}")
    if energy_kev is not None:
        holding = [w for w in windows if w.lower_kev <= energy_kev <= w.upper_kev]
        if holding:
            return min(holding, key=lambda w: w.width_kev)
        raise DicomFormatError(
            f"no energy window holds the photopeak {energy_kev} keV; windows {names}; pass photopeak="
        )
    if len(windows) == 1:
        return windows[0]
    raise DicomFormatError(
        f"cannot tell the photopeak window among {names}: radionuclide unknown; pass photopeak= or photon_energy_kev="
    )


def nm_image_grid(acquisition: SPECTAcquisition) -> ImageGrid:
    """The acquisition's reconstruction grid placed in patient coordinates (LPS, mm).

    Same shape and spacing as ``acquisition.geometry.image_grid()``; its centre
    is ``metadata["frame_center_mm"]`` when the file gave detector positions,
    else the patient-space origin (logged).
    """
    base = acquisition.geometry.image_grid()
    centre = acquisition.metadata.get("frame_center_mm")
    if centre is None:
        logger.info("no detector position in the acquisition metadata; grid centred on the patient-space origin")
        return base
    nz, ny, nx = base.shape
    dz, dy, dx = base.spacing_mm
    cx, cy, cz = (float(c) for c in centre)
    origin = (cx - (nx - 1) * dx / 2, cy - (ny - 1) * dy / 2, cz - (nz - 1) * dz / 2)
    return ImageGrid(base.shape, base.spacing_mm, origin)


# ----------------------------------------------------------------------------- writer

PATIENT_STUDY_KEYWORDS = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "PatientAge", "PatientWeight", "PatientSize",
    "EthnicGroup", "StudyInstanceUID", "StudyDate", "StudyTime", "StudyID", "AccessionNumber",
    "ReferringPhysicianName", "StudyDescription",
)  # fmt: skip


def fill_patient_study(ds: Dataset, reference: Dataset | None, now: Any) -> None:
    """Patient and study attributes: anonymous defaults and a new study, or copies of ``reference``'s."""
    ds.PatientName = "Anonymous"
    ds.PatientID = "RECON"
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.StudyInstanceUID = generate_uid()
    ds.StudyDate = now.strftime("%Y%m%d")
    ds.StudyTime = now.strftime("%H%M%S")
    ds.StudyID = "1"
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    if reference is not None:
        for kw in PATIENT_STUDY_KEYWORDS:
            if kw in reference:
                setattr(ds, kw, copy.deepcopy(reference[kw].value))


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


def _acquisition_start(acquisition: SPECTAcquisition, reference: Dataset | None) -> _dt.datetime | None:
    """Acquisition start: the acquisition's metadata (ISO text), else the reference's AcquisitionDate/Time."""
    start = acquisition.metadata.get("acquisition_start")
    if isinstance(start, str):
        return _dt.datetime.fromisoformat(start)
    if isinstance(start, _dt.datetime):
        return start
    if reference is not None and _present(reference, "AcquisitionDate") and _present(reference, "AcquisitionTime"):
        from recon.quant.suv import parse_dicom_datetime  # noqa: PLC0415

        return parse_dicom_datetime(str(reference.AcquisitionDate) + str(reference.AcquisitionTime))
    return None


def write_nm(
    acquisition: SPECTAcquisition,
    path: str | Path,
    vendor: str = "siemens",
    *,
    n_detectors: int | None = None,
    reference: Dataset | None = None,
    frame_center_mm: tuple[float, float, float] | None = None,
    series_description: str = "SPECT projections",
) -> Path:
    """Write ``acquisition`` as an NM multi-frame TOMO file in a vendor's layout ('siemens' or 'ge').

    Views are split into ``n_detectors`` (default 2 when the view count is
    even) contiguous blocks sharing one AngularStep and RotationDirection;
    patient and study attributes are copied from ``reference`` when given.
    ``frame_center_mm`` (LPS) places the detector frames (default: the
    acquisition's ``metadata["frame_center_mm"]``, else the origin).
    """
    vendor = vendor.lower()
    if vendor not in ("siemens", "ge"):
        raise ValueError(f"vendor must be 'siemens' or 'ge', got {vendor!r}")
    layout = _VENDORS[vendor]
    acq = acquisition
    g = acq.geometry
    n_det = n_detectors if n_detectors is not None else (2 if g.n_views % 2 == 0 else 1)
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
    centre = np.asarray(
        frame_center_mm if frame_center_mm is not None else acq.metadata.get("frame_center_mm", (0.0, 0.0, 0.0)),
        dtype=np.float64,
    )

    # collimator name as the vendor writes it; a foreign preset keeps its full name
    coll_name = acq.collimator.name
    for short, full in layout["aliases"].items():
        if full == coll_name.upper():
            coll_name = short
            break

    now = _dt.datetime.now()
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = NM_IMAGE_STORAGE
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = NM_IMAGE_STORAGE
    ds.SpecificCharacterSet = "ISO_IR 100"

    fill_patient_study(ds, reference, now)
    # series, equipment, frame of reference
    ds.Modality = "NM"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = 1
    ds.SeriesDescription = series_description
    start = _acquisition_start(acquisition, reference) or now
    ds.SeriesDate = start.strftime("%Y%m%d")
    ds.SeriesTime = start.strftime("%H%M%S.%f")
    ds.PatientPosition = "HFS"
    ds.Manufacturer = layout["manufacturer"]
    ds.ManufacturerModelName = layout["model"]
    has_for = reference is not None and _present(reference, "FrameOfReferenceUID")
    ds.FrameOfReferenceUID = str(reference.FrameOfReferenceUID) if has_for else generate_uid()  # type: ignore
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
    if reference is not None and _present(reference, "RadiopharmaceuticalInformationSequence"):
        ds.RadiopharmaceuticalInformationSequence = copy.deepcopy(reference.RadiopharmaceuticalInformationSequence)
    else:
        code = Dataset()
        if acq.radionuclide == "Tc-99m":
            code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "C-163A8", "SRT", "^99m^Technetium"
        else:
            code.CodeValue, code.CodingSchemeDesignator = acq.radionuclide[:16], "99RECON"
            code.CodeMeaning = acq.radionuclide
        rp = Dataset()
        rp.RadionuclideCodeSequence = Sequence([code])
        ds.RadiopharmaceuticalInformationSequence = Sequence([rp])

    # detectors: start angle, radii, orientation and position of their first view
    half_c = 0.5 * (g.n_cols - 1) * g.pixel_size_mm
    half_r = 0.5 * (g.n_rows - 1) * g.slice_thickness_mm
    dis = Sequence()
    for d in range(n_det):
        theta0 = math.radians(float(g.angles_deg[d * m]))
        u = np.array([math.cos(theta0), math.sin(theta0), 0.0])
        u[np.abs(u) < 1e-12] = 0.0
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
