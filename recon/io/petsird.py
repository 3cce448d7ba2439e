"""Read PETSIRD list-mode files (the ``petsird`` package, version 0.12) into our PET data objects.

What is read, and how it maps (see also docs/file-format.md):

* Version. PETSIRD binary files start with yardl's magic bytes and the protocol's schema text;
  a file whose schema differs from the one of petsird 0.12 (the version this reader supports) is
  refused with a one-line :class:`PETSIRDError`, as is an installed petsird that is not 0.12.
* Geometry -> :class:`PETScanner`, derived from the file, not from our presets. One module type
  only. The centre of every detecting element (box centroid through the element and module
  transforms, PETSIRD gantry frame, mm) gives its radius ``hypot(x, y)`` and ``z``; its angle
  ``atan2(y, x)`` is taken at the centre of its front face (flat modules tile the ring at their
  faces, so face angles are evenly spaced; at crystal centres the step between modules is
  ~1.5 pitches). Our model places every crystal on one circle at evenly spaced angles: for flat
  modules this moves LOR ends by up to a fraction of a crystal (under 1.5 mm in the tests). The layout must be one cylinder around the z axis (radii within 3 % of their mean),
  one crystal layer, rings at equally spaced z and the same crystals in every ring; otherwise the
  file is refused as non-cylindrical. Ring index increases with z; crystal index with the angle
  from +x towards +y, crystal 0 being the first crystal of a block (after a gap) or, without
  gaps, the crystal of smallest angle in [0, 360) deg; ``first_crystal_angle_deg`` is the fitted
  angle of crystal 0. Block gaps (angular gaps between modules wider than 1.5 crystal pitches)
  become virtual gap crystals (``gap_crystals_per_block``). LORs end at crystal centres: the mean
  centre radius is ``lor_radius_mm``, ``mean_doi_mm`` is half the crystal depth and
  ``ring_diameter_mm`` the face diameter ``2 * (mean radius - depth / 2)``. Crystal sizes are the
  box's extents along the radial (depth), axial and remaining (transaxial) directions.
* TOF. ``tof_bin_edges[0][0]`` (mm of ``(t1 - t2) * c / 2``, PETSIRD's convention) must be equally
  wide and symmetric about 0; then PETSIRD's ``tof_idx`` is our ``tof_bin`` unchanged, with
  ``detector_a`` the event's first detection bin: a positive PETSIRD value means the first photon
  arrived later, i.e. the annihilation lies towards the *second* detector, which is our sign
  (bins counted towards ``detector_b``). ``tof_bin_width_ps = 2 * width_mm / c``,
  ``tof_fwhm_ps = 2 * tof_resolution_mm / c``. One TOF bin means no TOF; its edges then give the
  coincidence window ``2 * (last - first) / c``.
* Events. Prompts and delayed coincidences of every EventTimeBlock; all energy bins are kept. An
  event's time is its block's start (PETSIRD time blocks are in ms from the acquisition start);
  the acquisition lasts until the last block's stop. ``time_blocks_s`` keeps the blocks.
* Exam (when present): patient weight/size/sex/id, the first radiopharmaceutical's total dose
  (Bq) and start date-time, the study/series/frame-of-reference UIDs, the acquisition start and
  the patient position from the orientation codes (HFS/HFP/FFS/FFP).
"""
from __future__ import annotations

import logging
import os
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from recon.data.pet import ListModeAcquisition, ListModeEvents, ScannerPlacement
from recon.data.pet_scanner import SPEED_OF_LIGHT_MM_PER_PS, PETScanner
from recon.data.study import AcquisitionInfo, DoseInfo, PatientInfo
from recon.io.petsird_geometry import PETSIRDError, cylindrical_scanner

__all__ = ["PETSIRDError", "SUPPORTED_PETSIRD_VERSION", "read_petsird", "scanner_from_petsird"]

logger = logging.getLogger(__name__)

SUPPORTED_PETSIRD_VERSION = (0, 12)
_MAGIC = b"yardl"


