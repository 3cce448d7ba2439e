"""Reproduce the real-data check of the public GE Discovery NM/CT 670 Lu-177 study (two beds + CT).

The study is published with PyTomography's Slicer extension (GitHub PyTomography/slicer_spect_recon):
projections ``SlicerSPECTRecon/Resources/DICOM/NM.zip`` (git blob ca32886...), CT
``SlicerSPECTRecon/Resources/DICOM/CT/`` at commit 8ee366c.... Give a local clone (or bare git
directory) of that repository; the files are extracted into a temporary directory, never into it.

    python tools/ge670_lu177.py PATH/TO/slicer_spect_recon [--out results.json] [--workdir DIR]

Runs ``recon spect`` through the CLI for bed 1, bed 2 (each with the CT) and both beds stitched, then
measures: placement (fraction of the hottest 1 % of voxels on CT tissue, HU > -300, with our placement
and with the old "IPP = first pixel of the frame" reading; the CT-to-SPECT shift that maximises the
correlation of the scatter-window image with the CT tissue mask), and the two beds' agreement in their
overlap (Pearson correlation and ratio of means), also for both beds reconstructed without the detector's
axial field of view (every row at full sensitivity, as before it was modelled). Writes the figures as JSON.
"""
from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np

NM_BLOB = "ca3288667220d10081e69b669ab319745f8b9734"
CT_COMMIT = "8ee366ca973ff386c83e76f24fbf0327bf19b5a7"
CT_PATH = "SlicerSPECTRecon/Resources/DICOM/CT"
PHOTOPEAK = "Lu177_EM_2"  # 187.2-228.8 keV, the 208 keV line; TEW from sc3_SC / sc4_SC

logger = logging.getLogger("ge670")


def _git_dir(repo: Path) -> Path:
    return repo / ".git" if (repo / ".git").exists() else repo


def extract(repo: Path, workdir: Path) -> tuple[Path, Path, Path]:
    """bed1, bed2 projection files and the CT directory, extracted from the repository's history."""
    git = ["git", f"--git-dir={_git_dir(repo)}"]
    nm_zip = workdir / "NM.zip"
    nm_zip.write_bytes(subprocess.run(git + ["cat-file", "blob", NM_BLOB], check=True, capture_output=True).stdout)
    with zipfile.ZipFile(nm_zip) as z:
        z.extractall(workdir / "NM")
    beds = sorted((workdir / "NM").rglob("bed*_projections.dcm"))
    if len(beds) != 2:
        raise SystemExit(f"expected bed1/bed2 projections in NM.zip, found {[b.name for b in beds]}")
    tar = subprocess.run(git + ["archive", CT_COMMIT, CT_PATH], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(workdir)], input=tar, check=True)
    ct = workdir / CT_PATH
    return beds[0], beds[1], ct


def _recon(argv: list[str]) -> float:
    from recon.cli import main  # noqa: PLC0415

    t0 = time.perf_counter()
    if main(argv) != 0:
        raise SystemExit(f"recon {' '.join(argv)} failed")
    return time.perf_counter() - t0


def _hu_on(grid, ct) -> np.ndarray:  # noqa: ANN001
    from recon.physics.resample import resample_grid  # noqa: PLC0415

    return resample_grid(ct.data, ct.grid, grid, fill=-1000.0)


def hot_on_tissue(volume, ct, top: float = 0.01) -> float:  # noqa: ANN001
    """Fraction of the hottest ``top`` of voxels where the CT (resampled onto the volume) is above -300 HU."""
    data = np.asarray(volume.data)
    hot = data >= np.quantile(data[data > 0], 1.0 - top)
    return float((_hu_on(volume.grid, ct)[hot] > -300).mean())


