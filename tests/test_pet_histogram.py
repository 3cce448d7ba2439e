"""List-mode histogramming into sinograms and time frames."""
import numpy as np
import pytest

from recon.data.pet import ListModeEvents
from recon.data.pet_histogram import frame_events, histogram_delayed, histogram_events, histogram_prompts
from recon.data.pet_presets import get_pet_scanner
from recon.data.pet_sinogram import SinogramLayout


def _events(n=5000, seed=0, duration=60.0, delayed_fraction=0.2, tof=True):
    sc = get_pet_scanner("small_test")
    rng = np.random.default_rng(seed)
    da = rng.integers(0, sc.n_crystals, n, dtype=np.int64)
    db = rng.integers(0, sc.n_crystals, n, dtype=np.int64)
    return ListModeEvents(
        sc.name, da.astype(np.int32), db.astype(np.int32), np.sort(rng.uniform(0, duration, n)), duration,
        tof_bin=rng.integers(0, sc.n_tof_bins, n).astype(np.int16) if tof else None,
        delayed=rng.random(n) < delayed_fraction,
    )


@pytest.mark.parametrize("tof", [False, True])
def test_counts_are_conserved_for_valid_events(tof):
    ev = _events()
    sc = get_pet_scanner("small_test")
    layout = SinogramLayout(sc, n_radial=41, span=3, tof=tof)
    prompts = histogram_prompts(ev, layout)
    assert prompts.shape == layout.shape and prompts.dtype == np.float32
    _, valid = layout.bins_of_events(ev.detector_a, ev.detector_b, ev.tof_bin if tof else None)
    is_prompt = ~ev.delayed
    assert prompts.sum() == np.count_nonzero(valid & is_prompt)
    delayed = histogram_delayed(ev, layout)
    assert delayed.shape == layout.shape[:3]
    assert delayed.sum() == np.count_nonzero(valid & ev.delayed)


def test_event_and_reversed_pair_share_a_bin_with_tof_mirrored():
    sc = get_pet_scanner("small_test")
    layout = SinogramLayout(sc, n_radial=41, span=1, tof=True)
    first, second = layout.crystal_pairs()
    da = 2 * sc.crystals_per_ring + first[7, 25]
    db = 5 * sc.crystals_per_ring + second[7, 25]
    t = 3
    ev = ListModeEvents(sc.name, np.array([da, db]), np.array([db, da]), np.array([1.0, 2.0]), 10.0,
                        tof_bin=np.array([t, sc.n_tof_bins - 1 - t]))
    sino = histogram_prompts(ev, layout)
    assert sino.sum() == 2
    nz = np.argwhere(sino)
    assert len(nz) == 1 and sino[tuple(nz[0])] == 2
    view, plane, radial, tof = nz[0]
    assert (view, radial, tof) == (7, 25, t)
    # the same pair reversed with the *same* TOF bin lands in the mirrored TOF bin
    ev2 = ListModeEvents(sc.name, np.array([da, db]), np.array([db, da]), np.array([1.0, 2.0]), 10.0,
                         tof_bin=np.array([t, t]))
    sino2 = histogram_prompts(ev2, layout)
    assert sino2[view, plane, radial, t] == 1 and sino2[view, plane, radial, sc.n_tof_bins - 1 - t] == 1


def test_frames_split_counts_exactly():
    ev = _events(duration=60.0)
    # include an event at the very end of the acquisition
    t = ev.time_s.copy()
    t[-1] = 60.0
    ev = ListModeEvents(ev.scanner_name, ev.detector_a, ev.detector_b, t, 60.0, ev.tof_bin, ev.delayed)
    frames = frame_events(ev, [0, 10, 30], [10, 20, 30])
    assert sum(f.events.n_events for f in frames) == ev.n_events
    for f in frames:
        assert np.all((f.events.time_s >= f.start_s) & (f.events.time_s <= f.end_s))
    layout = SinogramLayout(get_pet_scanner("small_test"), n_radial=41, tof=True)
    whole = histogram_prompts(ev, layout)
    parts = [histogram_events(f, layout) for f in frames]
    assert np.array_equal(sum(p.prompts for p in parts), whole)
    assert [p.frame_start_s for p in parts] == [0.0, 10.0, 30.0]
    assert [p.frame_duration_s for p in parts] == [10.0, 20.0, 30.0]


@pytest.mark.parametrize(("starts", "durations", "match"), [
    ([50], [20], "outside the acquisition"),
    ([-1], [5], "outside the acquisition"),
    ([0], [0], "duration must be positive"),
    ([0, 10], [10], "equal-length"),
])
def test_frames_outside_the_acquisition_are_refused(starts, durations, match):
    with pytest.raises(ValueError, match=match):
        frame_events(_events(duration=60.0), starts, durations)


def test_tof_bins_not_matching_the_scanner_are_refused():
    ev = _events(n=10)
    bad = ListModeEvents(ev.scanner_name, ev.detector_a, ev.detector_b, ev.time_s, 60.0,
                         tof_bin=np.full(10, 40, np.int16))
    with pytest.raises(ValueError, match="do not match scanner"):
        histogram_prompts(bad, SinogramLayout(get_pet_scanner("small_test"), n_radial=41, tof=True))


def test_other_scanner_and_missing_tof_are_refused():
    ev = _events(n=10, tof=False)
    with pytest.raises(ValueError, match="needs list-mode events with TOF bins"):
        histogram_prompts(ev, SinogramLayout(get_pet_scanner("small_test"), n_radial=41, tof=True))
    with pytest.raises(ValueError, match="recorded on scanner"):
        histogram_prompts(ev, SinogramLayout(get_pet_scanner("discovery_mi_like"), n_radial=41))


def test_acquisition_hands_over_its_placement_and_records():
    from recon.data.pet import ListModeAcquisition, ScannerPlacement
    from recon.data.study import PatientInfo

    ev = _events(n=200)
    acq = ListModeAcquisition(get_pet_scanner("small_test"), ev, ScannerPlacement("FFS", (0, 0, 50.0)),
                              patient=PatientInfo(weight_kg=80.0))
    sino = histogram_events(acq, SinogramLayout(get_pet_scanner("small_test"), n_radial=41))
    assert sino.placement.patient_position == "FFS" and sino.patient.weight_kg == 80.0
    assert (sino.frame_start_s, sino.frame_duration_s) == (0.0, 60.0)


@pytest.mark.parametrize(("bad_time", "match"), [
    (np.nan, r"^list-mode event times contain 1 NaN or infinite values$"),
    (75.0, r"^list-mode event times must lie within the acquisition 0\.\.60\.0 s, found .*\.\.75\.0 s$"),
])
def test_event_times_nan_or_outside_the_acquisition_are_named(bad_time, match):
    ev = _events(n=10, duration=60.0)
    t = np.asarray(ev.time_s, np.float64).copy()
    t[-1] = bad_time
    with pytest.raises(ValueError, match=match):
        ListModeEvents(ev.scanner_name, ev.detector_a, ev.detector_b, t, 60.0, tof_bin=ev.tof_bin)
