"""Ray-driven (Joseph) PET projector, non-TOF and TOF, list-mode and sinogram: the public entries.

Each function validates its arrays once and dispatches on where they live: NumPy arrays run the
Numba CPU launchers (:mod:`kernels.pet_cpu`), device arrays (``__cuda_array_interface__``, i.e.
CuPy) the CUDA launchers (:mod:`kernels.pet_cuda`); results come back in the caller's array module.
The model (Joseph sampling, TOF kernel and the condition under which TOF bins sum to the non-TOF
value) is documented in :mod:`kernels.pet_math`. Back projectors are the exact transposes (same
taps and weights; atomic adds on the GPU, per-thread buffers on the CPU).

Repeated calls (an OSEM loop) neither allocate nor wait: the device branch copies the small per-geometry
arrays (image geometry, TOF parameters) to the device once (:func:`device_constant`) and asks the SM
count once; the host back projection takes its per-thread buffers from a caller's ``scratch``.

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
from kernels.arrays import array_module, is_device_array, location, module_device_key

CPU_BUFFER_BYTES = 1 << 30  # per-thread back-projection buffers: at most this much host memory
# Launch sizes of the device branch (tests under the CUDA simulator make them small).
LAUNCH: dict[str, int] = {"threads": 256, "blocks_per_sm": 32}
_NO_TOF_BINS = np.zeros(1, np.int32)  # tof_bins stand-in when there are none (never read)
_DEVICE_CONSTANTS: dict[tuple, Any] = {}  # device copies of small per-geometry arrays, see device_constant
_MAX_DEVICE_CONSTANTS = 64
_SM_COUNT: dict[tuple, int] = {}


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
        """(xy_first, xy_second, z_first, z_second, plane_weights, transaxial_weights, place) in ``xp``
        (made once per array module and cached)."""
        key = module_device_key(xp)
        if key not in self._device_cache:
            place = np.array(self.axis_signs + self.offset_mm, np.float64)
            host = (self.xy_first, self.xy_second, self.z_first, self.z_second, self.plane_weights,
                    self.transaxial_weights, place)
            self._device_cache[key] = host if xp is np else tuple(xp.asarray(a) for a in host)
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


def cpu_back_scratch_size(image_shape: Sequence[int]) -> int:
    """float32 elements of a ``scratch`` that serves every host back projection into images of
    ``image_shape`` (the per-chunk buffers; at most :data:`CPU_BUFFER_BYTES`, or one image)."""
    n_voxels = math.prod(int(s) for s in image_shape)
    return _cpu_chunks(n_voxels * CPU_BUFFER_BYTES, n_voxels) * n_voxels  # as many chunks as any n_items gets


def _cpu_back_buffer(n_items: int, n_voxels: int, scratch: Any) -> np.ndarray:
    """The (n_chunks, n_voxels) per-chunk buffers: a view of ``scratch`` when given, else a new array."""
    n_chunks = _cpu_chunks(n_items, n_voxels)
    if scratch is None:
        return np.empty((n_chunks, n_voxels), np.float32)
    if is_device_array(scratch) or scratch.dtype != np.float32 or not scratch.flags.c_contiguous:
        raise ValueError("scratch must be a host float32 C-contiguous array")
    if scratch.size < n_chunks * n_voxels:
        raise ValueError(f"scratch holds {scratch.size} float32 values, the back projection needs "
                         f"{n_chunks * n_voxels} (cpu_back_scratch_size)")
    return scratch.reshape(-1)[: n_chunks * n_voxels].reshape(n_chunks, n_voxels)


def cuda_launch_config(n_items: int, threads: int = 256, n_sm: int = 132, blocks_per_sm: int = 32) -> tuple[int, int]:
    """(blocks, threads) of a grid-stride launch over ``n_items`` LORs / events: enough blocks to cover
    them, at most ``blocks_per_sm`` per multiprocessor (``n_sm``: 132 on an H100/H200)."""
    if n_items < 0 or threads < 1 or n_sm < 1 or blocks_per_sm < 1:
        raise ValueError(f"bad launch request: n_items={n_items}, threads={threads}, n_sm={n_sm}")
    blocks = max(1, -(-int(n_items) // int(threads)))
    return min(blocks, n_sm * blocks_per_sm), int(threads)


def _device_sm_count(where: tuple) -> int:
    """Multiprocessors of device ``where`` (a :func:`~kernels.arrays.location`), asked once and cached;
    1 under Numba's CUDA simulator (its device has no such attribute)."""
    n = _SM_COUNT.get(where)
    if n is None:
        from numba import cuda  # noqa: PLC0415

        n = _SM_COUNT[where] = int(getattr(cuda.get_current_device(), "MULTIPROCESSOR_COUNT", 1))
    return n


