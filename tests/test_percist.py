"""PERCIST 1.0 and bone SPECT response on synthetic SUL / SUV volumes whose answers are known by hand.

Volumes: 2 mm voxels, background 1.0, each lesion a 22 mm cube of one value. A 1 mL sphere
(radius 6.2 mm) centred in the cube lies wholly inside it, so the lesion's SULpeak is its value
and its SUVmax too: the expected changes and categories follow from the numbers alone.
"""
import json

import numpy as np
import pytest

from recon.cli import main as recon_main
from recon.data.grid import ImageGrid, Volume
from recon.io.hdf5 import write_volume
from recon.quant.response import (
    LiverReference,
    bone_spect_response,
    compare_lesions,
    percist_response,
)
from recon.quant.voi import lesion_table, segment_lesions

GRID = ImageGrid((40, 40, 60), (2.0, 2.0, 2.0), (0.0, 0.0, 0.0))
CENTRES = {"a": (20, 20, 15), "b": (20, 20, 45)}  # voxel (z, y, x)


def _volume(values: dict[str, float], unit: str = "SUVlbm_james (g/mL)") -> Volume:
    data = np.ones(GRID.shape, np.float32)
    for name, value in values.items():
        z, y, x = CENTRES[name]
        data[z - 5:z + 6, y - 5:y + 6, x - 5:x + 6] = value
    return Volume(data, GRID, unit)


def _lesions(vol: Volume):
    labels, _ = segment_lesions(vol, threshold=1.2)
    return lesion_table(vol, labels, cutoffs=None, peak_volume_ml=1.0)


def _percist(base: dict[str, float], follow: dict[str, float], **kw):
    b, f = _lesions(_volume(base)), _lesions(_volume(follow))
    return percist_response(b, f, compare_lesions(b, f), **kw)


def test_sul_peak_of_a_uniform_cube_is_its_value():
    (lesion,) = _lesions(_volume({"a": 10.0}))
    assert lesion.stats.peak_search == pytest.approx(10.0, abs=1e-5)


@pytest.mark.parametrize(("before", "after", "category", "change", "pct"), [
    (10.0, 6.5, "PMR", -3.5, -35.0),   # -35 % and -3.5 SUL
    (10.0, 7.5, "SMD", -2.5, -25.0),   # -25 %: not enough percent
    (2.0, 1.3, "SMD", -0.7, -35.0),    # -35 % but only -0.7 SUL
    (10.0, 13.5, "PMD", 3.5, 35.0),    # +35 % and +3.5 SUL
    (2.0, 2.7, "SMD", 0.7, 35.0),      # +35 % but only +0.7 SUL
    (4.0, 2.8, "PMR", -1.2, -30.0),    # exactly -30 % and -1.2 SUL: a response (>= 30 %)
])
def test_percist_categories(before, after, category, change, pct):
    r = _percist({"a": before}, {"a": after})
    assert r.category == category
    assert r.change_sul == pytest.approx(change, abs=1e-4)
    assert r.change_pct == pytest.approx(pct, abs=1e-3)
    assert r.new_lesions == []


def test_new_lesion_is_progression_and_reported():
    r = _percist({"a": 10.0}, {"a": 6.0, "b": 5.0})
    assert r.category == "PMD" and len(r.new_lesions) == 1
    assert "new lesion" in r.reasons[0]


def test_no_lesion_at_follow_up_is_complete_response():
    r = _percist({"a": 10.0}, {})
    assert r.category == "CMR" and r.followup_sul_peak is None


def test_target_may_be_another_lesion_at_follow_up():
    # baseline: a hottest (8); follow-up: a falls to 2, b (present at baseline at 3) rises to 6
    r = _percist({"a": 8.0, "b": 3.0}, {"a": 2.0, "b": 6.0})
    assert (r.baseline_sul_peak, r.followup_sul_peak) == pytest.approx((8.0, 6.0), abs=1e-4)
    assert r.category == "SMD"  # -25 %


def test_liver_reference_sets_measurability_and_complete_response():
    liver = LiverReference(1.5, 0.25)  # threshold 1.5*1.5 + 2*0.25 = 2.75
    assert liver.measurability_threshold == pytest.approx(2.75)
    assert _percist({"a": 2.5}, {"a": 1.4}, baseline_liver=liver).category == "NE"  # 2.5 < 2.75
    # follow-up lesion below the liver mean: complete metabolic response
    assert _percist({"a": 6.0}, {"a": 1.4}, baseline_liver=liver, followup_liver=liver).category == "CMR"
    # a new follow-up lesion below the follow-up threshold does not count as new
    r = _percist({"a": 6.0}, {"a": 3.0, "b": 2.0}, baseline_liver=liver, followup_liver=liver)
    assert r.new_lesions == [] and r.category == "PMR"


def test_bone_spect_reports_suvmax_change():
    b = _lesions(_volume({"a": 20.0, "b": 8.0}, "SUVbw (g/mL)"))
    f = _lesions(_volume({"a": 15.0, "b": 10.0}, "SUVbw (g/mL)"))
    rep = compare_lesions(b, f)
    s = bone_spect_response(b, f, rep)
    assert (s.hottest_baseline_suv_max, s.hottest_followup_suv_max) == pytest.approx((20.0, 15.0))
    assert s.change == pytest.approx(-5.0) and s.change_pct == pytest.approx(-25.0)
    changes = sorted(c.suv_max_change for c in rep.matched)
    assert changes == pytest.approx([-5.0, 2.0])


def test_cli_percist_on_sul_maps(tmp_path, capsys):
    base = write_volume(_volume({"a": 10.0}), tmp_path / "base_sul.h5")
    follow = write_volume(_volume({"a": 6.5}), tmp_path / "follow_sul.h5")
    out = tmp_path / "r.json"
    assert recon_main(["response", str(base), str(follow), "--threshold", "1.2", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["modality"] == "pet" and report["percist"]["category"] == "PMR"
    assert report["percist"]["change_sul"] == pytest.approx(-3.5, abs=1e-4)
    assert "PERCIST 1.0: PMR" in capsys.readouterr().out


def test_cli_bone_spect_on_suv_maps(tmp_path):
    base = write_volume(_volume({"a": 20.0}, "SUVbw (g/mL)"), tmp_path / "b.h5")
    follow = write_volume(_volume({"a": 15.0}, "SUVbw (g/mL)"), tmp_path / "f.h5")
    out = tmp_path / "r.json"
    assert recon_main(["response", str(base), str(follow), "--threshold", "1.2", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["modality"] == "spect" and report["bone_spect"]["change"] == pytest.approx(-5.0)


def test_cli_pet_needs_sul(tmp_path, capsys):
    base = write_volume(_volume({"a": 20.0}, "SUVbw (g/mL)"), tmp_path / "b.h5")
    assert recon_main(["response", str(base), str(base), "--modality", "pet", "--threshold", "1.2"]) == 2
    assert "PERCIST needs SUL" in capsys.readouterr().err


def test_cli_bad_liver_reference(tmp_path, capsys):
    base = write_volume(_volume({"a": 10.0}), tmp_path / "b.h5")
    assert recon_main(["response", str(base), str(base), "--liver-baseline", "-1", "0.2"]) == 2
    assert "--liver-baseline: liver mean SUL must be a positive number" in capsys.readouterr().err
