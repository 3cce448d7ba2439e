"""The SPECT model as a SystemModel: adjoint operators, an explicit grid in patient space, mu-maps
on that grid only, and reconstructions placed where the acquisition says."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from recon.algorithms import (
    ElementwiseMultiply,
    OSEMOptions,
    SystemModel,
    adjoint_of,
    assert_adjoint,
    build_subsets,
    compose,
    reconstruct,
)
from recon.backend import to_host
from recon.data import ImageGrid, SPECTGeometry, Volume, get_collimator
from recon.data.study import AcquisitionInfo
from recon.spect.reconstruct import SPECTReconOptions, reconstruct_spect
from recon.spect.simulate import AcquisitionProtocol, simulate_spect
from recon.spect.system_model import SPECTSystemModel
from tests.conftest import supersampled_cylinder

WATER_MU_140 = 0.01536  # 1/mm


def _noncircular_geometry(n_views=16, n_rows=8, n=24, pixel=6.0) -> SPECTGeometry:
    angles = np.linspace(0.0, 360.0, n_views, endpoint=False) + 4.0
    radius = 130.0 + 30.0 * np.abs(np.sin(np.deg2rad(angles)))  # body-contour orbit
    return SPECTGeometry(angles, radius, n_rows=n_rows, n_cols=n, pixel_size_mm=pixel)


def _mu(geo: SPECTGeometry, grid: ImageGrid | None = None) -> Volume:
    shape = (geo.n_rows, geo.n_cols, geo.n_cols)
    body = supersampled_cylinder(shape, (geo.slice_thickness_mm, geo.pixel_size_mm, geo.pixel_size_mm), 55.0, 1e3,
                                 n_sub=2)
    return Volume(body * WATER_MU_140, grid or geo.image_grid(), "1/mm")


def test_spect_views_operator_is_adjoint_with_attenuation_psf_noncircular_orbit(rng, device):
    geo = _noncircular_geometry()
    model = SPECTSystemModel(geo, get_collimator("SY-LEHR"), 140.5, _mu(geo), psf=True, device=device)
    assert model.attenuation is not None
    for views in (np.arange(geo.n_views), np.arange(1, geo.n_views, 4)):
        op = model.subset_operator(views)
        assert_adjoint(op, rng, model.xp)
        assert_adjoint(adjoint_of(op), rng, model.xp)
    # the model inside a composition: projection-space weights o A_b o image-space weights
    op = model.subset_operator(np.arange(2, geo.n_views, 3))
    w_proj = model.xp.asarray(rng.uniform(0.5, 1.5, op.out_shape).astype(np.float32))
    w_img = model.xp.asarray(rng.uniform(0.5, 1.5, op.in_shape).astype(np.float32))
    assert_adjoint(compose(ElementwiseMultiply(w_proj), op, ElementwiseMultiply(w_img)), rng, model.xp)


def test_spect_model_implements_the_protocol(rng, device):
    geo = _noncircular_geometry()
    model = SPECTSystemModel(geo, get_collimator("SY-LEHR"), 140.5, None, psf=True, device=device)
    assert isinstance(model, SystemModel)
    assert model.data_shape == (geo.n_views, geo.n_rows, geo.n_cols)
    assert model.n_subset_units == geo.n_views
    assert model.grid == geo.image_grid()
    full = rng.random(model.data_shape).astype(np.float32)
    part = model.subset_data(full, np.array([3, 0, 7]))
    assert part.flags.c_contiguous
    np.testing.assert_array_equal(to_host(part), full[[3, 0, 7]])
    with pytest.raises(ValueError, match=r"projections shape \(16, 8, 23\) != model data shape \(16, 8, 24\)"):
        model.subset_data(full[:, :, :23], np.array([0]))
    with pytest.raises(ValueError, match="view indices must be a non-empty set in"):
        model.subset_data(full, np.array([16]))
    with pytest.raises(AttributeError):
        model.grid = geo.image_grid().recentred((1.0, 2.0, 3.0))


def test_mu_map_must_sit_on_the_reconstruction_grid():
    geo = _noncircular_geometry()
    col = get_collimator("SY-LEHR")
    centred = geo.image_grid()
    shifted = centred.recentred((0.0, 0.0, 5.0))
    with pytest.raises(ValueError, match="origin .* resample the mu-map onto the reconstruction grid"):
        SPECTSystemModel(geo, col, 140.5, _mu(geo, shifted))
    with pytest.raises(ValueError, match="resample the mu-map onto the reconstruction grid"):
        SPECTSystemModel(geo, col, 140.5, _mu(geo), grid=shifted)
    # the model's grid is its argument, never the mu-map's
    model = SPECTSystemModel(geo, col, 140.5, _mu(geo, shifted), grid=shifted)
    assert model.grid == shifted
    nearly = ImageGrid(centred.shape, centred.spacing_mm, tuple(o + 4e-4 for o in centred.origin_mm))
    assert SPECTSystemModel(geo, col, 140.5, _mu(geo, nearly)).grid == centred
    with pytest.raises(TypeError, match="grid must be an ImageGrid"):
        SPECTSystemModel(geo, col, 140.5, None, grid=(8, 24, 24))


@pytest.fixture(scope="module")
def placed_study():
    n, nz, pixel = 24, 8, 6.0
    grid = ImageGrid.centered((nz, n, n), (pixel,) * 3)
    body = supersampled_cylinder((nz, n, n), (pixel,) * 3, 55.0, 1e3, n_sub=2)
    proto = AcquisitionProtocol(n_views=24, radius_mm=120.0)
    acq = simulate_spect(Volume(body * 20e3, grid, "Bq/mL"), Volume(body * WATER_MU_140, grid, "1/mm"), proto,
                         rng=np.random.default_rng(7), device="cpu")
    return acq, body


def test_reconstruction_is_placed_where_the_acquisition_says(placed_study):
    acq, body = placed_study
    centre = (12.0, -30.0, 45.0)
    uid = "1.2.826.0.1.3680043.8.498.12345"
    placed = dataclasses.replace(acq, center_mm=centre, info=AcquisitionInfo(frame_of_reference_uid=uid))
    opts = SPECTReconOptions(2, 4, scatter="tew", device="cpu", progress=False)
    mu_placed = Volume(body * WATER_MU_140, placed.image_grid, "1/mm")
    vol = reconstruct_spect(placed, mu_placed, opts)
    assert vol.grid.center_mm == centre
    assert vol.grid == placed.image_grid
    assert vol.frame_of_reference_uid == uid
    # a mu-map left at the origin is refused, not silently used
    with pytest.raises(ValueError, match="resample the mu-map onto the reconstruction grid"):
        reconstruct_spect(placed, Volume(body * WATER_MU_140, acq.geometry.image_grid(), "1/mm"), opts)
    # placement changes nothing physical: the same numbers as the study at the origin
    at_origin = dataclasses.replace(acq, center_mm=None)
    ref = reconstruct_spect(at_origin, Volume(body * WATER_MU_140, at_origin.image_grid, "1/mm"), opts)
    assert ref.grid.center_mm == (0.0, 0.0, 0.0)
    assert ref.frame_of_reference_uid == ""
    np.testing.assert_array_equal(vol.data, ref.data)


def test_simulation_places_the_acquisition_on_the_activity_grid():
    n, nz, pixel = 24, 8, 6.0
    grid = ImageGrid.centered((nz, n, n), (pixel,) * 3).recentred((-40.0, 25.0, 300.0))
    body = supersampled_cylinder((nz, n, n), (pixel,) * 3, 55.0, 1e3, n_sub=2)
    mu = Volume(body * WATER_MU_140, grid, "1/mm")
    acq = simulate_spect(Volume(body * 1e4, grid, "Bq/mL"), mu, AcquisitionProtocol(n_views=24, radius_mm=120.0),
                         rng=None, device="cpu")
    assert acq.center_mm == grid.center_mm
    assert acq.image_grid.same_as(grid)
    vol = reconstruct_spect(acq, mu, SPECTReconOptions(1, 4, device="cpu", progress=False))
    assert vol.grid.same_as(grid)


def test_generic_reconstruct_of_the_spect_model_matches_osem_on_built_subsets(placed_study, device):
    acq, body = placed_study
    model = SPECTSystemModel(acq.geometry, acq.collimator, acq.photon_energy_kev,
                             Volume(body * WATER_MU_140, acq.image_grid, "1/mm"), psf=True, device=device,
                             grid=acq.image_grid)
    grid_before = model.grid
    from recon.algorithms import osem  # noqa: PLC0415

    opts = OSEMOptions(2, 4, progress=False)
    x = reconstruct(model, acq.photopeak_counts, None, opts)
    y = osem(build_subsets(model, acq.photopeak_counts, None, 4), 2, progress=False)
    np.testing.assert_array_equal(to_host(x), to_host(y))
    assert model.grid is grid_before
    with pytest.raises(ValueError, match=r"measured data shape \(24, 8, 23\) does not match the model's data shape"):
        reconstruct(model, acq.photopeak_counts[:, :, :23], None, opts)
