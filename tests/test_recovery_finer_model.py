"""Recovery without the inverse crime: the data come from a finer model than the reconstruction.

The NEMA IEC body phantom is rasterised and simulated (attenuation, collimator response, scatter windows)
on a grid twice as fine in every direction (2.4 mm voxels, 2.4 mm detector pixels), its projections are
binned 2 x 2 onto the 4.8 mm detector, and the study is reconstructed on the 4.8 mm grid with a mu-map
rasterised there: different voxels, different rays, different sampling of the sphere edges than the
reconstruction's own model (tests/test_recovery.py simulates with the reconstruction's own model).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from recon.data import ImageGrid
from recon.data.spect import SPECTGeometry
from recon.phantoms.library import nema_iec_body
from recon.spect.reconstruct import SPECTReconOptions, reconstruct_spect
from recon.spect.simulate import AcquisitionProtocol, circular_orbit_radius_mm, counts_per_bq_per_ml, simulate_spect

COARSE = ImageGrid.centered((40, 72, 72), (4.8, 4.8, 4.8))
FINE = ImageGrid.centered((80, 144, 144), (2.4, 2.4, 2.4))


def _bin2(a: np.ndarray) -> np.ndarray:
    """(view, row, col) counts summed over 2 x 2 detector pixels."""
    v, r, c = a.shape
    return a.reshape(v, r // 2, 2, c // 2, 2).sum(axis=(2, 4)).astype(np.float32)


@pytest.fixture(scope="module")
def finer_study():
    fine = nema_iec_body(FINE, sphere_to_background=4.0)
    coarse = nema_iec_body(COARSE, sphere_to_background=4.0)
    proto = AcquisitionProtocol(n_views=60, radius_mm=circular_orbit_radius_mm(coarse.mu_map))
    acq_fine = simulate_spect(fine.activity, fine.mu_map, proto, rng=None, device="cpu")
    g = acq_fine.geometry
    geometry = SPECTGeometry(g.angles_deg, g.radius_mm, g.n_rows // 2, g.n_cols // 2, 2 * g.pixel_size_mm,
                             2 * g.slice_thickness_mm)
    acq = replace(acq_fine, geometry=geometry, counts={k: _bin2(v) for k, v in acq_fine.counts.items()},
                  center_mm=COARSE.center_mm)
    recon = reconstruct_spect(acq, coarse.mu_map, SPECTReconOptions(4, 6, scatter="tew", device="cpu",
                                                                     progress=False))
    scale = counts_per_bq_per_ml(COARSE.voxel_volume_ml, proto.sensitivity_cps_per_mbq, proto.frame_duration_s)
    return coarse, recon.data / scale


def test_uniform_background_within_3_percent(finer_study) -> None:
    phantom, image = finer_study
    background = phantom.regions["background"] >= 0.999
    truth = phantom.concentration_bq_ml["background"]
    assert float(image[background].mean()) == pytest.approx(truth, rel=0.03)


def test_sphere_recovery_is_sensible(finer_study) -> None:
    phantom, image = finer_study
    truth = phantom.concentration_bq_ml["sphere_37"]
    rc_max = {d: float(image[phantom.regions[f"sphere_{d}"] > 0].max()) / truth for d in (17, 28, 37)}
    assert 0.8 <= rc_max[37] <= 1.2, rc_max
    assert rc_max[17] < rc_max[28] < rc_max[37] + 0.05, rc_max
    # the lung insert (no activity) is resolved below the background (measured 0.44 of it after 4 x 6: cold
    # inserts converge slowly under OSEM with the collimator response); a sanity bound, not a recovery claim
    lung = phantom.regions["lung_insert"] >= 0.999
    print("finer-model RCmax", rc_max, "lung/background",  # noqa: T201 - shown with -s
          float(image[lung].mean()) / phantom.concentration_bq_ml["background"])
    assert float(image[lung].mean()) < 0.5 * phantom.concentration_bq_ml["background"]
