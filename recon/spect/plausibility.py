"""Plausibility checks of a SPECT study before any compute: values possible but implausible warn (logging,
thresholds in the message); values that cannot be right (mu in 1/cm, angles in radians) are refused.

Thresholds (documented in docs/bad-input.md):

* mu-map (1/mm at the photon energy E, water and cortical bone from :mod:`recon.data.materials`): refused
  when the maximum exceeds ``MU_MAX_BONE_FACTOR`` x bone(E) or the median of the body voxels
  (mu > ``BODY_FRACTION`` x water(E)) exceeds ``MU_BODY_WATER_FACTOR`` x water(E): such maps are in 1/cm.
* angles (deg): with ``MIN_VIEWS_FOR_RADIANS`` views or more all within +-(2 pi + 0.01), refused as radians;
  all equal (more than one view), refused; a span (sampled arc + one step) under ``MIN_ARC_DEG`` warns.
* frame duration (s per view): above ``MAX_FRAME_DURATION_S`` warns (milliseconds?), below
  ``MIN_FRAME_DURATION_S`` warns.
"""
from __future__ import annotations

import logging
import math

import numpy as np

from recon.data.materials import linear_mu_per_mm
from recon.data.spect import SPECTAcquisition, SPECTGeometry

logger = logging.getLogger(__name__)

MU_MAX_BONE_FACTOR = 3.0  # max mu above 3 x cortical bone: warned (metal implants can exceed it)
MU_BODY_WATER_FACTOR = 3.0  # median body mu above 3 x water: not 1/mm (10 x water is 1/cm)
BODY_FRACTION = 0.5  # body voxels: mu above half of water's
MIN_VIEWS_FOR_RADIANS = 4
MIN_ARC_DEG = 170.0  # a SPECT orbit covers at least 180 deg
MAX_FRAME_DURATION_S = 600.0  # 10 min per view; 20000 "s" is 20 s in ms
MIN_FRAME_DURATION_S = 1.0


def water_and_bone_mu_per_mm(energy_kev: float) -> tuple[float, float]:
    """mu of water and cortical bone (1/mm) at ``energy_kev`` (clamped to the tables' 50-600 keV)."""
    e = min(max(float(energy_kev), 50.0), 600.0)
    return linear_mu_per_mm("water", e), linear_mu_per_mm("cortical_bone", e)


def check_mu_values(mu: np.ndarray, energy_kev: float) -> None:
    """Refuse a mu-map (1/mm) whose values are implausible at ``energy_kev``: negative, or in 1/cm (body
    median above 3 x water; a 1/cm map reads 10 x). A maximum above 3 x cortical bone is only warned:
    metal (steel ~0.12 /mm at 208 keV, gold or tungsten several /mm) is real."""
    if (mu < 0).any():
        raise ValueError(f"mu-map has negative attenuation coefficients (min {float(mu.min()):.3g} 1/mm)")
    water, bone = water_and_bone_mu_per_mm(energy_kev)
    top = float(mu.max())
    body = mu[mu > BODY_FRACTION * water]
    if body.size and float(np.median(body)) > MU_BODY_WATER_FACTOR * water:
        raise ValueError(f"mu-map body values (median {float(np.median(body)):.3g} 1/mm) are implausible at "
                         f"{energy_kev:g} keV (above {MU_BODY_WATER_FACTOR:g} x water = "
                         f"{MU_BODY_WATER_FACTOR * water:.3g} 1/mm): units must be 1/mm, not 1/cm?")
    if top > MU_MAX_BONE_FACTOR * bone:
        logger.warning("mu-map maximum %.3g 1/mm is above %g x cortical bone (%.3g 1/mm) at %g keV: metal, or a "
                       "wrong unit in part of the map?", top, MU_MAX_BONE_FACTOR, MU_MAX_BONE_FACTOR * bone, energy_kev)


