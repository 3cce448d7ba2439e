"""A PT series (Units BQML) written by our PT writer with typed patient and dose data is read by ``recon suv``
and ``recon response`` with SUVs computed by hand."""
import json
from datetime import datetime, timedelta

import numpy as np
import pydicom
import pytest

from recon.cli import main as recon_main
from recon.data.grid import ImageGrid, Volume
from recon.data.study import DoseInfo, PatientInfo
from recon.io.dicom import write_volume_series

F18_HALF_LIFE_S = 6586.2
INJECTION = datetime(2026, 2, 3, 9, 0, 0)
SCAN = INJECTION + timedelta(minutes=60)
DOSE_BQ = 3.7e8
WEIGHT_KG, HEIGHT_M, SEX = 70.0, 1.75, "M"
GRID = ImageGrid((30, 30, 30), (2.0, 2.0, 2.0), (-29.0, -29.0, -29.0))


def _bqml(hot: float) -> Volume:
    data = np.full(GRID.shape, 1000.0, np.float32)
    data[10:21, 10:21, 10:21] = hot  # a 22 mm cube: its 1 mL SULpeak equals its value
    return Volume(data, GRID, "Bq/mL")


def _write(path, hot=5000.0):
    write_volume_series(_bqml(hot), path, modality="PT", decay_correction="START", decay_reference_time=SCAN,
                        decay_factor=1.0, frame_duration_s=600.0,
                        patient=PatientInfo(weight_kg=WEIGHT_KG, height_m=HEIGHT_M, sex=SEX, patient_id="PT1"),
                        dose=DoseInfo(radionuclide="F-18", injected_activity_bq=DOSE_BQ, injection_time=INJECTION,
                                      radiopharmaceutical="Fluorodeoxyglucose", half_life_s=F18_HALF_LIFE_S))
    return path


def _decayed_dose() -> float:
    return DOSE_BQ * 2.0 ** (-3600.0 / F18_HALF_LIFE_S)


def test_pt_writer_carries_patient_and_dose(tmp_path):
    d = _write(tmp_path / "pt")
    ds = pydicom.dcmread(sorted(d.iterdir())[0])
    assert ds.Modality == "PT" and ds.Units == "BQML"
    assert float(ds.PatientWeight) == WEIGHT_KG and float(ds.PatientSize) == HEIGHT_M and ds.PatientSex == SEX
    rp = ds.RadiopharmaceuticalInformationSequence[0]
    assert float(rp.RadionuclideTotalDose) == pytest.approx(DOSE_BQ)
    assert float(rp.RadionuclideHalfLife) == pytest.approx(F18_HALF_LIFE_S)
    assert rp.RadiopharmaceuticalStartDateTime.startswith("20260203090000")
    assert rp.Radiopharmaceutical == "Fluorodeoxyglucose"
    assert "F" in rp.RadionuclideCodeSequence[0].CodeMeaning


def test_recon_suv_reads_our_pt_series(tmp_path):
    d = _write(tmp_path / "pt")
    out = tmp_path / "suv.json"
    assert recon_main(["-q", "suv", str(d), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    expected_max = 5000.0 * WEIGHT_KG * 1000.0 / _decayed_dose()  # SUVbw = C / (D_decayed / W[g])
    assert report["voi"]["max"] == pytest.approx(expected_max, rel=1e-4)
    assert report["suv"]["kind"] == "bw"
    # SUL (James): LBM = 1.10 W - 128 (W / H_cm)^2 for a man
    lbm_kg = 1.10 * WEIGHT_KG - 128.0 * (WEIGHT_KG / (HEIGHT_M * 100.0)) ** 2
    out2 = tmp_path / "sul.json"
    assert recon_main(["-q", "suv", str(d), "--suv-type", "lbm_james", "--json", str(out2)]) == 0
    sul = json.loads(out2.read_text())["voi"]["max"]
    assert sul == pytest.approx(5000.0 * lbm_kg * 1000.0 / _decayed_dose(), rel=1e-4)


def test_recon_response_grades_pt_series_by_percist(tmp_path):
    base = _write(tmp_path / "base", hot=20000.0)
    follow = _write(tmp_path / "follow", hot=12000.0)  # -40 %
    out = tmp_path / "r.json"
    lbm_kg = 1.10 * WEIGHT_KG - 128.0 * (WEIGHT_KG / (HEIGHT_M * 100.0)) ** 2
    to_sul = lbm_kg * 1000.0 / _decayed_dose()
    assert recon_main(["-q", "response", str(base), str(follow), "--threshold", str(1500 * to_sul),
                       "--json", str(out)]) == 0
    p = json.loads(out.read_text())
    assert p["modality"] == "pet"
    assert p["percist"]["category"] == "PMR"
    assert p["percist"]["baseline_sul_peak"] == pytest.approx(20000 * to_sul, rel=1e-3)
    assert p["percist"]["change_sul"] == pytest.approx(-8000 * to_sul, rel=1e-3)
    assert p["percist"]["change_pct"] == pytest.approx(-40.0, abs=0.05)


def test_dose_and_radiopharmaceutical_together_are_refused(tmp_path):
    with pytest.raises(ValueError, match="not both"):
        write_volume_series(_bqml(5000.0), tmp_path / "x", dose=DoseInfo(injected_activity_bq=1e8),
                            radiopharmaceutical={"RadionuclideTotalDose": 1e8})
