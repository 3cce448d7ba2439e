"""Same-run old vs new per-LOR timings on explicit LOR lists (forward_lors/back_lors), interleaved.
cases: vision_sino_{nontof,tof} = every k-th LOR of view 0 of the Vision span-11 sinogram (TOF_ALL),
       vision_lm_{nontof,tof} = list-mode events as benchmarks/pet_projection.py draws them (TOF_ONE)."""
import sys, time, json, os, importlib
sys.path.insert(0, "/tmp")
import numpy as np
old = importlib.import_module(os.environ.get("OLD", "pet_old") + ".pet_cpu")
from kernels import pet_cpu as new
from kernels import pet_projector as kp
from recon.data.grid import ImageGrid
from recon.data.pet import ScannerPlacement
from recon.data.pet_presets import get_pet_scanner
from recon.data.pet_sinogram import SinogramLayout
from recon.pet.projector import SinogramProjector, ListModeProjector

def build(case, rng, n_lm):
    vis = get_pet_scanner("biograph_vision_like")
    grid = ImageGrid.centered((100, 200, 200), (2.6, 3.0, 3.0))
    tof = case.endswith("_tof")
    layout = SinogramLayout.for_fov(vis, 600.0, span=11, tof=tof)
    if "sino" in case:
        proj = SinogramProjector(layout, ScannerPlacement(), grid)
        xa, xb, za, zb, pw, tw, place = proj.geometry.arrays(np)
        v = 0
        P, R = za.size, xa.shape[1]
        pp, rr = np.meshgrid(np.arange(P), np.arange(R), indexing="ij")
        pp, rr = pp.ravel()[::25], rr.ravel()[::25]
        a = np.stack([xa[v, rr, 0], xa[v, rr, 1], za[pp]], 1) * place[:3] + place[3:]
        b = np.stack([xb[v, rr, 0], xb[v, rr, 1], zb[pp]], 1) * place[:3] + place[3:]
        a, b = np.ascontiguousarray(a, np.float32), np.ascontiguousarray(b, np.float32)
        tofk = proj.tof; tb = None
    else:
        sc = vis; n = sc.crystals_per_ring
        ca = rng.integers(0, n, n_lm)
        cb = (ca + n // 2 + rng.integers(-n // 5, n // 5 + 1, n_lm)) % n
        ra = rng.integers(0, sc.n_rings, n_lm)
        rb = np.clip(ra + rng.integers(-20, 21, n_lm), 0, sc.n_rings - 1)
        bins = rng.integers(0, sc.n_tof_bins, n_lm) if tof else None
        lm = ListModeProjector(layout, ScannerPlacement(), grid, ra * n + ca, rb * n + cb, bins)
        a, b, tofk, tb = lm._a, lm._b, lm.tof, lm._tof_bins
    geom, dims = kp._image_geometry(*_img(grid), grid.shape)
    mode, tofp, nval = kp._tof_setup(tofk, tb, a.shape[0])
    tbins = tb if tb is not None else np.zeros(1, np.int32)
    img = rng.random(grid.shape).astype(np.float32).reshape(-1)
    y = rng.random((a.shape[0], nval)).astype(np.float32)
    return geom, dims, a, b, mode, tofp, tbins, img, y

def _img(grid):
    dz, dy, dx = grid.spacing_mm
    return grid.origin_mm, (dx, dy, dz)

def run(mod, A, which):
    geom, dims, a, b, mode, tofp, tbins, img, y = A
    if which == "fwd":
        out = np.empty_like(y); t = time.perf_counter()
        mod.forward_lors(img, geom, dims, a, b, mode, tofp, tbins, out)
        return time.perf_counter() - t, out
    buf = np.empty((2, img.size), np.float32); out = np.zeros(img.size, np.float32)
    t = time.perf_counter()
    mod.back_lors(y, geom, dims, a, b, mode, tofp, tbins, buf, out)
    return time.perf_counter() - t, out

if __name__ == "__main__":
    rng = np.random.default_rng(1)
    reps = int(sys.argv[1]); n_lm = int(sys.argv[2]); cases = sys.argv[3:]
    res = {}
    for c in cases:
        A = build(c, rng, n_lm); n = A[2].shape[0]
        for which in ("fwd", "back"):
            run(old, A, which); run(new, A, which)
            to, tn = [], []
            for r in range(reps):
                t1, o1 = run(old, A, which); t2, o2 = run(new, A, which)
                to.append(t1 / n * 1e9); tn.append(t2 / n * 1e9)
            d = float(np.abs(o1.astype(np.float64) - o2).max() / np.abs(o1).max())
            ratio = [x / y_ for x, y_ in zip(to, tn)]
            print(f"{c:16s} n={n} {which:4s} old {min(to):8.0f}-{max(to):8.0f} ns  new {min(tn):8.0f}-{max(tn):8.0f}  speedup {min(ratio):.2f}-{max(ratio):.2f}  maxrel {d:.1e}", flush=True)
            res[f"{c}_{which}"] = dict(n=n, old_ns=to, new_ns=tn, ratio=ratio, maxrel=d)
    json.dump(res, open("/tmp/kbench2_%s.json" % "_".join(cases), "w"), indent=1)
