"""``recon batch``: a manifest of small simulated studies on a 2-worker Dask cluster equals single
``recon spect`` runs bit for bit; one broken study fails alone; --resume redoes only unfinished studies;
a bad manifest is refused before any compute; the sequential path gives the same results."""
from __future__ import annotations

import csv
import dataclasses
import json
import logging
import shutil
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from recon.batch import ManifestError, read_manifest
from recon.batch import runner as batch_runner
from recon.cli import main as recon_main
from recon.data import ImageGrid, Volume
from recon.data.study import AcquisitionInfo, DoseInfo, PatientInfo
from recon.io.hdf5 import read_volume, write_projections
from recon.spect.simulate import AcquisitionProtocol, simulate_spect

N, VIEWS, PIXEL = 16, 16, 8.0
START = datetime(2026, 11, 25, 11, 0, 0)
INJECTION = datetime(2026, 11, 25, 8, 0, 0)
# per good study: manifest options, and the same as recon spect flags
OPTIONS = [
    ({"iterations": "2", "subsets": "4", "scatter": "none", "psf": "no"}, ["--iterations", "2", "--subsets", "4", "--scatter", "none", "--no-psf"]),
    ({"iterations": "2", "subsets": "4", "scatter": "tew", "psf": "yes"}, ["--iterations", "2", "--subsets", "4", "--scatter", "tew"]),
    ({"iterations": "1", "subsets": "8", "scatter": "dew", "psf": "no"}, ["--iterations", "1", "--subsets", "8", "--scatter", "dew", "--no-psf"]),
    ({"iterations": "2", "subsets": "2", "scatter": "none", "attenuation": "no"}, ["--iterations", "2", "--subsets", "2", "--scatter", "none", "--no-attenuation"]),
    ({"iterations": "2", "subsets": "4", "scatter": "none", "psf": "no", "weight_kg": "80"}, ["--iterations", "2", "--subsets", "4", "--scatter", "none", "--no-psf"]),
]
CALIBRATION = "91.0"
FIELDS = ["id", "input", "task", "iterations", "subsets", "scatter", "psf", "attenuation", "device", "calibration",
          "weight_kg"]


def _study(path: Path, seed: int) -> Path:
    """A tiny simulated study (N^3, 8 mm voxels, VIEWS views) with a hot lesion, patient and dose data."""
    grid = ImageGrid.centered((N, N, N), (PIXEL,) * 3)
    zz, yy, xx = np.indices(grid.shape) - (N - 1) / 2
    body = (yy**2 + xx**2 <= 6.5**2).astype(np.float32)
    rng = np.random.default_rng(seed)
    lesion = ((zz - rng.integers(-3, 4)) ** 2 + (yy - 2) ** 2 + (xx + 1) ** 2 <= 2.0**2) * 6.0
    activity = Volume((body * (1.0 + lesion) * 5e3).astype(np.float32), grid, "Bq/mL")
    mu = Volume(body * 0.0154, grid, "1/mm")
    acq = simulate_spect(activity, mu, AcquisitionProtocol(n_views=VIEWS, radius_mm=90.0), rng=rng, device="cpu")
    acq = dataclasses.replace(acq, info=AcquisitionInfo(start_time=START), patient=PatientInfo(weight_kg=70.0),
                              dose=DoseInfo("Tc-99m", 350e6, INJECTION))
    write_projections(acq, path, mu_map=mu)
    return path


