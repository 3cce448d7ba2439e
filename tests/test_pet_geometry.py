"""PET scanner geometry and sinogram layout: bins, planes, event mapping, placement."""
import numpy as np
import pytest

from recon.data.pet import ScannerPlacement
from recon.data.pet_presets import PET_SCANNER_PRESETS, get_pet_scanner
from recon.data.pet_scanner import PETScanner
from recon.data.pet_sinogram import SinogramLayout


@pytest.mark.parametrize("name", sorted(PET_SCANNER_PRESETS))
def test_every_unordered_pair_appears_once(name):
    sc = get_pet_scanner(name)
    layout = SinogramLayout(sc, n_radial=sc.crystals_per_ring // 2)
    first, second = layout.crystal_pairs()
    keys = np.minimum(first, second) * sc.crystals_per_ring + np.maximum(first, second)
    assert np.unique(keys).size == keys.size
    assert np.all(first != second)


def test_radial_offset_is_signed_distance_from_axis():
    sc = get_pet_scanner("small_test")
    layout = SinogramLayout(sc, n_radial=33)
    a, b = layout.transaxial_endpoints_mm()
    d = (b - a) / np.linalg.norm(b - a, axis=-1, keepdims=True)
    dist = a[..., 0] * d[..., 1] - a[..., 1] * d[..., 0]  # signed distance of the LOR from the axis
    assert np.allclose(dist[:, 16], 0.0, atol=1e-3)  # k = 0 is a diameter
    assert np.all(np.diff(np.abs(dist[:, 16:]), axis=1) > 0)


@pytest.mark.parametrize("span", [1, 3, 5])
def test_planes_hold_every_ring_pair_once(span):
    sc = get_pet_scanner("small_test")
    layout = SinogramLayout(sc, n_radial=9, span=span)
    lut = layout.ring_pair_plane()
    assert (lut >= 0).all()
    counts = np.bincount(lut.ravel(), minlength=layout.n_planes)
    assert np.array_equal(counts, layout.plane_weights().astype(int))
    if span == 1:
        assert layout.n_planes == sc.n_rings ** 2


def test_max_ring_difference_excludes_oblique_pairs():
    sc = get_pet_scanner("small_test")
    layout = SinogramLayout(sc, n_radial=9, max_ring_difference=2)
    lut = layout.ring_pair_plane()
    ra, rb = np.indices(lut.shape)
    assert np.all((lut >= 0) == (np.abs(rb - ra) <= 2))


def test_events_map_to_their_bin_in_either_order_with_tof_mirrored():
    sc = get_pet_scanner("small_test")
    layout = SinogramLayout(sc, n_radial=21, span=1, tof=True)
    first, second = layout.crystal_pairs()
    v, r, plane, t = 5, 3, 17, 4
    ra, rb = np.argwhere(layout.ring_pair_plane() == plane)[0]
    da = ra * sc.crystals_per_ring + first[v, r]
    db = rb * sc.crystals_per_ring + second[v, r]
    flat, ok = layout.bins_of_events(np.array([da, db]), np.array([db, da]), np.array([t, t]))
    assert ok.all()
    expected = np.ravel_multi_index((v, plane, r, t), layout.shape)
    mirrored = np.ravel_multi_index((v, plane, r, layout.n_tof - 1 - t), layout.shape)
    assert flat.tolist() == [expected, mirrored]
    with pytest.raises(ValueError, match="out of range"):
        layout.bins_of_events(np.array([sc.n_crystals]), np.array([0]), np.array([0]))


def test_gap_crystals_carry_no_lors():
    sc = get_pet_scanner("mct_like")
    assert sc.crystals_per_ring == 48 * 14
    assert sc.crystal_present().sum() == 624
    layout = SinogramLayout.for_fov(sc, 600.0)
    present = layout.transaxial_present()
    assert 0 < present.mean() < 1


def test_scanner_refuses_bad_numbers():
    with pytest.raises(ValueError, match="ring_diameter_mm"):
        PETScanner("x", ring_diameter_mm=-1, n_rings=2, crystals_per_block=4, blocks_per_ring=4,
                   crystal_transaxial_mm=4, crystal_axial_mm=4, crystal_depth_mm=20, ring_spacing_mm=4)
    with pytest.raises(ValueError, match="1 TOF bin"):
        PETScanner("x", ring_diameter_mm=300, n_rings=2, crystals_per_block=4, blocks_per_ring=4,
                   crystal_transaxial_mm=4, crystal_axial_mm=4, crystal_depth_mm=20, ring_spacing_mm=4, n_tof_bins=3)


def test_tof_numbers():
    sc = get_pet_scanner("biograph_vision_like")
    assert sc.tof_sigma_mm == pytest.approx(214 * 0.299792458 / 2 / 2.3548, rel=1e-3)
    assert sc.tof_bin_width_mm == pytest.approx(142.8 * 0.299792458 / 2, rel=1e-6)


@pytest.mark.parametrize("position,expected", [("HFS", (10, 20, 30)), ("FFS", (-10, 20, -30)),
                                               ("HFP", (-10, -20, 30)), ("FFP", (10, -20, -30))])
def test_placement_maps_scanner_frame_to_lps(position, expected):
    p = ScannerPlacement(position, table_position_mm=(0.0, 0.0, -500.0))
    out = p.to_patient(np.array([10.0, 20.0, 30.0]))
    assert np.allclose(out, np.array(expected) + np.array([0, 0, -500.0]))
    with pytest.raises(ValueError, match="patient position"):
        ScannerPlacement("HFDR")
