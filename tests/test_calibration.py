"""The calibration chain: each step against its closed form, the same numbers as the pre-refactor chain,
the PET factor, and a simulated uniform-cylinder
calibration that recovers the sensitivity used to simulate it."""
from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
import pytest

from recon.data import ImageGrid, Volume
from recon.quant.calibration import (
    Calibration,
    SPECTCalibration,
    calibrate,
    sensitivity_from_planar,
    sensitivity_from_reconstruction,
)
from recon.spect.reconstruct import SPECTReconOptions, reconstruct_spect
from recon.spect.simulate import AcquisitionProtocol, simulate_spect
from tests.conftest import supersampled_cylinder

TC99M_HALF_LIFE_S = 6.0067 * 3600.0  # NNDC, typed in as outside truth


def test_chain_step_by_step_matches_closed_form():
    grid = ImageGrid.centered((2, 2, 2), (4.0, 4.0, 4.0))  # 0.064 mL voxels
    counts = Volume(np.full((2, 2, 2), 1234.0), grid, "counts")
    start = datetime(2026, 11, 25, 10, 0, 0)
    ref = start - timedelta(hours=3)  # decay-correct back to injection
    cal = SPECTCalibration(91.0, 20.0, "Tc-99m", acquisition_duration_s=1800.0, acquisition_start=start,
                           reference_time=ref)
    out = calibrate(counts, cal)
    lam = math.log(2) / TC99M_HALF_LIFE_S
    mean_conc = 1234.0 / 20.0 / 91.0 * 1e6 / 0.064
    at_start = mean_conc * (lam * 1800.0) / (1.0 - math.exp(-lam * 1800.0))
    at_ref = at_start * math.exp(lam * 3 * 3600.0)
    assert out.unit == "Bq/mL"
    np.testing.assert_allclose(out.data, at_ref, rtol=2e-4)
    assert out.metadata["calibration"]["decay_to_reference_factor"] == pytest.approx(math.exp(lam * 10800.0),
                                                                                       rel=2e-4)


