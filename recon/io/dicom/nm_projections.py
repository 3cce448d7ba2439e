"""Read DICOM NM multi-frame SPECT projections (ImageType ... TOMO) into a :class:`SPECTAcquisition`.

One step per function: frame layout (:mod:`~recon.io.dicom.nm_layout`),
geometry: angles, radii, detectors, placement (:mod:`~recon.io.dicom.nm_geometry`),
energy windows and photopeak (:mod:`~recon.io.dicom.nm_energy`), collimator
(:mod:`~recon.io.dicom.nm_collimator`), typed metadata
(:mod:`~recon.io.dicom.nm_metadata`). Conventions (angles, row flips, the
grid centre) are documented in :mod:`recon.io.dicom.nm_geometry`.

The acquisition carries typed metadata: ``n_detectors``, ``center_mm`` (LPS
centre of the reconstruction grid, so ``acq.image_grid`` sits where the
patient is), ``info``, ``patient`` and ``dose``. ``metadata`` keeps only
``dicom_header`` (the file's header without pixel data, for writers),
``detector_of_view`` (detector index of each view) and ``n_rotations``.
"""
from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from recon.data.collimator import Collimator, get_collimator
from recon.data.spect import EnergyWindow, SPECTAcquisition, SPECTGeometry
from recon.io.dicom.nm_collimator import collimator_from_dicom_name
from recon.data.radionuclides import get_radionuclide
from recon.io.dicom.nm_energy import (
    choose_photopeak,
    energy_windows,
    infer_radionuclide,
    main_photopeak_kev,
    radionuclide_from_header,
)
from recon.io.dicom.nm_geometry import ViewGeometry, view_geometry
from recon.io.dicom.nm_layout import FrameLayout, frame_layout
from recon.io.dicom.nm_metadata import study_metadata
from recon.io.dicom.values import (DicomFormatError, dcmread_checked, pixels_of, require, rescale_of,
                                   sequence_item, values_of)

logger = logging.getLogger(__name__)

__all__ = ["read_nm"]


def _check_projection_type(ds: Dataset, name: str) -> None:
    modality = str(ds.get("Modality", "") or "")
    if modality and modality != "NM":
        raise DicomFormatError(f"{name}: Modality (0008,0060) is {modality!r}, expected 'NM'")
    image_type = [str(v).upper() for v in values_of(ds.get("ImageType", []) or [])]
    if len(image_type) >= 3 and "TOMO" not in image_type[2]:
        raise DicomFormatError(f"{name}: ImageType (0008,0008) value 3 is {image_type[2]!r}; projections need TOMO")
    if len(image_type) >= 3 and "RECON" in image_type[2]:
        raise DicomFormatError(
            f"{name}: ImageType (0008,0008) is {image_type[2]!r}, a reconstruction, not projections "
            "(read it with read_nm_recon)"
        )


def _counts(ds: Dataset, layout: FrameLayout, geom: ViewGeometry, windows: list[EnergyWindow], n_rows: int,
            n_cols: int) -> dict[str, np.ndarray]:
    """Counts (view, row, col) per window: rescaled frames placed by the layout, rows flipped to +z."""
    where = str(getattr(ds, "filename", None) or "NM file")
    pixels = np.asarray(pixels_of(ds, where))
    if pixels.size != layout.n_frames * n_rows * n_cols:
        raise DicomFormatError(f"{where}: PixelData holds {pixels.size} pixels, NumberOfFrames x Rows x Columns = "
                               f"{layout.n_frames} x {n_rows} x {n_cols} (truncated?)")
    raw = pixels.reshape(layout.n_frames, n_rows, n_cols)
    slope, intercept = rescale_of(ds, where)
    counts = {w.name: np.zeros((layout.n_views, n_rows, n_cols), dtype=np.float32) for w in windows}
    for f in range(layout.n_frames):
        frame = raw[f].astype(np.float64) * slope + intercept
        v = int(layout.view_of_frame[f])
        counts[windows[int(layout.window_of_frame[f])].name][v] = frame[::-1] if geom.rows_flipped[v] else frame
    return counts


def _collimator(ds: Dataset, n_det: int, collimator: str | Collimator | None) -> Collimator:
    """The collimator: the caller's choice, else the one CollimatorGridName (0018,1180) of every detector."""
    if isinstance(collimator, Collimator):
        return collimator
    if collimator is not None:
        return get_collimator(collimator)
    names = {
        str(require(sequence_item(ds, "DetectorInformationSequence", d), "CollimatorGridName",
                    f"DetectorInformationSequence[{d}].")).strip()
        for d in range(n_det)
    }
    if len(names) > 1:
        raise DicomFormatError(f"detectors carry different collimators (CollimatorGridName): {sorted(names)}")
    return collimator_from_dicom_name(names.pop(), str(ds.get("Manufacturer", "") or ""))


