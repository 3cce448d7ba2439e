"""Joseph PET projector: adjointness, analytic line integrals, TOF sums and sign, and where a point lands.

Truth comes from outside the code under test: chord lengths of a sphere, the geometry of crystal
angles written out here, and exact Gaussian integrals.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from kernels import pet_projector as kp
from recon.algorithms.adjoint import assert_adjoint
from recon.data.grid import ImageGrid
from recon.data.pet import ScannerPlacement
from recon.data.pet_presets import get_pet_scanner
from recon.data.pet_scanner import PETScanner
from recon.data.pet_sinogram import SinogramLayout
from recon.pet.projector import ListModeProjector, SinogramProjector, placement_signs_offset, tof_kernel_of
from tests.conftest import supersampled_sphere

SMALL = get_pet_scanner("small_test")
GRID = ImageGrid.centered((8, 24, 24), (4.0, 5.0, 5.0))
PLACEMENT = ScannerPlacement("HFS", (1.5, -2.0, 3.0))


def _layout(tof: bool = False, span: int = 1) -> SinogramLayout:
    return SinogramLayout.for_fov(SMALL, 120.0, tof=tof, span=span)


@pytest.mark.parametrize("tof", [False, True])
@pytest.mark.parametrize("span", [1, 3])
def test_sinogram_operator_is_adjoint(rng, tof, span):
    proj = SinogramProjector(_layout(tof, span), PLACEMENT, GRID)
    op = proj.operator(np.array([0, 5, 17, 40, 63]))
    assert op.in_shape == GRID.shape
    assert op.out_shape == (5,) + proj.layout.shape[1:]
    assert_adjoint(op, rng, tolerance=1e-4, n_power_iterations=3)


@pytest.mark.parametrize("tof", [False, True])
def test_listmode_operator_is_adjoint(rng, tof):
    n = 3000
    da = rng.integers(0, SMALL.n_crystals, n)
    db = rng.integers(0, SMALL.n_crystals, n)
    tb = rng.integers(0, SMALL.n_tof_bins, n) if tof else None
    proj = ListModeProjector(SMALL, ScannerPlacement("FFP", (0.0, 3.0, -5.0)), GRID, da, db, tb)
    op = proj.operator(np.arange(0, n, 2))
    assert op.out_shape == (1500,)
    assert_adjoint(op, rng, tolerance=1e-4, n_power_iterations=3)


def test_line_integrals_through_a_sphere_equal_its_chords():
    """Axis-aligned, transaxially oblique and axially oblique LORs: chord 2 sqrt(R^2 - d^2) within 0.5 %.

    0.5 mm voxels, R = 20 mm. Exact lattice diagonals through voxel centres are left out: there every
    sample sits on a voxel centre, the partial-volume edge is sampled at one phase, and Joseph's
    method errs by up to ~1 % (0.4 mm on 48 mm, measured at 1 and 0.5 mm voxels), a known property
    of the method rather than of this code.
    """
    shape, spacing, radius = (96, 96, 96), (0.5, 0.5, 0.5), 20.0
    img = supersampled_sphere(shape, spacing, (0.0, 0.0, 0.0), radius, n_sub=4).astype(np.float32)
    origin = (-23.75, -23.75, -23.75)
    dirs = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0.93, 0.02], [1, 0.3, 0.1], [0.2, 1, 0.7],
                     [1, -0.91, 1.07], [-0.4, 0.1, 1]], float)
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    first, second, chords = [], [], []
    for k, u in enumerate(dirs):
        w = np.cross(u, [0.3, 0.5, 0.8])
        w /= np.linalg.norm(w)
        for d in (0.0, 6.1, 12.6):
            centre = w * d + u * (2.0 * k - 7.0)  # closest point shifted along the line: midpoint off the sphere centre
            first.append(centre - 150 * u)
            second.append(centre + 170 * u)
            chords.append(2 * math.sqrt(radius ** 2 - d ** 2))
    a, b = np.asarray(first, np.float32), np.asarray(second, np.float32)
    got = kp.joseph_forward(img, origin, (0.5, 0.5, 0.5), a, b)
    np.testing.assert_allclose(got, chords, rtol=5e-3)


def test_ray_along_an_axis_sums_voxels_times_voxel_size(rng):
    img = rng.random((5, 6, 7)).astype(np.float32)
    origin, vox = (10.0, -20.0, 5.0), (2.0, 3.0, 1.5)
    y, z = -20.0 + 3 * 3.0, 5.0 + 2 * 1.5
    a = np.array([[-100.0, y, z], [10.0 + 4 * 2.0, -200.0, z]], np.float32)
    b = np.array([[100.0, y, z], [10.0 + 4 * 2.0, 200.0, z]], np.float32)
    got = kp.joseph_forward(img, origin, vox, a, b)
    np.testing.assert_allclose(got, [img[2, 3, :].sum() * 2.0, img[2, :, 4].sum() * 3.0], rtol=1e-6)


def test_tof_bins_sum_to_the_non_tof_projection(rng):
    """Activity within |s| <= n w / 2 - n_sigmas sigma of the LOR midpoint: sum over bins == non-TOF (1e-4)."""
    tof = tof_kernel_of(SMALL)
    assert tof.exact_half_range_mm > 60.0  # the image below stays inside it
    img = rng.random((8, 16, 16)).astype(np.float32)
    origin, vox = (-30.0, -30.0, -14.0), (4.0, 4.0, 4.0)  # image within +-34 mm of the origin
    n = 400
    u = rng.normal(size=(n, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    mid = rng.uniform(-5, 5, (n, 3))
    a = (mid - 140 * u).astype(np.float32)
    b = (mid + 140 * u).astype(np.float32)
    plain = kp.joseph_forward(img, origin, vox, a, b)
    per_bin = kp.joseph_forward(img, origin, vox, a, b, tof=tof)
    assert per_bin.shape == (n, tof.n_bins)
    np.testing.assert_allclose(per_bin.sum(axis=1), plain, rtol=1e-4, atol=1e-4 * plain.max())
    events = rng.integers(0, tof.n_bins, n).astype(np.int32)
    one = kp.joseph_forward(img, origin, vox, a, b, tof=tof, tof_bins=events)
    np.testing.assert_allclose(one, per_bin[np.arange(n), events], rtol=1e-5, atol=1e-6 * plain.max())


def test_tof_profile_of_an_off_centre_point_peaks_at_its_position():
    """A point 37 mm from the LOR midpoint towards lor_second: the profile's mean is +37 mm and its
    shape is the bin-integrated Gaussian (erf), so a flipped sign or wrong centre fails."""
    tof = kp.TOFKernel(n_bins=25, bin_width_mm=6.0, sigma_mm=9.0, n_sigmas=4.0)
    img = np.zeros((9, 9, 31), np.float32)
    origin, vox = (-30.0, -8.0, -8.0), (2.0, 2.0, 2.0)
    img[4, 4, 25] = 1.0  # x = +20 mm, y = 0, z = 0
    a = np.array([[-17.0 - 120.0, 0.0, 0.0]], np.float32)  # LOR along +x, midpoint x = -17
    b = np.array([[-17.0 + 120.0, 0.0, 0.0]], np.float32)
    prof = kp.joseph_forward(img, origin, vox, a, b, tof=tof)[0]
    centres = (np.arange(25) - 12) * 6.0
    assert abs(float((prof * centres).sum() / prof.sum()) - 37.0) < 0.05
    assert int(np.argmax(prof)) == 12 + round(37.0 / 6.0)
    cdf = [0.5 * (math.erf((c + 3.0 - 37.0) / (9.0 * math.sqrt(2))) - math.erf((c - 3.0 - 37.0) / (9.0 * math.sqrt(2))))
           for c in centres]
    expected = np.asarray(cdf) / math.erf(4.0 / math.sqrt(2)) * 2.0  # unit voxel, 2 mm step
    np.testing.assert_allclose(prof, expected, atol=2e-3 * expected.max())
    reversed_prof = kp.joseph_forward(img, origin, vox, b, a, tof=tof)[0]
    np.testing.assert_allclose(reversed_prof, prof[::-1], rtol=1e-5, atol=1e-7)


def test_point_lands_in_the_bins_its_geometry_predicts():
    """A point at scanner-frame (+37, -23, z of ring 5), patient FFS with a table offset: for every view the
    radial bin of the sinogram maximum is the LOR passing closest to it (crystal angles computed here)."""
    placement = ScannerPlacement("FFS", (10.0, -5.0, 30.0))
    q = np.array([37.0, -23.0, (5 - 3.5) * SMALL.ring_spacing_mm])
    p = np.array([-q[0] + 10.0, q[1] - 5.0, -q[2] + 30.0])  # FFS: (-x, y, -z) + table
    spacing = 2.0
    shape = (16, 64, 64)
    origin = tuple(p - np.array([40, 20, 9]) * spacing)  # voxel (z=9, y=20, x=40) centred on the point
    grid = ImageGrid(shape, (spacing,) * 3, origin)
    img = np.zeros(shape, np.float32)
    img[9, 20, 40] = 1.0
    layout = _layout()
    sino = SinogramProjector(layout, placement, grid).operator(np.arange(layout.n_views)).apply(img)
    plane = layout.ring_pair_plane()[5, 5]
    assert np.unravel_index(np.argmax(sino), sino.shape)[1] == plane
    n = SMALL.crystals_per_ring
    first, second = layout.crystal_pairs()
    ang_a, ang_b = 2 * np.pi * first / n, 2 * np.pi * second / n
    rad = SMALL.lor_radius_mm
    xa, ya, xb, yb = rad * np.cos(ang_a), rad * np.sin(ang_a), rad * np.cos(ang_b), rad * np.sin(ang_b)
    dist = np.abs((xb - xa) * (ya - q[1]) - (xa - q[0]) * (yb - ya)) / np.hypot(xb - xa, yb - ya)
    expected = np.argmin(dist, axis=1)
    # a 2 mm voxel can fall between two LORs of a view (3.7 mm apart): those views see nothing
    seen = sino[:, plane, :].max(axis=1) > 0
    assert seen.mean() > 0.7
    got = np.argmax(sino[:, plane, :], axis=1)[seen]
    assert np.mean(got == expected[seen]) > 0.9
    assert np.all(np.abs(got - expected[seen]) <= 1)
    mirrored = np.abs((xb - xa) * (ya - q[1]) - (xa + q[0]) * (yb - ya)) / np.hypot(xb - xa, yb - ya)
    assert np.mean(got == np.argmin(mirrored, axis=1)[seen]) < 0.5  # a mirrored x axis would be caught


def test_block_gap_bins_and_events_project_to_zero(rng):
    gapped = PETScanner(name="gapped", ring_diameter_mm=300.0, n_rings=4, crystals_per_block=6, blocks_per_ring=12,
                        gap_crystals_per_block=2, crystal_transaxial_mm=4.0, crystal_axial_mm=4.0,
                        crystal_depth_mm=20.0, ring_spacing_mm=4.0)
    layout = SinogramLayout.for_fov(gapped, 120.0)
    grid = ImageGrid.centered((4, 24, 24), (4.0, 5.0, 5.0))
    img = np.ones(grid.shape, np.float32)
    sino = SinogramProjector(layout, ScannerPlacement(), grid).operator(np.arange(layout.n_views)).apply(img)
    present = layout.transaxial_present()
    assert (~present).any()
    assert np.all(sino[~present[:, None, :].repeat(layout.n_planes, 1)] == 0)
    assert np.all(sino[:, :, layout.n_radial // 2][present[:, layout.n_radial // 2]] > 0)
    gap_crystal = int(np.flatnonzero(~gapped.crystal_present())[0])
    lm = ListModeProjector(layout, ScannerPlacement(), grid, np.array([gap_crystal, 0]),
                           np.array([gapped.crystals_per_ring // 2, gapped.crystals_per_ring // 2 + 1]))
    vals = lm.operator(np.array([0, 1])).apply(img)
    assert vals[0] == 0.0 and vals[1] > 0


def test_plane_weights_scale_merged_planes():
    layout = _layout(span=3)
    proj = SinogramProjector(layout, PLACEMENT, GRID)
    img = np.ones(GRID.shape, np.float32)
    views = np.array([3])
    weighted = proj.operator(views).apply(img)
    unit = proj.line_integrals(img, views)
    w = layout.plane_weights()
    assert w.max() > 1
    np.testing.assert_allclose(weighted, unit * w[None, :, None], rtol=1e-6)


def test_placement_signs_offset_read_back():
    assert placement_signs_offset(ScannerPlacement("HFP", (1.0, 2.0, 3.0))) == ((-1.0, -1.0, 1.0), (1.0, 2.0, 3.0))


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(image=np.zeros((2, 2, 2), np.float64)), r"^image must be float32"),
    (dict(lor_second=np.zeros((3, 3), np.float32)), r"^lor_second must have shape \(4, 3\)"),
    (dict(voxel_size_xyz_mm=(1.0, 0.0, 1.0)), r"^voxel_size_xyz_mm must be 3 positive"),
    (dict(tof_bins=np.zeros(4, np.int32)), r"^tof_bins given without a tof kernel"),
    (dict(tof=kp.TOFKernel(3, 5.0, 4.0), tof_bins=np.full(4, 3, np.int32)), r"^tof_bins must lie in 0..2"),
])
def test_bad_kernel_input_is_refused_by_name(kwargs, message):
    args = dict(image=np.zeros((2, 2, 2), np.float32), origin_xyz_mm=(0, 0, 0), voxel_size_xyz_mm=(1, 1, 1),
                lor_first=np.zeros((4, 3), np.float32), lor_second=np.ones((4, 3), np.float32))
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        kp.joseph_forward(**args)


def test_bad_operator_input_is_refused_by_name():
    proj = SinogramProjector(_layout(), PLACEMENT, GRID)
    with pytest.raises(ValueError, match=r"^views must lie in 0..63"):
        proj.operator(np.array([64]))
    with pytest.raises(ValueError, match=r"^tof_bins must lie in 0..20"):
        ListModeProjector(SMALL, PLACEMENT, GRID, np.array([0]), np.array([64]), np.array([21]))
    with pytest.raises(ValueError, match=r"^tof.sigma_mm must be a positive"):
        kp.TOFKernel(3, 5.0, -1.0)
