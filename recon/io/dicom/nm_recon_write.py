"""A reconstructed SPECT volume as ONE NM Image Storage multi-frame file (RECON TOMO), the layout vendor
workstations write, and what :func:`~recon.io.dicom.nm_recon.read_nm_recon` reads back.

Layout (PS3.3 A.5, C.8.4): frames are the axial slices, slice k (0-based) at
Slice Vector (0054,0080) entry k + 1, Frame Increment Pointer -> Slice Vector,
Number of Slices = Number of Frames. The placement is in the single Detector
Information Sequence (0054,0022) item: Image Orientation (Patient) 1\\0\\0\\0\\1\\0
(rows along +x, columns along +y) and Image Position (Patient) the LPS centre
of voxel [0, 0, 0]; slice k sits at IPP + k * SpacingBetweenSlices along +z.

Values. Stored as uint16 (int16 when some value is negative) with ONE slope
for the whole volume, slope = max|v| / 65535 (32767 signed), so every voxel
is within slope / 2 of its value: a relative precision of 7.6e-6 of the
volume's maximum (1.5e-5 signed). The NM Image IOD has no Rescale Slope or
Units: the quantity and its unit are in the Real World Value Mapping
Sequence (0040,9096) (UCUM ``Bq/ml``; SUV maps ``{SUVbw}g/ml``), slope FD;
the same slope is also written as Rescale Slope (an extension, for GDCM/ITK).
Decay correction: Corrected Image (0028,0051) lists DECY when the values are
decay-corrected; the time they refer to is SeriesDate/SeriesTime and, as an
extension, Decay Correction DateTime (0018,9701).
"""
from __future__ import annotations

import datetime as _dt
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag

from recon.data.grid import Volume
from recon.data.study import DoseInfo
from recon.io.dicom.codes import radionuclide_code, real_world_value_mapping, set_patient_orientation_codes
from recon.io.dicom.image_base import SeriesFacts, atomic_directory, quantise, series_base
from recon.io.dicom.values import format_ds
from recon.io.dicom.write_common import NM_IMAGE_STORAGE, new_instance

logger = logging.getLogger(__name__)

__all__ = ["NMRotation", "NMStudyFacts", "nm_recon_dataset", "write_nm_recon"]

NM_RECON_FILE = "nm_recon.dcm"
"""The file name inside a ``--dicom-out`` directory."""


@dataclass(frozen=True)
class NMRotation:
    """The acquisition's rotation (DICOM conventions): start angle and step (deg), CW/CC, views, time per view (s)."""

    start_angle_deg: float
    angular_step_deg: float
    direction: str
    n_views: int
    frame_duration_s: float
    radial_position_mm: float | None = None

    def __post_init__(self) -> None:
        if self.direction not in ("CW", "CC"):
            raise ValueError(f"rotation direction must be 'CW' or 'CC', got {self.direction!r}")
        if self.n_views < 1 or self.frame_duration_s <= 0:
            raise ValueError("rotation needs n_views >= 1 and frame_duration_s > 0")


@dataclass(frozen=True)
class NMStudyFacts:
    """What the NM object states about the acquisition: isotope and dose, photopeak window(s) (name, lower,
    upper keV), rotation, collimator, and which corrections the values carry (ATTN, SCAT, DECY)."""

    radionuclide: str = "Tc-99m"
    dose: DoseInfo = field(default_factory=DoseInfo)
    energy_windows: tuple[tuple[str, float, float], ...] = ()
    rotation: NMRotation | None = None
    collimator: str = ""
    corrected_image: tuple[str, ...] = ()


def _isotope(study: NMStudyFacts) -> tuple[Sequence, Sequence]:
    windows = []
    for name, lower, upper in study.energy_windows:
        rng = Dataset()
        rng.EnergyWindowLowerLimit, rng.EnergyWindowUpperLimit = format_ds(lower), format_ds(upper)
        w = Dataset()
        w.EnergyWindowRangeSequence = Sequence([rng])
        w.EnergyWindowName = name[:16]
        windows.append(w)
    rp = Dataset()
    rp.RadionuclideCodeSequence = Sequence([radionuclide_code(study.radionuclide)])
    d = study.dose
    if d.radiopharmaceutical:
        rp.Radiopharmaceutical = d.radiopharmaceutical
    if d.injected_activity_bq is not None:
        rp.RadionuclideTotalDose = format_ds(d.injected_activity_bq / 1e6)  # NM: MBq (C.8.4.10.1)
    if d.injection_time is not None:
        rp.RadiopharmaceuticalStartDateTime = d.injection_time.strftime("%Y%m%d%H%M%S.%f")
        rp.RadiopharmaceuticalStartTime = d.injection_time.strftime("%H%M%S.%f")
    if d.half_life_s is not None:
        rp.RadionuclideHalfLife = format_ds(d.half_life_s)
    return Sequence(windows), Sequence([rp])


def _detector(volume: Volume, collimator: str) -> Sequence:
    ox, oy, oz = volume.grid.origin_mm
    det = Dataset()
    det.ImagePositionPatient = [format_ds(v) for v in (ox, oy, oz)]
    det.ImageOrientationPatient = [format_ds(v) for v in (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)]
    det.CollimatorGridName = collimator[:16]
    det.CollimatorType = "PARA"
    det.FocalDistance = None
    det.XFocusCenter = None
    det.YFocusCenter = None
    det.ZoomFactor = None
    det.CenterOfRotationOffset = None
    det.GantryDetectorTilt = None
    return Sequence([det])


