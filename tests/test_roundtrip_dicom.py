"""Simulated acquisition -> DICOM NM in each vendor layout -> read -> reconstruct -> Bq/mL equals the
known concentration in a large uniform region (within 3 %)."""
from __future__ import annotations

import numpy as np
import pytest

from recon.cli import main as recon_main
from recon.data import ImageGrid, Volume
from recon.io.dicom import read_nm, write_nm
from recon.io.hdf5 import read_volume, write_projections
from recon.quant.calibration import SPECTCalibration, calibrate
from recon.spect.reconstruct import SPECTReconOptions, reconstruct_spect
from recon.spect.simulate import AcquisitionProtocol, simulate_spect
from tests.conftest import supersampled_cylinder

CONCENTRATION = 40e3  # Bq/mL
SENSITIVITY = 91.0  # cps/MBq


@pytest.fixture(scope="module")
def study():
    n, nz, pixel = 48, 24, 6.0
    grid = ImageGrid.centered((nz, n, n), (pixel,) * 3)
    body = supersampled_cylinder((nz, n, n), (pixel,) * 3, 100.0, 55.0, n_sub=4)
    activity = Volume(body * CONCENTRATION, grid, "Bq/mL")
    mu = Volume(body * 0.01536, grid, "1/mm")
    proto = AcquisitionProtocol(n_views=60, radius_mm=150.0, sensitivity_cps_per_mbq=SENSITIVITY,
                                frame_duration_s=15.0)
    acq = simulate_spect(activity, mu, proto, rng=np.random.default_rng(3), device="cpu")
    core = supersampled_cylinder((nz, n, n), (pixel,) * 3, 70.0, 35.0, n_sub=1) > 0.99
    return acq, mu, core


@pytest.mark.parametrize("vendor", ["siemens", "ge"])
def test_dicom_nm_round_trip_quantifies_within_3_percent(tmp_path, study, vendor):
    acq, mu, core = study
    path = write_nm(acq, tmp_path / f"{vendor}.dcm", vendor=vendor)
    back = read_nm(path)
    np.testing.assert_array_equal(back.photopeak_counts, acq.photopeak_counts)
    grid = back.image_grid
    mu_on_grid = Volume(mu.data, grid, "1/mm")  # same sampling, placed where the NM file says
    recon = reconstruct_spect(back, mu_on_grid, SPECTReconOptions(4, 6, scatter="tew", device="cpu",
                                                                   progress=False))
    bqml = calibrate(recon, SPECTCalibration(SENSITIVITY, back.frame_duration_s))
    assert float(bqml.data[core].mean()) == pytest.approx(CONCENTRATION, rel=0.03)


def test_cli_spect_writes_bq_per_ml_and_never_overwrites(tmp_path, study):
    acq, mu, core = study
    src = write_projections(acq, tmp_path / "study.h5", mu_map=mu)
    out = tmp_path / "recon.h5"
    args = ["-q", "spect", str(src), "-o", str(out), "--iterations", "3", "--subsets", "6", "--device", "cpu",
            "--calibration", str(SENSITIVITY)]
    assert recon_main(args) == 0
    vol = read_volume(out)
    assert vol.unit == "Bq/mL"
    assert float(vol.data[core].mean()) == pytest.approx(CONCENTRATION, rel=0.05)
    before = out.read_bytes()
    assert recon_main(args) == 2  # exists: refused
    assert out.read_bytes() == before
    assert recon_main(["-q", "spect", str(src), "-o", str(src)]) == 2  # never onto the input
    assert recon_main(["-q", "spect", str(tmp_path / "missing.h5"), "-o", str(tmp_path / "x.h5")]) == 2


def test_cli_spect_from_dicom_nm_writes_a_dicom_series_that_reads_back(tmp_path, study):
    from recon.io.dicom import read_volume_series

    acq, mu, core = study
    nm = write_nm(acq, tmp_path / "nm.dcm", vendor="ge")
    out = tmp_path / "recon.h5"
    dicom_dir = tmp_path / "series"
    args = ["-q", "spect", str(nm), "-o", str(out), "--no-attenuation", "--iterations", "2", "--subsets", "6",
            "--device", "cpu", "--calibration", str(SENSITIVITY), "--dicom-out", str(dicom_dir)]
    assert recon_main(args) == 0
    h5 = read_volume(out)
    series = read_volume_series(dicom_dir)
    assert series.unit == "Bq/mL"
    assert series.grid.same_as(h5.grid, tol_mm=1e-3)
    slope_bound = np.abs(h5.data).max() / 65535.0  # one slope for the multi-frame file, uint16
    assert np.abs(series.data - h5.data).max() <= slope_bound * 0.5 * (1 + 1e-6) + 1e-3


