"""PET randoms (singles, delayed) and normalisation (component and direct from a uniform cylinder)."""
from __future__ import annotations

import numpy as np
import pytest

from recon.data.pet_presets import get_pet_scanner
from recon.data.pet_sinogram import SinogramLayout
from recon.pet.normalisation import (check_normalisation, component_normalisation, cylinder_chord_lengths_mm,
                                     normalisation_from_cylinder, simulate_cylinder_scan)
from recon.pet.randoms import randoms_from_delayed, randoms_from_singles, singles_from_delayed

SCANNER = get_pet_scanner("small_test")


@pytest.mark.parametrize("span", [1, 3])
def test_randoms_from_uniform_singles_equal_closed_form(span):
    layout = SinogramLayout.for_fov(SCANNER, 250.0, span=span)
    rate, duration = 2.0e5, 30.0
    r = randoms_from_singles(layout, np.full(SCANNER.n_crystals, rate), duration)
    expected = SCANNER.coincidence_window_ns * 1e-9 * duration * rate * rate  # 2 tau T S^2 per ring pair
    want = np.broadcast_to(expected * layout.plane_weights()[None, :, None], r.shape)
    np.testing.assert_allclose(r, want, rtol=1e-6)


def test_randoms_from_singles_pair_by_pair():
    layout = SinogramLayout.for_fov(SCANNER, 250.0, span=1)
    rng = np.random.default_rng(3)
    s = rng.uniform(1e4, 3e4, SCANNER.n_crystals)
    r = randoms_from_singles(layout, s, 10.0, coincidence_window_ns=6.0)
    first, second = layout.crystal_pairs()
    lut = layout.ring_pair_plane()
    ra, rb = 2, 5
    p = lut[ra, rb]
    cpr = SCANNER.crystals_per_ring
    want = 6e-9 * 10.0 * s[ra * cpr + first] * s[rb * cpr + second]
    np.testing.assert_allclose(r[:, p, :], want, rtol=1e-5)


def test_randoms_tof_are_uniform_over_tof_bins():
    layout = SinogramLayout.for_fov(SCANNER, 250.0, tof=True)
    non_tof = SinogramLayout.for_fov(SCANNER, 250.0)
    s = np.full(SCANNER.n_crystals, 1e5)
    r_tof = randoms_from_singles(layout, s, 1.0)
    r = randoms_from_singles(non_tof, s, 1.0)
    assert r_tof.shape == layout.shape
    np.testing.assert_allclose(r_tof, np.repeat(r[..., None] / layout.n_tof, layout.n_tof, -1), rtol=1e-6)
    np.testing.assert_allclose(r_tof.sum(-1), r, rtol=1e-5)


@pytest.mark.parametrize("span", [1, 3])
def test_randoms_from_delayed_mean_and_variance(span):
    layout = SinogramLayout.for_fov(SCANNER, 250.0, span=span)
    rng = np.random.default_rng(11)
    s = 3e4 * (1 + 0.2 * rng.standard_normal(SCANNER.n_crystals)).clip(0.3)
    truth = randoms_from_singles(layout, s, 60.0).astype(np.float64)
    delayed = rng.poisson(truth).astype(np.float32)
    est = randoms_from_delayed(layout, delayed)
    assert abs(est.sum() / truth.sum() - 1) < 0.01
    # mean per ring-difference segment and per view within 1 %
    np.testing.assert_allclose(est.sum(axis=(1, 2)), truth.sum(axis=(1, 2)), rtol=0.01)
    var_raw = np.mean((delayed - truth) ** 2)
    var_est = np.mean((est - truth) ** 2)
    assert var_est < var_raw / 50, (var_est, var_raw)
    rates = singles_from_delayed(layout, delayed, frame_duration_s=60.0)
    assert np.sqrt(np.mean((rates / s - 1) ** 2)) < 0.02


def test_randoms_bad_input():
    layout = SinogramLayout.for_fov(SCANNER, 250.0)
    with pytest.raises(ValueError, match="singles rates have shape"):
        randoms_from_singles(layout, np.ones(5), 1.0)
    with pytest.raises(ValueError, match="finite and >= 0"):
        randoms_from_singles(layout, -np.ones(SCANNER.n_crystals), 1.0)
    with pytest.raises(ValueError, match="frame_duration_s"):
        randoms_from_singles(layout, np.ones(SCANNER.n_crystals), 0.0)
    with pytest.raises(ValueError, match="delayed sinogram has shape"):
        randoms_from_delayed(layout, np.ones((3, 3, 3)))
    with pytest.raises(ValueError, match="NaN"):
        randoms_from_delayed(layout, np.full(layout.shape, np.nan))