def _write_manifest(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def studies(tmp_path_factory) -> tuple[Path, list[dict[str, str]]]:
    """Six studies: five good ones and a corrupt file (s3), with a CSV manifest listing them."""
    d = tmp_path_factory.mktemp("batch_inputs")
    rows = []
    for i in range(6):
        sid = f"s{i}"
        if i == 3:
            (d / "s3.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"truncated" * 10)  # HDF5 signature, no file
            rows.append({"id": sid, "input": "s3.h5", "device": "cpu", "calibration": CALIBRATION})
            continue
        _study(d / f"{sid}.h5", seed=i)
        opts = OPTIONS[i if i < 3 else i - 1][0]
        rows.append({"id": sid, "input": f"{sid}.h5", "task": "spect", "device": "cpu", "calibration": CALIBRATION,
                     **opts})
    return _write_manifest(d / "manifest.csv", rows), rows


@pytest.fixture(scope="module")
def dask_batch(studies, tmp_path_factory) -> tuple[Path, int]:
    """The batch run once on a LocalCluster of 2 worker processes, 1 thread each."""
    pytest.importorskip("distributed")
    manifest, _ = studies
    out = tmp_path_factory.mktemp("batch_out") / "out"
    rc = recon_main(["-q", "batch", str(manifest), "-o", str(out), "--workers", "2", "--threads-per-worker", "1"])
    return out, rc


def _summary(out: Path) -> dict[str, dict]:
    return {s["id"]: s for s in json.loads((out / "summary.json").read_text())["studies"]}


def test_dask_batch_equals_single_runs_and_records_the_broken_study(studies, dask_batch, tmp_path: Path) -> None:
    manifest, rows = studies
    out, rc = dask_batch
    assert rc == 1  # one study failed
    summary = _summary(out)
    assert list(summary) == [f"s{i}" for i in range(6)]
    assert summary["s3"]["status"] == "failed" and summary["s3"]["error"]
    assert not (out / "s3" / "recon.h5").exists()
    with (out / "summary.csv").open() as fh:
        table = {r["id"]: r for r in csv.DictReader(fh)}
    assert table["s3"]["status"] == "failed" and table["s3"]["error"] == summary["s3"]["error"]
    workers = {summary[f"s{i}"]["worker"] for i in (0, 1, 2, 4, 5)}
    assert len(workers) == 2, workers  # both worker processes took studies
    for i, flags in zip((0, 1, 2, 4, 5), [o[1] for o in OPTIONS]):
        sid = f"s{i}"
        rec = summary[sid]
        assert rec["status"] == "ok", rec
        assert rec["device"] == "cpu" and rec["wall_s"] > 0 and rec["n_lesions"] >= 1
        single = tmp_path / f"{sid}.h5"
        assert recon_main(["-q", "spect", str(manifest.parent / f"{sid}.h5"), "-o", str(single), "--device", "cpu",
                           "--calibration", CALIBRATION, *flags]) == 0
        batch_vol, single_vol = read_volume(out / sid / "recon.h5"), read_volume(single)
        assert batch_vol.unit == single_vol.unit == "Bq/mL"
        assert np.array_equal(batch_vol.data, single_vol.data), sid
        assert batch_vol.grid == single_vol.grid
        batch_suv = read_volume(out / sid / "recon_suvbw.h5").data
        single_suv = read_volume(tmp_path / f"{sid}_suvbw.h5").data
        if sid == "s5":  # weight overridden 70 -> 80 kg: SUV scales with the weight
            np.testing.assert_allclose(batch_suv, single_suv * (80.0 / 70.0), rtol=1e-5)
        else:
            assert np.array_equal(batch_suv, single_suv), sid
        report = json.loads((out / sid / "report.json").read_text())
        assert report["voi"]["max"] == pytest.approx(float(batch_suv.max()), rel=1e-6)
        assert rec["suv_max"] == pytest.approx(report["voi"]["max"])
        assert json.loads((out / sid / "study.json").read_text())["status"] == "ok"


def test_resume_finishes_only_unfinished_studies(studies, dask_batch, tmp_path: Path) -> None:
    manifest, _ = studies
    src, _ = dask_batch
    out = tmp_path / "out"
    shutil.copytree(src, out)  # copy2 keeps mtimes
    # interrupted while writing s2: its volume is there, its SUV map and completion record are not
    (out / "s2" / "study.json").unlink()
    (out / "s2" / "recon_suvbw.h5").unlink()
    (out / "s2" / "report.json").unlink()
    kept = {sid: (out / sid / "recon.h5").stat().st_mtime_ns for sid in ("s0", "s1", "s4", "s5")}
    markers = {sid: (out / sid / "study.json").read_bytes() for sid in kept}
    # without --resume the batch refuses to touch earlier outputs, before any compute
    assert recon_main(["-q", "batch", str(manifest), "-o", str(out), "--workers", "0"]) == 2
    assert not (out / "s2" / "study.json").exists()
    assert recon_main(["-q", "batch", str(manifest), "-o", str(out), "--workers", "0", "--resume"]) == 1
    summary = _summary(out)
    assert summary["s2"]["status"] == "ok" and not summary["s2"]["reused"]
    assert summary["s3"]["status"] == "failed" and not summary["s3"]["reused"]  # failed studies are retried
    for sid, mtime in kept.items():
        assert (out / sid / "recon.h5").stat().st_mtime_ns == mtime, sid
        assert (out / sid / "study.json").read_bytes() == markers[sid]
        assert summary[sid]["reused"] and summary[sid]["status"] == "ok"
    assert np.array_equal(read_volume(out / "s2" / "recon.h5").data, read_volume(src / "s2" / "recon.h5").data)
    assert np.array_equal(read_volume(out / "s2" / "recon_suvbw.h5").data,
                          read_volume(src / "s2" / "recon_suvbw.h5").data)


def test_sequential_fallback_without_dask(studies, dask_batch, tmp_path: Path, monkeypatch, caplog) -> None:
    manifest, rows = studies
    src, _ = dask_batch
    small = _write_manifest(manifest.parent / "two.csv", [rows[0], rows[3]])
    monkeypatch.setattr(batch_runner, "dask_available", lambda: False)
    out = tmp_path / "seq"
    with caplog.at_level(logging.WARNING, logger="recon.batch"):
        assert recon_main(["-q", "batch", str(small), "-o", str(out), "--json", str(tmp_path / "s.json")]) == 1
    assert "pip install 'recon[distributed]'" in caplog.text
    assert np.array_equal(read_volume(out / "s0" / "recon.h5").data, read_volume(src / "s0" / "recon.h5").data)
    assert json.loads((tmp_path / "s.json").read_text())["counts"] == {"studies": 2, "ok": 1, "failed": 1,
                                                                        "reused": 0}
    # an suv task reads the batch's SUV map as recon suv does
    suv_manifest = _write_manifest(tmp_path / "suv.csv", [{"id": "q0", "task": "suv",
                                                           "input": str(src / "s0" / "recon_suvbw.h5")}])
    assert recon_main(["-q", "batch", str(suv_manifest), "-o", str(tmp_path / "suv"), "--workers", "0"]) == 0
    assert _summary(tmp_path / "suv")["q0"]["suv_max"] == pytest.approx(_summary(src)["s0"]["suv_max"])
    # --resume redoes a study whose manifest row changed since it ran, and keeps it when unchanged
    report = tmp_path / "suv" / "q0" / "report.json"
    before = report.read_text()
    assert recon_main(["-q", "batch", str(suv_manifest), "-o", str(tmp_path / "suv"), "--workers", "0",
                       "--resume"]) == 0
    assert report.read_text() == before and _summary(tmp_path / "suv")["q0"]["reused"]
    with suv_manifest.open("w", newline="") as fh:
        fh.write("id,input,task,threshold\n" f"q0,{src / 's0' / 'recon_suvbw.h5'},suv,1.5\n")
    assert recon_main(["-q", "batch", str(suv_manifest), "-o", str(tmp_path / "suv"), "--workers", "0",
                       "--resume"]) == 0
    redone = json.loads(report.read_text())
    assert not _summary(tmp_path / "suv")["q0"]["reused"] and redone["lesions"]["method"] == "SUV >= 1.5"


def test_bad_manifest_is_refused_before_any_compute(studies, tmp_path: Path, capsys) -> None:
    manifest, _ = studies
    good = str(manifest.parent / "s0.h5")
    bad = _write_manifest(tmp_path / "bad.csv", [
        {"id": "a", "input": good, "task": "recon"},
        {"id": "b", "input": str(tmp_path / "missing.h5")},
        {"id": "a", "input": good},
        {"id": "c", "input": good, "iterations": "four"},
        {"id": "d", "input": good, "task": "pet"},
        {"id": "e/x", "input": good, "calibration": "-3"},
        {"id": "summary.csv", "input": good},
    ])
    with pytest.raises(ManifestError) as err:
        read_manifest(bad)
    problems = err.value.problems
    expected = ["row 2, column task: unknown task 'recon'", "row 3, column input:", "row 4, column id: duplicate id 'a'",
                "row 5, column iterations: 'four'", "row 6, column task: 'pet' is not supported yet",
                "row 7, column id:", "row 7, column calibration: '-3'", "row 8, column id: 'summary.csv' is reserved"]
    for line in expected:
        assert any(p.startswith(line) for p in problems), (line, problems)
    assert len(problems) == len(expected)
    out = tmp_path / "out"
    assert recon_main(["-q", "batch", str(bad), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("recon batch: error: ") and "row 5, column iterations" in err and not out.exists()
    header = tmp_path / "header.csv"
    header.write_text("id,input,colour\nx,s0.h5,red\n")
    with pytest.raises(ManifestError, match="row 1, column colour: unknown column"):
        read_manifest(header)


def test_directory_manifest_lists_projection_files(studies) -> None:
    manifest, _ = studies
    specs = read_manifest(manifest.parent)
    assert [s.id for s in specs] == [f"s{i}" for i in range(6)]
    assert all(s.task == "spect" and s.input.parent == manifest.parent for s in specs)


def test_cluster_sizing_fills_the_cores() -> None:
    from recon.batch.runner import ClusterOptions, local_sizing

    assert local_sizing(16, ClusterOptions(), cores=8) == (8, 1)
    assert local_sizing(2, ClusterOptions(), cores=8) == (2, 4)
    assert local_sizing(16, ClusterOptions(threads_per_worker=4), cores=16) == (4, 4)
    assert local_sizing(16, ClusterOptions(workers=2), cores=16) == (2, 8)
    with pytest.raises(ValueError, match="--workers"):
        ClusterOptions(workers=-1)


def test_gpus_without_a_gpu_is_a_one_line_usage_error(studies, tmp_path: Path, monkeypatch, capsys) -> None:
    import recon.backend

    manifest, _ = studies
    monkeypatch.setattr(batch_runner, "dask_available", lambda: True)
    monkeypatch.setattr(recon.backend, "visible_gpus", lambda: [])
    out = tmp_path / "out"
    assert recon_main(["-q", "batch", str(manifest), "-o", str(out), "--gpus"]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("recon batch: error: --gpus: no CUDA GPU"), errors
    assert not out.exists()


def test_gpu_worker_plan_pins_one_gpu_per_worker() -> None:
    from recon.batch.cluster import NO_GPU, gpu_worker_environs

    plan = gpu_worker_environs(["0", "1", "2"], cores=12)
    assert [e["CUDA_VISIBLE_DEVICES"] for e in plan] == ["0,1,2", "1,2,0", "2,0,1"]  # own GPU first
    assert all(e["NUMBA_NUM_THREADS"] == e["OMP_NUM_THREADS"] == "4" for e in plan)  # 3 workers x 4 = 12 cores
    uuids = gpu_worker_environs(["GPU-a1", "GPU-b2"], threads=2, cores=64)
    assert [e["CUDA_VISIBLE_DEVICES"] for e in uuids] == ["GPU-a1,GPU-b2", "GPU-b2,GPU-a1"]
    assert uuids[0]["NUMBA_NUM_THREADS"] == "2"
    with pytest.raises(RuntimeError, match="no CUDA GPU"):
        gpu_worker_environs([])
    assert "\n" not in NO_GPU


def test_gpu_workers_without_dask_cuda_are_pinned_processes(monkeypatch) -> None:
    """Without dask-cuda, --gpus starts one Nanny per GPU with its CUDA_VISIBLE_DEVICES (checked with fake
    device ids, no GPU needed); like every local worker, without Dask's MALLOC_TRIM_THRESHOLD_."""
    import os
    import sys

    distributed = pytest.importorskip("distributed")
    from recon.batch import cluster

    monkeypatch.setitem(sys.modules, "dask_cuda", None)  # import dask_cuda -> ImportError
    monkeypatch.setattr(cluster, "_STARTUP_ENV", {"MALLOC_TRIM_THRESHOLD_": None})
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")  # as an earlier cluster's nanny leaves it here
    keys = ("CUDA_VISIBLE_DEVICES", "NUMBA_NUM_THREADS", "MALLOC_TRIM_THRESHOLD_")
    with cluster.loop_like_workers():
        spec_cluster = cluster._gpu_cluster(["0", "1"], threads=1)
    with spec_cluster, distributed.Client(spec_cluster) as client:
        seen = client.run(lambda: tuple(os.environ.get(k) for k in keys))
    assert sorted(seen.values()) == [("0,1", "1", None), ("1,0", "1", None)]


def test_a_rerun_replaces_the_partial_outputs_of_an_interrupted_attempt(studies, dask_batch, tmp_path: Path) -> None:
    """A Dask retry after a worker died finds that attempt's leftovers: a volume without its record and a
    writer's .partial file. The rerun replaces them; a rerun of a finished study keeps its record."""
    from recon.batch import run_study
    from recon.batch.study import MARKER

    manifest, _ = studies
    src, _ = dask_batch
    spec = read_manifest(manifest)[0]
    d = tmp_path / spec.id
    d.mkdir()
    (d / "recon.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"half" * 100)
    (d / ".recon_suvbw.h5.x1y2.partial").write_bytes(b"half")
    (d / ".dicom.k3.partial").mkdir()
    result = run_study(spec, tmp_path, 1)
    assert result.status == "ok", result.error
    assert sorted(e.name for e in d.iterdir()) == ["recon.h5", "recon_suvbw.h5", "report.json", "study.json"]
    assert np.array_equal(read_volume(d / "recon.h5").data, read_volume(src / spec.id / "recon.h5").data)
    record, mtime = (d / MARKER).read_bytes(), (d / "recon.h5").stat().st_mtime_ns
    again = run_study(spec, tmp_path, 1)
    assert again.status == "ok" and (d / MARKER).read_bytes() == record
    assert (d / "recon.h5").stat().st_mtime_ns == mtime


def test_relative_manifest_paths_are_made_absolute(studies, tmp_path: Path, monkeypatch) -> None:
    """Tasks sent to a remote scheduler carry absolute paths: the manifest's own are taken from its folder."""
    from recon.batch.runner import absolute_spec

    manifest, _ = studies
    monkeypatch.chdir(manifest.parent)
    for specs in (read_manifest(Path(manifest.name)), read_manifest(Path("."))):
        assert all(s.input.is_absolute() and s.input.parent == manifest.parent for s in specs)
    spec = read_manifest(manifest)[0]
    monkeypatch.chdir(tmp_path)
    moved = absolute_spec(dataclasses.replace(spec, input=Path("sub/x.h5"), ct=Path("ct")))
    assert moved.input == tmp_path / "sub" / "x.h5" and moved.ct == tmp_path / "ct"
    assert absolute_spec(spec) is spec


def test_existing_scheduler_runs_the_batch(studies, dask_batch, tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    manifest, rows = studies
    src, _ = dask_batch
    small = _write_manifest(tmp_path / "two.csv", [{**rows[1], "input": str(manifest.parent / "s1.h5")}, rows[3] | {
        "input": str(manifest.parent / "s3.h5")}])
    out = tmp_path / "out"
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster:
        assert recon_main(["-q", "batch", str(small), "-o", str(out), "--scheduler", cluster.scheduler_address]) == 1
    summary = _summary(out)
    assert summary["s1"]["status"] == "ok" and summary["s3"]["status"] == "failed"
    assert np.array_equal(read_volume(out / "s1" / "recon.h5").data, read_volume(src / "s1" / "recon.h5").data)


def test_manifest_row_with_more_cells_than_the_header_is_refused(tmp_path: Path) -> None:
    """A stray comma would shift the dose into the weight column: the row is refused, naming it."""
    (tmp_path / "a.h5").write_bytes(b"")
    manifest = tmp_path / "m.csv"
    manifest.write_text("id,input,weight_kg,dose_mbq\np1,a.h5,70,500\np2,a.h5,,70,500\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=r"row 3: 1 more cell"):
        read_manifest(manifest)


def test_a_study_run_on_cuda_for_an_auto_row_counts_as_complete(tmp_path: Path) -> None:
    """--gpus runs device=auto rows on cuda; --resume must not redo them because the record says cuda."""
    from recon.batch.study import MARKER, is_complete, study_dir

    (tmp_path / "a.h5").write_bytes(b"")
    manifest = _write_manifest(tmp_path / "m.csv", [{"id": "p1", "input": "a.h5"}])
    spec = read_manifest(manifest)[0]
    d = study_dir(tmp_path, spec.id)
    d.mkdir(parents=True)
    (d / "recon.h5").write_bytes(b"x")
    record = {"id": spec.id, "task": "spect", "status": "ok", "outputs": ["recon.h5"],
              "spec": {**spec.to_dict(), "device": "cuda"}}
    (d / MARKER).write_text(json.dumps(record), encoding="utf-8")
    assert is_complete(tmp_path, spec)
    changed = dataclasses.replace(spec, iterations=spec.iterations + 1)
    assert not is_complete(tmp_path, changed)
