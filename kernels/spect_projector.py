"""Rotate-and-sum parallel-hole SPECT projector: the one public entry per operation.

Each function validates its arrays once and dispatches on where they live:
NumPy arrays run the Numba CPU launchers (:mod:`kernels.spect_cpu`), device
arrays (anything with ``__cuda_array_interface__`` whose package is a
NumPy-like array module, i.e. CuPy) the CUDA launchers (:mod:`kernels.spect_cuda`).
Results come back in the caller's array module. This package imports nothing
from ``recon`` and never imports CuPy: the array module is found from the
arrays' own type.

Model, per view (index units; see :mod:`kernels.spect_math` for the frame)::

    p = B_K( r_{K-1} + B_{K-1}( r_{K-2} + ... B_1( r_0 ) ) ),   r_k = a_k * S_k x

with S_k the bilinear sample of depth plane k (k = 0 farthest from the detector),
a_k the attenuation factors, and B_k a separable blur carrying the variance
increment ``var[:, k]`` (pixel^2) along rows (z) and columns. Plane k thus ends up
blurred by the sum of ``var[k+1:]`` up to and including the final entry
``var[K]``: the incremental (depth-wise) blurring of McCarthy & Miller. The back
projector is the exact transpose of each step in reverse order.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# What a device array's package must provide to be used as its array module.
_NAMESPACE_NEEDS: tuple[str, ...] = ("empty", "zeros", "arange", "asarray", "isfinite", "float32", "int64")


def is_device_array(a: Any) -> bool:
    """True for a GPU array (one that exposes ``__cuda_array_interface__``)."""
    return hasattr(a, "__cuda_array_interface__")


def _location(a: Any) -> tuple:
    """("cpu",) for host arrays, ("cuda", device id) for device arrays."""
    if not is_device_array(a):
        return ("cpu",)
    dev = getattr(a, "device", None)
    return ("cuda", getattr(dev, "id", getattr(dev, "index", None)))


def _namespace_of(name: str, a: Any) -> Any:
    """The array module of ``a``: numpy on the host, the package of its type (e.g. cupy) on the device."""
    if not is_device_array(a):
        return np
    xp = sys.modules.get(type(a).__module__.split(".")[0])
    if xp is None or not all(hasattr(xp, attr) for attr in _NAMESPACE_NEEDS):
        raise TypeError(f"{name}: device arrays of type {type(a).__module__}.{type(a).__name__} are not supported "
                        "(use CuPy arrays)")
    return xp


def array_module(**named: Any) -> Any:
    """The one array module of the named arrays (None entries ignored).

    Raises ValueError naming the first argument that lives on another device than the first one.
    """
    first_name, first_loc, xp = None, None, np
    for name, a in named.items():
        if a is None:
            continue
        loc = _location(a)
        if first_name is None:
            first_name, first_loc, xp = name, loc, _namespace_of(name, a)
        elif loc != first_loc:
            raise ValueError(f"{name} is on {_describe(loc)} but {first_name} is on {_describe(first_loc)}; "
                             "all arrays must live on one device")
    return xp


def _describe(loc: tuple) -> str:
    return "the host (NumPy)" if loc[0] == "cpu" else f"CUDA device {loc[1]}"


@dataclass(frozen=True)
class RotateSumGeometry:
    """Plain geometry numbers of the projector (host arrays; device copies made on demand).

    cos_t, sin_t: (n_views,) direction cosines of each view's detector normal.
    var_z, var_c: (n_views, n_depth + 1) blur variance increments in pixel^2 (>= 0).
    centers: (kc, cc, cy, cx) centre indices of depth, column, image y and image x.
    """

    cos_t: np.ndarray
    sin_t: np.ndarray
    var_z: np.ndarray
    var_c: np.ndarray
    centers: np.ndarray
    _device_cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("cos_t", "sin_t", "var_z", "var_c", "centers"):
            arr = np.ascontiguousarray(np.asarray(getattr(self, name), dtype=np.float64))
            if not np.isfinite(arr).all():
                raise ValueError(f"projector geometry {name} contains non-finite values")
            object.__setattr__(self, name, arr)
        n = self.cos_t.size
        if self.sin_t.shape != (n,) or self.cos_t.shape != (n,):
            raise ValueError("cos_t and sin_t must be 1-D of equal length")
        if self.var_z.ndim != 2 or self.var_z.shape[0] != n or self.var_z.shape != self.var_c.shape:
            raise ValueError(f"var_z/var_c must be (n_views={n}, n_depth+1), got {self.var_z.shape}, {self.var_c.shape}")
        if (self.var_z < 0).any() or (self.var_c < 0).any():
            raise ValueError("blur variance increments must be >= 0 (resolution must worsen with distance)")
        if self.centers.shape != (4,):
            raise ValueError("centers must be (kc, cc, cy, cx)")

    @property
    def n_views(self) -> int:
        return int(self.cos_t.size)

    @property
    def n_depth(self) -> int:
        return int(self.var_z.shape[1] - 1)

    def arrays(self, xp: Any) -> tuple:
        """(cos_t, sin_t, var_z, var_c, centers) in array module ``xp`` (device copies cached)."""
        host = (self.cos_t, self.sin_t, self.var_z, self.var_c, self.centers)
        if xp is np:
            return host
        key = id(xp)
        if key not in self._device_cache:
            self._device_cache[key] = tuple(xp.asarray(a) for a in host)
        return self._device_cache[key]


@dataclass
class ProjectorWorkspace:
    """Scratch buffers reused across subsets: planes (views, nz, nk, nc), acc/tmp (views, nz, nc)."""

    planes: Any
    acc: Any
    tmp: Any

    @classmethod
    def allocate(cls, xp: Any, max_views: int, nz: int, n_depth: int, nc: int) -> "ProjectorWorkspace":
        try:
            return cls(
                planes=xp.empty((max_views, nz, n_depth, nc), dtype=xp.float32),
                acc=xp.empty((max_views, nz, nc), dtype=xp.float32),
                tmp=xp.empty((max_views, nz, nc), dtype=xp.float32),
            )
        except MemoryError as exc:
            gib = max_views * nz * n_depth * nc * 4 / 2**30
            raise MemoryError(
                f"projector workspace of {gib:.2f} GiB for {max_views} views does not fit; use more subsets"
            ) from exc


def _check_float32(name: str, a: Any, ndim: int) -> None:
    if a.dtype != np.float32:
        raise TypeError(f"{name} must be float32, got {a.dtype}")
    if a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {tuple(a.shape)}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous")


def _check_views(views: Any, geom: RotateSumGeometry) -> None:
    """dtype and shape always; the index range on host arrays (device arrays are range-checked by the
    caller when it moves them to the device, so a subset costs no device-to-host sync here)."""
    if views.ndim != 1 or views.dtype != np.int64:
        raise TypeError("views must be a 1-D int64 array of view indices")
    if views.size == 0:
        raise ValueError("views is empty")
    if not is_device_array(views) and (int(views.min()) < 0 or int(views.max()) >= geom.n_views):
        raise ValueError(f"view indices must lie in [0, {geom.n_views})")


def _check_scratch(name: str, a: Any, n_views: int, nz: int, nc: int) -> None:
    _check_float32(f"workspace.{name}", a, 3)
    if a.shape[0] < n_views or tuple(a.shape[1:]) != (nz, nc):
        raise ValueError(f"workspace {name} {tuple(a.shape)} too small for {(n_views, nz, nc)}")


def _check_att(att: Any, n_views: int, nz: int, nk: int, nc: int) -> None:
    _check_float32("att", att, 4)
    if tuple(att.shape) != (n_views, nz, nk, nc):
        raise ValueError(f"att shape {tuple(att.shape)} must be (n_views, nz, n_depth, nc) = {(n_views, nz, nk, nc)}")


_DUMMY_ATT: dict[tuple, Any] = {}


def _dummy_att(xp: Any, like: Any) -> Any:
    """A placeholder for "no attenuation", allocated once per array module and device (that of ``like``)."""
    key = (id(xp), _location(like))
    if key not in _DUMMY_ATT:
        _DUMMY_ATT[key] = xp.zeros((1, 1, 1, 1), dtype=xp.float32)
    return _DUMMY_ATT[key]


def attenuation_factors(mu: Any, geom: RotateSumGeometry, step_mm: float, n_cols: int) -> Any:
    """Per-view attenuation factors (n_views, nz, n_depth, n_cols) from a mu-map (z, y, x) in 1/mm.

    ``step_mm`` is the depth sample spacing (the voxel size). Computed once per study.
    """
    _check_float32("mu", mu, 3)
    xp = array_module(mu=mu)
    if not bool(xp.isfinite(mu).all()) or bool((mu < 0).any()):
        raise ValueError("mu must be finite and non-negative (1/mm)")
    if not step_mm > 0:
        raise ValueError(f"step_mm must be positive, got {step_mm}")
    if int(n_cols) < 1:
        raise ValueError(f"n_cols must be >= 1, got {n_cols}")
    nz = mu.shape[0]
    out = xp.empty((geom.n_views, nz, geom.n_depth, n_cols), dtype=xp.float32)
    views = xp.arange(geom.n_views, dtype=xp.int64)
    cos_t, sin_t, _, _, centers = geom.arrays(xp)
    if is_device_array(mu):
        from kernels import spect_cuda  # noqa: PLC0415 - lazy: only with device arrays

        spect_cuda.attenuation_factors(mu, views, cos_t, sin_t, centers, float(step_mm), out)
    else:
        from kernels import spect_cpu  # noqa: PLC0415

        spect_cpu.attenuation_factors(mu, views, cos_t, sin_t, centers, float(step_mm), out)
    return out


def forward(image: Any, geom: RotateSumGeometry, views: Any, att: Any | None = None,
            workspace: ProjectorWorkspace | None = None, out: Any | None = None) -> Any:
    """Projections (len(views), nz, n_cols) of ``image`` (nz, ny, nx) for the given views.

    ``att`` (n_views, nz, n_depth, n_cols) holds attenuation factors for all views, or None.
    ``n_cols`` is taken from ``att``, ``out`` or ``workspace``, else equals nx.
    """
    _check_float32("image", image, 3)
    _check_views(views, geom)
    xp = array_module(image=image, views=views, att=att, out=out)
    nz, _, nx = image.shape
    nc = nx if out is None else out.shape[2]
    if att is not None:
        _check_att(att, geom.n_views, nz, geom.n_depth, att.shape[3])
        nc = att.shape[3]
    if out is None:
        out = xp.empty((views.size, nz, nc), dtype=xp.float32)
    _check_float32("out", out, 3)
    if tuple(out.shape) != (views.size, nz, nc):
        raise ValueError(f"out shape {tuple(out.shape)} must be {(views.size, nz, nc)}")
    use_att = att is not None
    att_arr = att if use_att else _dummy_att(xp, image)
    cos_t, sin_t, var_z, var_c, centers = geom.arrays(xp)
    if is_device_array(image):
        from kernels import spect_cuda  # noqa: PLC0415

        ws = workspace or ProjectorWorkspace.allocate(xp, views.size, nz, 1, nc)
        _check_scratch("tmp", ws.tmp, views.size, nz, nc)
        array_module(image=image, **{"workspace.tmp": ws.tmp})
        spect_cuda.forward_views(image, att_arr, use_att, views, cos_t, sin_t, var_z, var_c, centers,
                                 ws.tmp, out)
    else:
        from kernels import spect_cpu  # noqa: PLC0415

        spect_cpu.forward_views(image, att_arr, use_att, views, cos_t, sin_t, var_z, var_c, centers, out)
    return out


def back(proj: Any, geom: RotateSumGeometry, views: Any, image_shape: tuple[int, int, int], att: Any | None = None,
         workspace: ProjectorWorkspace | None = None, out: Any | None = None) -> Any:
    """Adjoint of :func:`forward`: image (nz, ny, nx) = A^T proj; adds into ``out`` when given."""
    _check_float32("proj", proj, 3)
    _check_views(views, geom)
    xp = array_module(proj=proj, views=views, att=att, out=out)
    n_sub, nz, nc = proj.shape
    if n_sub != views.size:
        raise ValueError(f"proj has {n_sub} views but {views.size} view indices were given")
    if tuple(image_shape)[0] != nz:
        raise ValueError(f"image has {image_shape[0]} slices but projections have {nz} rows")
    if att is not None:
        _check_att(att, geom.n_views, nz, geom.n_depth, nc)
    if out is None:
        out = xp.zeros(tuple(image_shape), dtype=xp.float32)
    _check_float32("out", out, 3)
    if tuple(out.shape) != tuple(image_shape):
        raise ValueError(f"out shape {tuple(out.shape)} must be {tuple(image_shape)}")
    nk = geom.n_depth
    ws = workspace or ProjectorWorkspace.allocate(xp, n_sub, nz, nk, nc)
    _check_float32("workspace.planes", ws.planes, 4)
    array_module(proj=proj, **{"workspace.planes": ws.planes})
    if ws.planes.shape[0] < n_sub or tuple(ws.planes.shape[1:]) != (nz, nk, nc):
        raise ValueError(f"workspace planes {tuple(ws.planes.shape)} too small for {(n_sub, nz, nk, nc)}")
    planes = ws.planes[:n_sub]
    use_att = att is not None
    att_arr = att if use_att else _dummy_att(xp, proj)
    cos_t, sin_t, var_z, var_c, centers = geom.arrays(xp)
    if is_device_array(proj):
        from kernels import spect_cuda  # noqa: PLC0415

        _check_scratch("acc", ws.acc, n_sub, nz, nc)
        _check_scratch("tmp", ws.tmp, n_sub, nz, nc)
        array_module(proj=proj, **{"workspace.acc": ws.acc, "workspace.tmp": ws.tmp})
        spect_cuda.back_views(proj, att_arr, use_att, views, cos_t, sin_t, var_z, var_c, centers,
                              ws.acc, ws.tmp, planes, out)
    else:
        from kernels import spect_cpu  # noqa: PLC0415

        spect_cpu.back_views_to_planes(proj, att_arr, use_att, views, var_z, var_c, planes)
        import numba  # noqa: PLC0415

        spect_cpu.scatter_planes_to_image(planes, views, cos_t, sin_t, centers, 4 * numba.get_num_threads(), out)
    return out
