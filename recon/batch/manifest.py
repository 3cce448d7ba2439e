"""The batch manifest: one row per study, validated as a whole before any compute.

A CSV with a header row (columns in :data:`COLUMNS`; only ``id`` and ``input`` are required), or a
directory scanned for studies (``*.h5`` projection files and DICOM NM ``*.dcm`` files, one study
each, task ``spect`` with the default options). Relative paths are taken from the manifest's folder and
made absolute, so that the studies can be sent to workers with another working directory.
"""
from __future__ import annotations

import csv
import io
import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

TASKS = ("spect", "suv")
PLANNED_TASKS = ("pet",)
SCATTER = ("none", "dew", "tew")
DEVICES = ("auto", "cpu", "cuda")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
RESERVED_IDS = ("summary.csv", "summary.json")
_TRUE = ("1", "yes", "true", "y", "on")
_FALSE = ("0", "no", "false", "n", "off")

# column -> what it holds (docs/batch.md lists the same)
COLUMNS: dict[str, str] = {
    "id": "study id, also the output folder name (letters, digits, . _ -)",
    "input": "spect: projections (.h5) or DICOM NM file; suv: SUV map (.h5), DICOM series dir or NM RECON file",
    "task": "spect (default) or suv",
    "ct": "spect: CT series directory for the mu-map (DICOM input)",
    "collimator": "spect: collimator preset overriding the file's",
    "iterations": "spect: OSEM iterations (default 4)",
    "subsets": "spect: OSEM subsets (default 8)",
    "scatter": "spect: none, dew or tew (default tew)",
    "attenuation": "spect: yes/no (default yes)",
    "psf": "spect: yes/no (default yes)",
    "device": "spect: auto, cpu or cuda (default auto; cuda with --gpus)",
    "calibration": "spect: system sensitivity in cps/MBq (Bq/mL and SUV outputs)",
    "reference_time": "spect: ISO time to decay-correct to (needs calibration)",
    "weight_kg": "patient weight override (kg)",
    "height_m": "patient height override (m)",
    "sex": "patient sex override (M, F, O)",
    "dose_mbq": "injected activity override (MBq)",
    "injection_time": "spect: injection time override (ISO)",
    "dicom": "spect: yes/no, also write a DICOM NM series (default no)",
    "nifti": "spect: yes/no, also write NIfTI (default no)",
    "threshold": "lesions: fixed SUV threshold (default 2.5)",
    "percent": "lesions: percent of each lesion's local max",
}


class ManifestError(ValueError):
    """A manifest with bad rows; ``problems`` holds one line per problem."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"manifest {source}: {len(problems)} problem(s):\n" + "\n".join(problems))


@dataclass(frozen=True)
class StudySpec:
    """One study of a batch: what to read, what to run and with which options (mm, s, MBq, cps/MBq)."""

    id: str
    input: Path
    task: str = "spect"
    ct: Path | None = None
    collimator: str | None = None
    iterations: int = 4
    subsets: int = 8
    scatter: str = "tew"
    attenuation: bool = True
    psf: bool = True
    device: str = "auto"
    calibration: float | None = None
    reference_time: datetime | None = None
    weight_kg: float | None = None
    height_m: float | None = None
    sex: str | None = None
    dose_mbq: float | None = None
    injection_time: datetime | None = None
    dicom: bool = False
    nifti: bool = False
    threshold: float = 2.5
    percent: float | None = None
    row: int = field(default=0, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (paths and times as strings)."""
        out: dict[str, Any] = {}
        for key in COLUMNS:
            value = getattr(self, key)
            out[key] = value.isoformat() if isinstance(value, datetime) else str(value) if isinstance(value, Path) else value
        return out


def _number(kind: type, text: str, positive: bool) -> Any:
    value = kind(text)
    if positive and not value > 0:
        raise ValueError("must be > 0")
    return value


def _bool(text: str) -> bool:
    t = text.lower()
    if t in _TRUE:
        return True
    if t in _FALSE:
        return False
    raise ValueError("must be yes or no")


def _parse_cell(key: str, text: str, base: Path) -> Any:
    """The typed value of one non-empty cell; raises ValueError with the reason."""
    if key in ("iterations", "subsets"):
        return _number(int, text, positive=True)
    if key in ("calibration", "weight_kg", "height_m", "dose_mbq", "threshold"):
        return _number(float, text, positive=True)
    if key == "percent":
        value = _number(float, text, positive=True)
        if value >= 100:
            raise ValueError("must be below 100")
        return value
    if key in ("attenuation", "psf", "dicom", "nifti"):
        return _bool(text)
    if key in ("reference_time", "injection_time"):
        return datetime.fromisoformat(text)
    if key == "scatter" and text not in SCATTER:
        raise ValueError(f"must be one of {', '.join(SCATTER)}")
    if key == "device" and text not in DEVICES:
        raise ValueError(f"must be one of {', '.join(DEVICES)}")
    if key == "sex" and text.upper() not in ("M", "F", "O"):
        raise ValueError("must be M, F or O")
    if key == "sex":
        return text.upper()
    if key in ("input", "ct"):
        path = Path(text).expanduser()
        return path if path.is_absolute() else base / path
    return text


