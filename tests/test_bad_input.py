"""Bad input raises a clear error naming the problem; nothing the caller gave is changed."""
from __future__ import annotations

import numpy as np
import pytest

from recon.data import EnergyWindow, ImageGrid, SPECTAcquisition, SPECTGeometry, Volume, get_collimator
from recon.spect.reconstruct import SPECTReconOptions, reconstruct_spect
from recon.spect.system_model import SPECTSystemModel
from tests.conftest import supersampled_cylinder

WIN = (EnergyWindow("peak", 126.0, 154.0),)


def _geo(n_views=4, radius=200.0):
    return SPECTGeometry(np.arange(n_views) * 90.0, radius, n_rows=6, n_cols=16, pixel_size_mm=6.0)


def _acq(counts, geo=None):
    return SPECTAcquisition({"peak": counts}, WIN, "peak", geo or _geo(), get_collimator("SY-LEHR"), 10.0)


def test_mismatched_projection_shape():
    with pytest.raises(ValueError, match=r"projections shape \(4, 6, 15\) does not match geometry"):
        _acq(np.ones((4, 6, 15)))


def test_negative_and_nan_counts():
    bad = np.ones((4, 6, 16))
    bad[1, 2, 3] = -1
    with pytest.raises(ValueError, match="negative counts"):
        _acq(bad)
    bad[1, 2, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        _acq(bad)


def test_zero_views_and_bad_radius():
    with pytest.raises(ValueError, match="zero views"):
        SPECTGeometry([], 200.0, 6, 16, 6.0)
    with pytest.raises(ValueError, match="radius_mm has 3 entries for 4 views"):
        SPECTGeometry(np.arange(4) * 90.0, [200.0, 200.0, 200.0], 6, 16, 6.0)


def test_unknown_collimator_lists_presets():
    with pytest.raises(ValueError, match="unknown collimator 'XX-LEHR'.*SY-LEHR"):
        get_collimator("XX-LEHR")


def test_mu_map_on_another_grid():
    geo = _geo()
    other = Volume(np.zeros((6, 16, 16)), ImageGrid.centered((6, 16, 16), (6.0, 5.0, 5.0)), "1/mm")
    with pytest.raises(ValueError, match="mu-map grid .* differs from the reconstruction grid"):
        SPECTSystemModel(geo, get_collimator("SY-LEHR"), 140.5, other)
    wrong_shape = Volume(np.zeros((6, 12, 12)), ImageGrid.centered((6, 12, 12), (6.0, 6.0, 6.0)), "1/mm")
    with pytest.raises(ValueError, match="mu-map grid"):
        SPECTSystemModel(geo, get_collimator("SY-LEHR"), 140.5, wrong_shape)


def test_mu_map_in_wrong_units():
    geo = _geo()
    in_per_cm = Volume(np.full((6, 16, 16), 0.154), geo.image_grid(), "1/mm")  # water in 1/cm, mislabelled
    with pytest.raises(ValueError, match=r"implausible at 140.5 keV .* not 1/cm"):
        SPECTSystemModel(geo, get_collimator("SY-LEHR"), 140.5, in_per_cm)
    bone_in_per_cm = Volume(np.full((6, 16, 16), 0.284), geo.image_grid(), "1/mm")  # cortical bone in 1/cm
    with pytest.raises(ValueError, match=r"median 0.284 1/mm\) are implausible"):
        SPECTSystemModel(geo, get_collimator("SY-LEHR"), 140.5, bone_in_per_cm)
    negative = Volume(np.full((6, 16, 16), -0.01), geo.image_grid(), "1/mm")
    with pytest.raises(ValueError, match="negative attenuation"):
        SPECTSystemModel(geo, get_collimator("SY-LEHR"), 140.5, negative)


def test_orbit_radius_inside_body_outline():
    geo = _geo(radius=[200.0, 200.0, 15.0, 200.0])
    body = supersampled_cylinder((6, 16, 16), (6.0,) * 3, 30.0, 1e3, n_sub=2) * 0.0154
    with pytest.raises(ValueError, match=r"orbit radius 15.0 mm at view 2 .* inside the body outline"):
        SPECTSystemModel(geo, get_collimator("SY-LEHR"), 140.5, Volume(body, geo.image_grid(), "1/mm"))


def test_body_beyond_the_reconstruction_circle():
    geo = _geo()
    body = supersampled_cylinder((6, 16, 16), (6.0,) * 3, 45.0, 1e3, n_sub=2) * 0.0154  # circle radius is 39 mm
    with pytest.raises(ValueError, match="extends beyond the reconstruction circle of radius 39.0 mm"):
        SPECTSystemModel(geo, get_collimator("SY-LEHR"), 140.5, Volume(body, geo.image_grid(), "1/mm"))


def test_attenuation_requested_without_mu_map():
    acq = _acq(np.ones((4, 6, 16)))
    with pytest.raises(ValueError, match="no mu-map"):
        reconstruct_spect(acq, None, SPECTReconOptions(attenuation=True, scatter="none"))


def test_inputs_are_not_modified():
    counts = np.ones((4, 6, 16), np.float32)
    acq = _acq(counts)
    counts[0, 0, 0] = 5.0  # the acquisition holds its own copy
    assert acq.photopeak_counts[0, 0, 0] == 1.0
    with pytest.raises(ValueError):
        acq.photopeak_counts[0, 0, 0] = 2.0  # read-only
    before = acq.photopeak_counts.copy()
    reconstruct_spect(acq, None, SPECTReconOptions(2, 2, attenuation=False, scatter="none", progress=False))
    np.testing.assert_array_equal(acq.photopeak_counts, before)


def test_volume_rejects_wrong_shape_and_nan():
    grid = ImageGrid((2, 3, 4), (1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match=r"does not match grid shape"):
        Volume(np.zeros((2, 4, 3)), grid)
    with pytest.raises(ValueError, match="NaN"):
        Volume(np.full((2, 3, 4), np.nan), grid)


def test_unknown_device():
    with pytest.raises(ValueError, match="device must be one of"):
        SPECTSystemModel(_geo(), get_collimator("SY-LEHR"), 140.5, device="tpu")


def test_metal_in_a_mu_map_is_warned_not_refused(caplog):
    """Steel at 208 keV (~0.12 /mm) is above 3 x cortical bone but real: the map is used, with a warning."""
    geo = _geo()
    mu = np.zeros((6, 16, 16), np.float32)
    mu[:, 4:12, 4:12] = 0.0137  # water at 208 keV
    mu[3, 7, 7] = 0.12  # a steel screw
    model = SPECTSystemModel(geo, get_collimator("SY-LEHR"), 208.4, Volume(mu, geo.image_grid(), "1/mm"))
    assert model.attenuation is not None
    assert "metal, or a wrong unit" in caplog.text
