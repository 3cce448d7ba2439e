"""Image-space resolution model: a separable Gaussian blur, a self-adjoint linear operator.

Per axis, a Gaussian of the given FWHM (mm) sampled at the voxel offsets ``-h..h`` (``h`` =
ceil(``truncate_sigmas`` x sigma / voxel size), default 3 sigma) and normalised to sum 1. Outside
the image counts as zero (zero padding), for the forward and the adjoint alike: the kernel is
symmetric, so the blur matrix is symmetric and ``adjoint`` is ``apply`` (the pair stays matched).
Works on NumPy and CuPy arrays (shifted adds on slices, the input's array module).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

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


def _blur_axis(x: Any, taps: np.ndarray, axis: int, xp: Any) -> Any:
    """out[i] = sum_j taps[j] x[i + j - h] along ``axis``, zero outside."""
    h = taps.size // 2
    if h == 0:
        return x
    out = x * taps[h]
    n = x.shape[axis]
    for j in range(1, min(h, n - 1) + 1):
        lo = [slice(None)] * x.ndim
        hi = [slice(None)] * x.ndim
        lo[axis], hi[axis] = slice(0, n - j), slice(j, n)
        w = taps[h + j]  # symmetric: taps[h - j] == taps[h + j]
        out[tuple(lo)] += w * x[tuple(hi)]
        out[tuple(hi)] += w * x[tuple(lo)]
    return out


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

    def apply(self, x: Any) -> Any:
        """G x, a new float32 array in x's array module."""
        if tuple(x.shape) != self.in_shape:
            raise ValueError(f"GaussianPSF: input shape {tuple(x.shape)} != expected {self.in_shape}")
        xp = array_module(x)
        out = x.astype(xp.float32, copy=True)
        for axis, taps in enumerate(self.taps):
            out = _blur_axis(out, taps, axis, xp)
        return out

    def adjoint(self, y: Any) -> Any:
        """G^T y = G y (symmetric kernel, same zero padding)."""
        return self.apply(y)

    def __repr__(self) -> str:
        return f"GaussianPSF(fwhm_xyz_mm={self.fwhm_xyz_mm}, {self.in_shape})"
