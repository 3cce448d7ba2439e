"""PET system models through the shared OSEM: list-mode against sinogram, calibrated recovery, placement."""
from __future__ import annotations

import numpy as np
import pytest

from recon.algorithms.adjoint import adjointness_test
from recon.algorithms.operators import ElementwiseMultiply
from recon.algorithms.reconstruct import OSEMOptions, reconstruct
from recon.data.grid import ImageGrid, Volume
from recon.data.pet import ScannerPlacement
from recon.data.pet_presets import get_pet_scanner
from recon.data.pet_sinogram import SinogramLayout
from recon.phantoms.phantom import PhantomBuilder
from recon.phantoms.shapes import EllipticCylinder, Sphere
from recon.pet.attenuation import attenuation_factors
from recon.pet.calibration import calibration_factor_from_cylinder, pet_calibration
from recon.pet.projector import SinogramProjector
from recon.pet.reconstruct import PETReconOptions, reconstruct_pet
from recon.pet.simulate import PETSimulationProtocol, events_from_sinogram, simulate_pet
from recon.pet.system_model import PETListModeModel, PETSinogramModel
from recon.quant.calibration import calibrate

GRID = ImageGrid.centered((8, 40, 40), (4.0, 4.0, 4.0))
HOT_CENTRE = (24.0, -16.0, 2.0)  # asymmetric: +x (left), -y (anterior), +z


def _phantom(grid: ImageGrid, hot: bool = True):
    b = PhantomBuilder(grid, energy_kev=511.0)
    b.paint("body", EllipticCylinder.circular((0.0, 0.0, 0.0), 60.0, 30.0), 1000.0, material="water")
    if hot:
        b.paint("hot", Sphere(HOT_CENTRE, 9.0), 5000.0, material="water", carve_from=("body",))
    return b.build()


def _simulate(layout, protocol, seed=1, hot=True, placement=ScannerPlacement()):
    return simulate_pet(lambda g: _phantom(g, hot), GRID, layout, placement, protocol, np.random.default_rng(seed))


def test_elementwise_multiply_broadcasts_over_tof_bins():
    w = np.arange(6, dtype=np.float32).reshape(2, 3, 1) + 1
    op = ElementwiseMultiply(w, shape=(2, 3, 4))
    x = np.ones((2, 3, 4), np.float32)
    assert np.array_equal(op.apply(x), np.broadcast_to(w, (2, 3, 4)))
    with pytest.raises(ValueError, match="broadcast"):
        ElementwiseMultiply(w, shape=(2, 4, 4))


@pytest.mark.parametrize("tof", [False, True])
def test_system_model_subset_is_adjoint(tof):
    layout = SinogramLayout.for_fov(get_pet_scanner("small_test"), 160.0, tof=tof)
    rng = np.random.default_rng(0)
    m = rng.uniform(0.5, 1.0, layout.shape[:3]).astype(np.float32)
    model = PETSinogramModel(layout, ScannerPlacement(), GRID, multiplicative=m, psf_fwhm_mm=5.0, device="cpu")
    op = model.subset_operator(np.arange(0, layout.n_views, 5))
    res = adjointness_test(op, rng)
    assert res.relative_error < 1e-4


@pytest.mark.parametrize("tof", [False, True])
def test_listmode_and_sinogram_osem_of_the_same_events_agree(tof):
    layout = SinogramLayout.for_fov(get_pet_scanner("small_test"), 160.0, tof=tof)
    protocol = PETSimulationProtocol(kappa=4e-8 if tof else 1e-7, frame_duration_s=300.0, fine_factor=1, rays_per_side=1)
    sim = _simulate(layout, protocol)
    mu = _phantom(GRID).mu_map
    att = attenuation_factors(SinogramProjector(layout, ScannerPlacement(), GRID, "cpu"), mu)
    m = sim.normalisation * np.asarray(att)
    additive = sim.scatter + sim.randoms
    opts = OSEMOptions(2, 4, progress=False)
    sino_model = PETSinogramModel(layout, ScannerPlacement(), GRID, multiplicative=m, psf_fwhm_mm=4.5, device="cpu")
    x_sino = reconstruct(sino_model, sim.sinogram.prompts, additive, opts)
    events = events_from_sinogram(layout, sim.sinogram.prompts.astype(np.int64), 300.0, np.random.default_rng(5))
    lm = PETListModeModel(layout, ScannerPlacement(), GRID, events, multiplicative=m, psf_fwhm_mm=4.5, device="cpu")
    assert lm.n_dropped == 0 and lm.data_shape[0] == int(sim.sinogram.prompts.sum())
    x_lm = reconstruct(lm, np.ones(lm.data_shape, np.float32), lm.event_values(additive), opts)
    body = _phantom(GRID).regions.mask("body")
    assert np.abs(x_lm[body] - x_sino[body]).max() / x_sino[body].max() < 0.01
    assert abs(x_lm[body].mean() / x_sino[body].mean() - 1.0) < 0.01