def test_projections_to_suv_end_to_end(tmp_path):
    """DICOM NM with patient weight, injected dose and times -> recon spect --calibration --dicom-out ->
    recon suv: the SUVbw of a uniform cylinder equals the one the study was simulated with."""
    import json
    from datetime import datetime, timedelta

    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    from recon.data.radionuclides import get_radionuclide

    weight_kg, dose_bq, true_suv = 70.0, 740e6, 5.0
    injection = datetime(2026, 11, 25, 8, 0, 0)
    scan_start = injection + timedelta(hours=3)
    half_life = get_radionuclide("Tc-99m").half_life_s
    dose_at_scan = dose_bq * 0.5 ** (3 * 3600.0 / half_life)
    concentration = true_suv * dose_at_scan / (weight_kg * 1000.0)  # Bq/mL at the scan start

    n, nz, pixel = 40, 20, 6.0
    grid = ImageGrid.centered((nz, n, n), (pixel,) * 3)
    body = supersampled_cylinder((nz, n, n), (pixel,) * 3, 90.0, 50.0, n_sub=4)
    proto = AcquisitionProtocol(n_views=60, radius_mm=140.0, sensitivity_cps_per_mbq=SENSITIVITY,
                                frame_duration_s=15.0)
    acq = simulate_spect(Volume(body * concentration, grid, "Bq/mL"), Volume(body * 0.01536, grid, "1/mm"), proto,
                         rng=np.random.default_rng(5), device="cpu")
    ref = Dataset()
    ref.PatientName, ref.PatientID, ref.PatientWeight, ref.PatientSex = "Test^Bone", "B1", str(weight_kg), "F"
    ref.AcquisitionDate, ref.AcquisitionTime = scan_start.strftime("%Y%m%d"), scan_start.strftime("%H%M%S")
    rp = Dataset()
    rp.RadionuclideTotalDose = str(dose_bq)
    rp.RadionuclideHalfLife = f"{half_life:.1f}"
    rp.RadiopharmaceuticalStartDateTime = injection.strftime("%Y%m%d%H%M%S")
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "C-163A8", "SRT", "^99m^Technetium"
    rp.RadionuclideCodeSequence = Sequence([code])
    ref.RadiopharmaceuticalInformationSequence = Sequence([rp])
    nm = write_nm(acq, tmp_path / "nm.dcm", vendor="siemens", reference=ref)

    # no CT here: the simulation's mu-map stands in for the CT-derived one, on the NM file's grid
    from recon.io.hdf5 import write_projections as write_h5

    back = read_nm(nm)
    assert back.info.start_time == scan_start
    assert back.patient.weight_kg == weight_kg and back.patient.sex == "F"
    assert back.dose.injected_activity_bq == pytest.approx(dose_bq) and back.dose.injection_time == injection
    h5 = write_h5(back, tmp_path / "study.h5", mu_map=Volume(body * 0.01536, back.image_grid, "1/mm"))
    series = tmp_path / "series"
    assert recon_main(["-q", "spect", str(h5), "-o", str(tmp_path / "r.h5"), "--iterations", "4", "--subsets", "6",
                       "--device", "cpu", "--calibration", str(SENSITIVITY), "--dicom-out", str(series)]) == 0
    report = tmp_path / "suv.json"
    mask = tmp_path / "core.npy"
    np.save(mask, supersampled_cylinder((nz, n, n), (pixel,) * 3, 60.0, 30.0, n_sub=1) > 0.99)
    assert recon_main(["-q", "suv", str(series / "nm_recon.dcm"), "--mask", str(mask), "--json", str(report)]) == 0
    stats = json.loads(report.read_text())
    assert stats["voi"]["mean"] == pytest.approx(true_suv, rel=0.03)