def best_shift(image: np.ndarray, grid, ct, reach: int = 10) -> tuple[list[int], float, float]:  # noqa: ANN001
    """Shift (voxels z, y, x) of the CT tissue mask that best correlates with ``image``, its correlation and the
    correlation at zero shift."""
    from recon.data.grid import ImageGrid  # noqa: PLC0415

    dz, dy, dx = grid.spacing_mm
    big = ImageGrid(tuple(n + 2 * reach for n in grid.shape), grid.spacing_mm,
                    tuple(o - reach * d for o, d in zip(grid.origin_mm, (dx, dy, dz))))
    tissue = (_hu_on(big, ct) > -300).astype(np.float32)
    a = image - image.mean()
    nz, ny, nx = grid.shape
    best, at_zero = (-2.0, [0, 0, 0]), 0.0
    for sz in range(-reach, reach + 1, 2):
        for sy in range(-reach, reach + 1, 2):
            for sx in range(-reach, reach + 1, 2):
                t = tissue[reach + sz:reach + sz + nz, reach + sy:reach + sy + ny, reach + sx:reach + sx + nx]
                t = t - t.mean()
                r = float((a * t).sum() / np.sqrt((a * a).sum() * (t * t).sum()))
                if r > best[0]:
                    best = (r, [sz, sy, sx])
                if sz == sy == sx == 0:
                    at_zero = r
    return best[1], best[0], at_zero


def frame_convention_centre(path: Path) -> tuple[float, float, float]:
    """The grid centre the old reading (IPP = first pixel of the first frame, IOP directions) gave."""
    import pydicom  # noqa: PLC0415

    ds = pydicom.dcmread(path, stop_before_pixels=True)
    det = ds.DetectorInformationSequence[0]
    ipp = np.array([float(v) for v in det.ImagePositionPatient])
    iop = np.array([float(v) for v in det.ImageOrientationPatient])
    dr, dc = (float(v) for v in ds.PixelSpacing)
    c = ipp + 0.5 * (ds.Columns - 1) * dc * iop[:3] + 0.5 * (ds.Rows - 1) * dr * iop[3:]
    return tuple(float(v) for v in c)  # type: ignore[return-value]