def _petsird() -> Any:
    try:
        import petsird  # noqa: PLC0415
    except ImportError:
        raise PETSIRDError("reading PETSIRD files needs the petsird package: pip install 'recon[petsird]' "
                           "(petsird==0.12.0)") from None
    try:
        from importlib.metadata import version as _dist_version  # noqa: PLC0415

        installed = _dist_version("petsird")
    except Exception:  # noqa: BLE001 - a vendored copy without metadata: ask the module
        installed = str(getattr(getattr(petsird, "version", None), "__version__", "0.0"))
    version = tuple(int(p) for p in installed.split(".")[:2] if p.isdigit())
    if version != SUPPORTED_PETSIRD_VERSION:
        raise PETSIRDError(f"installed petsird {installed} is not the supported version "
                           f"{'.'.join(map(str, SUPPORTED_PETSIRD_VERSION))}: pip install petsird==0.12.0")
    return petsird


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while pos < len(data):
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
    raise ValueError("truncated")


def _check_file(path: Path, expected_schema: str) -> None:
    """Refuse a file that is not PETSIRD binary, or one written with another PETSIRD schema (version)."""
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    with open(path, "rb") as f:
        head = f.read(len(_MAGIC) + 4 + 10)
        if not head.startswith(_MAGIC):
            raise PETSIRDError(f"{path} is not a PETSIRD binary file (no yardl magic bytes)")
        try:
            length, pos = _read_varint(head, len(_MAGIC) + 4)
        except ValueError:
            raise PETSIRDError(f"{path} is not a PETSIRD binary file (truncated header)") from None
        f.seek(pos)
        raw = f.read(length)
        if len(raw) < length:
            raise PETSIRDError(f"{path} is a truncated PETSIRD file (its header ends early)")
        schema = raw.decode("utf-8", errors="replace")
    binary_version = int.from_bytes(head[len(_MAGIC):len(_MAGIC) + 4], "little", signed=True)
    if binary_version != 1:
        raise PETSIRDError(f"{path}: yardl binary format version {binary_version} is not supported (expected 1)")
    if '"name":"PETSIRD"' not in schema:
        raise PETSIRDError(f"{path} is a yardl file but not a PETSIRD one")
    if schema != expected_schema:
        raise PETSIRDError(f"{path}: PETSIRD file of an unsupported version (its schema differs from PETSIRD "
                           f"{'.'.join(map(str, SUPPORTED_PETSIRD_VERSION))}, the version this reader supports)")


def scanner_from_petsird(scanner_info: Any, name: str | None = None) -> tuple[PETScanner, np.ndarray]:
    """(PETScanner, element LUT) from a ``petsird.ScannerInformation``.

    The LUT maps PETSIRD detecting-element ids (``element_index + module_index * n_elements``) to
    our detector ids (``ring * crystals_per_ring + crystal``).
    """
    geometry = scanner_info.scanner_geometry
    n_types = len(geometry.replicated_modules)
    if n_types != 1:
        raise PETSIRDError(f"PETSIRD scanner with {n_types} module types; only scanners of one module type are supported")
    rep = geometry.replicated_modules[0]
    modules = np.asarray([t.matrix for t in rep.transforms], np.float64).reshape(-1, 3, 4)
    det = rep.object.detecting_elements
    elements = np.asarray([t.matrix for t in det.transforms], np.float64).reshape(-1, 3, 4)
    corners = np.asarray([c.c for c in det.object.shape.corners], np.float64).reshape(-1, 3)
    if modules.shape[0] == 0 or elements.shape[0] == 0 or corners.shape[0] != 8:
        raise PETSIRDError("PETSIRD scanner geometry without modules, detecting elements or 8 box corners")
    tof = _tof_numbers(scanner_info)
    label = name or scanner_info.model_name or "petsird"
    return cylindrical_scanner(label, modules, elements, corners, **tof)


