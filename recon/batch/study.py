"""One study of a batch, as a plain function: ``run_study(spec, outdir) -> StudyResult``.

A ``spect`` study runs the very code of ``recon spect`` (:func:`recon.commands.spect.run`, with the
row's patient/dose overrides applied to the loaded acquisition), so its volume equals a single run
bit for bit; a ``suv`` study reads an SUV map or series as ``recon suv`` does. Outputs go to
``OUTDIR/<id>/``; the completion record ``study.json`` is written last, atomically, so a study
without it never looks finished.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import socket
import time
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from recon.batch.manifest import StudySpec
from recon.batch.report import key_quantities, suv_report
from recon.io.atomic import write_text_atomic

logger = logging.getLogger(__name__)

MARKER = "study.json"
VOLUME = "recon.h5"
SUV_MAP = "recon_suvbw.h5"
REPORT = "report.json"
NIFTI = "recon.nii.gz"
DICOM_DIR = "dicom"
OUTPUT_NAMES = (VOLUME, SUV_MAP, REPORT, NIFTI, DICOM_DIR, MARKER)


@dataclass
class StudyResult:
    """What one study did: status (ok, failed, skipped), error, timings (s: ``wall_s`` the whole study in
    its worker, ``compute_s`` reconstruction and report), device and key quantities (SUV, whole image)."""

    id: str
    task: str
    status: str
    error: str = ""
    input: str = ""
    device: str = ""
    worker: str = ""
    started_utc: str = ""
    wall_s: float = 0.0
    compute_s: float = 0.0
    suv_max: float | None = None
    suv_peak: float | None = None
    suv_mean: float | None = None
    n_lesions: int | None = None
    unit: str = ""
    outputs: list[str] = field(default_factory=list)
    reused: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StudyResult:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def study_dir(outdir: Path, spec_id: str) -> Path:
    return Path(outdir) / spec_id


def read_marker(outdir: Path, spec_id: str) -> StudyResult | None:
    """The completion record of a study, or None when absent or unreadable."""
    path = study_dir(outdir, spec_id) / MARKER
    try:
        return StudyResult.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


def is_complete(outdir: Path, spec: StudySpec) -> bool:
    """True when the study finished successfully with the same manifest row (options, inputs) and every
    output its record names exists."""
    rec = read_marker(outdir, spec.id)
    if rec is None or rec.status != "ok":
        return False
    try:
        same_spec = json.loads((study_dir(outdir, spec.id) / MARKER).read_text(encoding="utf-8")).get("spec")
    except (OSError, ValueError):
        return False
    wanted = spec.to_dict()
    if isinstance(same_spec, dict) and wanted.get("device") == "auto":
        # "auto" lets the runner choose (--gpus runs such rows on "cuda"): any device it chose is the same row
        same_spec = {**same_spec, "device": "auto"}
    if same_spec != wanted:
        logger.info("study %s: the manifest row changed since it ran; it is redone", spec.id)
        return False
    return all((study_dir(outdir, spec.id) / name).exists() for name in rec.outputs)


def clear_study(outdir: Path, spec_id: str) -> None:
    """Remove what a previous attempt of this study wrote (our output names and partial files only)."""
    d = study_dir(outdir, spec_id)
    if not d.is_dir():
        return
    marker = d / MARKER
    if marker.exists():
        marker.unlink()  # first: from here on the study no longer looks finished
    for entry in d.iterdir():
        if entry.name in OUTPUT_NAMES or ".partial" in entry.name:
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


def _spect_args(spec: StudySpec, d: Path) -> argparse.Namespace:
    """The ``recon spect`` arguments of this study, parsed by the command's own parser (same defaults)."""
    from recon.commands import spect  # noqa: PLC0415

    argv = [str(spec.input), "-o", str(d / VOLUME), "--iterations", str(spec.iterations),
            "--subsets", str(spec.subsets), "--scatter", spec.scatter, "--device", spec.device]
    argv += [] if spec.attenuation else ["--no-attenuation"]
    argv += [] if spec.psf else ["--no-psf"]
    for flag, value in (("--ct", spec.ct), ("--collimator", spec.collimator)):
        if value is not None:
            argv += [flag, str(value)]
    if spec.calibration is not None:
        argv += ["--calibration", repr(spec.calibration)]
    if spec.reference_time is not None:
        argv += ["--reference-time", spec.reference_time.isoformat()]
    if spec.dicom:
        argv += ["--dicom-out", str(d / DICOM_DIR)]
    if spec.nifti:
        argv += ["--nifti-out", str(d / NIFTI)]
    parser = argparse.ArgumentParser(prog="recon", exit_on_error=False)
    spect.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["spect", *argv])
    args.quiet, args.verbose = True, False  # the batch shows one bar over studies, not one per study
    return args