def _rotation(rot: NMRotation | None) -> Sequence:
    if rot is None:
        return Sequence([])
    item = Dataset()
    item.StartAngle = format_ds(rot.start_angle_deg)
    item.AngularStep = format_ds(rot.angular_step_deg)
    item.RotationDirection = rot.direction
    item.ScanArc = format_ds(rot.angular_step_deg * rot.n_views)
    item.ActualFrameDuration = int(round(rot.frame_duration_s * 1000.0))
    item.NumberOfFramesInRotation = int(rot.n_views)
    if rot.radial_position_mm is not None:
        item.RadialPosition = format_ds(rot.radial_position_mm)
    item.TableTraverse = None
    item.TableHeight = None
    return Sequence([item])


def nm_recon_dataset(volume: Volume, facts: SeriesFacts, study: NMStudyFacts, *,
                     now: _dt.datetime | None = None) -> Dataset:
    """The NM RECON TOMO multi-frame dataset of ``volume`` (unit Bq/mL, counts or g/mL = SUVbw)."""
    now = now or _dt.datetime.now()
    host = volume.to_host()
    data = np.asarray(host.data, dtype=np.float64)
    nz, ny, nx = host.grid.shape
    dz, dy, dx = host.grid.spacing_mm
    unsigned = bool(data.size == 0 or data.min() >= 0)
    stored, slope = quantise(data, unsigned)
    unit = "g/mL" if volume.unit.startswith("SUV") or volume.unit == "g/mL" else volume.unit

    ds = series_base(volume, "NM", facts, now)
    new_instance(ds, NM_IMAGE_STORAGE)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "RECON TOMO", "EMISSION"]
    ds.PatientOrientation = ["L", "P"]
    ds.ImageID = ""
    ds.ContentQualification = "PRODUCT"
    set_patient_orientation_codes(ds)
    ds.EnergyWindowInformationSequence, ds.RadiopharmaceuticalInformationSequence = _isotope(study)
    ds.NumberOfEnergyWindows = len(study.energy_windows)
    ds.DetectorInformationSequence = _detector(host, study.collimator)
    ds.NumberOfDetectors = 1
    ds.RotationInformationSequence = _rotation(study.rotation)
    ds.NumberOfRotations = 1
    ds.NumberOfFrames = nz
    ds.FrameIncrementPointer = Tag(0x0054, 0x0080)
    ds.SliceVector = list(range(1, nz + 1))
    ds.NumberOfSlices = nz
    ds.PixelSpacing = [format_ds(dy), format_ds(dx)]
    ds.SpacingBetweenSlices = format_ds(dz)
    ds.SliceThickness = format_ds(dz)
    ds.CorrectedImage = list(study.corrected_image) or None
    ds.CountsAccumulated = None
    if "DECY" in study.corrected_image and facts.decay_reference_time is not None:
        # Not in the NM IOD (PET's attribute): the one unambiguous statement of the reference time, docs/dicom.md
        ds.DecayCorrectionDateTime = facts.decay_reference_time.strftime("%Y%m%d%H%M%S.%f")
    ds.AcquisitionContextSequence = Sequence([])
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = ny, nx
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 0 if unsigned else 1
    label = "SUVbw" if unit == "g/mL" else "activity" if unit == "Bq/mL" else "counts"
    ds.RealWorldValueMappingSequence = real_world_value_mapping(unit, slope, int(stored.min()), int(stored.max()),
                                                                label)
    # Not in the NM IOD, written too so GDCM/ITK-based viewers (SimpleITK, 3D Slicer) show the values: docs/dicom.md
    ds.RescaleIntercept, ds.RescaleSlope = format_ds(0.0), format_ds(slope)
    ds.PixelData = stored.astype("<u2" if unsigned else "<i2").tobytes()
    return ds


def write_nm_recon(objects: Volume | list[tuple[Volume, SeriesFacts]], directory: str | os.PathLike[str],
                   study: NMStudyFacts, facts: SeriesFacts | None = None) -> list[Path]:
    """Write NM RECON TOMO files in the new directory ``directory`` (absent or empty; written beside it and
    renamed): ``nm_recon.dcm`` for the first volume, then ``nm_<unit>.dcm`` (``nm_suvbw.dcm``) for the next
    ones (each its own series). ``objects`` is a volume (with ``facts``) or (volume, facts) pairs."""
    pairs = [(objects, facts or SeriesFacts())] if isinstance(objects, Volume) else list(objects)
    out = Path(directory)
    names: list[str] = []
    with atomic_directory(out) as tmp:
        for i, (volume, f) in enumerate(pairs):
            name = NM_RECON_FILE if i == 0 else f"nm_{_slug(volume.unit)}.dcm"
            if name in names:
                name = f"nm_{i + 1}.dcm"
            nm_recon_dataset(volume, f, study).save_as(tmp / name, enforce_file_format=True)
            names.append(name)
    logger.info("wrote %d NM RECON TOMO file(s) to %s", len(names), out)
    return [out / n for n in names]


def _slug(unit: str) -> str:
    word = unit.split(" ")[0].lower()
    return "".join(c for c in word if c.isalnum()) or "volume"
