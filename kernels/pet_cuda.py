"""numba.cuda launchers of the Joseph PET projector (CuPy arrays in, via __cuda_array_interface__).

Imported lazily, only when device arrays reach :mod:`kernels.pet_projector` (or by the tests). The
per-element math is :mod:`kernels.pet_math`, the same functions the CPU path compiles, with
:func:`~kernels.pet_math.accumulate` replaced by ``cuda.atomic.add``.

Work decomposition: one thread per LOR / event / sinogram bin, grid-stride loop over a 1-D grid of
many blocks (:func:`kernels.pet_projector.cuda_launch_config`), so any launch size gives the same
result; launched through :mod:`kernels.cuda_launch` (the arrays' stream, no host syncs). Back projection adds into the image with float32 atomics (the order of additions, hence the
last bits, may vary between runs).
"""
from __future__ import annotations

from numba import cuda

from kernels import pet_math as pm
from kernels.cuda_launch import launch
from kernels.pet_projector import cuda_launch_config


@cuda.jit(device=True, inline="always")
def _atomic_accumulate(arr, idx, val):
    cuda.atomic.add(arr, idx, val)


_math = pm.compile_math(cuda.jit(device=True, inline="always"), overrides={"accumulate": _atomic_accumulate})
_lor_forward = _math["lor_forward"]
_lor_back = _math["lor_back"]
_sinogram_lor = _math["sinogram_lor"]

TOF_ONE = pm.TOF_ONE


def forward_lors_body(img, geom, dims, a, b, tof_mode, tofp, tbins, out):
    """Grid-stride over LORs i: out[i, :] = projection along a[i] -> b[i]."""
    for i in range(cuda.grid(1), a.shape[0], cuda.gridsize(1)):
        tb = tbins[i] if tof_mode == TOF_ONE else 0
        _lor_forward(img, geom, dims, a[i, 0], a[i, 1], a[i, 2], b[i, 0], b[i, 1], b[i, 2],
                     tof_mode, tofp, tb, out, i, 1.0)


def back_lors_body(y, geom, dims, a, b, tof_mode, tofp, tbins, out):
    """Grid-stride over LORs i: atomically add the back projection of y[i, :] into flat ``out``."""
    for i in range(cuda.grid(1), a.shape[0], cuda.gridsize(1)):
        tb = tbins[i] if tof_mode == TOF_ONE else 0
        _lor_back(out, geom, dims, a[i, 0], a[i, 1], a[i, 2], b[i, 0], b[i, 1], b[i, 2],
                  tof_mode, tofp, tb, y, i, 1.0)


def forward_sino_body(img, geom, dims, views, xy_a, xy_b, z_a, z_b, plane_w, tx_w, place, tof_mode, tofp, out):
    """Grid-stride over sinogram bins e (selected view, plane, radial): weighted projection into out[e, :]."""
    for e in range(cuda.grid(1), out.shape[0], cuda.gridsize(1)):
        v, p, r, ax, ay, az, bx, by, bz = _sinogram_lor(e, views, xy_a, xy_b, z_a, z_b, place)
        _lor_forward(img, geom, dims, ax, ay, az, bx, by, bz, tof_mode, tofp, 0, out, e, plane_w[p] * tx_w[v, r])


def back_sino_body(y, geom, dims, views, xy_a, xy_b, z_a, z_b, plane_w, tx_w, place, tof_mode, tofp, out):
    """Grid-stride over sinogram bins e: atomically add the weighted back projection of y[e, :] into ``out``."""
    for e in range(cuda.grid(1), y.shape[0], cuda.gridsize(1)):
        v, p, r, ax, ay, az, bx, by, bz = _sinogram_lor(e, views, xy_a, xy_b, z_a, z_b, place)
        _lor_back(out, geom, dims, ax, ay, az, bx, by, bz, tof_mode, tofp, 0, y, e, plane_w[p] * tx_w[v, r])


KERNEL_BODIES = {
    "forward_lors": forward_lors_body,
    "back_lors": back_lors_body,
    "forward_sino": forward_sino_body,
    "back_sino": back_sino_body,
}

forward_lors_kernel = cuda.jit(forward_lors_body)
back_lors_kernel = cuda.jit(back_lors_body)
forward_sino_kernel = cuda.jit(forward_sino_body)
back_sino_kernel = cuda.jit(back_sino_body)


def forward_lors(img, geom, dims, a, b, tof_mode, tofp, tbins, out, threads=256, n_sm=132, blocks_per_sm=32):
    blocks, threads = cuda_launch_config(a.shape[0], threads, n_sm, blocks_per_sm)
    launch(forward_lors_kernel, blocks, threads, (img, geom, dims, a, b, tof_mode, tofp, tbins, out))


def back_lors(y, geom, dims, a, b, tof_mode, tofp, tbins, out, threads=256, n_sm=132, blocks_per_sm=32):
    blocks, threads = cuda_launch_config(a.shape[0], threads, n_sm, blocks_per_sm)
    launch(back_lors_kernel, blocks, threads, (y, geom, dims, a, b, tof_mode, tofp, tbins, out))


def forward_sino(img, geom, dims, views, xy_a, xy_b, z_a, z_b, plane_w, tx_w, place, tof_mode, tofp, out,
                 threads=256, n_sm=132, blocks_per_sm=32):
    blocks, threads = cuda_launch_config(out.shape[0], threads, n_sm, blocks_per_sm)
    launch(forward_sino_kernel, blocks, threads, (img, geom, dims, views, xy_a, xy_b, z_a, z_b, plane_w, tx_w,
                                                 place, tof_mode, tofp, out))


def back_sino(y, geom, dims, views, xy_a, xy_b, z_a, z_b, plane_w, tx_w, place, tof_mode, tofp, out,
              threads=256, n_sm=132, blocks_per_sm=32):
    blocks, threads = cuda_launch_config(y.shape[0], threads, n_sm, blocks_per_sm)
    launch(back_sino_kernel, blocks, threads, (y, geom, dims, views, xy_a, xy_b, z_a, z_b, plane_w, tx_w, place,
                                               tof_mode, tofp, out))