def test_chord_lengths_are_analytic():
    layout = SinogramLayout.for_fov(SCANNER, 250.0)
    chord = cylinder_chord_lengths_mm(layout, 100.0)
    za, zb = layout.plane_z_mm()
    a, b = layout.lor_endpoints_mm()
    # transaxial distance of each LOR from the axis, and the 3D stretch of its axial tilt
    d = np.abs(a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]) / np.hypot(*(b - a)[..., :2].transpose(3, 0, 1, 2)[:2])
    stretch = np.linalg.norm(b - a, axis=-1) / np.linalg.norm((b - a)[..., :2], axis=-1)
    want = np.where(d < 100.0, 2 * np.sqrt(np.clip(100.0 ** 2 - d ** 2, 0, None)), 0.0) * stretch
    np.testing.assert_allclose(chord, want, rtol=1e-4, atol=1e-3)
    # a diameter in a direct plane is exactly 2 R; a cylinder shorter than the LOR's z span clips it
    centre = layout.n_radial // 2
    assert chord[0, 0, centre] == pytest.approx(200.0, rel=1e-5)
    short = cylinder_chord_lengths_mm(layout, 100.0, half_length_mm=1.0)
    assert short.max() < chord.max()


def test_check_normalisation():
    layout = SinogramLayout.for_fov(SCANNER, 250.0)
    good = np.ones(layout.shape, np.float32)
    assert check_normalisation(layout, good).dtype == np.float32
    with pytest.raises(ValueError, match="shape"):
        check_normalisation(layout, np.ones((2, 2, 2)))
    bad = good.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        check_normalisation(layout, bad)
    bad[0, 0, 0] = 0.0
    with pytest.raises(ValueError, match="zero on 1 LORs"):
        check_normalisation(layout, bad)


def test_normalisation_from_simulated_cylinder_recovers_truth():
    """1e7 counts (~2e4 per crystal fan): efficiencies within 1 % rms and 3.5 % max (Poisson limit
    ~0.7 %); LOR factors within 1.5 % rms; the direct estimate is the per-LOR noisy one."""
    layout = SinogramLayout.for_fov(SCANNER, 200.0)
    rng = np.random.default_rng(5)
    eps = np.clip(1 + 0.1 * rng.standard_normal(SCANNER.n_crystals), 0.6, 1.4)
    k = np.arange(layout.n_radial) - layout.n_radial // 2
    g = 1 - 0.15 * (k / k.max()) ** 2
    truth = component_normalisation(layout, eps, g)
    truth /= truth.mean()
    counts = simulate_cylinder_scan(layout, eps, 100.0, 0.0096, 1e7, rng, radial_profile=g)
    est = normalisation_from_cylinder(layout, counts, 100.0, 0.0096)
    e = est.crystal_efficiencies / (eps / eps.mean())
    assert np.sqrt(np.mean((e - 1) ** 2)) < 0.01
    assert np.abs(e - 1).max() < 0.035
    assert np.sqrt(np.mean((est.factors / truth - 1) ** 2)) < 0.015
    inner = slice(2, -2)  # the outermost bins' chords are ~0: their profile is held from the neighbour
    np.testing.assert_allclose(est.radial_profile[inner] / est.radial_profile.max(), g[inner] / g.max(), atol=0.01)
    check_normalisation(layout, est.factors)
    direct = normalisation_from_cylinder(layout, counts, 100.0, 0.0096, method="direct")
    ok = cylinder_chord_lengths_mm(layout, 100.0) >= 20.0
    rel = direct.factors[ok] / truth[ok] - 1
    assert abs(rel.mean()) < 0.01 and np.sqrt(np.mean(rel ** 2)) < 0.25


def test_span3_normalisation_is_the_mean_over_merged_ring_pairs():
    """The convention for span > 1: the projector counts a plane's ring pairs (its weight), so the factor is
    the MEAN efficiency product (about 1 on every plane, whatever its weight), while randoms are the SUM."""
    layout = SinogramLayout.for_fov(SCANNER, 200.0, span=3)
    w = layout.plane_weights()
    assert w.min() == 1 and w.max() >= 2
    ones = np.ones(SCANNER.n_crystals)
    np.testing.assert_allclose(component_normalisation(layout, ones), 1.0, rtol=1e-6)
    r = randoms_from_singles(layout, ones, 1.0, coincidence_window_ns=1.0)
    np.testing.assert_allclose(r, 1e-9 * w[None, :, None] * np.ones(layout.shape), rtol=1e-5)
    counts = simulate_cylinder_scan(layout, ones, 100.0, 0.0096, 1e8, np.random.default_rng(2))
    est = normalisation_from_cylinder(layout, counts, 100.0, 0.0096).factors
    for weight in np.unique(w):
        mean = float(est[:, w == weight, :].mean())
        assert abs(mean - 1.0) < 0.01, (weight, mean)
