"""Ray-driven (Joseph) PET projector, non-TOF and TOF, list-mode and sinogram: the public entries.

Each function validates its arrays once and dispatches on where they live: NumPy arrays run the
Numba CPU launchers (:mod:`kernels.pet_cpu`), device arrays (``__cuda_array_interface__``, i.e.
CuPy) the CUDA launchers (:mod:`kernels.pet_cuda`); results come back in the caller's array module.
The model (Joseph sampling, TOF kernel and the condition under which TOF bins sum to the non-TOF
value) is documented in :mod:`kernels.pet_math`. Back projectors are the exact transposes (same
taps and weights; atomic adds on the GPU, per-thread buffers on the CPU).

Conventions: images (nz, ny, nx) float32 C-contiguous, ``origin_xyz_mm`` the LPS (x, y, z) of the
centre of voxel [0, 0, 0], ``voxel_size_xyz_mm`` (dx, dy, dz); LOR ends (n, 3) float32 (x, y, z) mm.
TOF bin t is centred ``(t - (n_bins - 1) / 2) * bin_width_mm`` from the LOR midpoint towards
``lor_second``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from kernels import pet_math as pm
from kernels.arrays import array_module, is_device_array

CPU_BUFFER_BYTES = 1 << 30  # per-thread back-projection buffers: at most this much host memory


@dataclass(frozen=True)
class TOFKernel:
    """TOF bins along the LOR: ``n_bins`` of ``bin_width_mm``; Gaussian of ``sigma_mm`` truncated at
    ``n_sigmas`` (default 3) and renormalised (see :mod:`kernels.pet_math`)."""

    n_bins: int
    bin_width_mm: float
    sigma_mm: float
    n_sigmas: float = 3.0

    def __post_init__(self) -> None:
        if isinstance(self.n_bins, bool) or int(self.n_bins) != self.n_bins or self.n_bins < 1:
            raise ValueError(f"tof.n_bins must be an integer >= 1, got {self.n_bins!r}")
        for name in ("bin_width_mm", "sigma_mm", "n_sigmas"):
            v = float(getattr(self, name))
            if not math.isfinite(v) or v <= 0:
                raise ValueError(f"tof.{name} must be a positive finite number, got {getattr(self, name)!r}")
        object.__setattr__(self, "n_bins", int(self.n_bins))

    def params(self) -> np.ndarray:
        """(n_bins, bin_width_mm, sigma_mm, n_sigmas) as float64, the kernels' ``tofp``."""
        return np.array([self.n_bins, self.bin_width_mm, self.sigma_mm, self.n_sigmas], np.float64)

    @property
    def exact_half_range_mm(self) -> float:
        """|s| (mm from the LOR midpoint) within which the TOF weights of a point sum to exactly 1."""
        return 0.5 * self.n_bins * self.bin_width_mm - self.n_sigmas * self.sigma_mm


