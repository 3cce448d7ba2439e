"""The detector's axial field of view (recon.spect.detector_rows): a bed whose end rows are partially
shielded, next to rows outside the field of view, is reconstructed from its fully sensitive rows only, and
the stitcher takes the other bed there; normal projections (counts on every row) are not touched."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from recon.data.grid import ImageGrid, Volume
from recon.spect.detector_rows import is_detector_edge
from recon.spect.multibed import active_rows, row_mask, stitch_beds
from recon.spect.reconstruct import SPECTReconOptions, reconstruct_spect
from recon.spect.simulate import AcquisitionProtocol, simulate_spect

NZ, N, D = 40, 32, 6.0
BED_A, BED_B = slice(0, 24), slice(16, 40)  # 8 slices of overlap
OPTS = SPECTReconOptions(n_iterations=3, n_subsets=5, attenuation=False, scatter="none", device="cpu",
                         progress=False)
# bed A's detector: at each end 2 rows outside the useful field, then 2 rows at 30 % of their counts
SHIELDED, OUTSIDE = (20, 21), (22, 23)  # top (the end in the overlap with bed B)
SHIELDED_LOW, OUTSIDE_LOW = (2, 3), (0, 1)  # bottom


def _phantom() -> np.ndarray:
    z, y, x = np.meshgrid(np.arange(NZ) * D, (np.arange(N) - 15.5) * D, (np.arange(N) - 15.5) * D, indexing="ij")
    act = np.where(np.hypot(x, y) < 60.0, 1000.0, 0.0)  # a warm cylinder through both beds
    act += np.where(np.sqrt((x - 20) ** 2 + y ** 2 + (z - 117.0) ** 2) < 20.0, 4000.0, 0.0)  # hot, in the overlap
    return act.astype(np.float32)


def _bed(rows: slice, arc_deg: float):  # noqa: ANN202
    act = _phantom()[rows]
    grid = ImageGrid(act.shape, (D, D, D), (-15.5 * D, -15.5 * D, rows.start * D))
    proto = AcquisitionProtocol(n_views=30, radius_mm=150.0, arc_deg=arc_deg, start_angle_deg=0.0)
    acq = simulate_spect(Volume(act, grid, "Bq/mL"), None, proto, rng=None, device="cpu")
    return replace(acq, counts={k: np.round(v) for k, v in acq.counts.items()})


def _shield(acq):  # noqa: ANN001, ANN202
    counts = {}
    for name, c in acq.counts.items():
        c = np.array(c, dtype=np.float32)
        c[:, list(SHIELDED + SHIELDED_LOW)] *= 0.3
        c[:, list(OUTSIDE + OUTSIDE_LOW)] = 0.0
        c[::7, OUTSIDE[0], 5] = 1.0  # a stray count here and there
        counts[name] = c
    return replace(acq, counts=counts)


@pytest.fixture(scope="module")
def recons() -> dict:
    a, b = _bed(BED_A, 360.0), _bed(BED_B, -360.0)
    shielded = _shield(a)
    no_rows = replace(OPTS, detector_rows=False)
    return {
        "a": a, "shielded": shielded,
        "ra": reconstruct_spect(a, None, OPTS), "ra_old": reconstruct_spect(a, None, no_rows),
        "rb": reconstruct_spect(b, None, OPTS),
        "rs": reconstruct_spect(shielded, None, OPTS), "rs_old": reconstruct_spect(shielded, None, no_rows),
    }


def test_mask_finds_the_partial_and_outside_rows(recons: dict) -> None:
    assert (row_mask(recons["a"]) == 1.0).all()  # counts on every row: no detector edge
    mask = row_mask(recons["shielded"])
    assert np.nonzero(mask == 0)[0].tolist() == [*OUTSIDE_LOW, *SHIELDED_LOW, *SHIELDED, *OUTSIDE]
    assert np.nonzero(active_rows(recons["shielded"]) == 0)[0].tolist() == [*OUTSIDE_LOW, *OUTSIDE]


def test_an_object_ending_inside_the_field_is_not_a_detector_edge(recons: dict) -> None:
    a = recons["a"]
    counts = {}
    for name, c in a.counts.items():  # empty rows at one end only: the object ends there
        c = np.array(c, dtype=np.float32)
        c[:, 20:] = 0.0
        c[:, 18:20] *= 0.3
        counts[name] = c
    assert (row_mask(replace(a, counts=counts)) == 1.0).all()
    assert is_detector_edge(18, 109, 128)  # the GE 670: rows 18-109 of 128 hold counts
    assert not is_detector_edge(0, 109, 128) and not is_detector_edge(18, 127, 128)  # one end only
    assert not is_detector_edge(18, 100, 128)  # unequal empty runs: an object's end
    assert not is_detector_edge(10, 13, 24)  # a small phantom with empty rows around it


def test_normal_projections_are_reconstructed_exactly_as_before(recons: dict) -> None:
    np.testing.assert_array_equal(recons["ra"].data, recons["ra_old"].data)
    assert "detector_rows" not in recons["ra"].metadata


def test_shielded_rows_do_not_bias_the_slices_they_cover(recons: dict) -> None:
    ra, rs, old = (np.asarray(recons[k].data, np.float64) for k in ("ra", "rs", "rs_old"))
    assert recons["rs"].metadata["detector_rows"] == [SHIELDED_LOW[-1] + 1, SHIELDED[0] - 1]
    assert (rs[SHIELDED[0]:] == 0).all() and (rs[:SHIELDED_LOW[-1] + 1] == 0).all()  # slices not seen fully
    body = ra > 0.2 * ra.max()
    # every slice on a fully sensitive row agrees with the unshielded bed (measured: within 0.3 %)
    for k in range(SHIELDED_LOW[-1] + 1, SHIELDED[0]):
        assert rs[k][body[k]].mean() == pytest.approx(ra[k][body[k]].mean(), rel=0.01), k
    # without the detector rows, the shielded slices come out far too low and the next one overshoots
    # (measured: 0.14 and 0.28 of the unshielded bed, then 1.18 next to them: the bias this fixes)
    for k in SHIELDED:
        assert old[k][body[k]].mean() < 0.6 * ra[k][body[k]].mean(), k
    k = SHIELDED[0] - 1
    assert old[k][body[k]].mean() > 1.1 * ra[k][body[k]].mean()


def test_stitched_shielded_bed_agrees_with_the_unshielded_study(recons: dict) -> None:
    ra, rs, rb = recons["ra"], recons["rs"], recons["rb"]
    truth, _ = stitch_beds([ra, rb], [row_mask(recons["a"]), np.ones(24)])
    fixed, w = stitch_beds([rs, rb], [row_mask(recons["shielded"]), np.ones(24)])
    assert (w[0][SHIELDED[0]:24] == 0).all()  # the shielded bed's masked slices: the other bed only
    body = truth.data > 0.2 * truth.data.max()
    for k in range(BED_B.start, BED_A.stop):  # measured: within 0.7 %
        assert fixed.data[k][body[k]].mean() == pytest.approx(truth.data[k][body[k]].mean(), rel=0.02), k
    # without the detector rows the stitched overlap is off (measured: +7 % then -11 % next to the edge)
    old, _ = stitch_beds([recons["rs_old"], rb], [active_rows(recons["shielded"]), np.ones(24)])
    off = [abs(old.data[k][body[k]].mean() / truth.data[k][body[k]].mean() - 1) for k in range(16, 24)]
    assert max(off) > 0.05


def test_cli_stitches_a_shielded_bed_through_recon_spect(recons: dict, tmp_path) -> None:  # noqa: ANN001
    from recon.cli import main as recon_main
    from recon.io.dicom.nm_write import write_nm
    from recon.io.hdf5 import read_volume

    b = _bed(BED_B, -360.0)
    files = {name: write_nm(acq, tmp_path / f"{name}.dcm", vendor="ge", n_detectors=1)
             for name, acq in (("a", recons["a"]), ("s", recons["shielded"]), ("b", b))}
    cli = ["--no-attenuation", "--scatter", "none", "--iterations", "3", "--subsets", "5", "--device", "cpu", "-q"]
    out = {}
    for name, beds, extra in (("truth", ("a", "b"), []), ("fixed", ("s", "b"), []),
                              ("old", ("s", "b"), ["--no-detector-rows"])):
        out[name] = tmp_path / f"{name}.h5"
        assert recon_main(["spect", *(str(files[k]) for k in beds), "-o", str(out[name]), *cli, *extra]) == 0
    truth, fixed, old = (read_volume(out[k]).data.astype(np.float64) for k in ("truth", "fixed", "old"))
    body = truth > 0.2 * truth.max()
    ratio = {k: [v[z][body[z]].mean() / truth[z][body[z]].mean() for z in range(16, 24)]
             for k, v in (("fixed", fixed), ("old", old))}
    assert max(abs(r - 1) for r in ratio["fixed"]) < 0.02, ratio
    assert max(abs(r - 1) for r in ratio["old"]) > 0.05, ratio