def _tof_numbers(scanner_info: Any) -> dict[str, float]:
    try:
        edges = np.asarray(scanner_info.tof_bin_edges[0][0].edges, np.float64)
    except (IndexError, AttributeError):
        raise PETSIRDError("PETSIRD scanner has no tof_bin_edges for its module type") from None
    n = edges.size - 1
    if n < 1 or not np.all(np.diff(edges) > 0):
        raise PETSIRDError(f"PETSIRD tof_bin_edges must increase and define at least one bin, got {edges.tolist()}")
    mm_to_ps = 2.0 / SPEED_OF_LIGHT_MM_PER_PS
    window_ns = (edges[-1] - edges[0]) * mm_to_ps / 1000.0
    if n == 1:
        return {"n_tof_bins": 1, "tof_fwhm_ps": 0.0, "tof_bin_width_ps": 0.0, "coincidence_window_ns": window_ns}
    widths = np.diff(edges)
    width = float(widths.mean())
    if np.ptp(widths) > 1e-3 * width:
        raise PETSIRDError(f"PETSIRD TOF bins of unequal widths ({widths.min():.4g}..{widths.max():.4g} mm) "
                           "are not supported")
    if abs(edges[0] + edges[-1]) > 1e-3 * width:
        raise PETSIRDError(f"PETSIRD TOF bin edges {edges[0]:.4g}..{edges[-1]:.4g} mm are not symmetric about 0; "
                           "not supported")
    try:
        fwhm_mm = float(scanner_info.tof_resolution[0][0])
    except (IndexError, TypeError):
        fwhm_mm = 0.0
    if not fwhm_mm > 0:
        raise PETSIRDError(f"PETSIRD scanner has {n} TOF bins but no positive tof_resolution (got {fwhm_mm})")
    return {"n_tof_bins": n, "tof_fwhm_ps": fwhm_mm * mm_to_ps, "tof_bin_width_ps": width * mm_to_ps,
            "coincidence_window_ns": window_ns}


def _n_energy_bins(scanner_info: Any) -> int:
    try:
        n = len(scanner_info.event_energy_bin_edges[0].edges) - 1
    except (IndexError, AttributeError, TypeError):
        n = 0
    if n < 1:
        raise PETSIRDError("PETSIRD scanner has no event_energy_bin_edges: detection bins cannot be decoded")
    return n


def _datetime(value: Any) -> datetime | None:
    if value is None:
        return None
    ns = int(value.numpy_value.astype(np.int64)) if hasattr(value, "numpy_value") else 0
    if ns == 0:
        return None
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc)


def _position(exam: Any) -> str:
    o = exam.patient_orientation
    modifier = (o.patient_orientation_modifier_code_sequence.code_meaning or "").lower()
    gantry = (o.patient_gantry_relationship_code_sequence.code_meaning or "").lower().replace("-", "").replace(" ", "")
    lying = "S" if "supine" in modifier else "P" if "prone" in modifier else ""
    first = "HF" if "headfirst" in gantry else "FF" if "feetfirst" in gantry else ""
    return first + lying if first and lying else ""


def _exam_records(header: Any, source: str, model: str) -> dict[str, Any]:
    exam = header.exam
    if exam is None:
        return {"info": AcquisitionInfo(model=model, source=source)}
    p = exam.patient
    patient = PatientInfo(weight_kg=float(p.patients_weight) if p.patients_weight > 0 else None,
                          height_m=float(p.patients_size) if p.patients_size > 0 else None,
                          sex=p.patients_sex or None, patient_id=p.patient_id or "")
    dose = DoseInfo()
    if exam.radiopharmaceuticals:
        r = exam.radiopharmaceuticals[0]
        dose = DoseInfo(radionuclide=r.radionuclide_code_sequence.code_meaning or None,
                        injected_activity_bq=float(r.radionuclide_total_dose) if r.radionuclide_total_dose > 0 else None,
                        injection_time=_datetime(r.radiopharmaceutical_start_date_time),
                        radiopharmaceutical=r.radiopharmaceutical_code_sequence.code_meaning or "")
    position = _position(exam)
    info = AcquisitionInfo(frame_of_reference_uid=exam.frame_of_reference_uid or "",
                           study_instance_uid=exam.study_instance_uid or "",
                           series_instance_uid=exam.series_instance_uid or "",
                           start_time=_datetime(exam.start_of_acquisition) or _datetime(exam.start_of_study),
                           patient_position=position, model=model, source=source)
    out: dict[str, Any] = {"info": info, "patient": patient, "dose": dose}
    if position in ("HFS", "HFP", "FFS", "FFP"):
        out["placement"] = ScannerPlacement(position)
    return out


