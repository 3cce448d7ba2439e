"""SPECT reconstruction regression check: reconstruct fixed simulated studies, save or compare the images.

    python benchmarks/spect_regression.py --save before.npz          # on the reference commit
    python benchmarks/spect_regression.py --compare before.npz       # on the changed code

Studies (CPU, seeded): a uniform water cylinder (noise-free and Poisson; TEW, DEW without PSF, no
attenuation or scatter), the NEMA IEC body (noise-free, TEW), and a non-circular orbit. ``--compare``
prints, per study, the maximum |new - old| / max |old| and exits with 1 above ``--tolerance``.
Uses only the public reconstruction entry points, so it runs unchanged on older commits.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from recon.data import ImageGrid  # noqa: E402
from recon.phantoms.library import nema_iec_body, uniform_cylinder  # noqa: E402
from recon.spect.reconstruct import SPECTReconOptions, reconstruct_spect  # noqa: E402
from recon.spect.simulate import AcquisitionProtocol, circular_orbit_radius_mm, simulate_spect  # noqa: E402

logger = logging.getLogger("spect_regression")


def _options(n_iterations: int, n_subsets: int, **kw) -> SPECTReconOptions:
    return SPECTReconOptions(n_iterations, n_subsets, device="cpu", progress=False, **kw)


def studies() -> dict[str, np.ndarray]:
    """Reconstructed images (counts) of each study, by name."""
    out: dict[str, np.ndarray] = {}
    grid = ImageGrid.centered((24, 48, 48), (6.0, 6.0, 6.0))
    cyl = uniform_cylinder(grid, 100.0, 110.0, 50e3)
    proto = AcquisitionProtocol(n_views=60, radius_mm=150.0)
    clean = simulate_spect(cyl.activity, cyl.mu_map, proto, rng=None, device="cpu")
    out["cylinder_6x6_tew"] = reconstruct_spect(clean, cyl.mu_map, _options(6, 6, scatter="tew")).data
    noisy = simulate_spect(cyl.activity, cyl.mu_map, proto, rng=np.random.default_rng(3), device="cpu")
    out["cylinder_noisy_4x6_tew"] = reconstruct_spect(noisy, cyl.mu_map, _options(4, 6, scatter="tew")).data
    out["cylinder_noisy_3x6_dew_nopsf"] = reconstruct_spect(noisy, cyl.mu_map,
                                                            _options(3, 6, psf=False, scatter="dew")).data
    out["cylinder_noisy_2x5_noac"] = reconstruct_spect(noisy, None,
                                                       _options(2, 5, attenuation=False, scatter="none")).data
    angles = np.arange(60) * 6.0
    radii = 140.0 + 30.0 * np.abs(np.sin(np.deg2rad(angles)))
    orbit = simulate_spect(cyl.activity, cyl.mu_map, AcquisitionProtocol(n_views=60, radius_mm=radii),
                           rng=np.random.default_rng(5), device="cpu")
    out["cylinder_noncircular_3x10_tew"] = reconstruct_spect(orbit, cyl.mu_map, _options(3, 10, scatter="tew")).data
    grid = ImageGrid.centered((48, 80, 80), (4.8, 4.8, 4.8))
    iec = nema_iec_body(grid, sphere_to_background=4.0)
    acq = simulate_spect(iec.activity, iec.mu_map,
                         AcquisitionProtocol(n_views=120, radius_mm=circular_orbit_radius_mm(iec.mu_map)),
                         rng=None, device="cpu")
    out["iec_3x8_tew"] = reconstruct_spect(acq, iec.mu_map, _options(3, 8, scatter="tew")).data
    return {k: np.asarray(v) for k, v in out.items()}


def compare(new: dict[str, np.ndarray], ref_path: Path, tolerance: float) -> bool:
    """Log each study's maximum relative difference; True when all are within ``tolerance``."""
    ok = True
    with np.load(ref_path) as ref:
        for name, image in new.items():
            if name not in ref:
                logger.warning("%s: not in %s", name, ref_path)
                ok = False
                continue
            old = ref[name].astype(np.float64)
            diff = float(np.abs(image - old).max() / max(np.abs(old).max(), 1e-30))
            same = "bit-identical" if np.array_equal(image, ref[name]) else ""
            logger.info("%-32s max |new - old| / max |old| = %.3g %s", name, diff, same)
            ok &= diff <= tolerance
    return ok


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--save", type=Path, help="write the images to this .npz")
    p.add_argument("--compare", type=Path, help="compare with the images in this .npz")
    p.add_argument("--tolerance", type=float, default=1e-6, help="largest relative difference accepted")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.save is None and args.compare is None:
        p.error("give --save and/or --compare")
    images = studies()
    if args.save is not None:
        np.savez(args.save, **images)
        logger.info("saved %d studies to %s", len(images), args.save)
    if args.compare is not None and not compare(images, args.compare, args.tolerance):
        logger.error("differences above %g", args.tolerance)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