def test_chain_refuses_incomplete_decay_information():
    with pytest.raises(ValueError, match="half-life"):
        SPECTCalibration(91.0, 20.0, None, acquisition_duration_s=600.0)
    with pytest.raises(ValueError, match="acquisition start"):
        SPECTCalibration(91.0, 20.0, "Tc-99m", reference_time=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="sensitivity_cps_per_mbq must be positive"):
        SPECTCalibration(0.0, 20.0)
    grid = ImageGrid((1, 1, 1), (1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="expects a reconstruction in 'counts'"):
        calibrate(Volume(np.ones((1, 1, 1)), grid, "Bq/mL"), SPECTCalibration(91.0, 20.0))


def test_planar_sensitivity():
    # 100 MBq for 60 s at 91 cps/MBq, plus 600 background counts
    assert sensitivity_from_planar(91.0 * 100.0 * 60.0 + 600.0, 60.0, 100.0, 600.0) == pytest.approx(91.0)
    with pytest.raises(ValueError, match="net calibration counts"):
        sensitivity_from_planar(10.0, 60.0, 100.0, 20.0)


def test_uniform_cylinder_calibration_recovers_simulated_sensitivity():
    n, nz, pixel = 48, 24, 6.0
    grid = ImageGrid.centered((nz, n, n), (pixel, pixel, pixel))
    body = supersampled_cylinder((nz, n, n), (pixel,) * 3, 100.0, 50.0, n_sub=4)
    concentration = 50e3  # Bq/mL
    activity = Volume(body * concentration, grid, "Bq/mL")
    mu = Volume(body * 0.01536, grid, "1/mm")
    activity_mbq = float(body.sum()) * grid.voxel_volume_ml * concentration * 1e-6
    proto = AcquisitionProtocol(n_views=60, radius_mm=150.0, sensitivity_cps_per_mbq=91.0, frame_duration_s=20.0)
    acq = simulate_spect(activity, mu, proto, rng=None, device="cpu")
    recon = reconstruct_spect(acq, mu, SPECTReconOptions(6, 6, scatter="tew", device="cpu", progress=False))
    s = sensitivity_from_reconstruction(recon, activity_mbq, acq.frame_duration_s)
    assert s == pytest.approx(91.0, rel=0.01)
    # and the calibrated interior reads the true concentration
    bqml = calibrate(recon, SPECTCalibration(91.0, 20.0))
    core = supersampled_cylinder((nz, n, n), (pixel,) * 3, 60.0, 30.0, n_sub=1) > 0.99
    assert float(bqml.data[core].mean()) == pytest.approx(concentration, rel=0.03)


def test_reconstruction_sensitivity_accounts_for_decay_during_the_calibration_scan():
    grid = ImageGrid((1, 1, 1), (10.0, 10.0, 10.0))
    recon = Volume(np.full((1, 1, 1), 91.0 * 100.0 * 20.0), grid, "counts")  # 100 MBq, 20 s per view
    assert sensitivity_from_reconstruction(recon, 100.0, 20.0) == pytest.approx(91.0)
    lam = math.log(2) / TC99M_HALF_LIFE_S
    f = (1 - math.exp(-lam * 1800.0)) / (lam * 1800.0)
    s = sensitivity_from_reconstruction(recon, 100.0, 20.0, half_life="Tc-99m", acquisition_duration_s=1800.0)
    assert s == pytest.approx(91.0 / f, rel=2e-4)
    with pytest.raises(ValueError, match="half-life"):
        sensitivity_from_reconstruction(recon, 100.0, 20.0, acquisition_duration_s=1800.0)


def _old_chain(x: np.ndarray, s: float, t: float, v_ml: float, half_life, duration: float, start, ref) -> np.ndarray:
    """The pre-refactor calibrate(), written out: the same numbers must come out."""
    from recon.quant.decay import acquisition_decay_factor, decay_factor

    c = x / t / s * 1e6 / v_ml
    acq = 1.0 / float(acquisition_decay_factor(half_life, duration)) if duration > 0 else 1.0
    ref_f = decay_factor(half_life, start, ref) if ref is not None else 1.0
    return (c * acq * ref_f).astype(np.float32)


def test_generic_calibration_gives_the_same_numbers_as_before(rng):
    grid = ImageGrid((3, 4, 5), (4.42, 4.42, 4.42))
    counts = Volume(rng.random(grid.shape) * 1000.0, grid, "counts", frame_of_reference_uid="1.2.3")
    start = datetime(2026, 11, 25, 10, 0, 0)
    ref = start - timedelta(hours=2, minutes=10)
    x = counts.data.astype(np.float64)
    cases = [  # (calibration arguments, the old chain's (half_life, duration, start, reference))
        ((91.0, 20.0), (None, 0.0, None, None)),
        ((91.0, 20.0, "Tc-99m", 1800.0, start, ref), ("Tc-99m", 1800.0, start, ref)),
        ((120.5, 15.0, "Lu-177", 900.0, start), ("Lu-177", 900.0, start, None)),
    ]
    for args, decay in cases:
        expected = _old_chain(x, args[0], args[1], grid.voxel_volume_ml, *decay)
        for cal in (SPECTCalibration(*args), Calibration.for_spect(*args), Calibration(*args)):
            out = calibrate(counts, cal)
            np.testing.assert_allclose(out.data, expected, rtol=1e-6)
            assert out.frame_of_reference_uid == "1.2.3"
    assert SPECTCalibration(91.0, 20.0).modality == "SPECT" and isinstance(SPECTCalibration(91.0, 20.0), Calibration)


def test_calibrate_calls_the_named_steps_in_order(monkeypatch):
    import recon.quant.calibration as cal_module

    calls: list[str] = []
    for name in ("count_rate", "activity_bq", "concentration_bq_per_ml", "correct_decay_during_acquisition",
                 "decay_to_reference_time"):
        real = getattr(cal_module, name)

        def spy(*args, _real=real, _name=name, **kwargs):
            if np.ndim(args[0]) > 0:  # the image, not the factor recorded in metadata
                calls.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(cal_module, name, spy)
    start = datetime(2026, 11, 25, 10, 0, 0)
    grid = ImageGrid((1, 2, 2), (2.0, 2.0, 2.0))
    cal = Calibration(91.0, 20.0, "Tc-99m", 600.0, start, start - timedelta(hours=1))
    cal_module.calibrate(Volume(np.ones(grid.shape), grid, "counts"), cal)
    assert calls == ["count_rate", "activity_bq", "concentration_bq_per_ml", "correct_decay_during_acquisition",
                     "decay_to_reference_time"]


def test_pet_calibration_factor_is_the_inverse_sensitivity():
    # F = 2500 Bq per cps <=> S = 400 cps/MBq; 300 s frame of F-18
    grid = ImageGrid((2, 2, 2), (2.0, 2.0, 2.0))
    counts = Volume(np.full(grid.shape, 6000.0), grid, "counts")
    pet = Calibration.for_pet(2500.0, 300.0)
    assert pet.modality == "PET" and pet.sensitivity_cps_per_mbq == pytest.approx(400.0)
    # 6000 counts / 300 s = 20 cps -> 20 * 2500 = 50 kBq in 0.008 mL
    np.testing.assert_allclose(calibrate(counts, pet).data, 20.0 * 2500.0 / 0.008, rtol=1e-6)
    with_decay = Calibration.for_pet(2500.0, 300.0, "F-18")
    assert with_decay.acquisition_duration_s == 300.0
    assert calibrate(counts, with_decay).data.mean() > calibrate(counts, pet).data.mean()
    with pytest.raises(ValueError, match="calibration_factor_bq_per_cps"):
        Calibration.for_pet(0.0, 300.0)
