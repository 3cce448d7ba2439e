"""``recon pet`` end to end: a simulated uniform cylinder (small_test scanner, tiny grid) written as our
HDF5 sinogram and list-mode files, reconstructed by the command line, calibrated with the factor the
simulation implies analytically, and bad input refused in one line (exit 2) with no output written.

The analytic calibration factor. The simulator's expected trues are
``t_i = kappa * p_beta * T * D(T) * n_i * (attenuated line integral of c)`` (recon/pet/simulate.py),
and the reconstruction models ``y_i = n_i * a_i * (line integral of x)`` with x in counts per voxel,
so ``x = kappa * p_beta * T * D(T) * c`` and the chain ``c = x / T * F / V_voxel / D(T)`` gives
``F = V_voxel (mL) / (kappa * p_beta)`` (Bq per cps). ``test_analytic_calibration_factor`` checks
that relation on noise-free data before the command-line tests rely on it.
"""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from recon.cli import main as recon_main
from recon.data.grid import ImageGrid, Volume
from recon.data.pet import ListModeAcquisition, PETSinogram, ScannerPlacement, SinogramCorrections
from recon.data.pet_presets import get_pet_scanner
from recon.data.pet_sinogram import SinogramLayout
from recon.data.study import AcquisitionInfo, DoseInfo, PatientInfo
from recon.io.hdf5 import read_volume, write_pet_listmode, write_pet_sinogram, write_volume
from recon.pet.reconstruct import PETReconOptions, reconstruct_pet
from recon.pet.simulate import PETSimulation, PETSimulationProtocol, events_from_sinogram, simulate_pet
from recon.phantoms.library import uniform_cylinder

TRUE_BQ_ML = 5000.0
RADIUS_MM = 60.0
GRID = ImageGrid.centered((8, 40, 40), (4.0, 4.0, 4.0))  # the small_test scanner's 32 mm axial FOV
START = datetime(2026, 3, 2, 10, 0, 0)
RECON = ["--iterations", "2", "--subsets", "4", "--scatter", "none"]


def _phantom(grid: ImageGrid):
    return uniform_cylinder(grid, RADIUS_MM, 32.0, TRUE_BQ_ML, 511.0)


def _simulate(kappa: float, tof: bool, noise: bool, seed: int = 7) -> PETSimulation:
    layout = SinogramLayout.for_fov(get_pet_scanner("small_test"), 200.0, tof=tof)
    proto = PETSimulationProtocol(frame_duration_s=300.0, kappa=kappa, scatter_fraction=0.0, noise=noise)
    return simulate_pet(_phantom, GRID, layout, ScannerPlacement(), proto, np.random.default_rng(seed))


def _factor(sim: PETSimulation) -> float:
    """F = V_voxel / (kappa * p_beta), Bq per cps (module docstring)."""
    return GRID.voxel_volume_ml / (sim.protocol.kappa * sim.protocol.positron_fraction)


def _core(grid: ImageGrid) -> np.ndarray:
    """Voxels well inside the cylinder (radius < 40 mm) in the central 4 planes."""
    z, y, x = np.indices(grid.shape)
    pts = grid.index_to_mm(np.stack([z, y, x], axis=-1))
    r = np.hypot(pts[..., 0], pts[..., 1])
    return (r < 40.0) & (z >= 2) & (z < 6)