@dataclass(frozen=True)
class SinogramGeometry:
    """Compact sinogram geometry; the kernels build each LOR's ends from it.

    xy_first, xy_second: (V, R, 2) scanner-frame transaxial ends (mm); z_first, z_second: (P,) axial
    ends (mm); plane_weights (P,) (ring pairs per merged plane); transaxial_weights (V, R) (0 for
    block-gap bins); patient = axis_signs * scanner + offset_mm (ScannerPlacement).
    """

    xy_first: np.ndarray
    xy_second: np.ndarray
    z_first: np.ndarray
    z_second: np.ndarray
    plane_weights: np.ndarray
    transaxial_weights: np.ndarray
    axis_signs: tuple[float, float, float] = (1.0, 1.0, 1.0)
    offset_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    _device_cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("xy_first", "xy_second", "z_first", "z_second", "plane_weights", "transaxial_weights"):
            arr = np.ascontiguousarray(np.asarray(getattr(self, name), dtype=np.float32))
            if not np.isfinite(arr).all():
                raise ValueError(f"sinogram geometry {name} contains non-finite values")
            object.__setattr__(self, name, arr)
        v, r = self.xy_first.shape[:2]
        if self.xy_first.shape != (v, r, 2) or self.xy_second.shape != (v, r, 2):
            raise ValueError(f"xy_first/xy_second must be (V, R, 2), got {self.xy_first.shape}, {self.xy_second.shape}")
        p = self.z_first.shape[0]
        for name in ("z_first", "z_second", "plane_weights"):
            if getattr(self, name).shape != (p,):
                raise ValueError(f"{name} must be ({p},), got {getattr(self, name).shape}")
        if self.transaxial_weights.shape != (v, r):
            raise ValueError(f"transaxial_weights must be ({v}, {r}), got {self.transaxial_weights.shape}")
        for name in ("axis_signs", "offset_mm"):
            t = tuple(float(x) for x in getattr(self, name))
            if len(t) != 3 or not all(math.isfinite(x) for x in t):
                raise ValueError(f"{name} must be 3 finite numbers, got {getattr(self, name)!r}")
            object.__setattr__(self, name, t)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(n_views, n_planes, n_radial)."""
        return (self.xy_first.shape[0], self.z_first.shape[0], self.xy_first.shape[1])

    def arrays(self, xp: Any) -> tuple:
        """(xy_first, xy_second, z_first, z_second, plane_weights, transaxial_weights, place) in ``xp``."""
        place = np.array(self.axis_signs + self.offset_mm, np.float64)
        host = (self.xy_first, self.xy_second, self.z_first, self.z_second, self.plane_weights,
                self.transaxial_weights, place)
        if xp is np:
            return host
        key = id(xp)
        if key not in self._device_cache:
            self._device_cache[key] = tuple(xp.asarray(a) for a in host)
        return self._device_cache[key]


# --- validation -------------------------------------------------------------------------
def _check_array(name: str, a: Any, dtype: Any, shape: tuple[int | None, ...]) -> None:
    if a.dtype != dtype:
        raise ValueError(f"{name} must be {np.dtype(dtype).name}, got {a.dtype}")
    if a.ndim != len(shape) or any(s is not None and int(a.shape[k]) != s for k, s in enumerate(shape)):
        want = tuple("n" if s is None else s for s in shape)
        raise ValueError(f"{name} must have shape {want}, got {tuple(a.shape)}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous")


def _image_geometry(origin_xyz_mm: Sequence[float], voxel_size_xyz_mm: Sequence[float],
                    shape: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    o = np.asarray(origin_xyz_mm, np.float64).ravel()
    d = np.asarray(voxel_size_xyz_mm, np.float64).ravel()
    if o.shape != (3,) or not np.isfinite(o).all():
        raise ValueError(f"origin_xyz_mm must be 3 finite numbers (mm), got {origin_xyz_mm!r}")
    if d.shape != (3,) or not np.isfinite(d).all() or (d <= 0).any():
        raise ValueError(f"voxel_size_xyz_mm must be 3 positive numbers (mm), got {voxel_size_xyz_mm!r}")
    s = tuple(int(v) for v in shape)
    if len(s) != 3 or min(s) < 1:
        raise ValueError(f"image_shape must be 3 positive integers (nz, ny, nx), got {tuple(shape)!r}")
    return np.concatenate([o, d]), np.array([s[2], s[1], s[0]], np.int64)


def _tof_setup(tof: TOFKernel | None, tof_bins: Any, n: int) -> tuple[int, np.ndarray, int]:
    """(tof_mode, tofp, values per LOR)."""
    if tof is None:
        if tof_bins is not None:
            raise ValueError("tof_bins given without a tof kernel")
        return pm.TOF_NONE, np.zeros(4, np.float64), 1
    if not isinstance(tof, TOFKernel):
        raise ValueError(f"tof must be a TOFKernel, got {type(tof).__name__}")
    if tof_bins is None:
        return pm.TOF_ALL, tof.params(), tof.n_bins
    _check_array("tof_bins", tof_bins, np.int32, (n,))
    if not is_device_array(tof_bins) and n and (int(tof_bins.min()) < 0 or int(tof_bins.max()) >= tof.n_bins):
        raise ValueError(f"tof_bins must lie in 0..{tof.n_bins - 1}, found {int(tof_bins.min())}..{int(tof_bins.max())}")
    return pm.TOF_ONE, tof.params(), 1


def _lors(lor_first: Any, lor_second: Any) -> int:
    _check_array("lor_first", lor_first, np.float32, (None, 3))
    n = int(lor_first.shape[0])
    _check_array("lor_second", lor_second, np.float32, (n, 3))
    return n


def _views(views: Any, n_views: int) -> None:
    if views.ndim != 1 or views.dtype != np.int64:
        raise ValueError("views must be a 1-D int64 array of view indices")
    if not is_device_array(views) and views.size and (int(views.min()) < 0 or int(views.max()) >= n_views):
        raise ValueError(f"views must lie in 0..{n_views - 1}, found {int(views.min())}..{int(views.max())}")


def _cpu_chunks(n_items: int, n_voxels: int) -> int:
    import numba  # noqa: PLC0415

    by_memory = max(1, CPU_BUFFER_BYTES // max(1, 4 * n_voxels))
    return max(1, min(numba.get_num_threads(), by_memory, n_items))


def cuda_launch_config(n_items: int, threads: int = 256, n_sm: int = 132, blocks_per_sm: int = 32) -> tuple[int, int]:
    """(blocks, threads) of a grid-stride launch over ``n_items`` LORs / events: enough blocks to cover
    them, at most ``blocks_per_sm`` per multiprocessor (``n_sm``: 132 on an H100/H200)."""
    if n_items < 0 or threads < 1 or n_sm < 1 or blocks_per_sm < 1:
        raise ValueError(f"bad launch request: n_items={n_items}, threads={threads}, n_sm={n_sm}")
    blocks = max(1, -(-int(n_items) // int(threads)))
    return min(blocks, n_sm * blocks_per_sm), int(threads)


def _device_sm_count() -> int:
    from numba import cuda  # noqa: PLC0415

    return int(cuda.get_current_device().MULTIPROCESSOR_COUNT)


# --- LOR lists (list-mode, or any explicit LORs) ----------------------------------------
def joseph_forward(image: Any, origin_xyz_mm: Sequence[float], voxel_size_xyz_mm: Sequence[float],
                   lor_first: Any, lor_second: Any, *, tof: TOFKernel | None = None, tof_bins: Any = None,
                   out: Any = None) -> Any:
    """Projections of ``image`` along LORs lor_first[i] -> lor_second[i] (mm x image units).

    Non-TOF or list-mode TOF (``tof`` and ``tof_bins`` (n,) int32): shape (n,); sinogram TOF
    (``tof`` without ``tof_bins``): shape (n, tof.n_bins). ``out`` (that shape, float32) is overwritten.
    """
    _check_array("image", image, np.float32, (None, None, None))
    n = _lors(lor_first, lor_second)
    xp = array_module(image=image, lor_first=lor_first, lor_second=lor_second, tof_bins=tof_bins, out=out)
    geom, dims = _image_geometry(origin_xyz_mm, voxel_size_xyz_mm, image.shape)
    mode, tofp, n_val = _tof_setup(tof, tof_bins, n)
    shape = (n, n_val) if mode == pm.TOF_ALL else (n,)
    if out is None:
        out = xp.empty(shape, dtype=xp.float32)
    _check_array("out", out, np.float32, shape)
    tbins = tof_bins if tof_bins is not None else xp.zeros(1, dtype=xp.int32)
    out2 = out.reshape(n, n_val)
    if n == 0:
        return out
    if is_device_array(image):
        from kernels import pet_cuda  # noqa: PLC0415 - lazy: only with device arrays

        pet_cuda.forward_lors(image.reshape(-1), xp.asarray(geom), xp.asarray(dims), lor_first, lor_second, mode,
                              xp.asarray(tofp), tbins, out2, n_sm=_device_sm_count())
    else:
        from kernels import pet_cpu  # noqa: PLC0415

        pet_cpu.forward_lors(image.reshape(-1), geom, dims, lor_first, lor_second, mode, tofp, tbins, out2)
    return out


def joseph_back(values: Any, image_shape: Sequence[int], origin_xyz_mm: Sequence[float],
                voxel_size_xyz_mm: Sequence[float], lor_first: Any, lor_second: Any, *, tof: TOFKernel | None = None,
                tof_bins: Any = None, out: Any = None) -> Any:
    """Exact adjoint of :func:`joseph_forward`: image (nz, ny, nx) float32; adds into ``out`` when given."""
    n = _lors(lor_first, lor_second)
    xp = array_module(values=values, lor_first=lor_first, lor_second=lor_second, tof_bins=tof_bins, out=out)
    geom, dims = _image_geometry(origin_xyz_mm, voxel_size_xyz_mm, image_shape)
    mode, tofp, n_val = _tof_setup(tof, tof_bins, n)
    _check_array("values", values, np.float32, (n, n_val) if mode == pm.TOF_ALL else (n,))
    shape = tuple(int(s) for s in image_shape)
    if out is None:
        out = xp.zeros(shape, dtype=xp.float32)
    _check_array("out", out, np.float32, shape)
    if n == 0:
        return out
    tbins = tof_bins if tof_bins is not None else xp.zeros(1, dtype=xp.int32)
    y = values.reshape(n, n_val)
    if is_device_array(values):
        from kernels import pet_cuda  # noqa: PLC0415

        pet_cuda.back_lors(y, xp.asarray(geom), xp.asarray(dims), lor_first, lor_second, mode, xp.asarray(tofp),
                           tbins, out.reshape(-1), n_sm=_device_sm_count())
    else:
        from kernels import pet_cpu  # noqa: PLC0415

        buf = np.empty((_cpu_chunks(n, out.size), out.size), np.float32)
        pet_cpu.back_lors(y, geom, dims, lor_first, lor_second, mode, tofp, tbins, buf, out.reshape(-1))
    return out


# --- sinograms from compact geometry ----------------------------------------------------
def sinogram_forward(image: Any, origin_xyz_mm: Sequence[float], voxel_size_xyz_mm: Sequence[float],
                     geometry: SinogramGeometry, views: Any, *, tof: TOFKernel | None = None, out: Any = None) -> Any:
    """Sinogram (len(views), P, R[, tof.n_bins]) of ``image`` for the selected views (int64), each bin
    weighted by its plane weight and transaxial weight; LOR ends built in the kernel."""
    _check_array("image", image, np.float32, (None, None, None))
    _views(views, geometry.shape[0])
    xp = array_module(image=image, views=views, out=out)
    geom, dims = _image_geometry(origin_xyz_mm, voxel_size_xyz_mm, image.shape)
    mode, tofp, n_val = _tof_setup(tof, None, 0)
    _, p, r = geometry.shape
    shape = (int(views.size), p, r) + ((n_val,) if mode == pm.TOF_ALL else ())
    if out is None:
        out = xp.empty(shape, dtype=xp.float32)
    _check_array("out", out, np.float32, shape)
    n = int(views.size) * p * r
    if n == 0:
        return out
    xy_a, xy_b, z_a, z_b, pw, tw, place = geometry.arrays(xp)
    if is_device_array(image):
        from kernels import pet_cuda  # noqa: PLC0415

        pet_cuda.forward_sino(image.reshape(-1), xp.asarray(geom), xp.asarray(dims), views, xy_a, xy_b, z_a, z_b,
                              pw, tw, place, mode, xp.asarray(tofp), out.reshape(n, n_val), n_sm=_device_sm_count())
    else:
        from kernels import pet_cpu  # noqa: PLC0415

        pet_cpu.forward_sino(image.reshape(-1), geom, dims, views, xy_a, xy_b, z_a, z_b, pw, tw, place, mode, tofp,
                             out.reshape(n, n_val))
    return out


def sinogram_back(values: Any, image_shape: Sequence[int], origin_xyz_mm: Sequence[float],
                  voxel_size_xyz_mm: Sequence[float], geometry: SinogramGeometry, views: Any, *,
                  tof: TOFKernel | None = None, out: Any = None) -> Any:
    """Exact adjoint of :func:`sinogram_forward`; adds into ``out`` (nz, ny, nx) when given."""
    _views(views, geometry.shape[0])
    xp = array_module(values=values, views=views, out=out)
    geom, dims = _image_geometry(origin_xyz_mm, voxel_size_xyz_mm, image_shape)
    mode, tofp, n_val = _tof_setup(tof, None, 0)
    _, p, r = geometry.shape
    _check_array("values", values, np.float32, (int(views.size), p, r) + ((n_val,) if mode == pm.TOF_ALL else ()))
    shape = tuple(int(s) for s in image_shape)
    if out is None:
        out = xp.zeros(shape, dtype=xp.float32)
    _check_array("out", out, np.float32, shape)
    n = int(views.size) * p * r
    if n == 0:
        return out
    xy_a, xy_b, z_a, z_b, pw, tw, place = geometry.arrays(xp)
    y = values.reshape(n, n_val)
    if is_device_array(values):
        from kernels import pet_cuda  # noqa: PLC0415

        pet_cuda.back_sino(y, xp.asarray(geom), xp.asarray(dims), views, xy_a, xy_b, z_a, z_b, pw, tw, place, mode,
                           xp.asarray(tofp), out.reshape(-1), n_sm=_device_sm_count())
    else:
        from kernels import pet_cpu  # noqa: PLC0415

        buf = np.empty((_cpu_chunks(n, out.size), out.size), np.float32)
        pet_cpu.back_sino(y, geom, dims, views, xy_a, xy_b, z_a, z_b, pw, tw, place, mode, tofp, buf, out.reshape(-1))
    return out
