"""Which studies run, which are reused (``--resume``) and which earlier outputs are cleared, decided
before any compute; outputs are never replaced without ``--resume`` (unfinished studies only) or
``--overwrite`` (everything)."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from recon.batch.manifest import StudySpec
from recon.batch.study import OUTPUT_NAMES, StudyResult, clear_study, is_complete, read_marker, study_dir


@dataclass(frozen=True)
class BatchPlan:
    """Studies to run, results reused from finished studies, and study folders to clear first."""

    run: list[StudySpec]
    reused: list[StudyResult]
    clear: list[str]

    def apply(self, outdir: Path) -> None:
        """Clear the folders of the studies that will be redone (their completion record goes first)."""
        for spec_id in self.clear:
            clear_study(outdir, spec_id)


def _has_outputs(outdir: Path, spec_id: str) -> bool:
    d = study_dir(outdir, spec_id)
    return d.is_dir() and any(e.name in OUTPUT_NAMES or ".partial" in e.name for e in d.iterdir())


def plan_batch(specs: list[StudySpec], outdir: Path, resume: bool = False, overwrite: bool = False) -> BatchPlan:
    """The plan for ``specs`` in ``outdir``; raises FileExistsError (one line per study) when earlier
    outputs exist and neither ``resume`` nor ``overwrite`` allows replacing them."""
    if resume and overwrite:
        raise ValueError("--resume keeps finished studies and --overwrite redoes them: pass one of them")
    run: list[StudySpec] = []
    reused: list[StudyResult] = []
    clear: list[str] = []
    conflicts: list[str] = []
    for spec in specs:
        if resume and is_complete(outdir, spec):
            rec = read_marker(outdir, spec.id)
            assert rec is not None
            reused.append(replace(rec, reused=True))
            continue
        if _has_outputs(outdir, spec.id):
            if resume or overwrite:
                clear.append(spec.id)
            else:
                conflicts.append(f"study {spec.id}: {study_dir(outdir, spec.id)} holds earlier outputs")
        run.append(spec)
    summary = [outdir / n for n in ("summary.csv", "summary.json") if (outdir / n).exists()]
    if summary and not (resume or overwrite):
        conflicts.append(f"{summary[0]} exists")
    if conflicts:
        raise FileExistsError("refusing to overwrite earlier batch outputs (pass --resume to finish the batch, "
                              "--overwrite to redo it):\n" + "\n".join(conflicts))
    return BatchPlan(run, reused, clear)
