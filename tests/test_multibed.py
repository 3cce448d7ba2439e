"""Multi-bed SPECT: two overlapping beds of one phantom, rotating in opposite directions, written as GE NM
files, reconstructed by ``recon spect BED1 BED2`` and stitched in patient space."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
import pytest

from recon.cli import main as recon_main
from recon.data.grid import ImageGrid, Volume
from recon.io.dicom.nm_write import write_nm
from recon.io.hdf5 import read_volume
from recon.spect.multibed import bed_weights, overlap_agreement, stitch_beds, stitched_grid
from recon.spect.simulate import AcquisitionProtocol, simulate_spect

NZ, N, D = 40, 32, 6.0  # whole phantom: 40 slices of 32 x 32, 6 mm voxels
BED_A, BED_B = slice(0, 24), slice(16, 40)  # 8 slices of overlap (z = 96 .. 138 mm)
OPTS = ["--no-attenuation", "--scatter", "none", "--iterations", "3", "--subsets", "5", "--device", "cpu", "-q"]


def _phantom() -> np.ndarray:
    z, y, x = np.meshgrid(np.arange(NZ) * D, (np.arange(N) - 15.5) * D, (np.arange(N) - 15.5) * D, indexing="ij")
    act = np.where(np.hypot(x, y) < 60.0, 1000.0, 0.0)  # a warm cylinder
    act += np.where(np.sqrt((x - 20) ** 2 + y ** 2 + (z - 117.0) ** 2) < 20.0, 4000.0, 0.0)  # hot, in the overlap
    act += np.where(np.sqrt((x + 25) ** 2 + (y - 10) ** 2 + (z - 30.0) ** 2) < 18.0, 3000.0, 0.0)  # bed A only
    act += np.where(np.sqrt(x ** 2 + (y + 20) ** 2 + (z - 210.0) ** 2) < 18.0, 3000.0, 0.0)  # bed B only
    return act.astype(np.float32)


def _bed_file(path: Path, rows: slice, arc_deg: float) -> Path:
    act = _phantom()[rows]
    grid = ImageGrid(act.shape, (D, D, D), (-15.5 * D, -15.5 * D, rows.start * D))
    proto = AcquisitionProtocol(n_views=30, radius_mm=150.0, arc_deg=arc_deg, start_angle_deg=0.0)
    acq = simulate_spect(Volume(act, grid, "Bq/mL"), None, proto, rng=None, device="cpu")
    acq = replace(acq, counts={k: np.round(v) for k, v in acq.counts.items()})
    return write_nm(acq, path, vendor="ge", n_detectors=1)


@pytest.fixture(scope="module")
def beds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("beds")
    a = _bed_file(d / "bed_a.dcm", BED_A, 360.0)  # our theta grows: DICOM CW
    b = _bed_file(d / "bed_b.dcm", BED_B, -360.0)  # the other way: DICOM CC
    out = {"a": a, "b": b}
    for name, inputs in (("ra", [a]), ("rb", [b]), ("wb", [b, a])):
        out[name] = d / f"{name}.h5"
        assert recon_main(["spect", *map(str, inputs), "-o", str(out[name]), *OPTS]) == 0
    return out


def test_beds_rotate_in_opposite_directions(beds: dict[str, Path]) -> None:
    dirs = [pydicom.dcmread(beds[k], stop_before_pixels=True).RotationInformationSequence[0].RotationDirection
            for k in ("a", "b")]
    assert sorted(dirs) == ["CC", "CW"]


def test_stitched_equals_each_bed_away_from_the_overlap(beds: dict[str, Path]) -> None:
    wb, ra, rb = (read_volume(beds[k]) for k in ("wb", "ra", "rb"))
    assert wb.grid.shape == (NZ, N, N)
    np.testing.assert_allclose(wb.grid.origin_mm, ra.grid.origin_mm, atol=1e-3)
    np.testing.assert_array_equal(wb.data[:16], ra.data[:16])  # bed A's own slices, copied
    np.testing.assert_allclose(wb.data[24:], rb.data[8:], rtol=1e-5, atol=1e-6 * rb.data.max())
    # the hot spheres seen by one bed only sit where the phantom puts them
    for z_mm, x_mm in ((30.0, -25.0), (210.0, 0.0)):
        k = int(round(z_mm / D))
        j, i = np.unravel_index(np.argmax(wb.data[k]), wb.data[k].shape)
        assert abs(wb.grid.axis_mm("x")[i] - x_mm) <= D


def test_beds_agree_in_the_overlap(beds: dict[str, Path]) -> None:
    wb, ra, rb = (read_volume(beds[k]) for k in ("wb", "ra", "rb"))
    target = stitched_grid([ra.grid, rb.grid])
    profile = np.ones(24)
    full = bed_weights([ra.grid, rb.grid], [profile, profile], target, edge_slices=0)
    assert ((full[0] > 0) & (full[1] > 0)).sum() == 8  # the whole overlap
    w = bed_weights([ra.grid, rb.grid], [profile, profile], target)  # less 2 end slices of each bed here
    both = (w[0] > 0) & (w[1] > 0)
    assert both.sum() == 4 and (w[0][:18] == 1).all() and (w[1][22:] == 1).all()
    np.testing.assert_allclose(w[:, both].sum(axis=0), 1.0, atol=1e-12)
    assert (np.diff(w[0, both]) < 0).all() and (np.diff(w[1, both]) > 0).all()  # linear taper
    inner = Volume(ra.data[18:22], replace(ra.grid, shape=(4, N, N), origin_mm=(*ra.grid.origin_mm[:2], 18 * D)))
    inner_b = Volume(rb.data[2:6], replace(rb.grid, shape=(4, N, N), origin_mm=(*rb.grid.origin_mm[:2], 18 * D)))
    agree = overlap_agreement(inner, inner_b, np.ones(4), np.ones(4), inner.grid)
    assert agree["correlation"] > 0.97 and agree["mean_ratio"] == pytest.approx(1.0, abs=0.05), agree
    # the stitched overlap lies between the two beds voxel by voxel
    lo = np.minimum(ra.data[16:24], rb.data[:8]) - 1e-3
    hi = np.maximum(ra.data[16:24], rb.data[:8]) + 1e-3
    assert ((wb.data[16:24] >= lo) & (wb.data[16:24] <= hi)).all()


def test_stitching_refuses_mismatched_beds() -> None:
    g = ImageGrid((4, 8, 8), (2.0, 2.0, 2.0))
    other = ImageGrid((4, 8, 8), (2.0, 2.0, 2.0), (5.0, 0.0, 0.0))
    ones = np.ones(4)
    with pytest.raises(ValueError, match="transaxial origin"):
        stitch_beds([Volume(np.ones(g.shape), g), Volume(np.ones(g.shape), other)], [ones, ones])
    with pytest.raises(ValueError, match="different units"):
        stitch_beds([Volume(np.ones(g.shape), g), Volume(np.ones(g.shape), g, unit="Bq/mL")], [ones, ones])


def test_a_bed_given_twice_is_refused(beds: dict[str, Path], tmp_path: Path) -> None:
    assert recon_main(["spect", str(beds["a"]), str(beds["a"]), "-o", str(tmp_path / "x.h5"), *OPTS]) == 2
    assert not (tmp_path / "x.h5").exists()


def test_axial_sensitivity_ignores_rows_with_stray_counts(beds: dict[str, Path]) -> None:
    from recon.io.dicom import read_nm
    from recon.spect.multibed import active_rows

    acq = read_nm(beds["a"])
    counts = {}
    for name, c in acq.counts.items():
        c = np.array(c)
        c[:, :3] = 0.0  # rows 0-2 outside the useful field of view: a stray count here and there
        c[::7, :3, 5] = 1.0
        counts[name] = c
    profile = active_rows(replace(acq, counts=counts))
    assert profile[:3].tolist() == [0.0, 0.0, 0.0] and (profile[3:] == 1.0).all()