def _device_info(device: str) -> dict:
    from recon.backend import device_info  # noqa: PLC0415

    return device_info(device)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("repository", type=Path, help="local clone or bare git directory of slicer_spect_recon")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/ge670_lu177.json"))
    p.add_argument("--workdir", type=Path, help="where to extract and write volumes (default: a temporary dir)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--iterations", type=int, default=4)
    p.add_argument("--subsets", type=int, default=10)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from recon.io.dicom import read_ct_series, read_nm  # noqa: PLC0415
    from recon.io.hdf5 import read_volume  # noqa: PLC0415
    from recon.spect.multibed import active_rows, bed_weights, overlap_agreement, row_mask, stitched_grid  # noqa: PLC0415
    from recon.spect.reconstruct import SPECTReconOptions, reconstruct_spect  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        bed1, bed2, ct_dir = extract(args.repository, work)
        common = ["--ct", str(ct_dir), "--photopeak", PHOTOPEAK, "--device", args.device, "--iterations",
                  str(args.iterations), "--subsets", str(args.subsets), "--overwrite"]
        out: dict = {"study": "GE Discovery NM/CT 670, Lu-177, 2 beds, MEGP, TEW; CT GE Optima CT540",
                     "photopeak": PHOTOPEAK, "iterations": args.iterations, "subsets": args.subsets,
                     "device": args.device, "machine": _device_info(args.device), "seconds": {}}
        for name, inputs in (("bed1", [bed1]), ("bed2", [bed2]), ("stitched", [bed1, bed2])):
            out["seconds"][name] = round(_recon(["-q", "spect", *map(str, inputs), "-o", str(work / f"{name}.h5"),
                                                 *common]), 1)
        ct = read_ct_series(ct_dir)
        vols = {n: read_volume(work / f"{n}.h5") for n in ("bed1", "bed2", "stitched")}
        acqs = {"bed1": read_nm(bed1, photopeak=PHOTOPEAK), "bed2": read_nm(bed2, photopeak=PHOTOPEAK)}
        out["placement"] = {}
        for n in ("bed1", "bed2"):
            v, acq = vols[n], acqs[n]
            old_grid = v.grid.recentred(frame_convention_centre(bed1 if n == "bed1" else bed2))
            sc = reconstruct_spect(replace(acq, photopeak="sc3_SC"), None, SPECTReconOptions(
                n_iterations=2, n_subsets=6, attenuation=False, scatter="none", progress=False, device=args.device))
            shift, r_best, r_zero = best_shift(np.asarray(sc.data, np.float64), sc.grid, ct)
            rows = np.nonzero(active_rows(acq))[0]
            out["placement"][n] = {
                "grid_centre_mm": [round(c, 2) for c in v.grid.center_mm],
                "old_frame_reading_centre_mm": [round(c, 2) for c in old_grid.center_mm],
                "rows_with_counts": [int(rows[0]), int(rows[-1])],
                "fully_sensitive_rows": [int(np.nonzero(row_mask(acq))[0][0]), int(np.nonzero(row_mask(acq))[0][-1])],
                "hot1pct_on_ct_tissue": round(hot_on_tissue(v, ct), 3),
                "hot1pct_on_ct_tissue_old_reading": round(hot_on_tissue(replace(v, grid=old_grid), ct), 3),
                "scatter_image_vs_ct_tissue_corr_at_zero_shift": round(r_zero, 3),
                "best_shift_voxels_zyx": shift, "best_shift_corr": round(r_best, 3),
                "voxel_mm": v.grid.spacing_mm[0],
            }
        grids = [vols["bed1"].grid, vols["bed2"].grid]
        target = stitched_grid(grids)
        profiles = [row_mask(acqs["bed1"]), row_mask(acqs["bed2"])]  # what the reconstructions modelled
        out["fully_sensitive_rows"] = {n: [int(np.nonzero(p)[0][0]), int(np.nonzero(p)[0][-1])]
                              for n, p in zip(("bed1", "bed2"), profiles)}
        w = bed_weights(grids, profiles, target)
        agree = overlap_agreement(vols["bed1"], vols["bed2"], w[0], w[1], target)
        out["overlap"] = {k: round(float(x), 4) for k, x in agree.items()}
        w0 = bed_weights(grids, profiles, target, edge_slices=0)
        agree0 = overlap_agreement(vols["bed1"], vols["bed2"], w0[0], w0[1], target)
        out["overlap_with_end_slices"] = {k: round(float(x), 4) for k, x in agree0.items()}
        flipped = replace(vols["bed2"], data=np.ascontiguousarray(vols["bed2"].data[::-1]))
        agree_f = overlap_agreement(vols["bed1"], flipped, w[0], w[1], target)
        out["overlap_if_bed2_were_upside_down"] = {k: round(float(agree_f[k]), 4)
                                                  for k in ("correlation_smoothed", "mean_ratio_smoothed")}
        out["stitched_shape_zyx"] = list(vols["stitched"].grid.shape)
        # before the detector's axial field of view was modelled: both beds with every row at full sensitivity
        from recon.commands.spect import load_input  # noqa: PLC0415

        old = []
        for path in (bed1, bed2):
            acq, mu = load_input(path, ct_dir, None, photopeak=PHOTOPEAK, radionuclide=None, energy_kev=None)
            old.append(reconstruct_spect(acq, mu, SPECTReconOptions(
                n_iterations=args.iterations, n_subsets=args.subsets, device=args.device, progress=False,
                detector_rows=False)))
        out["without_detector_rows"] = {}
        for tag, weights in (("overlap", w), ("overlap_with_end_slices", w0)):
            a = overlap_agreement(old[0], old[1], weights[0], weights[1], target)
            out["without_detector_rows"][tag] = {k: round(float(x), 4) for k, x in a.items()}
        wa = bed_weights(grids, [active_rows(acqs["bed1"]), active_rows(acqs["bed2"])], target)
        a = overlap_agreement(old[0], old[1], wa[0], wa[1], target)
        out["without_detector_rows"]["overlap_as_stitched_then"] = {k: round(float(x), 4) for k, x in a.items()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = args.out.with_name(args.out.name + ".partial")
    tmp_out.write_text(json.dumps(out, indent=2) + "\n")
    tmp_out.replace(args.out)
    print(json.dumps(out, indent=2))  # noqa: T201 - the script's result
    return 0


if __name__ == "__main__":
    sys.exit(main())