def read_petsird(path: str | os.PathLike[str], *, scanner_name: str | None = None) -> ListModeAcquisition:
    """Read a PETSIRD 0.12 binary file: scanner (from the file's geometry), events, time blocks, exam.

    ``scanner_name`` names the derived scanner (default: the file's model name). Bad input (wrong
    version, non-cylindrical geometry, detection bins or TOF indices out of range) is refused
    with a one-line :class:`PETSIRDError` before the events are kept.
    """
    petsird = _petsird()
    p = Path(path)
    _check_file(p, petsird.PETSIRDReaderBase.schema)
    blocks: list[tuple[int, int]] = []
    columns: dict[str, list[np.ndarray]] = {"a": [], "b": [], "tof": [], "time": [], "delayed": []}
    skipped: Counter[str] = Counter()
    try:
        with petsird.BinaryPETSIRDReader(str(p)) as reader:
            header = reader.read_header()
            scanner, lut = scanner_from_petsird(header.scanner, scanner_name)
            if header.scanner.gantry_alignment is not None:
                logger.warning("%s: the PETSIRD gantry alignment transform is not applied (scanner frame kept)", p)
            n_energy = _n_energy_bins(header.scanner)
            for block in reader.read_time_blocks():
                if not isinstance(block, petsird.TimeBlock.EventTimeBlock):
                    if isinstance(block, petsird.TimeBlock.GantryMovementTimeBlock):
                        raise PETSIRDError(f"{p}: gantry movement time blocks (moving detectors) are not supported")
                    skipped[type(block).__name__] += 1
                    continue
                etb = block.value
                start_ms, stop_ms = int(etb.time_interval.start), int(etb.time_interval.stop)
                blocks.append((start_ms, stop_ms))
                for delayed, lists in ((False, etb.prompt_events), (True, etb.delayed_events)):
                    if not lists:
                        continue
                    events = lists[0][0]
                    if not events:
                        continue
                    arr = np.asarray([(e.detection_bins[0], e.detection_bins[1], e.tof_idx) for e in events], np.int64)
                    columns["a"].append(arr[:, 0])
                    columns["b"].append(arr[:, 1])
                    columns["tof"].append(arr[:, 2])
                    columns["time"].append(np.full(len(arr), start_ms / 1000.0))
                    columns["delayed"].append(np.full(len(arr), delayed))
    except EOFError:
        raise PETSIRDError(f"{p} is a truncated PETSIRD file (it ends inside its events)") from None
    except RuntimeError as exc:
        raise PETSIRDError(f"{p}: not a readable PETSIRD file ({str(exc).splitlines()[0] if str(exc) else exc!r})") from None
    for kind, count in skipped.items():
        logger.info("%s: %d %s time blocks ignored", p, count, kind)
    if not blocks:
        raise PETSIRDError(f"{p}: no event time blocks")
    cat = {k: (np.concatenate(v) if v else np.zeros(0, np.int64)) for k, v in columns.items()}
    n_bins = lut.size * n_energy
    for key, what in (("a", "first"), ("b", "second")):
        if cat[key].size and int(cat[key].max()) >= n_bins:
            raise PETSIRDError(f"{p}: {what} detection bin {int(cat[key].max())} out of range for the scanner's "
                               f"{n_bins} detection bins")
    if cat["tof"].size and int(cat["tof"].max()) >= scanner.n_tof_bins:
        raise PETSIRDError(f"{p}: TOF index {int(cat['tof'].max())} out of range: the scanner has "
                           f"{scanner.n_tof_bins} TOF bin(s)")
    duration_s = max(stop for _, stop in blocks) / 1000.0
    if not duration_s > 0:
        raise PETSIRDError(f"{p}: the event time blocks span no time (last stop {duration_s} s)")
    delayed = cat["delayed"].astype(bool)
    events = ListModeEvents(
        scanner.name, lut[cat["a"] // n_energy].astype(np.int32), lut[cat["b"] // n_energy].astype(np.int32),
        cat["time"].astype(np.float64), duration_s,
        tof_bin=cat["tof"].astype(np.int16) if scanner.has_tof else None,
        delayed=delayed if delayed.any() else None)
    records = _exam_records(header, str(p), header.scanner.model_name or "")
    logger.info("%s: %d prompts, %d delayed on %s (%d rings x %d crystals, %d TOF bins)", p,
                int((~delayed).sum()), int(delayed.sum()), scanner.name, scanner.n_rings, scanner.crystals_per_ring,
                scanner.n_tof_bins)
    return ListModeAcquisition(scanner, events, time_blocks_s=np.asarray(blocks, np.float64) / 1000.0, **records)