def _with_study(sino: PETSinogram) -> PETSinogram:
    return replace(sino, info=AcquisitionInfo(start_time=START),
                   patient=PatientInfo(weight_kg=70.0, height_m=1.75, sex="M"),
                   dose=DoseInfo("F-18", 250e6, START - timedelta(minutes=60), "NaF", 6586.2))


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Noisy sinogram (~8e7 counts) and a list-mode file (~1.7e5 events), the mu-map, and their F."""
    d = tmp_path_factory.mktemp("petcli")
    sim = _simulate(1.0e-5, tof=False, noise=True)
    corr = SinogramCorrections(sim.sinogram.layout, normalisation=sim.normalisation)
    sino = _with_study(sim.sinogram)
    write_pet_sinogram(sino, d / "sino.h5", corr)
    mu = _phantom(GRID).mu_map
    write_volume(mu, d / "mu.h5")
    write_volume(Volume(mu.data * 10.0, mu.grid, "1/mm"), d / "mu_per_cm.h5")  # 1/cm labelled 1/mm
    write_volume(Volume(mu.data * 0.1, mu.grid, "1/mm"), d / "mu_low.h5")  # 10 x too low: would under-correct
    tof_sim = _simulate(2.0e-8, tof=True, noise=True, seed=11)
    events = events_from_sinogram(tof_sim.sinogram.layout, tof_sim.sinogram.prompts, 300.0,
                                  np.random.default_rng(3))
    write_pet_listmode(ListModeAcquisition(tof_sim.sinogram.layout.scanner, events, info=AcquisitionInfo(start_time=START)),
                       d / "lm.h5")
    return {"dir": d, "sino": d / "sino.h5", "mu": d / "mu.h5", "mu_cm": d / "mu_per_cm.h5", "mu_low": d / "mu_low.h5", "lm": d / "lm.h5",
            "F": _factor(sim), "F_lm": _factor(tof_sim), "n_events": events.n_events}


def test_analytic_calibration_factor() -> None:
    """Noise-free data, no PSF: F = V_voxel / (kappa p_beta) gives the true concentration within 1.5 %."""
    sim = _simulate(1.0e-3, tof=False, noise=False)
    corr = SinogramCorrections(sim.sinogram.layout, normalisation=sim.normalisation)
    vol, _ = reconstruct_pet(sim.sinogram, _phantom(GRID).mu_map, corrections=corr,
                             options=PETReconOptions(3, 4, psf=False, scatter="none", progress=False))
    p = sim.protocol
    c = np.asarray(vol.data) / p.frame_duration_s * _factor(sim) / GRID.voxel_volume_ml / p.decay_during_frame
    assert float(c[_core(GRID)].mean()) == pytest.approx(TRUE_BQ_ML, rel=0.015)


def test_pet_sinogram_to_bq_ml(files: dict, tmp_path: Path) -> None:
    out = tmp_path / "r.h5"
    assert recon_main(["-q", "pet", str(files["sino"]), "-o", str(out), "--mu-map", str(files["mu"]), *RECON,
                       "--calibration", repr(files["F"])]) == 0
    vol = read_volume(out)
    assert vol.unit == "Bq/mL"
    assert vol.grid.same_as(GRID)
    assert float(vol.data[_core(GRID)].mean()) == pytest.approx(TRUE_BQ_ML, rel=0.03)
    outside = vol.data[:, :3, :]  # y < -68 mm: air outside the 60 mm cylinder
    assert float(outside.mean()) < 0.05 * TRUE_BQ_ML


def test_listmode_histogrammed_and_listmode_osem_agree(files: dict, tmp_path: Path) -> None:
    a, b = tmp_path / "hist.h5", tmp_path / "lm.h5"
    common = ["--mu-map", str(files["mu"]), *RECON, "--randoms", "none", "--no-psf",
              "--calibration", repr(files["F_lm"])]
    assert recon_main(["-q", "pet", str(files["lm"]), "-o", str(a), *common]) == 0
    assert recon_main(["-q", "pet", str(files["lm"]), "-o", str(b), "--listmode", *common]) == 0
    va, vb = read_volume(a), read_volume(b)
    core = _core(va.grid)
    ma, mb = float(va.data[core].mean()), float(vb.data[core].mean())
    assert mb == pytest.approx(ma, rel=0.01)
    # the images agree voxel by voxel too (same model, same subsets), within 1 % of the background
    assert float(np.abs(va.data - vb.data)[core].mean()) < 0.01 * ma
    # and both are quantitative (randoms were simulated at 15 % but not corrected: at most ~20 % high)
    assert 0.95 * TRUE_BQ_ML < ma < 1.3 * TRUE_BQ_ML


def test_dicom_out_is_read_by_recon_suv(files: dict, tmp_path: Path) -> None:
    import json  # noqa: PLC0415

    out, series, report = tmp_path / "r.h5", tmp_path / "pt", tmp_path / "suv.json"
    assert recon_main(["-q", "pet", str(files["sino"]), "-o", str(out), "--mu-map", str(files["mu"]), *RECON,
                       "--calibration", repr(files["F"]), "--dicom-out", str(series)]) == 0
    assert len(list(series.iterdir())) == GRID.shape[0]
    assert recon_main(["-q", "suv", str(series), "--json", str(report)]) == 0
    stats = json.loads(report.read_text())
    # SUVbw of the background: C / (A(t_scan) / W); the series is decay-corrected to the frame start
    a_scan = 250e6 * 0.5 ** (3600.0 / 6586.2)
    true_suv = TRUE_BQ_ML / (a_scan / 70e3)
    vol = read_volume(out)
    measured_max = float(vol.data.max()) / (a_scan / 70e3)
    assert stats["voi"]["max"] == pytest.approx(measured_max, rel=0.02)
    assert 0.9 * true_suv < stats["voi"]["max"] < 1.6 * true_suv


def _refused(args: list[str], capsys: pytest.CaptureFixture[str], match: str) -> None:
    """Exit 2 and exactly one stderr line ``recon pet: error: ...`` holding ``match`` (recon/cli.py prints it)."""
    capsys.readouterr()
    assert recon_main(args) == 2
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("recon pet: error: "), lines
    assert match in lines[0], lines[0]


@pytest.mark.parametrize(("extra", "match"), [
    ([], "no 511 keV mu-map"),  # attenuation on, no mu-map, no stored factors
    (["--mu-map", "MU", "--tof"], "has no TOF bins"),
    (["--mu-map", "MU", "--listmode"], "--listmode needs list-mode input"),
    (["--mu-map", "MU", "--ct", "CTDIR"], "give --mu-map or --ct, not both"),
    (["--mu-map", "MU_CM"], "not 1/cm"),
    (["--mu-map", "MU_LOW"], "not at 511 keV in 1/mm"),
])
def test_bad_input_one_line_no_output(files: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      extra: list[str], match: str) -> None:
    subst = {"MU": str(files["mu"]), "MU_CM": str(files["mu_cm"]), "MU_LOW": str(files["mu_low"]), "CTDIR": str(tmp_path)}
    out = tmp_path / "r.h5"
    _refused(["pet", str(files["sino"]), "-o", str(out), "--scatter", "none", "--iterations", "1",
              *[subst.get(a, a) for a in extra]], capsys, match)
    assert not out.exists()


def test_tof_refused_on_non_tof_listmode(files: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sc = replace(get_pet_scanner("small_test"), name="small_test_nontof", tof_fwhm_ps=0.0, tof_bin_width_ps=0.0,
                 n_tof_bins=1)
    ev = events_from_sinogram(SinogramLayout.for_fov(sc, 200.0), np.ones(SinogramLayout.for_fov(sc, 200.0).shape,
                              np.int64), 10.0, np.random.default_rng(0), scanner_name=sc.name)
    lm = write_pet_listmode(ListModeAcquisition(sc, ev), tmp_path / "nontof_lm.h5")
    out = tmp_path / "r.h5"
    _refused(["pet", str(lm), "-o", str(out), "--tof", "--mu-map", str(files["mu"]), "--scatter", "none"],
             capsys, "has no time of flight")
    assert not out.exists()


def test_spect_file_refused(files: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from recon.data import EnergyWindow, SPECTAcquisition, SPECTGeometry, get_collimator  # noqa: PLC0415
    from recon.io.hdf5 import write_projections  # noqa: PLC0415

    geo = SPECTGeometry(np.arange(4) * 90.0, 200.0, n_rows=6, n_cols=16, pixel_size_mm=6.0)
    acq = SPECTAcquisition({"peak": np.ones((4, 6, 16))}, (EnergyWindow("peak", 126.0, 154.0),), "peak", geo,
                           get_collimator("SY-LEHR"), 10.0)
    spect = write_projections(acq, tmp_path / "spect.h5")
    out = tmp_path / "r.h5"
    _refused(["pet", str(spect), "-o", str(out), "--mu-map", str(files["mu"]), "--scatter", "none"], capsys,
             "not PET data")
    assert not out.exists()


def test_existing_output_needs_overwrite(files: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.h5"
    out.write_bytes(b"keep")
    _refused(["pet", str(files["sino"]), "-o", str(out), "--mu-map", str(files["mu"]), *RECON], capsys, "exists")
    assert out.read_bytes() == b"keep"


def test_absurd_uptake_time_is_refused_not_overflowed() -> None:
    """An uptake of years (a wrong series date) is a one-line SUV error, not an OverflowError in its message."""
    from recon.quant.suv_plausibility import check_uptake_time  # noqa: PLC0415

    with pytest.raises(ValueError, match="half-lives"):
        check_uptake_time(3.0e7, 6586.2)
