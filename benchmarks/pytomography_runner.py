"""The same SPECT OSEM through PyTomography 3.4, for the side-by-side benchmark (optional).

PyTomography is a benchmark-only dependency: ``pip install '.[bench]'`` (torch==2.13.0 CPU build,
pytomography==3.4.0), best in its own virtual environment. Nothing in ``recon`` or ``tests``
imports it; torch and pytomography are imported lazily, inside the functions here.

Conventions, ours -> PyTomography 3.4 (read from its source and checked with numbers, below)
------------------------------------------------------------------------------------------
=====================  ==========================================  ==========================================
quantity               ours (recon)                                PyTomography 3.4
=====================  ==========================================  ==========================================
lengths, mu            mm, 1/mm                                    cm, 1/cm  (x 0.1, x 10)
object array           (z, y, x), LPS axes, rotation axis at the   [Lx, Ly, Lz]: the same axes, no flips ->
                       grid centre                                 ``np.transpose(vol, (2, 1, 0))``
projections            (view, row, col); row = z (superior +)      (view, r, z) -> ``np.transpose(p, (0, 2, 1))``
angle zero             theta = 0: detector anterior (normal -y)    beta = 0: detector anterior
angle direction        theta = 90: patient's LEFT (+x);            beta = 90: patient's RIGHT (-x); normal
                       normal n = (sin theta, -cos theta)          (-sin beta, -cos beta) (its azimuth
                                                                   phi = 270 - beta; detector "at +x" after
                                                                   rotating the object by beta - 270)
angle mapping          theta                                       beta = (360 - theta) mod 360
column / r direction   u(theta) = (cos theta, sin theta)           r along (cos beta, -sin beta) = u(theta)
radius (per view)      rotation axis -> collimator face            the same (``SPECTProjMeta.radii``), cm
PSF distance of plane  radius - depth of plane centre              the same (``utils.get_distance``)
image scale            counts per voxel per view                   the same (a projection sums the
                                                                   attenuated object along the normal)
subsets                interleaved: views b, b + n, b + 2n, ...    the same (``set_n_subsets``)
=====================  ==========================================  ==========================================

Checked with numbers (``python benchmarks/pytomography_runner.py --check``): an off-centre point
source in a water cylinder, 12 views of a non-circular orbit. Without PSF (rotation + attenuation)
the two engines' projections are equal to float precision in every view (both rotate with bilinear
interpolation about the grid centre and attenuate with a half-voxel self term); the wrong angle
direction (beta = theta) or a swapped x/y gives O(1) relative differences. With PSF the sums and
centroids still agree (to 1e-5), the per-view widths to the kernel-shape difference below (0.95-1.0).
``--compare`` reconstructs a noise-free sphere phantom simulated by recon (64^3 voxels of 6 mm, 60 views
of 64 x 64 on a 175-220 mm non-circular orbit, attenuation + PSF + TEW scatter, OSEM 4 x 8) with both
engines. Measured 2026-11-25 on the 2-core AMD EPYC CPU machine, no GPU: correlation inside the body
0.9978, sum ratio PyTomography/ours 0.9987 (median voxel ratio 0.9993), hot-sphere means 0.995-0.997,
every sphere's peak (3x3x3 average) on its true centre voxel in both images, hot-spot centroids within
0.03 mm of each other; the PyTomography image with one axis flipped or x/y swapped correlates only
0.11-0.17. Time, quiet machine: ours 0.73 s end to end (best of 3), PyTomography 21.9 s (2 torch
threads), 30x; with another job on the second core PyTomography took 75-105 s.

Model options matched
---------------------
- attenuation: the same mu-map (1/mm -> 1/cm, transposed), ``SPECTAttenuationTransform``;
- collimator-detector response: PyTomography's own Gaussian parameterisation
  (``io.SPECT.get_psfmeta_from_scanner_params``): sigma(r) = sqrt((a r + b)^2 + c^2) with
  a = D / (L - 2/mu_Pb(E)) / 2.355, b = D / 2.355, c = R_i / 2.355, fed our collimator's hole
  diameter D, hole length L and intrinsic FWHM R_i (at the photopeak; not rescaled from 140 keV).
  This is our model's formula too (``recon.data.collimator``), so both include septal penetration
  through L_eff = L - 2/mu_Pb. Differences: mu_Pb(E) comes from PyTomography's curve fit to its NIST
  lead table (28.34/cm at 140.5 keV against our 26.92/cm: L_eff 23.34 vs 23.31 mm for SY-LEHR, 0.2 %;
  the fit drifts at higher energies, e.g. 7.1 vs 3.2 /cm at 364 keV, L_eff 21.2 vs 17.7 mm), pass
  ``psf_lead_mu="recon"`` to use ours instead; our optional collimator back gap b is not modelled
  (presets have b = 0). PyTomography samples the Gaussian at pixel centres and truncates it at
  3 sigma (``min_sigmas=3``); we apply exact-variance incremental 3-tap blurs, so for narrow
  responses (sigma < ~0.7 pixel) its sampled kernel is up to ~5 % narrower and shaped differently.
- scatter: the same additive term (our TEW/DEW estimate) as ``PoissonLogLikelihood(additive_term=)``.
- what differs beyond the model: we update only voxels inside the reconstruction circle
  (``recon.spect.system_model.fov_mask``); PyTomography updates the whole square, so compare
  inside the body. Its OSEM starts from ones everywhere, ours from ones inside the circle (zero outside).

Timing: ``seconds_setup`` is building the system matrix and transforms (attenuation map padding,
PSF kernels) and moving the data into torch tensors; ``seconds_osem`` is ``OSEM(...)(n_iters,
n_subsets)``, which includes PyTomography's sensitivity images (computed lazily on the first pass);
importing torch/pytomography (~4 s) is not counted.

Example (in the benchmark virtual environment)::

    from benchmarks.pytomography_runner import run_pytomography_osem
    c = acq.collimator
    out = run_pytomography_osem(acq.photopeak_counts, scatter, mu.data, acq.geometry.angles_deg,
                                acq.geometry.radius_mm, acq.geometry.pixel_size_mm, c.hole_diameter_mm,
                                c.hole_length_mm, c.intrinsic_fwhm_mm, acq.photon_energy_kev, 4, 8)
    out["image"]          # (z, y, x) counts, comparable voxel by voxel with reconstruct_spect's Volume

    python benchmarks/pytomography_runner.py --check              # conventions, point source, ~10 s
    python benchmarks/pytomography_runner.py --compare [--n 64]   # both engines on a sphere phantom
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import numpy as np

FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))
PINNED = "torch==2.13.0 (CPU build) and pytomography==3.4.0"


def _synchronize(torch: Any) -> None:
    """Wait for queued GPU work (no-op without CUDA)."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _import_pytomography() -> tuple[Any, Any]:
    try:
        import pytomography  # noqa: PLC0415
        import torch  # noqa: PLC0415
    except ImportError as exc:
        raise ImportError(
            "the PyTomography comparison is an optional benchmark: install it with pip install '.[bench]' "
            f"({PINNED}), preferably in a separate virtual environment such as .venv-bench"
        ) from exc
    return pytomography, torch


