"""Run the same SPECT OSEM through PyTomography 3.4 (optional: ``pip install .[bench]``), for the side-by-side benchmark.

Conventions, ours -> PyTomography (established with off-centre point sources, see
``check_mapping``):
- lengths: mm -> cm; mu: 1/mm -> 1/cm;
- object: ours (z, y, x) -> theirs (x, y, z), a transpose;
- angles: ours theta (detector normal (sin, -cos) in LPS) -> theirs phi = (360 - theta) mod 360;
- projections: ours (view, row=z, col) -> theirs (view, r, z), a transpose of each view;
- radii: the same distances (mm -> cm).
Model options are matched: attenuation from the same mu-map, the same Gaussian collimator-detector
response sigma(d) = sqrt((D (L_eff + d) / L_eff)^2 + R_i^2) / 2.355 (PyTomography's own sigma_fit
form, fed our collimator's D, L_eff = L - 2/mu_Pb(E) and R_i), the same additive scatter term, the same
interleaved subsets (PyTomography's own).
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np

FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))


def _import_pytomography() -> tuple[Any, Any]:
    try:
        import pytomography  # noqa: PLC0415
        import torch  # noqa: PLC0415
    except ImportError as exc:
        raise ImportError(
            "the PyTomography comparison needs the optional benchmark extra: pip install '.[bench]' "
            "(torch==2.13.0 CPU build, pytomography==3.4.0)"
        ) from exc
    return pytomography, torch


def to_pytomography_angles(angles_deg: np.ndarray) -> np.ndarray:
    """Our detector angles (deg) -> PyTomography's."""
    return np.mod(360.0 - np.asarray(angles_deg, dtype=np.float64), 360.0)


def _system_matrix(shape_zyx: tuple[int, int, int], pixel_mm: float, angles_deg: np.ndarray, radius_mm: np.ndarray,
                   mu_map: np.ndarray | None, psf_params: tuple[float, float, float] | None) -> Any:
    pytomography, torch = _import_pytomography()
    from pytomography.metadata.SPECT import SPECTObjectMeta, SPECTProjMeta, SPECTPSFMeta  # noqa: PLC0415
    from pytomography.projectors.SPECT import SPECTSystemMatrix  # noqa: PLC0415
    from pytomography.transforms.SPECT import SPECTAttenuationTransform, SPECTPSFTransform  # noqa: PLC0415

    nz, ny, nx = shape_zyx
    d_cm = pixel_mm / 10.0
    object_meta = SPECTObjectMeta([d_cm, d_cm, d_cm], (nx, ny, nz))
    proj_meta = SPECTProjMeta((nx, nz), [d_cm, d_cm], to_pytomography_angles(angles_deg),
                              radii=np.asarray(radius_mm, dtype=np.float64) / 10.0)
    transforms = []
    if mu_map is not None:
        mu_cm = torch.tensor(np.transpose(mu_map, (2, 1, 0)).copy() * 10.0, dtype=torch.float32)
        transforms.append(SPECTAttenuationTransform(attenuation_map=mu_cm))
    if psf_params is not None:
        meta = SPECTPSFMeta(sigma_fit_params=list(psf_params), sigma_fit=lambda r, a, b, c: np.sqrt((a * r + b) ** 2 + c**2))
        transforms.append(SPECTPSFTransform(psf_meta=meta))
    return SPECTSystemMatrix(transforms, [], object_meta, proj_meta)


def psf_parameters_cm(hole_diameter_mm: float, hole_length_mm: float, intrinsic_fwhm_mm: float,
                      energy_kev: float) -> tuple[float, float, float]:
    """(a, b, c) of sigma(r) = sqrt((a r + b)^2 + c^2) in cm, from our collimator model."""
    from recon.data.collimator import lead_mu_per_mm  # noqa: PLC0415

    l_eff_mm = hole_length_mm - 2.0 / lead_mu_per_mm(energy_kev)
    a = hole_diameter_mm / l_eff_mm / FWHM_PER_SIGMA
    b = hole_diameter_mm / 10.0 / FWHM_PER_SIGMA
    c = intrinsic_fwhm_mm / 10.0 / FWHM_PER_SIGMA
    return a, b, c