def read_nm(
    path: str | Path,
    *,
    collimator: str | Collimator | None = None,
    photopeak: str | None = None,
    photon_energy_kev: float | None = None,
    radius_mm: float | None = None,
    radionuclide: str | None = None,
) -> SPECTAcquisition:
    """Read an NM multi-frame TOMO file (Siemens, GE and other standard layouts) into a SPECTAcquisition.

    ``collimator`` overrides CollimatorGridName (preset name or a Collimator);
    ``photopeak`` names the photopeak window (default: the window holding
    ``photon_energy_kev``, which defaults to the radionuclide's main photopeak);
    ``radius_mm`` is used, with a warning, only when RadialPosition is absent.
    ``radionuclide`` overrides the file's RadionuclideCodeSequence; when neither
    names one, it is inferred from the window energies
    (:func:`~recon.io.dicom.nm_energy.infer_radionuclide`) and the inference is logged.
    Counts are RescaleSlope * stored + RescaleIntercept; frame duration in s.
    """
    path = Path(path)
    try:
        return _read_nm(path, collimator, photopeak, photon_energy_kev, radius_mm, radionuclide)
    except ValueError as exc:  # DicomFormatError, and the data objects' own checks (spacing, duration)
        if path.name in str(exc):
            raise
        raise DicomFormatError(f"{path.name}: {exc}") from None


def _read_nm(path: Path, collimator: str | Collimator | None, photopeak: str | None,
             photon_energy_kev: float | None, radius_mm: float | None, radionuclide: str | None) -> SPECTAcquisition:
    """:func:`read_nm`'s body; its DicomFormatErrors are prefixed with the file name there."""
    ds = dcmread_checked(path)
    _check_projection_type(ds, path.name)
    require(ds, "NumberOfFrames")
    n_rows = int(require(ds, "Rows"))
    n_cols = int(require(ds, "Columns"))
    spacing = [float(v) for v in values_of(require(ds, "PixelSpacing"))]
    if len(spacing) != 2:
        raise DicomFormatError(f"PixelSpacing (0028,0030) must have 2 values, got {spacing}")

    layout = frame_layout(ds)
    geom = view_geometry(ds, layout, n_rows, n_cols, spacing, radius_mm)
    windows = energy_windows(ds, layout.n_windows)
    counts = _counts(ds, layout, geom, windows, n_rows, n_cols)

    if radionuclide is not None:
        radionuclide = get_radionuclide(radionuclide).name  # a clear error for an unknown name
    else:
        radionuclide = radionuclide_from_header(ds)
    if radionuclide is None:
        radionuclide, how = infer_radionuclide(windows)
        if radionuclide is not None:
            logger.warning("%s: no radionuclide code in the file; inferred %s from the energy windows (%s); "
                           "pass --radionuclide to override", path.name, radionuclide, how)
        else:
            logger.info("%s: radionuclide unknown: %s", path.name, how)
    energy = photon_energy_kev if photon_energy_kev is not None else main_photopeak_kev(radionuclide)
    peak = choose_photopeak(windows, photopeak, energy)
    if energy is None:
        energy = peak.center_kev
        logger.warning("photon energy unknown (radionuclide %r); using photopeak window centre %g keV",
                       radionuclide, energy)
    coll = _collimator(ds, layout.n_detectors, collimator)

    geometry = SPECTGeometry(geom.angles_deg, geom.radius_mm, n_rows, n_cols, pixel_size_mm=spacing[1],
                             slice_thickness_mm=spacing[0])
    header = copy.deepcopy(ds)
    if "PixelData" in header:
        del header.PixelData
    info, patient, dose = study_metadata(header, path, radionuclide)
    if geom.center_mm is None:
        logger.info("%s: no detector position (ImagePositionPatient); grid centred on the patient-space origin",
                    path.name)
    metadata: dict[str, Any] = {
        "dicom_header": header,
        "detector_of_view": np.repeat(np.arange(layout.n_detectors), layout.views_per_detector),
        "n_rotations": layout.n_rotations,
    }
    return SPECTAcquisition(
        counts=counts,
        windows=tuple(windows),
        photopeak=peak.name,
        geometry=geometry,
        collimator=coll,
        frame_duration_s=geom.frame_duration_s,
        photon_energy_kev=float(energy),
        radionuclide=radionuclide or "unknown",
        metadata=metadata,
        n_detectors=layout.n_detectors,
        center_mm=geom.center_mm,
        info=info,
        patient=patient,
        dose=dose,
    )