# ----------------------------------------------------------------------------- conventions

def to_pytomography_angles(angles_deg: np.ndarray) -> np.ndarray:
    """Our detector angles theta (deg) -> PyTomography's beta = (360 - theta) mod 360."""
    return np.mod(360.0 - np.asarray(angles_deg, dtype=np.float64), 360.0)


def object_to_pytomography(vol_zyx: np.ndarray) -> np.ndarray:
    """(z, y, x) -> PyTomography's [Lx, Ly, Lz] (same axes, transposed), contiguous float32."""
    return np.ascontiguousarray(np.transpose(np.asarray(vol_zyx, dtype=np.float32), (2, 1, 0)))


def object_from_pytomography(vol_xyz: np.ndarray) -> np.ndarray:
    """PyTomography's [Lx, Ly, Lz] -> our (z, y, x)."""
    return np.ascontiguousarray(np.transpose(np.asarray(vol_xyz, dtype=np.float32), (2, 1, 0)))


def projections_to_pytomography(proj: np.ndarray) -> np.ndarray:
    """(view, row=z, col) -> PyTomography's (view, r, z)."""
    return np.ascontiguousarray(np.transpose(np.asarray(proj, dtype=np.float32), (0, 2, 1)))


def projections_from_pytomography(proj: np.ndarray) -> np.ndarray:
    """PyTomography's (view, r, z) -> our (view, row, col)."""
    return np.ascontiguousarray(np.transpose(np.asarray(proj, dtype=np.float32), (0, 2, 1)))