def _row_spec(cells: dict[str, str], row: int, base: Path, problems: list[str]) -> StudySpec | None:
    """A StudySpec from one row's cells, or None after adding one line per bad cell to ``problems``."""
    values: dict[str, Any] = {"row": row}
    n_before = len(problems)
    for key, raw in cells.items():
        text = (raw or "").strip()
        if not text:
            continue
        try:
            values[key] = _parse_cell(key, text, base)
        except ValueError as exc:
            problems.append(f"row {row}, column {key}: {text!r} {str(exc) or 'is not valid'}")
    for key in ("id", "input"):
        if key not in values and not any(f"column {key}:" in p for p in problems[n_before:]):
            problems.append(f"row {row}, column {key}: missing")
    task = values.get("task", "spect")
    if task in PLANNED_TASKS:
        problems.append(f"row {row}, column task: {task!r} is not supported yet (PET reconstruction is planned)")
    elif task not in TASKS:
        problems.append(f"row {row}, column task: unknown task {task!r} (use {' or '.join(TASKS)})")
    if values.get("id") in RESERVED_IDS:
        problems.append(f"row {row}, column id: {values['id']!r} is reserved for the batch's own files")
    elif "id" in values and not _ID.match(values["id"]):
        problems.append(f"row {row}, column id: {values['id']!r} must be letters, digits, '.', '_' or '-' "
                        "(it names the output folder)")
    for key in ("input", "ct"):
        if key in values and not values[key].exists():
            problems.append(f"row {row}, column {key}: {values[key]} does not exist")
    if "reference_time" in values and "calibration" not in values:
        problems.append(f"row {row}, column reference_time: needs a calibration (cps/MBq) in the same row")
    if len(problems) > n_before:
        return None
    return StudySpec(**values)


def read_manifest(path: str | Path) -> list[StudySpec]:
    """Every study of a CSV manifest or a scanned directory; raises ManifestError listing all bad rows."""
    p = Path(path)
    if p.is_dir():
        return scan_directory(p)
    if not p.is_file():
        raise FileNotFoundError(f"manifest {p} does not exist")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"manifest {p} is not a UTF-8 CSV text file ({exc.reason} at byte {exc.start})") from None
    with io.StringIO(text, newline="") as fh:
        reader = csv.DictReader(fh)
        header = [h.strip() for h in (reader.fieldnames or [])]
        problems = [f"row 1, column {h or '(empty)'}: unknown column (known: {', '.join(COLUMNS)})"
                    for h in header if h not in COLUMNS]
        for key in ("id", "input"):
            if key not in header:
                problems.append(f"row 1, column {key}: required column missing from the header")
        if problems:
            raise ManifestError(str(p), problems)
        raw_rows = [(r, i) for i, r in enumerate(reader, start=2)
                    if any((v or "").strip() for v in r.values() if isinstance(v, str))]
        for r, i in raw_rows:
            extra = [v for v in (r.get(None) or []) if str(v).strip()]
            if extra:
                problems.append(f"row {i}: {len(extra)} more cell(s) than the header has columns ({extra}); "
                                "a stray comma shifts values into the wrong columns")
        rows = [({k.strip(): v for k, v in r.items() if k is not None}, i) for r, i in raw_rows]
    specs = []
    seen: dict[str, int] = {}
    for cells, row in rows:
        spec = _row_spec(cells, row, Path(os.path.abspath(p.parent)), problems)  # absolute: remote workers
        ident = (cells.get("id") or "").strip()
        if ident in seen:
            problems.append(f"row {row}, column id: duplicate id {ident!r} (first on row {seen[ident]})")
        elif ident:
            seen[ident] = row
        if spec is not None:
            specs.append(spec)
    if not rows:
        problems.append("row 2: the manifest lists no study")
    if problems:
        raise ManifestError(str(p), problems)
    return specs


def _is_nm_dicom(path: Path) -> bool:
    import pydicom  # noqa: PLC0415

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception:  # noqa: BLE001 - anything unreadable is not a study
        return False
    return str(ds.get("Modality", "")) == "NM"


def scan_directory(directory: Path) -> list[StudySpec]:
    """One ``spect`` study per ``*.h5`` and NM ``*.dcm`` file directly in ``directory`` (id = file stem)."""
    directory = Path(os.path.abspath(directory))  # absolute: the paths travel to remote workers
    files = sorted(directory.glob("*.h5")) + sorted(f for f in directory.glob("*.dcm") if _is_nm_dicom(f))
    problems: list[str] = []
    specs: list[StudySpec] = []
    seen: set[str] = set()
    for i, f in enumerate(files, start=1):
        ident = re.sub(r"[^A-Za-z0-9._-]", "_", f.stem)
        if ident in seen:
            problems.append(f"file {f.name}: duplicate id {ident!r} (another file has the same stem)")
            continue
        seen.add(ident)
        specs.append(StudySpec(id=ident, input=f, row=i))
    if not files:
        problems.append(f"{directory}: no *.h5 projections or NM *.dcm files found")
    if problems:
        raise ManifestError(str(directory), problems)
    return specs