def check_angles(geometry: SPECTGeometry) -> None:
    """Refuse angles that are all equal or look like radians; warn when the orbit covers under MIN_ARC_DEG."""
    angles = np.asarray(geometry.angles_deg, dtype=np.float64)
    n = angles.size
    if n < 2:
        return
    if np.ptp(angles) == 0.0:
        raise ValueError(f"all {n} view angles are {angles[0]:g} deg: the orbit has no rotation "
                         "(check the angle tags / angles_deg)")
    if n >= MIN_VIEWS_FOR_RADIANS and np.abs(angles).max() <= 2 * math.pi + 0.01:
        raise ValueError(f"the {n} view angles span {angles.min():.3g} to {angles.max():.3g}: they look like "
                         "radians, angles must be in degrees")
    arc = covered_arc_deg(angles)
    if arc < MIN_ARC_DEG:
        logger.warning("the orbit covers %.1f deg (under %.0f deg): the reconstruction is incomplete "
                       "(limited-angle artefacts)", arc, MIN_ARC_DEG)


def covered_arc_deg(angles_deg: np.ndarray) -> float:
    """Arc (deg) covered by views at ``angles_deg``: 360 minus the largest gap between sorted angles mod 360,
    plus the median step (each view stands for one step of arc)."""
    a = np.sort(np.mod(angles_deg, 360.0))
    gaps = np.diff(np.concatenate([a, [a[0] + 360.0]]))
    step = float(np.median(gaps)) if gaps.size else 0.0
    return float(min(360.0, 360.0 - gaps.max() + step))


def check_frame_duration(frame_duration_s: float) -> None:
    """Warn when the time per view (s) is outside MIN_FRAME_DURATION_S..MAX_FRAME_DURATION_S."""
    if frame_duration_s > MAX_FRAME_DURATION_S:
        logger.warning("frame duration %g s per view is implausible (above %g s): milliseconds given as seconds? "
                       "Bq/mL would be too low by that factor", frame_duration_s, MAX_FRAME_DURATION_S)
    elif frame_duration_s < MIN_FRAME_DURATION_S:
        logger.warning("frame duration %g s per view is implausible (under %g s): minutes given as seconds?",
                       frame_duration_s, MIN_FRAME_DURATION_S)


def check_acquisition(acq: SPECTAcquisition) -> None:
    """All plausibility checks of an acquisition, before any compute."""
    check_angles(acq.geometry)
    check_frame_duration(acq.frame_duration_s)


MIN_MU_COVERAGE = 0.5  # a mu-map with tissue on under half of the slices that hold counts: misplaced?


def check_mu_covers_emission(acq: SPECTAcquisition, mu_map_data: np.ndarray) -> float:
    """Warn when the mu-map holds body (mu > ``BODY_FRACTION`` x water) on under ``MIN_MU_COVERAGE`` of the
    slices whose projection rows hold counts: a CT placed away from the emission (another frame of reference,
    a wrong vendor convention) makes attenuation correction silently do nothing. Returns the covered share."""
    counts = np.asarray(acq.photopeak_counts)
    rows = counts.sum(axis=(0, 2)) > 0.01 * counts.sum(axis=(0, 2)).max() if counts.any() else np.zeros(0, bool)
    if not rows.any():
        return 1.0
    water = linear_mu_per_mm("water", min(max(acq.photon_energy_kev, 50.0), 600.0))
    body_slices = (np.asarray(mu_map_data) > BODY_FRACTION * water).any(axis=(1, 2))
    share = float(body_slices[rows].mean())
    if share < MIN_MU_COVERAGE:
        logger.warning("the mu-map holds tissue on only %.0f %% of the %d slices with counts (under %.0f %%): "
                       "attenuation correction will barely act; check that the CT and the NM file share a "
                       "frame of reference and the placement (docs/dicom.md)", 100 * share, int(rows.sum()),
                       100 * MIN_MU_COVERAGE)
    return share