def _apply_overrides(spec: StudySpec, acq: Any) -> Any:
    """The acquisition with the row's patient and dose overrides."""
    patient = {k: v for k, v in (("weight_kg", spec.weight_kg), ("height_m", spec.height_m), ("sex", spec.sex))
               if v is not None}
    dose: dict[str, Any] = {}
    if spec.dose_mbq is not None:
        dose["injected_activity_bq"] = spec.dose_mbq * 1e6
    if spec.injection_time is not None:
        dose["injection_time"] = spec.injection_time
    if patient:
        acq = replace(acq, patient=replace(acq.patient, **patient))
    if dose:
        acq = replace(acq, dose=replace(acq.dose, **dose))
    return acq


def _run_spect(spec: StudySpec, d: Path, result: StudyResult) -> None:
    from recon.backend import resolve_device  # noqa: PLC0415
    from recon.commands import spect  # noqa: PLC0415

    result.device = resolve_device(spec.device)
    spect.run(_spect_args(spec, d), adjust=lambda acq: _apply_overrides(spec, acq))
    result.outputs = [n for n in (VOLUME, SUV_MAP, NIFTI, DICOM_DIR) if (d / n).exists()]
    if (d / SUV_MAP).exists():
        _write_report(spec, d / SUV_MAP, d, result, argparse.Namespace())
    else:
        logger.info("%s: no SUV map (no calibration, or the input lacks weight, dose or injection time)", spec.id)


def _run_suv(spec: StudySpec, d: Path, result: StudyResult) -> None:
    result.device = "cpu"
    overrides = argparse.Namespace(weight_kg=spec.weight_kg, height_m=spec.height_m, sex=spec.sex,
                                   dose_mbq=spec.dose_mbq, suv_type="bw", reference_time="qiba")
    _write_report(spec, spec.input, d, result, overrides)


def _write_report(spec: StudySpec, suv_path: Path, d: Path, result: StudyResult, args: argparse.Namespace) -> None:
    from recon.commands.suv import load_suv_volume  # noqa: PLC0415
    from recon.io.hdf5 import json_default  # noqa: PLC0415

    suv_vol, conversion, info = load_suv_volume(Path(suv_path), args)
    report = suv_report(suv_vol, conversion, info, spec.threshold, spec.percent)
    write_text_atomic(d / REPORT, json.dumps(report, indent=2, default=json_default))
    result.outputs.append(REPORT)
    for key, value in key_quantities(report).items():
        setattr(result, key, value)


def set_numba_threads(n: int | None) -> None:
    """Numba's thread count for this process (clamped to what Numba was started with)."""
    if not n:
        return
    import numba  # noqa: PLC0415

    numba.set_num_threads(max(1, min(int(n), numba.config.NUMBA_NUM_THREADS)))


def run_study(spec: StudySpec, outdir: str | os.PathLike[str], numba_threads: int | None = None) -> StudyResult:
    """Run one study into ``outdir/<id>/`` and write its completion record last; never raises for a
    bad study (the error is in the result).

    Safe to rerun, as Dask does when a worker dies mid-study: a record of this very study (same row)
    that finished is returned as it is; anything else in the folder under our output names (a volume
    without its record, a ``.partial`` file of a killed writer, a failed attempt's record) is the
    leftover of an earlier attempt and is removed first. Earlier batches' outputs never get here: the
    batch plan refuses them or clears them before any task runs."""
    set_numba_threads(numba_threads)
    outdir = Path(outdir)
    d = study_dir(outdir, spec.id)
    if is_complete(outdir, spec):
        done = read_marker(outdir, spec.id)
        if done is not None:
            logger.info("study %s: an earlier attempt finished it; its record is kept", spec.id)
            return done
    result = StudyResult(id=spec.id, task=spec.task, status="failed", input=str(spec.input),
                         worker=f"{socket.gethostname()}:{os.getpid()}",
                         started_utc=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    t0 = time.perf_counter()
    try:
        d.mkdir(parents=True, exist_ok=True)
        leftovers = sorted(e.name for e in d.iterdir() if e.name in OUTPUT_NAMES or ".partial" in e.name)
        if leftovers:
            logger.warning("study %s: removing the leftovers of an interrupted attempt (%s)", spec.id,
                           ", ".join(leftovers))
            clear_study(outdir, spec.id)
        runner = {"spect": _run_spect, "suv": _run_suv}[spec.task]
        t1 = time.perf_counter()
        runner(spec, d, result)
        result.compute_s = round(time.perf_counter() - t1, 3)
        result.status = "ok"
    except Exception as exc:  # noqa: BLE001 - one bad study never stops the batch
        result.error = f"{type(exc).__name__}: {exc}".splitlines()[0]
        logger.error("study %s failed: %s", spec.id, result.error)
        logger.debug("study %s traceback", spec.id, exc_info=True)
    result.wall_s = round(time.perf_counter() - t0, 3)
    try:
        record = {**result.to_dict(), "spec": spec.to_dict()}
        write_text_atomic(d / MARKER, json.dumps(record, indent=2), overwrite=True)
    except OSError as exc:
        result.status, result.error = "failed", f"completion record not written: {exc}"
    return result