def lead_mu_per_cm(energy_kev: float, source: str = "pytomography") -> float:
    """Lead's linear attenuation (1/cm) at ``energy_kev``: PyTomography's NIST fit or ours (``"recon"``)."""
    if source == "recon":
        from recon.data.collimator import lead_mu_per_mm  # noqa: PLC0415

        return 10.0 * lead_mu_per_mm(energy_kev)
    if source != "pytomography":
        raise ValueError(f"psf_lead_mu must be 'pytomography' or 'recon', got {source!r}")
    pytomography, _ = _import_pytomography()
    from pytomography.utils.nist_data import get_mu_from_spectrum_interp  # noqa: PLC0415

    table = os.path.join(os.path.dirname(pytomography.__file__), "data", "NIST_attenuation_data", "lead.csv")
    return float(get_mu_from_spectrum_interp(table, energy_kev))


def psf_parameters_cm(hole_diameter_mm: float, hole_length_mm: float, intrinsic_fwhm_mm: float,
                      energy_kev: float, lead_mu: str = "pytomography") -> tuple[float, float, float]:
    """(a, b, c) of PyTomography's sigma(r) = sqrt((a r + b)^2 + c^2), r and sigma in cm.

    The arithmetic of ``pytomography.io.SPECT.get_psfmeta_from_scanner_params`` (Gaussian shape),
    fed a collimator's geometry instead of a name from its table.
    """
    d_cm, l_cm = hole_diameter_mm / 10.0, hole_length_mm / 10.0
    l_eff_cm = l_cm - 2.0 / lead_mu_per_cm(energy_kev, lead_mu)
    if l_eff_cm <= 0:
        raise ValueError(f"collimator is transparent at {energy_kev} keV (L_eff <= 0)")
    return (d_cm / l_eff_cm / FWHM_PER_SIGMA, d_cm / FWHM_PER_SIGMA, intrinsic_fwhm_mm / 10.0 / FWHM_PER_SIGMA)