def run_pytomography_osem(projections: np.ndarray, scatter: np.ndarray | None, mu_map: np.ndarray | None,
                          angles_deg: np.ndarray, radius_mm: np.ndarray, pixel_mm: float, hole_diameter_mm: float,
                          hole_length_mm: float, intrinsic_fwhm_mm: float, energy_kev: float, n_iterations: int,
                          n_subsets: int) -> dict[str, Any]:
    """OSEM in PyTomography on our data; the image comes back in our (z, y, x) orientation, counts."""
    pytomography, torch = _import_pytomography()
    from pytomography.algorithms import OSEM  # noqa: PLC0415
    from pytomography.likelihoods import PoissonLogLikelihood  # noqa: PLC0415

    n_views, n_rows, n_cols = projections.shape
    t0 = time.perf_counter()
    system = _system_matrix((n_rows, n_cols, n_cols), pixel_mm, angles_deg, radius_mm, mu_map,
                            psf_parameters_cm(hole_diameter_mm, hole_length_mm, intrinsic_fwhm_mm, energy_kev))
    proj_t = torch.tensor(np.transpose(projections, (0, 2, 1)).copy(), dtype=torch.float32)
    additive = None if scatter is None else torch.tensor(np.transpose(scatter, (0, 2, 1)).copy(), dtype=torch.float32)
    likelihood = PoissonLogLikelihood(system, proj_t, additive_term=additive)
    algorithm = OSEM(likelihood)
    t1 = time.perf_counter()
    image = algorithm(n_iters=n_iterations, n_subsets=n_subsets)
    t2 = time.perf_counter()
    return {
        "image": np.transpose(image.cpu().numpy(), (2, 1, 0)).copy(),
        "seconds_total": t2 - t0,
        "seconds_setup": t1 - t0,
        "seconds_osem": t2 - t1,
        "version": pytomography.__version__,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }


def forward_project(image_zyx: np.ndarray, angles_deg: np.ndarray, radius_mm: np.ndarray, pixel_mm: float,
                    mu_map: np.ndarray | None = None, psf_params: tuple[float, float, float] | None = None) -> np.ndarray:
    """PyTomography's forward projection of our image, returned as our (view, row, col)."""
    _, torch = _import_pytomography()
    system = _system_matrix(image_zyx.shape, pixel_mm, angles_deg, radius_mm, mu_map, psf_params)
    obj = torch.tensor(np.transpose(image_zyx, (2, 1, 0)).copy(), dtype=torch.float32)
    return np.transpose(system.forward(obj).cpu().numpy(), (0, 2, 1)).copy()


def check_mapping(n: int = 32, pixel_mm: float = 6.0) -> dict[str, float]:
    """Compare both engines' projections of an off-centre point source in a water cylinder, with
    attenuation and PSF: the relative L1 difference per view (small when the conventions match)."""
    from recon.data import SPECTGeometry, Volume, get_collimator  # noqa: PLC0415
    from recon.spect.system_model import SPECTSystemModel  # noqa: PLC0415

    angles = np.arange(0.0, 360.0, 30.0)
    radius = 150.0 + 20.0 * np.abs(np.sin(np.deg2rad(angles)))
    geo = SPECTGeometry(angles, radius, n, n, pixel_mm)
    zz, yy, xx = np.meshgrid(*[np.arange(n) - (n - 1) / 2] * 3, indexing="ij")
    mu = np.where(np.hypot(xx, yy) * pixel_mm < 80.0, 0.01536, 0.0).astype(np.float32)
    x = np.zeros((n, n, n), np.float32)
    x[20, 9, 21] = 1.0
    col = get_collimator("SY-LEHR")
    ours = SPECTSystemModel(geo, col, 140.5, Volume(mu, geo.image_grid(), "1/mm"), True, "cpu").forward(x)
    theirs = forward_project(x, angles, radius, pixel_mm, mu,
                             psf_parameters_cm(col.hole_diameter_mm, col.hole_length_mm, col.intrinsic_fwhm_mm, 140.5))
    diff = np.abs(ours - theirs).sum(axis=(1, 2)) / ours.sum(axis=(1, 2))
    totals = theirs.sum(axis=(1, 2)) / ours.sum(axis=(1, 2))
    return {"max_rel_l1": float(diff.max()), "total_ratio_min": float(totals.min()),
            "total_ratio_max": float(totals.max())}


if __name__ == "__main__":
    print(check_mapping())