def device_constant(xp: Any, host: np.ndarray, where: tuple) -> Any:
    """The copy in ``xp`` on device ``where`` of the small host array ``host``, made once: cached by
    dtype, shape and bytes (a different geometry or TOF kernel gets its own copy), at most
    :data:`_MAX_DEVICE_CONSTANTS` kept. A host-to-device copy of pageable memory blocks the host, so
    the projections must not make one per call."""
    key = (id(xp), where, host.dtype.str, host.shape, host.tobytes())
    dev = _DEVICE_CONSTANTS.get(key)
    if dev is None:
        if len(_DEVICE_CONSTANTS) >= _MAX_DEVICE_CONSTANTS:
            _DEVICE_CONSTANTS.clear()
        dev = _DEVICE_CONSTANTS[key] = xp.asarray(host)
    return dev


def _on_device(xp: Any, like: Any, geom: np.ndarray, dims: np.ndarray, tofp: np.ndarray) -> tuple:
    """(geom, dims, tofp) on ``like``'s device (cached copies) and the launch keywords for that device."""
    where = location(like)
    g, d, t = (device_constant(xp, a, where) for a in (geom, dims, tofp))
    return g, d, t, dict(LAUNCH, n_sm=_device_sm_count(where))


def _tof_bins_or_stand_in(xp: Any, tof_bins: Any, like: Any) -> Any:
    """``tof_bins``, or a one-element stand-in in ``like``'s array module (made once) when None."""
    if tof_bins is not None:
        return tof_bins
    return _NO_TOF_BINS if xp is np else device_constant(xp, _NO_TOF_BINS, location(like))


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
    tbins = _tof_bins_or_stand_in(xp, tof_bins, image)
    out2 = out.reshape(n, n_val)
    if n == 0:
        return out
    if is_device_array(image):
        from kernels import pet_cuda  # noqa: PLC0415 - lazy: only with device arrays

        g, d, t, launch = _on_device(xp, image, geom, dims, tofp)
        pet_cuda.forward_lors(image.reshape(-1), g, d, lor_first, lor_second, mode, t, tbins, out2, **launch)
    else:
        from kernels import pet_cpu  # noqa: PLC0415

        pet_cpu.forward_lors(image.reshape(-1), geom, dims, lor_first, lor_second, mode, tofp, tbins, out2)
    return out


def joseph_back(values: Any, image_shape: Sequence[int], origin_xyz_mm: Sequence[float],
                voxel_size_xyz_mm: Sequence[float], lor_first: Any, lor_second: Any, *, tof: TOFKernel | None = None,
                tof_bins: Any = None, out: Any = None, scratch: Any = None) -> Any:
    """Exact adjoint of :func:`joseph_forward`: image (nz, ny, nx) float32; adds into ``out`` when given.

    ``scratch``: host float32 array of at least :func:`cpu_back_scratch_size` elements for the host
    path's per-chunk buffers (then a repeated call allocates nothing); ignored on the device."""
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
    tbins = _tof_bins_or_stand_in(xp, tof_bins, values)
    y = values.reshape(n, n_val)
    if is_device_array(values):
        from kernels import pet_cuda  # noqa: PLC0415

        g, d, t, launch = _on_device(xp, values, geom, dims, tofp)
        pet_cuda.back_lors(y, g, d, lor_first, lor_second, mode, t, tbins, out.reshape(-1), **launch)
    else:
        from kernels import pet_cpu  # noqa: PLC0415

        buf = _cpu_back_buffer(n, out.size, scratch)
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

        g, d, t, launch = _on_device(xp, image, geom, dims, tofp)
        pet_cuda.forward_sino(image.reshape(-1), g, d, views, xy_a, xy_b, z_a, z_b, pw, tw, place, mode, t,
                              out.reshape(n, n_val), **launch)
    else:
        from kernels import pet_cpu  # noqa: PLC0415

        pet_cpu.forward_sino(image.reshape(-1), geom, dims, views, xy_a, xy_b, z_a, z_b, pw, tw, place, mode, tofp,
                             out.reshape(n, n_val))
    return out


def sinogram_back(values: Any, image_shape: Sequence[int], origin_xyz_mm: Sequence[float],
                  voxel_size_xyz_mm: Sequence[float], geometry: SinogramGeometry, views: Any, *,
                  tof: TOFKernel | None = None, out: Any = None, scratch: Any = None) -> Any:
    """Exact adjoint of :func:`sinogram_forward`; adds into ``out`` (nz, ny, nx) when given; ``scratch`` as
    in :func:`joseph_back`."""
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

        g, d, t, launch = _on_device(xp, values, geom, dims, tofp)
        pet_cuda.back_sino(y, g, d, views, xy_a, xy_b, z_a, z_b, pw, tw, place, mode, t, out.reshape(-1), **launch)
    else:
        from kernels import pet_cpu  # noqa: PLC0415

        buf = _cpu_back_buffer(n, out.size, scratch)
        pet_cpu.back_sino(y, geom, dims, views, xy_a, xy_b, z_a, z_b, pw, tw, place, mode, tofp, buf, out.reshape(-1))
    return out
