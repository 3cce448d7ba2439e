"""Simulated SPECT acquisitions with counts of a real study.

Expected primary photopeak counts per view are the system model applied to the
activity: counts = C [Bq/mL] x V_voxel [mL] x S [cps/MBq] x 1e-6 [MBq/Bq] x t [s],
forward projected with attenuation and the collimator-detector response.

Scatter is an approximation, not Monte Carlo: the photopeak scatter is a broad
Gaussian convolution of each view's primary projection scaled by a
scatter-to-primary ratio (about 0.3-0.4 for Tc-99m in a torso, 20 % window).
The scatter windows receive counts whose TEW and DEW estimates reproduce that
photopeak scatter in expectation (TEW: 95 % of the trapezoid from the lower
window; DEW: the calibrated k), with a broader kernel in the wide lower window,
as lower-energy scatter is more diffuse. Poisson noise is drawn per window from
an explicit ``numpy.random.Generator``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from recon.backend import to_device, to_host
from recon.data.collimator import Collimator, get_collimator
from recon.data.grid import Volume
from recon.data.spect import EnergyWindow, SPECTAcquisition, SPECTGeometry
from recon.data.study import AcquisitionInfo
from recon.spect.scatter import dew_k, smooth_projections
from recon.spect.system_model import SPECTSystemModel

logger = logging.getLogger(__name__)

TC99M_ENERGY_KEV = 140.5


def tc99m_windows() -> tuple[EnergyWindow, ...]:
    """20 % photopeak with 5 % TEW side windows and a 92-125 keV DEW window (keV)."""
    return (
        EnergyWindow("photopeak", 126.45, 154.55),
        EnergyWindow("tew_lower", 119.43, 126.45),
        EnergyWindow("tew_upper", 154.55, 161.57),
        EnergyWindow("dew_lower", 92.0, 125.0),
    )


@dataclass(frozen=True)
class AcquisitionProtocol:
    """Camera and acquisition settings of a simulated study (mm, s, keV, cps/MBq)."""

    n_views: int = 120
    radius_mm: float | tuple[float, ...] = 260.0
    start_angle_deg: float = 0.0
    arc_deg: float = 360.0
    frame_duration_s: float = 20.0
    sensitivity_cps_per_mbq: float = 91.0
    collimator: Collimator = field(default_factory=lambda: get_collimator("SY-LEHR"))
    photon_energy_kev: float = TC99M_ENERGY_KEV
    windows: tuple[EnergyWindow, ...] = field(default_factory=tc99m_windows)
    scatter_to_primary: float = 0.35
    scatter_fwhm_mm: float = 60.0
    dew_scatter_fwhm_mm: float = 90.0
    tew_upper_share: float = 0.05

    def geometry(self, n_rows: int, n_cols: int, pixel_size_mm: float, slice_mm: float) -> SPECTGeometry:
        """Orbit with evenly spaced views over ``arc_deg``."""
        step = self.arc_deg / self.n_views
        angles = self.start_angle_deg + step * np.arange(self.n_views)
        radius = np.broadcast_to(np.asarray(self.radius_mm, dtype=np.float64), (self.n_views,))
        return SPECTGeometry(angles, radius, n_rows, n_cols, pixel_size_mm, slice_mm)


def circular_orbit_radius_mm(mu_map: Volume, margin_mm: float = 10.0, body_mu_per_mm: float = 0.005) -> float:
    """Radius (mm) of a circular orbit clearing the body outline (mu > ``body_mu_per_mm``) by ``margin_mm``."""
    mu = to_host(mu_map.data)
    _, dy, dx = mu_map.grid.spacing_mm
    ny, nx = mu_map.grid.shape[1:]
    yy, xx = np.nonzero((mu > body_mu_per_mm).any(axis=0))
    if yy.size == 0:
        raise ValueError("mu-map has no body voxels to fit an orbit around")
    reach = np.hypot((np.abs(yy - (ny - 1) / 2) + 0.5) * dy, (np.abs(xx - (nx - 1) / 2) + 0.5) * dx).max()
    return float(reach + margin_mm)


def counts_per_bq_per_ml(voxel_volume_ml: float, sensitivity_cps_per_mbq: float, frame_duration_s: float) -> float:
    """Detected counts per view per unit concentration (counts per Bq/mL) for one voxel."""
    return voxel_volume_ml * sensitivity_cps_per_mbq * 1e-6 * frame_duration_s


def simulate_spect(
    activity: Volume,
    mu_map: Volume | None,
    protocol: AcquisitionProtocol | None = None,
    rng: np.random.Generator | None = None,
    device: str = "auto",
) -> SPECTAcquisition:
    """Simulate all energy windows of a SPECT study of ``activity`` (Bq/mL) on its grid.

    ``rng=None`` gives noise-free expected counts. The grid must be (rows, cols, cols)
    with equal transaxial spacing; the rotation axis is the grid centre, and the
    acquisition's ``center_mm`` is that centre in patient space, so it reconstructs
    onto the activity's grid. ``mu_map`` must be on the activity's grid.
    """
    proto = protocol or AcquisitionProtocol()
    if activity.unit != "Bq/mL":
        raise ValueError(f"activity must be in Bq/mL, got {activity.unit!r}")
    act = to_host(activity.data)
    if (act < 0).any():
        raise ValueError("activity concentration must be non-negative")
    grid = activity.grid
    nz, ny, nx = grid.shape
    dz, dy, dx = grid.spacing_mm
    if ny != nx or abs(dy - dx) > 1e-6:
        raise ValueError(f"simulation needs a square transaxial grid with equal spacing, got {grid.shape} {grid.spacing_mm}")
    geometry = proto.geometry(nz, nx, dx, dz)
    model = SPECTSystemModel(geometry, proto.collimator, proto.photon_energy_kev, mu_map=mu_map, psf=True,
                             device=device, grid=grid)
    scale = counts_per_bq_per_ml(grid.voxel_volume_ml, proto.sensitivity_cps_per_mbq, proto.frame_duration_s)
    x = to_device(np.ascontiguousarray(act * scale, dtype=np.float32), model.device)
    primary = to_host(model.forward(x)).astype(np.float64)
    names = {w.name for w in proto.windows}
    required = {"photopeak", "tew_lower", "tew_upper", "dew_lower"}
    if not required <= names:
        raise ValueError(f"simulation windows must include {sorted(required)}, got {sorted(names)}")
    wins = {w.name: w for w in proto.windows}
    scatter_peak = proto.scatter_to_primary * smooth_projections(primary, proto.scatter_fwhm_mm, dx, dz)
    scatter_wide = proto.scatter_to_primary * smooth_projections(primary, proto.dew_scatter_fwhm_mm, dx, dz)
    w_peak = wins["photopeak"].width_kev
    share_up = proto.tew_upper_share
    expected = {
        "photopeak": primary + scatter_peak,
        "tew_lower": scatter_peak * 2.0 * (1.0 - share_up) * wins["tew_lower"].width_kev / w_peak,
        "tew_upper": scatter_peak * 2.0 * share_up * wins["tew_upper"].width_kev / w_peak,
        "dew_lower": scatter_wide / dew_k(w_peak, wins["dew_lower"].width_kev),
    }
    total_mbq = float(act.sum()) * grid.voxel_volume_ml * 1e-6
    logger.info("simulated %.0f MBq: %.3g photopeak counts per view (%s)", total_mbq,
                expected["photopeak"].sum() / geometry.n_views, "Poisson" if rng is not None else "noise-free")
    counts = {}
    for w in proto.windows:
        lam = expected[w.name]
        counts[w.name] = (rng.poisson(lam) if rng is not None else lam).astype(np.float32)
    meta = {
        "simulated": True,
        "sensitivity_cps_per_mbq": proto.sensitivity_cps_per_mbq,
        "total_activity_mbq": total_mbq,
    }
    return SPECTAcquisition(counts, proto.windows, "photopeak", geometry, proto.collimator, proto.frame_duration_s,
                            proto.photon_energy_kev, "Tc-99m", meta, center_mm=grid.center_mm,
                            info=AcquisitionInfo(frame_of_reference_uid=activity.frame_of_reference_uid))
