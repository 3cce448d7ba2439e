"""Simulated acquisition -> DICOM NM in each vendor layout -> read -> reconstruct -> Bq/mL equals the
known concentration in a large uniform region (within 3 %)."""
from __future__ import annotations

import numpy as np
import pytest

from recon.cli import main as recon_main
from recon.data import ImageGrid, Volume
from recon.io.dicom_nm import nm_image_grid, read_nm, write_nm
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
    grid = nm_image_grid(back)
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
    from recon.io.dicom_image_out import read_volume_series

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
    slope_bound = np.abs(h5.data).max(axis=(1, 2)) / 32767.0
    assert (np.abs(series.data - h5.data).max(axis=(1, 2)) <= slope_bound * 0.5 + 1e-3).all()