def _psf_sigma(r: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    return np.sqrt((a * r + b) ** 2 + c**2)


def build_system_matrix(shape_zyx: tuple[int, int, int], pixel_mm: float, angles_deg: np.ndarray,
                        radius_mm: np.ndarray, mu_map: np.ndarray | None,
                        psf_params_cm: tuple[float, float, float] | None, slice_mm: float | None = None) -> Any:
    """PyTomography's ``SPECTSystemMatrix`` for our geometry (angles in our convention, mm, 1/mm)."""
    _, torch = _import_pytomography()
    from pytomography.metadata.SPECT import SPECTObjectMeta, SPECTPSFMeta, SPECTProjMeta  # noqa: PLC0415
    from pytomography.projectors.SPECT import SPECTSystemMatrix  # noqa: PLC0415
    from pytomography.transforms.SPECT import SPECTAttenuationTransform, SPECTPSFTransform  # noqa: PLC0415

    nz, ny, nx = (int(s) for s in shape_zyx)
    if ny != nx:
        raise ValueError(f"PyTomography needs a square transaxial grid, got (z, y, x) = {shape_zyx}")
    angles = np.asarray(angles_deg, dtype=np.float64).reshape(-1)
    radius = np.broadcast_to(np.asarray(radius_mm, dtype=np.float64), angles.shape)
    d_cm = pixel_mm / 10.0
    dz_cm = (pixel_mm if slice_mm is None else slice_mm) / 10.0
    object_meta = SPECTObjectMeta([d_cm, d_cm, dz_cm], (nx, ny, nz))
    proj_meta = SPECTProjMeta((nx, nz), [d_cm, dz_cm], to_pytomography_angles(angles), radii=radius / 10.0)
    transforms = []
    if mu_map is not None:
        mu = np.asarray(mu_map, dtype=np.float32)
        if mu.shape != (nz, ny, nx):
            raise ValueError(f"mu_map shape {mu.shape} does not match the image grid (z, y, x) {(nz, ny, nx)}")
        mu_cm = torch.from_numpy(object_to_pytomography(mu) * 10.0)
        transforms.append(SPECTAttenuationTransform(attenuation_map=mu_cm))
    if psf_params_cm is not None:
        transforms.append(SPECTPSFTransform(psf_meta=SPECTPSFMeta(list(psf_params_cm), sigma_fit=_psf_sigma)))
    return SPECTSystemMatrix(transforms, [], object_meta, proj_meta)


# ----------------------------------------------------------------------------- OSEM

def run_pytomography_osem(projections: np.ndarray, scatter: np.ndarray | None, mu_map: np.ndarray | None,
                          angles_deg: np.ndarray, radius_mm: np.ndarray, pixel_mm: float, hole_diameter_mm: float,
                          hole_length_mm: float, intrinsic_fwhm_mm: float, energy_kev: float, n_iterations: int,
                          n_subsets: int, *, psf: bool = True, psf_lead_mu: str = "pytomography",
                          slice_mm: float | None = None, threads: int | None = None) -> dict[str, Any]:
    """OSEM in PyTomography on our data (our conventions in, our (z, y, x) counts image out).

    ``projections`` (views, rows, cols) photopeak counts; ``scatter`` the additive term of the same
    shape or None; ``mu_map`` (z, y, x) 1/mm on the (rows, cols, cols) grid or None (no attenuation);
    ``angles_deg`` our convention (:mod:`recon.data.spect`); ``radius_mm`` per view (or one value).
    Returns image, seconds_total/setup/osem, version, torch, threads and the PSF parameters used.
    ``threads`` sets torch's intra-op threads for this call only (default: torch's own choice).
    """
    pytomography, torch = _import_pytomography()
    from pytomography.algorithms import OSEM  # noqa: PLC0415
    from pytomography.likelihoods import PoissonLogLikelihood  # noqa: PLC0415

    proj = np.asarray(projections)
    if proj.ndim != 3:
        raise ValueError(f"projections must be (views, rows, cols), got shape {proj.shape}")
    n_views, n_rows, n_cols = proj.shape
    if np.asarray(angles_deg).size != n_views:
        raise ValueError(f"{np.asarray(angles_deg).size} angles for {n_views} views")
    if scatter is not None and np.shape(scatter) != proj.shape:
        raise ValueError(f"scatter shape {np.shape(scatter)} differs from projections {proj.shape}")
    threads_before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    try:
        psf_params = (psf_parameters_cm(hole_diameter_mm, hole_length_mm, intrinsic_fwhm_mm, energy_kev, psf_lead_mu)
                      if psf else None)

        t0 = time.perf_counter()
        system = build_system_matrix((n_rows, n_cols, n_cols), pixel_mm, angles_deg, radius_mm, mu_map, psf_params,
                                     slice_mm)
        proj_t = torch.from_numpy(projections_to_pytomography(proj))
        additive = None if scatter is None else torch.from_numpy(projections_to_pytomography(scatter))
        likelihood = PoissonLogLikelihood(system, proj_t, additive_term=additive)
        algorithm = OSEM(likelihood)
        _synchronize(torch)
        t1 = time.perf_counter()
        image = algorithm(n_iters=n_iterations, n_subsets=n_subsets)
        _synchronize(torch)  # on a GPU the times include the work, not only its launch
        t2 = time.perf_counter()
        return {
            "image": object_from_pytomography(image.cpu().numpy()),
            "seconds_total": t2 - t0,
            "seconds_setup": t1 - t0,
            "seconds_osem": t2 - t1,
            "version": pytomography.__version__,
            "torch": torch.__version__,
            "device": str(getattr(pytomography, "device", "cpu")),
            "threads": torch.get_num_threads(),
            "psf_sigma_fit_params_cm": None if psf_params is None else [float(p) for p in psf_params],
            "psf_lead_mu": psf_lead_mu if psf else None,
            "attenuation": mu_map is not None,
            "scatter": scatter is not None,
        }
    finally:
        torch.set_num_threads(threads_before)


def forward_project(image_zyx: np.ndarray, angles_deg: np.ndarray, radius_mm: np.ndarray, pixel_mm: float,
                    mu_map: np.ndarray | None = None, psf_params_cm: tuple[float, float, float] | None = None,
                    beta_deg: np.ndarray | None = None) -> np.ndarray:
    """PyTomography's forward projection of our image, as our (view, row, col).

    ``beta_deg`` overrides the angle mapping (for negative controls only).
    """
    _, torch = _import_pytomography()
    angles = np.asarray(angles_deg, dtype=np.float64)
    if beta_deg is not None:  # feed PyTomography these betas: undo the mapping build_system_matrix applies
        angles = to_pytomography_angles(beta_deg)
    system = build_system_matrix(image_zyx.shape, pixel_mm, angles, radius_mm, mu_map, psf_params_cm)
    out = system.forward(torch.from_numpy(object_to_pytomography(image_zyx)))
    return projections_from_pytomography(out.cpu().numpy())


# ----------------------------------------------------------------------------- checks (scripts, not tests)

def _moments(p: np.ndarray) -> tuple[np.ndarray, ...]:
    r = np.arange(p.shape[1], dtype=np.float64)
    c = np.arange(p.shape[2], dtype=np.float64)
    s = p.sum(axis=(1, 2), dtype=np.float64)
    pr, pc = p.sum(axis=2, dtype=np.float64), p.sum(axis=1, dtype=np.float64)
    mr, mc = (pr * r).sum(1) / s, (pc * c).sum(1) / s
    sr = np.sqrt(np.maximum((pr * r**2).sum(1) / s - mr**2, 0.0))
    sc = np.sqrt(np.maximum((pc * c**2).sum(1) / s - mc**2, 0.0))
    return s, mr, mc, sr, sc


def check_mapping(n: int = 32, pixel_mm: float = 6.0) -> dict[str, Any]:
    """Both engines' projections of an off-centre point source in a water cylinder (12 views of a
    non-circular orbit): relative L1 difference per view, sums, centroids and widths, with and without
    PSF, plus negative controls (wrong angle direction, x/y swapped) that must disagree."""
    from recon.data import SPECTGeometry, Volume, get_collimator  # noqa: PLC0415
    from recon.data.materials import linear_mu_per_mm  # noqa: PLC0415
    from recon.spect.system_model import SPECTSystemModel  # noqa: PLC0415

    energy = 140.5
    angles = np.arange(0.0, 360.0, 30.0) + 7.0
    radius = 150.0 + 20.0 * np.abs(np.sin(np.deg2rad(angles)))
    geo = SPECTGeometry(angles, radius, n, n, pixel_mm)
    c = (np.arange(n) - (n - 1) / 2.0) * pixel_mm
    zz, yy, xx = np.meshgrid(c, c, c, indexing="ij")
    mu = np.where(np.hypot(xx, yy) < 80.0, linear_mu_per_mm("water", energy), 0.0).astype(np.float32)
    x = np.zeros((n, n, n), np.float32)
    x[21, 9, 20] = 1.0  # z superior, y anterior, x patient left of centre: no symmetry to hide behind
    col = get_collimator("SY-LEHR")
    psf_cm = psf_parameters_cm(col.hole_diameter_mm, col.hole_length_mm, col.intrinsic_fwhm_mm, energy)
    out: dict[str, Any] = {}
    for label, psf in (("attenuation", False), ("attenuation+psf", True)):
        ours = SPECTSystemModel(geo, col, energy, Volume(mu, geo.image_grid(), "1/mm"), psf, "cpu").forward(x)
        theirs = forward_project(x, angles, radius, pixel_mm, mu, psf_cm if psf else None)
        so, ro, co, sro, sco = _moments(ours)
        st, rt, ct, srt, sct = _moments(theirs)
        out[label] = {
            "max_rel_l1": float((np.abs(ours - theirs).sum(axis=(1, 2)) / so).max()),
            "sum_ratio_range": [float((st / so).min()), float((st / so).max())],
            "max_centroid_shift_px": float(max(np.abs(rt - ro).max(), np.abs(ct - co).max())),
            "width_ratio_range": [float(min((srt / sro).min(), (sct / sco).min())),
                                  float(max((srt / sro).max(), (sct / sco).max()))] if psf else None,
        }
        if not psf:
            controls = {
                "beta=theta (wrong direction)": forward_project(x, angles, radius, pixel_mm, mu, None, beta_deg=angles),
                "x and y swapped": forward_project(np.ascontiguousarray(np.swapaxes(x, 1, 2)), angles, radius,
                                                   pixel_mm, np.ascontiguousarray(np.swapaxes(mu, 1, 2))),
            }
            out["negative_controls_max_rel_l1"] = {
                k: float((np.abs(ours - v).sum(axis=(1, 2)) / so).max()) for k, v in controls.items()}
    return out


def _box3(img: np.ndarray) -> np.ndarray:
    """3x3x3 moving average (zero outside)."""
    p = np.pad(img, 1)
    n0, n1, n2 = img.shape
    return sum(p[i:i + n0, j:j + n1, k:k + n2] for i in range(3) for j in range(3) for k in range(3)) / 27.0


def sphere_phantom(n: int = 64, voxel_mm: float = 6.0) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """A water cylinder (radius 150 mm, length 300 mm, 5 kBq/mL) with four hot spheres placed off-centre
    and without symmetry (centres on voxel centres at 6 mm voxels). Returns activity (Bq/mL) and mu
    (1/mm at 140.5 keV), both (z, y, x), and the spheres (LPS centre mm, radius mm, concentration)."""
    from recon.data.materials import linear_mu_per_mm  # noqa: PLC0415

    c = (np.arange(n) - (n - 1) / 2.0) * voxel_mm
    zz, yy, xx = np.meshgrid(c, c, c, indexing="ij")
    body = (np.hypot(xx, yy) <= 150.0) & (np.abs(zz) <= 150.0)
    act = np.where(body, 5000.0, 0.0)
    spheres = [
        {"center_mm": (63.0, -45.0, 27.0), "radius_mm": 18.0, "bq_ml": 40000.0},  # left, anterior, superior
        {"center_mm": (-75.0, 27.0, -51.0), "radius_mm": 15.0, "bq_ml": 30000.0},  # right, posterior, inferior
        {"center_mm": (9.0, 81.0, 69.0), "radius_mm": 21.0, "bq_ml": 20000.0},
        {"center_mm": (-33.0, -87.0, -9.0), "radius_mm": 12.0, "bq_ml": 50000.0},
    ]
    for s in spheres:
        x0, y0, z0 = s["center_mm"]
        inside = (xx - x0) ** 2 + (yy - y0) ** 2 + (zz - z0) ** 2 <= s["radius_mm"] ** 2
        act[inside] = s["bq_ml"]
    mu = np.where(body, linear_mu_per_mm("water", 140.5), 0.0)
    return act.astype(np.float32), mu.astype(np.float32), spheres


def compare_reconstructions(n: int = 64, voxel_mm: float = 6.0, n_views: int = 60, n_iterations: int = 4,
                            n_subsets: int = 8) -> dict[str, Any]:
    """Noise-free sphere phantom simulated by recon (attenuation, PSF, scatter on a non-circular orbit),
    reconstructed by both engines with the same model: agreement in orientation and scale, and time."""
    from recon.data.grid import ImageGrid, Volume  # noqa: PLC0415
    from recon.spect.reconstruct import SPECTReconOptions, reconstruct_spect  # noqa: PLC0415
    from recon.spect.scatter import estimate_scatter  # noqa: PLC0415
    from recon.spect.simulate import AcquisitionProtocol, simulate_spect  # noqa: PLC0415

    act, mu, spheres = sphere_phantom(n, voxel_mm)
    grid = ImageGrid.centered((n, n, n), (voxel_mm, voxel_mm, voxel_mm))
    mu_vol = Volume(mu, grid, "1/mm")
    angles = 360.0 / n_views * np.arange(n_views)
    radii = tuple(float(r) for r in 175.0 + 45.0 * np.abs(np.sin(np.deg2rad(angles))))  # non-circular
    acq = simulate_spect(Volume(act, grid, "Bq/mL"), mu_vol, AcquisitionProtocol(n_views=n_views, radius_mm=radii),
                         rng=None, device="cpu")
    scatter = estimate_scatter(acq, "tew")
    opts = SPECTReconOptions(n_iterations=n_iterations, n_subsets=n_subsets, scatter="tew", device="cpu",
                             progress=False)
    reconstruct_spect(acq, mu_vol, SPECTReconOptions(n_iterations=1, n_subsets=n_subsets, device="cpu",
                                                     progress=False))  # compile the Numba kernels first
    times = []
    for _ in range(3):  # ours is cheap: best of three (PyTomography runs once)
        t0 = time.perf_counter()
        ours = reconstruct_spect(acq, mu_vol, opts).data.astype(np.float64)
        times.append(time.perf_counter() - t0)
    t_ours = min(times)
    col, g = acq.collimator, acq.geometry
    res = run_pytomography_osem(acq.photopeak_counts, scatter, mu, g.angles_deg, g.radius_mm, g.pixel_size_mm,
                                col.hole_diameter_mm, col.hole_length_mm, col.intrinsic_fwhm_mm,
                                acq.photon_energy_kev, n_iterations, n_subsets)
    theirs = res.pop("image").astype(np.float64)

    c = (np.arange(n) - (n - 1) / 2.0) * voxel_mm
    zz, yy, xx = np.meshgrid(c, c, c, indexing="ij")
    body = mu > 0
    a, b = ours[body], theirs[body]
    # peaks of the 3x3x3-averaged images: a noise-free OSEM sphere is a plateau with edge ringing,
    # whose single hottest voxel is not a stable landmark
    ours_s, theirs_s = _box3(ours), _box3(theirs)
    per_sphere = []
    for s in spheres:
        x0, y0, z0 = s["center_mm"]
        d2 = (xx - x0) ** 2 + (yy - y0) ** 2 + (zz - z0) ** 2
        near = d2 <= (s["radius_mm"] + 2 * voxel_mm) ** 2  # search the sphere and two voxels around it
        inside = d2 <= s["radius_mm"] ** 2
        idx = np.flatnonzero(near.ravel())
        peak_ours = np.unravel_index(idx[np.argmax(ours_s.ravel()[idx])], ours.shape)
        peak_theirs = np.unravel_index(idx[np.argmax(theirs_s.ravel()[idx])], theirs.shape)

        def centroid(img: np.ndarray, m: np.ndarray = near) -> list[float]:
            w = np.where(m, img, 0.0)
            w = np.maximum(w - np.percentile(img[body], 50), 0.0)  # above the background level
            return [float((w * q).sum() / w.sum()) for q in (xx, yy, zz)]

        per_sphere.append({
            "center_mm_xyz": list(s["center_mm"]),
            "center_voxel_zyx": [int(round(q / voxel_mm + (n - 1) / 2.0)) for q in (z0, y0, x0)],
            "peak_voxel_zyx_ours_box3": [int(i) for i in peak_ours],
            "peak_voxel_zyx_pytomography_box3": [int(i) for i in peak_theirs],
            "hot_centroid_mm_xyz_ours": centroid(ours),
            "hot_centroid_mm_xyz_pytomography": centroid(theirs),
            "mean_ratio_pytomography_over_ours": float(theirs[inside].mean() / ours[inside].mean()),
        })
    flips = {  # negative controls: the PyTomography image with a mis-mapped axis
        "x flipped": theirs[:, :, ::-1], "y flipped": theirs[:, ::-1, :], "z flipped": theirs[::-1],
        "x,y swapped": np.swapaxes(theirs, 1, 2),
    }
    return {
        "case": {"voxels": [n, n, n], "voxel_mm": voxel_mm, "views": n_views, "detector": [n, n],
                 "orbit_radius_mm": [min(radii), max(radii)], "iterations": n_iterations, "subsets": n_subsets,
                 "model": "attenuation + PSF (SY-LEHR) + TEW scatter, noise-free"},
        "correlation_in_body": float(np.corrcoef(a, b)[0, 1]),
        "sum_ratio_in_body_pytomography_over_ours": float(b.sum() / a.sum()),
        "median_voxel_ratio_in_body": float(np.median(b / np.maximum(a, 1e-12))),
        "rel_rms_diff_in_body": float(np.sqrt(np.mean((a - b) ** 2)) / a.mean()),
        "spheres": per_sphere,
        "negative_controls_correlation": {k: float(np.corrcoef(a, v[body])[0, 1]) for k, v in flips.items()},
        "seconds_ours_end_to_end": t_ours,
        "seconds_ours_runs": times,
        "pytomography": res,
        "speedup_ours_vs_pytomography": res["seconds_total"] / t_ours,
        "cpu_count": os.cpu_count(),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="PyTomography 3.4 side-by-side: convention checks and comparison")
    p.add_argument("--check", action="store_true", help="point-source projection check of the mapping (default)")
    p.add_argument("--compare", action="store_true", help="reconstruct a sphere phantom with both engines")
    p.add_argument("--n", type=int, default=64, help="voxels per axis for --compare (views = 60 at 64)")
    p.add_argument("--views", type=int, default=60)
    p.add_argument("--out", help="also write the JSON report to this file")
    args = p.parse_args(argv)
    report: dict[str, Any] = {}
    if args.check or not args.compare:
        report["check_mapping"] = check_mapping()
    if args.compare:
        report["compare_reconstructions"] = compare_reconstructions(args.n, 6.0 * 64 / args.n, args.views)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
