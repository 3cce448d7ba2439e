"""Normalisation: per-LOR detection-efficiency factors, given or measured with a uniform cylinder.

Convention. The normalisation factor ``n_b`` of sinogram bin ``b`` multiplies the model of the
expected trues, ``y = N A G x`` (:mod:`recon.pet`), so ``n_b`` is the LOR's relative sensitivity
(efficiency), not its inverse; bins in block gaps have ``n_b = 0``. Factors are non-TOF (one per
(view, plane, radial) bin; a TOF bin of a LOR shares its LOR's factor).

Component model (used by the simulator and the component estimate)::

    n_b = g_r * sum_{(i, j) in b} eps_i * eps_j

crystal efficiencies ``eps_i`` (per detector id ``ring * crystals_per_ring + crystal``) and a
radial geometric profile ``g_r`` (crystal interference / solid angle, the same in every view
and plane), summed over the ring pairs merged into a plane (span > 1).

Uniform-cylinder scan. A cylinder of radius ``R`` (mm), axis on the scanner axis (optionally
shifted transaxially), longer than the axial FOV, uniform activity and linear attenuation
``mu`` (1/mm, water at 511 keV ~0.0096): the expected counts of bin ``b`` are proportional to
``n_b * L_b * exp(-mu * L_b)``, ``L_b`` the chord length of the LOR inside the cylinder, computed
analytically (:func:`cylinder_chord_lengths_mm`; the line integral of a uniform activity along
the line is ``L_b`` and its attenuation ``exp(-mu L_b)``).

Estimates (:func:`normalisation_from_cylinder`):

* ``"component"``: ML fit of ``eps`` (fan sums, :mod:`recon.pet.crystal_pairs`) alternating with
  ``g_r = sum_{v,p} y / sum_{v,p} L e^{-mu L} sum eps eps``; noise averages over whole fans;
* ``"direct"``: ``n_b = y_b / (L_b e^{-mu L_b})`` per LOR (noisy: one LOR's counts), where the
  chord is at least ``min_chord_mm``; other LORs take the component estimate.

Both are scaled to a mean of 1 over the LORs with both crystals present.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from recon.data.pet_sinogram import SinogramLayout
from recon.pet.crystal_pairs import fit_pair_factors, pair_model, present_crystals

logger = logging.getLogger(__name__)

__all__ = ["NormalisationEstimate", "check_normalisation", "component_normalisation", "cylinder_chord_lengths_mm",
           "simulate_cylinder_scan", "normalisation_from_cylinder"]


def check_normalisation(layout: SinogramLayout, factors: np.ndarray) -> np.ndarray:
    """Validated normalisation factors (float32, the layout's non-TOF shape): finite, >= 0, and
    positive on every LOR whose two crystals exist (block-gap LORs may be 0)."""
    shape = layout.shape[:3]
    f = np.asarray(factors)
    if f.shape != shape:
        raise ValueError(f"normalisation factors have shape {f.shape}; the layout's non-TOF shape is {shape} "
                         "(view, plane, radial)")
    f = np.ascontiguousarray(f, np.float32)
    if not np.isfinite(f).all():
        raise ValueError("normalisation factors contain NaN or infinite values")
    if (f < 0).any():
        raise ValueError(f"normalisation factors contain negative values (min {float(f.min())})")
    present = np.broadcast_to(layout.transaxial_present()[:, None, :], shape)
    bad = int((present & (f <= 0)).sum())
    if bad:
        raise ValueError(f"normalisation factors are zero on {bad} LORs whose crystals exist; they must be positive")
    return f


def component_normalisation(layout: SinogramLayout, crystal_efficiencies: np.ndarray,
                            radial_profile: np.ndarray | None = None) -> np.ndarray:
    """``n_b = g_r * sum_{(i,j) in b} eps_i eps_j`` (float32, non-TOF shape); ``g_r = 1`` when None."""
    eps = np.asarray(crystal_efficiencies, np.float64).ravel()
    if eps.shape[0] != layout.scanner.n_crystals or not np.isfinite(eps).all() or (eps < 0).any():
        raise ValueError(f"crystal efficiencies must be {layout.scanner.n_crystals} finite values >= 0 "
                         f"(one per detector id), got shape {np.shape(crystal_efficiencies)}")
    eps = np.where(present_crystals(layout), eps, 0.0)
    g = np.ones(layout.n_radial) if radial_profile is None else np.asarray(radial_profile, np.float64)
    if g.shape != (layout.n_radial,) or not np.isfinite(g).all() or (g <= 0).any():
        raise ValueError(f"radial profile must be {layout.n_radial} positive finite values, got shape {g.shape}")
    return (pair_model(layout, eps) * g[None, None, :]).astype(np.float32)


def cylinder_chord_lengths_mm(layout: SinogramLayout, radius_mm: float, centre_xy_mm: tuple[float, float] = (0.0, 0.0),
                              half_length_mm: float | None = None) -> np.ndarray:
    """Analytic chord length (mm) of every LOR (non-TOF shape, float64) inside a cylinder parallel to z.

    Scanner frame. With LOR ends ``A``, ``B`` and ``P(t) = A + t (B - A)``, ``t`` in [0, 1]: the
    transaxial condition ``|P_xy(t) - c|^2 <= R^2`` is a quadratic ``a t^2 + 2 b t + c0 <= 0``
    giving ``[t0, t1]``; the axial condition ``|z(t)| <= half_length`` gives another interval;
    the chord is ``|B - A| * max(0, min(t1, tz1) - max(t0, tz0))``. ``half_length_mm`` None:
    infinitely long. For a span > 1 plane the LOR is the plane's mean-ring LOR (layout docstring).
    """
    r = float(radius_mm)
    if not np.isfinite(r) or r <= 0:
        raise ValueError(f"cylinder radius must be positive (mm), got {radius_mm!r}")
    a_pts, b_pts = layout.lor_endpoints_mm()
    a = a_pts.astype(np.float64)
    d = b_pts.astype(np.float64) - a
    ox, oy = a[..., 0] - centre_xy_mm[0], a[..., 1] - centre_xy_mm[1]
    qa = d[..., 0] ** 2 + d[..., 1] ** 2
    qb = ox * d[..., 0] + oy * d[..., 1]
    qc = ox ** 2 + oy ** 2 - r * r
    disc = qb * qb - qa * qc
    ok = (disc > 0) & (qa > 0)
    sq = np.sqrt(np.where(ok, disc, 0.0))
    safe = np.where(qa > 0, qa, 1.0)
    t0 = np.clip((-qb - sq) / safe, 0.0, 1.0)
    t1 = np.clip((-qb + sq) / safe, 0.0, 1.0)
    if half_length_mm is not None:
        h = float(half_length_mm)
        dz = d[..., 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            ta = (-h - a[..., 2]) / dz
            tb = (h - a[..., 2]) / dz
        flat = np.abs(dz) < 1e-12
        inside = np.abs(a[..., 2]) <= h
        tz0 = np.where(flat, np.where(inside, 0.0, 1.0), np.minimum(ta, tb))
        tz1 = np.where(flat, np.where(inside, 1.0, 0.0), np.maximum(ta, tb))
        t0, t1 = np.maximum(t0, tz0), np.minimum(t1, tz1)
    length = np.linalg.norm(d, axis=-1)
    return np.where(ok, np.maximum(t1 - t0, 0.0) * length, 0.0)


def _cylinder_expectation(layout: SinogramLayout, radius_mm: float, mu_per_mm: float,
                          centre_xy_mm: tuple[float, float]) -> np.ndarray:
    if not np.isfinite(mu_per_mm) or mu_per_mm < 0:
        raise ValueError(f"mu_per_mm must be >= 0 (1/mm), got {mu_per_mm!r}")
    chord = cylinder_chord_lengths_mm(layout, radius_mm, centre_xy_mm)
    return chord * np.exp(-float(mu_per_mm) * chord)


def simulate_cylinder_scan(layout: SinogramLayout, crystal_efficiencies: np.ndarray, radius_mm: float,
                           mu_per_mm: float, total_counts: float, rng: np.random.Generator,
                           radial_profile: np.ndarray | None = None,
                           centre_xy_mm: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Poisson counts (float32, non-TOF shape) of a uniform-cylinder scan: mean proportional to
    ``n_b L_b exp(-mu L_b)`` (module docstring), scaled to ``total_counts`` expected in all."""
    if not isinstance(rng, np.random.Generator):
        raise ValueError("rng must be a numpy.random.Generator")
    n = component_normalisation(layout, crystal_efficiencies, radial_profile).astype(np.float64)
    mean = n * _cylinder_expectation(layout, radius_mm, mu_per_mm, centre_xy_mm)
    if mean.sum() <= 0:
        raise ValueError("the cylinder is crossed by no LOR of the layout")
    mean *= float(total_counts) / mean.sum()
    return rng.poisson(mean).astype(np.float32)


@dataclass(frozen=True)
class NormalisationEstimate:
    """Normalisation factors (non-TOF shape, mean 1 over present LORs) and their components."""

    factors: np.ndarray
    crystal_efficiencies: np.ndarray  # (n_crystals,), mean 1 over present crystals
    radial_profile: np.ndarray  # (n_radial,)
    method: str


def _mean_one(layout: SinogramLayout, n: np.ndarray) -> float:
    present = np.broadcast_to(layout.transaxial_present()[:, None, :], n.shape)
    return float(n[present].mean())


def normalisation_from_cylinder(layout: SinogramLayout, counts: np.ndarray, radius_mm: float, mu_per_mm: float,
                                method: str = "component", centre_xy_mm: tuple[float, float] = (0.0, 0.0),
                                n_iterations: int = 8, min_chord_mm: float = 20.0) -> NormalisationEstimate:
    """Normalisation factors from a uniform-cylinder scan (module docstring for the model and methods).

    ``counts``: the scan's non-TOF sinogram; ``radius_mm``, ``mu_per_mm``: the cylinder (analytic
    chords, no projector). Radial bins that no chord crosses keep the nearest estimated profile value.
    """
    if method not in ("component", "direct"):
        raise ValueError(f"method must be 'component' or 'direct', got {method!r}")
    y = np.asarray(counts, np.float64)
    if y.shape != layout.shape[:3]:
        raise ValueError(f"cylinder scan has shape {y.shape}; the layout's non-TOF shape is {layout.shape[:3]}")
    if not np.isfinite(y).all() or (y < 0).any():
        raise ValueError("cylinder scan contains NaN, infinite or negative counts")
    expect = _cylinder_expectation(layout, radius_mm, mu_per_mm, centre_xy_mm)
    if (y[expect <= 0] > 0).mean() > 0.5 and (expect <= 0).any():
        logger.warning("many LORs outside the cylinder hold counts: is the radius right?")
    g = np.ones(layout.n_radial)
    eps = None
    for _ in range(max(1, int(n_iterations))):
        eps = fit_pair_factors(layout, y, weights=expect * g[None, None, :], n_iterations=10, initial=eps)
        pairs = pair_model(layout, eps)
        den = (pairs * expect).sum(axis=(0, 1))
        num = y.sum(axis=(0, 1))
        valid = den > 0
        if not valid.any():
            raise ValueError("the cylinder is crossed by no LOR of the layout")
        g = np.where(valid, num / np.where(valid, den, 1.0), np.nan)
        idx = np.arange(layout.n_radial)
        g = np.interp(idx, idx[valid], g[valid])  # hold the edge values where no chord crosses
    present = present_crystals(layout)
    eps_scale = float(eps[present].mean())
    eps = eps / eps_scale
    n = pair_model(layout, eps) * g[None, None, :]
    if method == "direct":
        ok = cylinder_chord_lengths_mm(layout, radius_mm, centre_xy_mm) >= float(min_chord_mm)
        direct = np.divide(y, expect, out=np.zeros_like(y), where=ok)
        # put the direct ratios on the component estimate's scale
        scale = float((n[ok] * expect[ok]).sum() / max(y[ok].sum(), 1e-300))
        n = np.where(ok, direct * scale, n)
    s = _mean_one(layout, n)
    return NormalisationEstimate(factors=(n / s).astype(np.float32), crystal_efficiencies=eps,
                                 radial_profile=g / s, method=method)
