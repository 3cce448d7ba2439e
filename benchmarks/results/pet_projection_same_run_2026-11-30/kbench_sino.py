"""Same-run old vs new CPU kernel timings (interleaved). usage: kbench.py [cases...]"""
import sys, time, json
sys.path.insert(0, "/tmp")
import numpy as np
import os, importlib
old = importlib.import_module(os.environ.get("OLD", "pet_old") + ".pet_cpu")
from kernels import pet_cpu as new
from kernels import pet_projector as kp
from recon.data.grid import ImageGrid
from recon.data.pet import ScannerPlacement
from recon.data.pet_presets import get_pet_scanner
from recon.data.pet_sinogram import SinogramLayout
from recon.pet.projector import SinogramProjector, ListModeProjector

def sino_args(scanner, fov, span, tof, grid, views, rng):
    layout = SinogramLayout.for_fov(get_pet_scanner(scanner), fov, span=span, tof=tof)
    proj = SinogramProjector(layout, ScannerPlacement(), grid)
    views = views if views is not None else np.arange(layout.n_views)
    geom, dims = kp._image_geometry(proj._origin, proj._voxel, grid.shape)
    mode, tofp, nval = kp._tof_setup(proj.tof, None, 0)
    xa, xb, za, zb, pw, tw, place = proj.geometry.arrays(np)
    n = views.size * layout.n_planes * layout.n_radial
    img = rng.random(grid.shape).astype(np.float32).reshape(-1)
    y = rng.random((n, nval)).astype(np.float32)
    return geom, dims, views, xa, xb, za, zb, pw, tw, place, mode, tofp, img, y, n

def run_case(mod, args, which):
    geom, dims, views, xa, xb, za, zb, pw, tw, place, mode, tofp, img, y, n = args
    if which == "fwd":
        out = np.empty_like(y)
        t = time.perf_counter()
        mod.forward_sino(img, geom, dims, views, xa, xb, za, zb, pw, tw, place, mode, tofp, out)
        return time.perf_counter() - t, out
    buf = np.empty((2, img.size), np.float32); out = np.zeros(img.size, np.float32)
    t = time.perf_counter()
    mod.back_sino(y, geom, dims, views, xa, xb, za, zb, pw, tw, place, mode, tofp, buf, out)
    return time.perf_counter() - t, out

if __name__ == "__main__":
    rng = np.random.default_rng(1)
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    cases = sys.argv[2:] or ["small_nontof", "small_tof"]
    small_grid = ImageGrid.centered((8, 64, 64), (4.0, 3.0, 3.0))
    vis_grid = ImageGrid.centered((100, 200, 200), (2.6, 3.0, 3.0))
    res = {}
    for c in cases:
        if c.startswith("small"):
            a = sino_args("small_test", 190.0, 1, c.endswith("_tof"), small_grid, None, rng)
        else:
            a = sino_args("biograph_vision_like", 600.0, 11, c.endswith("_tof"), vis_grid, np.array([int(v) for v in os.environ.get("VIEWS", "47").split(",")]), rng)
        for which in ("fwd", "back"):
            run_case(old, a, which); run_case(new, a, which)
            to, tn = [], []
            for r in range(reps):
                t1, o1 = run_case(old, a, which); t2, o2 = run_case(new, a, which)
                to.append(t1); tn.append(t2)
            d = float(np.abs(o1.astype(np.float64) - o2).max() / np.abs(o1).max())
            ns_o = [t / a[-1] * 1e9 for t in to]; ns_n = [t / a[-1] * 1e9 for t in tn]
            ratio = [x / y_ for x, y_ in zip(to, tn)]
            print(f"{c:14s} {which:4s} old {min(ns_o):9.0f}-{max(ns_o):9.0f} ns/LOR  new {min(ns_n):9.0f}-{max(ns_n):9.0f}  speedup {min(ratio):.2f}-{max(ratio):.2f}  maxrel {d:.2e}", flush=True)
            res[f"{c}_{which}"] = dict(old_ns=ns_o, new_ns=ns_n, ratio=ratio, maxrel=d, n_lors=a[-1])
    json.dump(res, open("/tmp/kbench_last.json", "w"), indent=1)
