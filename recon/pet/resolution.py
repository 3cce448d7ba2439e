"""Image-space resolution model: a separable Gaussian blur, a self-adjoint linear operator.

Per axis, a Gaussian of the given FWHM (mm) sampled at the voxel offsets ``-h..h`` (``h`` =
ceil(``truncate_sigmas`` x sigma / voxel size), default 3 sigma) and normalised to sum 1. Outside
the image counts as zero (zero padding), for the forward and the adjoint alike: the kernel is
symmetric, so the blur matrix is symmetric and ``adjoint`` is ``apply`` (the pair stays matched).
Works on NumPy and CuPy arrays (shifted adds on slices, the input's array module). ``apply_into`` /
``adjoint_into`` allocate nothing after their first call: each axis pass blurs along the first axis of
a C-contiguous image (contiguous slices: NumPy needs no iteration buffers), the y and x passes on
transposed copies; the copies, results and shifted products live in three work images held by the
operator, so one instance serves one caller at a time.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from recon.algorithms.operators import check_into
from recon.backend import array_module
from recon.data.grid import ImageGrid

FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))


def gaussian_taps(fwhm_mm: float, voxel_mm: float, truncate_sigmas: float = 3.0) -> np.ndarray:
    """Normalised symmetric taps (2h+1,) float32 of a Gaussian of ``fwhm_mm`` on a ``voxel_mm`` grid; [1] for 0."""
    if not math.isfinite(fwhm_mm) or fwhm_mm < 0:
        raise ValueError(f"fwhm_mm must be finite and >= 0, got {fwhm_mm!r}")
    if fwhm_mm == 0:
        return np.ones(1, np.float32)
    sigma = fwhm_mm * FWHM_TO_SIGMA / voxel_mm
    h = max(1, int(math.ceil(truncate_sigmas * sigma)))
    k = np.exp(-0.5 * (np.arange(-h, h + 1) / sigma) ** 2)
    return (k / k.sum()).astype(np.float32)


def _blur_first_axis_into(x: Any, taps: np.ndarray, out: Any, products: Any, xp: Any) -> Any:
    """out[i] = sum_j taps[j] x[i + j - h] along axis 0, zero outside (float32). x, out and ``products``
    (the weighted shifted copies): C-contiguous, one shape, not overlapping. Slices along axis 0 are
    contiguous, so NumPy runs every step without its iteration buffers."""
    h = taps.size // 2
    xp.multiply(x, taps[h], out=out)
    n = x.shape[0]
    for j in range(1, min(h, n - 1) + 1):
        w = taps[h + j]  # symmetric: taps[h - j] == taps[h + j]
        part = products[: n - j]
        for dst, src in ((out[: n - j], x[j:]), (out[j:], x[: n - j])):
            xp.add(dst, xp.multiply(src, w, out=part), out=dst)
    return out


def _axes_view(a: Any, order: tuple[int, ...], new: tuple[int, ...]) -> Any:
    """``a`` (its axis k is image axis order[k]) viewed with image axes ``new``."""
    return a.transpose([order.index(axis) for axis in new])


class GaussianPSF:
    """x -> G x: separable Gaussian of FWHM (x, y, z) mm on ``grid``; self-adjoint (a LinearOperator)."""

    def __init__(self, grid: ImageGrid, fwhm_xyz_mm: tuple[float, float, float] | float,
                 truncate_sigmas: float = 3.0) -> None:
        if not isinstance(grid, ImageGrid):
            raise ValueError(f"grid must be an ImageGrid, got {type(grid).__name__}")
        fwhm = (float(fwhm_xyz_mm),) * 3 if np.isscalar(fwhm_xyz_mm) else tuple(float(v) for v in fwhm_xyz_mm)
        if len(fwhm) != 3:
            raise ValueError(f"fwhm_xyz_mm must be one number or 3 (x, y, z) in mm, got {fwhm_xyz_mm!r}")
        if not math.isfinite(truncate_sigmas) or truncate_sigmas <= 0:
            raise ValueError(f"truncate_sigmas must be positive, got {truncate_sigmas!r}")
        dz, dy, dx = grid.spacing_mm
        self.grid = grid
        self.fwhm_xyz_mm = fwhm
        # taps per array axis (z, y, x)
        self.taps = (gaussian_taps(fwhm[2], dz, truncate_sigmas), gaussian_taps(fwhm[1], dy, truncate_sigmas),
                     gaussian_taps(fwhm[0], dx, truncate_sigmas))
        self.in_shape = tuple(grid.shape)
        self.out_shape = self.in_shape
        self.inplace_safe = False  # out must not overlap the input
        self._work: tuple[Any, Any, Any] | None = None

    def apply(self, x: Any) -> Any:
        """G x, a new float32 array in x's array module."""
        if tuple(x.shape) != self.in_shape:
            raise ValueError(f"GaussianPSF: input shape {tuple(x.shape)} != expected {self.in_shape}")
        xp = array_module(x)
        return self.apply_into(x, xp.empty(self.out_shape, dtype=xp.float32))

    def adjoint(self, y: Any) -> Any:
        """G^T y = G y (symmetric kernel, same zero padding)."""
        return self.apply(y)

    def apply_into(self, x: Any, out: Any) -> Any:
        """G x written into ``out`` (in_shape, float32, x's device, not overlapping x); returns ``out``.
        Allocates nothing after the first call (float32 x)."""
        check_into("GaussianPSF", "apply", x, self.in_shape, out, self.out_shape)
        xp = array_module(x)
        if x.dtype != np.float32:
            x = x.astype(xp.float32)
        passes = [(axis, taps) for axis, taps in enumerate(self.taps) if taps.size > 1]
        identity = tuple(range(x.ndim))
        cur, at, order = x, -1, identity  # cur: the image with axes ``order``, C-contiguous, in work[at]
        work = self._work_images(xp)
        for k, (axis, taps) in enumerate(passes):
            if order[0] != axis:  # a transposed copy with this pass's axis first
                new = (axis,) + tuple(a for a in order if a != axis)
                at = 1 - at if at >= 0 else 0
                moved = work[at].reshape([self.in_shape[a] for a in new])
                moved[...] = _axes_view(cur, order, new)
                cur, order = moved, new
            last = k == len(passes) - 1 and order == identity
            at = 1 - at if at >= 0 else 0
            dst = out if last else work[at].reshape(cur.shape)
            cur = _blur_first_axis_into(cur, taps, dst, work[2].reshape(cur.shape), xp)
        if cur is not out:
            out[...] = _axes_view(cur, order, identity)
        return out

    def adjoint_into(self, y: Any, out: Any) -> Any:
        """G^T y = G y written into ``out``."""
        return self.apply_into(y, out)

    def _work_images(self, xp: Any) -> tuple[Any, Any, Any]:
        """Three flat float32 images in ``xp`` (two for the passes, one for their products), allocated on
        first use (and when the array module changes)."""
        if self._work is None or array_module(self._work[0]) is not xp:
            n = math.prod(self.in_shape)
            self._work = tuple(xp.empty(n, dtype=xp.float32) for _ in range(3))
        return self._work

    def __repr__(self) -> str:
        return f"GaussianPSF(fwhm_xyz_mm={self.fwhm_xyz_mm}, {self.in_shape})"
