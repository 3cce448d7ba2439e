"""VOI statistics, SUVpeak, segmentation, connected components and response matching.

Truths: a uniform region larger than the 1 mL sphere has SUVpeak equal to its
value; a linear field has sphere mean equal to its value at the centre (the
sphere is symmetric); an odd step around a value has mean equal to it; voxel
counts x voxel volume; a tiny breadth-first search as the reference labeller.
"""
from __future__ import annotations

import math
from collections import deque

import numpy as np
import pytest

from recon.data.grid import ImageGrid, Volume
from recon.quant.response import compare_lesions
from recon.quant.voi import (
    BONE_SPECT_TC99M_CUTOFFS,
    classify_cutoffs,
    connected_components,
    lesion_table,
    percent_of_max_segment,
    segment_lesions,
    sphere_kernel,
    sphere_mean_at,
    suv_peak,
    voi_statistics,
)

R1ML = (3 * 1000 / (4 * math.pi)) ** (1 / 3)  # mm, radius of a 1 mL sphere


def _grid(shape=(30, 30, 30), d=(4.0, 4.0, 4.0), origin=(-50.0, 20.0, 100.0)) -> ImageGrid:
    return ImageGrid(shape, d, origin)


def _ball(grid: ImageGrid, centre_idx, radius_mm: float) -> np.ndarray:
    c = grid.index_to_mm(centre_idx)
    z, y, x = np.meshgrid(grid.axis_mm("z"), grid.axis_mm("y"), grid.axis_mm("x"), indexing="ij")
    return (x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2 <= radius_mm**2


# --------------------------------------------------------------------------- SUVpeak

@pytest.mark.parametrize("d", [(4.0, 4.0, 4.0), (2.0, 2.0, 2.0), (3.27, 2.5, 2.5)])
def test_kernel_is_a_1ml_symmetric_sphere(d):
    k = sphere_kernel(d)
    assert k.sum() == pytest.approx(1.0)
    for ax in range(3):
        np.testing.assert_allclose(k, np.flip(k, axis=ax), atol=1e-15)
    # support: no voxel whose nearest point is farther than the radius
    half = np.array(k.shape) // 2
    idx = np.argwhere(k > 0) - half
    nearest = np.maximum(np.abs(idx) - 0.5, 0) * np.array(d)
    assert np.all(np.sqrt((nearest**2).sum(axis=1)) <= R1ML + 1e-9)


@pytest.mark.parametrize("d", [(4.0, 4.0, 4.0), (2.0, 2.0, 2.0)])
def test_peak_of_uniform_hot_sphere_equals_its_value(d):
    g = ImageGrid((int(80 / d[0]),) * 3, d, (0.0, 0.0, 0.0))
    v = np.ones(g.shape)
    c = tuple(s // 2 for s in g.shape)
    hot = _ball(g, c, 15.0)
    v[hot] = 5.0
    vol = Volume(v, g, "SUVbw")
    p, centre = suv_peak(vol.data, g, hot, "search")
    assert p == pytest.approx(5.0, rel=1e-6)
    st = voi_statistics(vol, hot)
    assert st.max == 5.0 and st.mean == 5.0
    assert st.peak_search == pytest.approx(5.0, rel=1e-6)
    assert st.n_voxels == hot.sum()
    assert st.volume_ml == pytest.approx(hot.sum() * g.voxel_volume_ml)
    assert st.total_uptake == pytest.approx(5.0 * hot.sum() * g.voxel_volume_ml)


def test_linear_field_sphere_mean_is_centre_value():
    g = _grid()
    z, y, x = np.meshgrid(g.axis_mm("z"), g.axis_mm("y"), g.axis_mm("x"), indexing="ij")
    f = 3.0 + 0.05 * x - 0.02 * y + 0.03 * z
    c = (12, 15, 17)
    assert sphere_mean_at(f, g, c) == pytest.approx(f[c], rel=1e-6)
    # search within an interior VOI lands on the VOI voxel with the highest value
    voi = np.zeros(g.shape, bool)
    voi[10:20, 10:20, 10:20] = True
    p, centre = suv_peak(f, g, voi, "search")
    assert centre == (19, 10, 19)
    assert p == pytest.approx(f[19, 10, 19], rel=1e-6)


def test_odd_step_has_mean_half():
    g = _grid()
    v = np.zeros(g.shape)
    v[:, :, 16:] = 1.0
    v[:, :, 15] = 0.5
    assert sphere_mean_at(v, g, (15, 15, 15)) == pytest.approx(0.5, abs=1e-12)


def test_max_centred_and_search_differ_as_defined():
    g = _grid()
    v = np.zeros(g.shape)
    spike = (5, 5, 5)
    v[spike] = 100.0  # a single hot voxel: the VOI max
    plateau = _ball(g, (20, 20, 20), 20.0)
    v[plateau] = 10.0  # a region wider than the 1 mL sphere
    voi = plateau.copy()
    voi[spike] = True
    centred, c_idx = suv_peak(v, g, voi, "max_centred")
    search, s_idx = suv_peak(v, g, voi, "search")
    assert c_idx == spike
    # the central 4 mm voxel lies wholly inside the sphere: its weight is 64 mm^3 / 1000 mm^3
    assert centred == pytest.approx(100.0 * 64.0 / 1000.0, rel=0.01)
    assert search == pytest.approx(10.0, rel=1e-9)
    with pytest.raises(ValueError):
        suv_peak(v, g, voi, "nonsense")


def test_peak_near_image_border_uses_inside_part():
    g = _grid((10, 10, 10))
    v = np.full(g.shape, 2.0)
    m = np.zeros(g.shape, bool)
    m[0, 0, 0] = True
    assert suv_peak(v, g, m, "max_centred")[0] == pytest.approx(2.0)


# --------------------------------------------------------------------------- components

def _bfs_count(mask: np.ndarray, conn: int) -> int:
    offs = [(a, b, c) for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1)
            if 0 < abs(a) + abs(b) + abs(c) <= {6: 1, 18: 2, 26: 3}[conn]]
    seen = np.zeros(mask.shape, bool)
    n = 0
    for start in zip(*np.nonzero(mask)):
        if seen[start]:
            continue
        n += 1
        seen[start] = True
        q = deque([start])
        while q:
            p = q.popleft()
            for o in offs:
                r = (p[0] + o[0], p[1] + o[1], p[2] + o[2])
                if all(0 <= r[i] < mask.shape[i] for i in range(3)) and mask[r] and not seen[r]:
                    seen[r] = True
                    q.append(r)
    return n


def test_connectivity_definitions():
    m = np.zeros((4, 4, 4), bool)
    m[0, 0, 0] = m[1, 1, 1] = True  # corner contact
    assert connected_components(m, 26)[1] == 1
    assert connected_components(m, 18)[1] == 2
    m2 = np.zeros((4, 4, 4), bool)
    m2[0, 0, 0] = m2[0, 1, 1] = True  # edge contact
    assert connected_components(m2, 18)[1] == 1
    assert connected_components(m2, 6)[1] == 2
    assert connected_components(np.zeros((2, 2, 2), bool))[1] == 0


@pytest.mark.parametrize("conn", [6, 18, 26])
def test_components_match_reference_bfs(conn):
    rng = np.random.default_rng(7)
    m = rng.random((12, 13, 14)) > 0.72
    labels, n = connected_components(m, conn)
    assert n == _bfs_count(m, conn)
    assert set(np.unique(labels[m])) == set(range(1, n + 1))
    assert np.all(labels[~m] == 0)
    # every component connected and each label a single component
    for i in range(1, n + 1):
        assert _bfs_count(labels == i, conn) == 1


# --------------------------------------------------------------------------- segmentation

def _gauss(g: ImageGrid, centre_idx, peak: float, sigma_mm: float) -> np.ndarray:
    c = g.index_to_mm(centre_idx)
    z, y, x = np.meshgrid(g.axis_mm("z"), g.axis_mm("y"), g.axis_mm("x"), indexing="ij")
    r2 = (x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2
    return peak * np.exp(-r2 / (2 * sigma_mm**2))


def test_percent_of_max_segmentation_of_two_blobs():
    g = _grid((30, 30, 40))
    sigma = 8.0
    a, b = (15, 15, 10), (15, 15, 30)
    v = _gauss(g, a, 10.0, sigma) + _gauss(g, b, 5.0, sigma)
    labels, n = segment_lesions(Volume(v, g, "SUVbw"), percent_of_max=41.0, seed_threshold=2.5)
    assert n == 2
    # label 1 is the hotter blob: exactly the connected voxels >= 4.1 around a
    assert labels[a] == 1 and labels[b] == 2
    np.testing.assert_array_equal(labels == 1, percent_of_max_segment(v, a, 41.0))
    assert np.all(v[labels == 1] >= 0.41 * v[a])
    assert np.all(v[labels == 2] >= 0.41 * v[b])
    # the 41 % region of an isolated Gaussian is a ball of radius sigma sqrt(2 ln(1/0.41))
    r41 = sigma * math.sqrt(2 * math.log(1 / 0.41))
    single = _gauss(g, a, 10.0, sigma)
    reg = percent_of_max_segment(single, a, 41.0)
    np.testing.assert_array_equal(reg, _ball(g, a, r41) & (single >= 4.1))


def test_fixed_threshold_segmentation_and_min_volume():
    g = _grid((20, 20, 20))
    v = np.zeros(g.shape)
    v[2:6, 2:6, 2:6] = 8.0  # 64 voxels = 4.096 mL
    v[12, 12, 12] = 9.0  # one voxel = 0.064 mL
    labels, n = segment_lesions(Volume(v, g, "SUVbw"), threshold=5.0)
    assert n == 2 and labels[12, 12, 12] == 1  # numbered by decreasing max
    labels, n = segment_lesions(Volume(v, g, "SUVbw"), threshold=5.0, min_volume_ml=0.5)
    assert n == 1 and labels[3, 3, 3] == 1
    with pytest.raises(ValueError):
        segment_lesions(Volume(v, g, "SUVbw"))


# --------------------------------------------------------------------------- table, cut-offs, response

def test_cutoff_classification_wording():
    assert BONE_SPECT_TC99M_CUTOFFS == (7.40, 11.26)
    rel = lambda v: [c["relation"] for c in classify_cutoffs(v)]  # noqa: E731
    assert rel(5.0) == ["below cut-off", "below cut-off"]
    assert rel(8.0) == ["above cut-off", "below cut-off"]
    assert rel(12.0) == ["above cut-off", "above cut-off"]
    assert rel(7.40) == ["above cut-off", "below cut-off"]
    assert [c["cutoff"] for c in classify_cutoffs(3.0, (5.0, 2.0))] == [2.0, 5.0]


def _study(g: ImageGrid, lesions) -> Volume:
    v = np.full(g.shape, 0.5)
    for idx, peak in lesions:
        v = v + _gauss(g, idx, peak, 6.0)
    return Volume(v, g, "SUVbw")


def test_lesion_table_positions_in_lps():
    g = _grid((20, 25, 30))
    vol = _study(g, [((10, 12, 8), 9.0)])
    labels, n = segment_lesions(vol, percent_of_max=41.0, seed_threshold=3.0)
    (rec,) = lesion_table(vol, labels)
    expect = (-50.0 + 8 * 4.0, 20.0 + 12 * 4.0, 100.0 + 10 * 4.0)
    assert rec.max_position_mm == pytest.approx(expect)
    assert rec.centroid_mm == pytest.approx(expect, abs=1e-6)  # symmetric blob
    assert rec.stats.max == pytest.approx(9.5)
    assert [c["relation"] for c in rec.cutoffs] == ["above cut-off", "below cut-off"]
    d = rec.to_dict()
    assert d["cutoff_note"].endswith("not a diagnosis")


def test_response_matching_new_and_vanished():
    g = _grid((24, 24, 40))
    base = _study(g, [((12, 12, 8), 10.0), ((12, 12, 30), 8.0)])
    follow = _study(g, [((12, 13, 8), 5.0), ((4, 4, 20), 6.0)])  # first moved 4 mm, second gone, one new
    tb = lesion_table(base, segment_lesions(base, percent_of_max=41.0, seed_threshold=3.0)[0])
    tf = lesion_table(follow, segment_lesions(follow, percent_of_max=41.0, seed_threshold=3.0)[0])
    rep = compare_lesions(tb, tf, max_distance_mm=15.0)
    assert len(rep.matched) == 1
    m = rep.matched[0]
    assert m.distance_mm == pytest.approx(4.0)
    assert m.suv_max_baseline == pytest.approx(10.5) and m.suv_max_followup == pytest.approx(5.5)
    assert m.suv_max_change == pytest.approx(-5.0)
    assert m.suv_max_change_pct == pytest.approx(-5.0 / 10.5 * 100)
    assert m.suv_peak_change_pct == pytest.approx(
        100 * (tf[m.followup_label - 1].stats.peak_search / tb[m.baseline_label - 1].stats.peak_search - 1))
    base_by_label = {r.label: r for r in tb}
    assert [base_by_label[i].stats.max for i in rep.vanished] == [pytest.approx(8.5)]
    follow_by_label = {r.label: r for r in tf}
    assert [follow_by_label[i].stats.max for i in rep.new] == [pytest.approx(6.5)]
    # an offset that undoes the shift gives distance 0; a tight radius matches nothing
    assert compare_lesions(tb, tf, followup_offset_mm=(0, 4.0, 0)).matched[0].distance_mm == pytest.approx(0.0)
    none = compare_lesions(tb, tf, max_distance_mm=2.0)
    assert none.matched == [] and len(none.new) == 2 and len(none.vanished) == 2