def test_calibrated_uniform_cylinder_recovers_its_concentration_and_the_hot_sphere_sits_where_it_is():
    """Finer-model data (2x finer phantom, 4 sub-LORs per bin, extra blur), with normalisation,
    attenuation and randoms; calibrated with the analytic calibration factor V / (kappa p_beta)."""
    layout = SinogramLayout.for_fov(get_pet_scanner("small_test"), 160.0)
    protocol = PETSimulationProtocol(kappa=2e-7, frame_duration_s=300.0, scatter_fraction=0.0, randoms_fraction=0.2)
    sim = _simulate(layout, protocol, seed=3)
    phantom = _phantom(GRID)
    from dataclasses import replace

    sino = replace(sim.sinogram, image_grid=GRID)
    from recon.data.pet import SinogramCorrections

    corr = SinogramCorrections(layout, normalisation=sim.normalisation)
    vol, used = reconstruct_pet(sino, phantom.mu_map, corrections=corr,
                                options=PETReconOptions(3, 4, scatter="none", device="cpu", progress=False))
    assert used.randoms is not None and abs(used.randoms.sum() / sim.randoms.sum() - 1) < 0.02
    f_analytic = GRID.voxel_volume_ml / (protocol.kappa * protocol.positron_fraction)
    out = calibrate(vol, pet_calibration(sino, f_analytic, half_life=protocol.half_life_s))
    assert out.unit == "Bq/mL"
    # background ROI: the central slices, 2 resolution lengths (~10 mm) inside the edge, away from the sphere
    gx, gy = np.meshgrid(GRID.axis_mm("x"), GRID.axis_mm("y"), indexing="xy")
    inner = phantom.regions.mask("body") & (np.abs(GRID.axis_mm("z"))[:, None, None] <= 6.0) & (np.hypot(gx, gy) < 45.0)[None]
    far = inner & (np.hypot(gx - HOT_CENTRE[0], gy - HOT_CENTRE[1]) > 25.0)[None]
    mean = float(out.data[far].mean())
    assert abs(mean / 1000.0 - 1.0) < 0.02, mean
    z, y, x = np.unravel_index(np.argmax(out.data), out.data.shape)
    peak = (GRID.axis_mm("x")[x], GRID.axis_mm("y")[y], GRID.axis_mm("z")[z])
    assert np.allclose(peak[:2], HOT_CENTRE[:2], atol=4.5)
    # the calibration factor measured on the (hot-free) cylinder as a clinic would agrees with the analytic one
    cyl = _simulate(layout, protocol, seed=4, hot=False)
    cvol, _ = reconstruct_pet(replace(cyl.sinogram, image_grid=GRID), phantom.mu_map,
                              corrections=SinogramCorrections(layout, normalisation=cyl.normalisation),
                              options=PETReconOptions(3, 4, scatter="none", device="cpu", progress=False))
    f_measured = calibration_factor_from_cylinder(cvol, far, 1000.0, protocol.frame_duration_s, protocol.half_life_s)
    assert abs(f_measured / f_analytic - 1.0) < 0.03


@pytest.mark.parametrize("position", ["HFS", "FFS"])
def test_a_point_lands_at_its_patient_position_for_head_and_feet_first(position):
    """Data simulated with the scanner placed feet-first come back at the same LPS position."""
    layout = SinogramLayout.for_fov(get_pet_scanner("small_test"), 160.0)
    placement = ScannerPlacement(position, (0.0, 0.0, 0.0))
    protocol = PETSimulationProtocol(kappa=1e-7, frame_duration_s=300.0, scatter_fraction=0.0, randoms_fraction=0.0,
                                     fine_factor=1, rays_per_side=1, noise=False)
    sim = _simulate(layout, protocol, placement=placement)
    model = PETSinogramModel(layout, placement, GRID, multiplicative=sim.normalisation, device="cpu")
    x = reconstruct(model, sim.sinogram.prompts, None, OSEMOptions(3, 4, progress=False))
    hot = (x >= 0.8 * x.max())
    zz, yy, xx = np.nonzero(hot)
    w = x[hot]
    centroid = (np.average(GRID.axis_mm("x")[xx], weights=w), np.average(GRID.axis_mm("y")[yy], weights=w),
                np.average(GRID.axis_mm("z")[zz], weights=w))
    assert np.allclose(centroid, HOT_CENTRE, atol=2.5), centroid


def test_scatter_estimated_inside_the_reconstruction_removes_the_scatter_bias():
    """30 % scatter in the data: with SSS (tail-scaled, two updates) the calibrated background is right;
    ignoring scatter leaves it far too high. The scatter estimate's total is near the simulated one."""
    from dataclasses import replace

    from recon.data.pet import SinogramCorrections

    layout = SinogramLayout.for_fov(get_pet_scanner("small_test"), 200.0)
    protocol = PETSimulationProtocol(kappa=2e-7, frame_duration_s=300.0, scatter_fraction=0.3, randoms_fraction=0.1,
                                     fine_factor=1, rays_per_side=1)
    sim = _simulate(layout, protocol, seed=7, hot=False)
    phantom = _phantom(GRID, hot=False)
    sino = replace(sim.sinogram, image_grid=GRID)
    corr = SinogramCorrections(layout, normalisation=sim.normalisation)
    f = GRID.voxel_volume_ml / (protocol.kappa * protocol.positron_fraction)
    gx, gy = np.meshgrid(GRID.axis_mm("x"), GRID.axis_mm("y"), indexing="xy")
    roi = phantom.regions.mask("body") & (np.abs(GRID.axis_mm("z"))[:, None, None] <= 6.0) & (np.hypot(gx, gy) < 45.0)[None]
    means = {}
    for method in ("sss", "none"):
        vol, used = reconstruct_pet(sino, phantom.mu_map, corrections=corr,
                                    options=PETReconOptions(3, 4, scatter=method, device="cpu", progress=False))
        means[method] = float(calibrate(vol, pet_calibration(sino, f, half_life=protocol.half_life_s)).data[roi].mean())
        if method == "sss":
            assert abs(used.scatter.sum() / sim.scatter.sum() - 1.0) < 0.10
    assert abs(means["sss"] / 1000.0 - 1.0) < 0.03, means
    assert means["none"] / 1000.0 - 1.0 > 0.10, means
