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
a_k = exp(-(m_{k+1} + ... + m_{K-1} + m_k / 2)) the attenuation factors, m_j = mu x step of sample j
(the mu-map sampled through the same bilinear taps), and B_k a separable blur carrying the variance
increment ``var[:, k]`` (pixel^2) along rows (z) and columns. Plane k thus ends up
blurred by the sum of ``var[k+1:]`` up to and including the final entry
``var[K]``: the incremental (depth-wise) blurring of McCarthy & Miller. The back
projector is the exact transpose of each step in reverse order.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kernels.arrays import array_module, is_device_array, location, module_device_key  # noqa: F401 - re-exported


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
        if self.var_z.shape[1] < 2:
            raise ValueError("var_z/var_c need at least one depth plane (n_depth + 1 >= 2 columns)")
        if n and float(np.abs(self.cos_t ** 2 + self.sin_t ** 2 - 1.0).max()) > 1e-9:
            raise ValueError("cos_t and sin_t must be the cosine and sine of each view's angle (cos^2 + sin^2 = 1)")

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
        key = module_device_key(xp)
        if key not in self._device_cache:
            self._device_cache[key] = tuple(xp.asarray(a) for a in host)
        return self._device_cache[key]

    def column_band(self, xp: Any, n_cols: int) -> tuple[Any, Any]:
        """(profile (n_views,) int64, band or None) of the column blurs C_{>k} for ``n_cols`` detector columns
        (:mod:`kernels.spect_band`), in array module ``xp`` (built there: on the GPU for device modules), once and
        cached; band is
        None when no view blurs across columns (C_{>k} = I). Used by the CUDA path."""
        key = ("band", module_device_key(xp), int(n_cols))
        if key not in self._device_cache:
            from kernels import spect_band  # noqa: PLC0415

            if not (self.var_c > 0).any():
                profile, band = np.zeros(self.n_views, dtype=np.int64), None
            elif xp is np:
                profile, band, _ = spect_band.column_band(self.var_z, self.var_c, n_cols)
            else:  # built on the device: a non-circular orbit has one profile per view
                profile, band, _ = spect_band.column_band_device(self.var_z, self.var_c, n_cols, xp)
            self._device_cache[key] = (xp.asarray(profile), None if band is None else xp.asarray(band))
        return self._device_cache[key]


@dataclass
class ProjectorWorkspace:
    """Scratch buffers reused across subsets, so no pass allocates image- or projection-sized arrays.

    ``image_t`` (ny * nx, nz): the z-last copy of the image (host and device; on the device also the
    z-last scratch of a back projection). Host: ``parts``
    (:data:`BACK_PARTS`, ny * nx, nz), the private back projections of the threads. Device: ``planes``
    (views, n_depth, nc, nz), the rotated samples of a subset. Unused fields are None.
    """

    planes: Any = None
    image_t: Any = None
    parts: Any = None

    @classmethod
    def allocate(cls, xp: Any, max_views: int, nz: int, n_depth: int, nc: int,
                 image_yx: tuple[int, int] | None = None, n_parts: int | None = None) -> "ProjectorWorkspace":
        """Buffers for up to ``max_views`` views: the device set for device modules, else the host set
        (``image_yx`` = (ny, nx), default (nc, nc))."""
        ny, nx = image_yx if image_yx is not None else (nc, nc)
        try:
            if xp is np:
                return cls(image_t=np.empty((ny * nx, nz), dtype=np.float32),
                           parts=np.empty((n_parts or BACK_PARTS, ny * nx, nz), dtype=np.float32))
            return cls(planes=xp.empty((max_views, n_depth, nc, nz), dtype=xp.float32),
                       image_t=xp.empty((ny * nx, nz), dtype=xp.float32))
        except MemoryError as exc:
            gib = max_views * nz * n_depth * nc * 4 / 2**30
            raise MemoryError(
                f"projector workspace of {gib:.2f} GiB for {max_views} views does not fit; use more subsets"
            ) from exc


@dataclass(frozen=True)
class AttenuationModel:
    """What the passes need to attenuate on the fly, built once per study by :func:`attenuation_model`.

    mu: the mu-map (1/mm) in the kernels' layout: z-last (ny * nx, nz), on the host or the device. trans_total: (n_views, n_cols, nz) float32, exp(-line integral of mu through the whole
    depth of each ray). step_mm: depth sample spacing (mm). image_shape: (nz, ny, nx).
    n_sq: squarings of :func:`kernels.spect_math.exp_small` for this mu-map's largest half-step.
    air: (ny * nx,) uint8, 1 where mu is 0 for every z (the passes skip the exponentials there).
    """

    mu: Any
    trans_total: Any
    step_mm: float
    image_shape: tuple[int, int, int]
    n_sq: int
    air: Any

    @property
    def n_cols(self) -> int:
        return int(self.trans_total.shape[1])

    @property
    def nbytes(self) -> int:
        """Bytes held (mu-map and total transmissions)."""
        return int(self.mu.nbytes + self.trans_total.nbytes)


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


def _check_att(att: "AttenuationModel", geom: RotateSumGeometry, image_shape: tuple, nc: int) -> None:
    if not isinstance(att, AttenuationModel):
        raise TypeError(f"att must be an AttenuationModel (attenuation_model()), got {type(att).__name__}")
    if tuple(att.image_shape) != tuple(image_shape):
        raise ValueError(f"att was built for images {tuple(att.image_shape)}, not {tuple(image_shape)}")
    if tuple(att.trans_total.shape) != (geom.n_views, nc, image_shape[0]):
        raise ValueError(f"att trans_total {tuple(att.trans_total.shape)} must be (n_views, n_cols, nz) = "
                         f"{(geom.n_views, nc, image_shape[0])}")


# Host back projection: views are dealt round-robin to this many private images, summed in a fixed order,
# so results do not depend on the thread count (batch workers and single runs give identical images); up
# to this many threads share one back projection.
BACK_PARTS: int = 4

_DUMMY: dict[tuple, Any] = {}
_AIR_DUMMY = np.ones(1, dtype=np.uint8)


def _dummy(xp: Any, like: Any, ndim: int) -> Any:
    """A placeholder float32 array of ``ndim`` dims for "no attenuation", once per array module and device."""
    key = (id(xp), location(like), ndim)
    if key not in _DUMMY:
        _DUMMY[key] = xp.zeros((1,) * ndim, dtype=xp.float32)
    return _DUMMY[key]


def check_device_limits(nz: int, n_cols: int) -> None:
    """Raise ValueError when a detector of ``nz`` rows x ``n_cols`` columns cannot run on the CUDA path (shared
    memory per block, :func:`kernels.spect_launch.check_shared_memory`); for building a GPU model before any compute."""
    from kernels.spect_launch import check_shared_memory  # noqa: PLC0415

    check_shared_memory(int(nz), int(n_cols))


def attenuation_model(mu: Any, geom: RotateSumGeometry, step_mm: float, n_cols: int) -> AttenuationModel:
    """The :class:`AttenuationModel` of a mu-map (z, y, x) in 1/mm, for all views of ``geom``.

    ``step_mm`` is the depth sample spacing (the voxel size). Computed once per study: one pass that
    sums mu along every ray of every view (no exponentials stored per sample).
    """
    _check_float32("mu", mu, 3)
    xp = array_module(mu=mu)
    if not bool(xp.isfinite(mu).all()) or bool((mu < 0).any()):
        raise ValueError("mu must be finite and non-negative (1/mm)")
    if not step_mm > 0:
        raise ValueError(f"step_mm must be positive, got {step_mm}")
    if int(n_cols) < 1:
        raise ValueError(f"n_cols must be >= 1, got {n_cols}")
    nz, ny, nx = mu.shape
    trans = xp.empty((geom.n_views, int(n_cols), nz), dtype=xp.float32)
    views = xp.arange(geom.n_views, dtype=xp.int64)
    cos_t, sin_t, _, _, centers = geom.arrays(xp)
    if is_device_array(mu):
        from kernels import spect_cuda  # noqa: PLC0415 - lazy: only with device arrays

        mu_k = xp.empty((ny * nx, nz), dtype=xp.float32)
        spect_cuda.to_zlast(mu, mu_k)
        spect_cuda.total_transmission(mu_k, ny, nx, views, cos_t, sin_t, centers, float(step_mm), geom.n_depth, trans)
    else:
        from kernels import spect_cpu  # noqa: PLC0415

        mu_k = np.empty((ny * nx, nz), dtype=np.float32)
        spect_cpu.to_zlast(mu, mu_k)
        spect_cpu.total_transmission(mu_k, ny, nx, float(step_mm), views, cos_t, sin_t, centers, geom.n_depth,
                                     trans)
    air = (mu.max(axis=0) <= 0).reshape(-1).astype(xp.uint8)
    from kernels.spect_math import exp_squarings  # noqa: PLC0415

    n_sq = exp_squarings(0.5 * float(step_mm) * float(mu.max()))  # one host sync, once per study
    return AttenuationModel(mu_k, trans, float(step_mm), (nz, ny, nx), n_sq, air)


def _device_workspace(xp: Any, workspace: ProjectorWorkspace | None, n_views: int, image_shape: tuple, nk: int,
                      nc: int) -> ProjectorWorkspace:
    """The caller's device workspace, checked, or a new one (the system model passes its own, so the
    OSEM loop allocates nothing)."""
    nz, ny, nx = image_shape
    ws = workspace or ProjectorWorkspace.allocate(xp, n_views, nz, nk, nc, (ny, nx))
    _check_float32("workspace.planes", ws.planes, 4)
    if ws.planes.shape[0] < n_views or tuple(ws.planes.shape[1:]) != (nk, nc, nz):
        raise ValueError(f"workspace planes {tuple(ws.planes.shape)} too small for {(n_views, nk, nc, nz)}")
    _check_float32("workspace.image_t", ws.image_t, 2)
    if tuple(ws.image_t.shape) != (ny * nx, nz):
        raise ValueError(f"workspace image_t {tuple(ws.image_t.shape)} does not fit images {tuple(image_shape)}")
    return ws


def _host_workspace(workspace: ProjectorWorkspace | None, image_shape: tuple, nc: int) -> ProjectorWorkspace:
    nz, ny, nx = image_shape
    ws = workspace
    if ws is None or ws.image_t is None or ws.parts is None:
        ws = ProjectorWorkspace.allocate(np, 1, nz, 1, nc, (ny, nx))
    if tuple(ws.image_t.shape) != (ny * nx, nz) or tuple(ws.parts.shape[1:]) != (ny * nx, nz):
        raise ValueError(f"workspace image_t {tuple(ws.image_t.shape)} / parts {tuple(ws.parts.shape)} do not fit "
                         f"images {tuple(image_shape)}")
    return ws


def forward(image: Any, geom: RotateSumGeometry, views: Any, att: AttenuationModel | None = None,
            workspace: ProjectorWorkspace | None = None, out: Any | None = None) -> Any:
    """Projections (len(views), nz, n_cols) of ``image`` (nz, ny, nx) for the given views.

    ``att`` (:func:`attenuation_model`) attenuates, or None. ``n_cols`` is taken from ``att``,
    ``out`` or ``workspace``, else equals nx.
    """
    _check_float32("image", image, 3)
    _check_views(views, geom)
    xp = array_module(image=image, views=views, **({} if att is None else {"att.mu": att.mu}), out=out)
    nz, ny, nx = image.shape
    nc = nx if out is None else out.shape[2]
    if att is not None:
        nc = att.n_cols
        _check_att(att, geom, image.shape, nc)
    if out is None:
        out = xp.empty((views.size, nz, nc), dtype=xp.float32)
    _check_float32("out", out, 3)
    if tuple(out.shape) != (views.size, nz, nc):
        raise ValueError(f"out shape {tuple(out.shape)} must be {(views.size, nz, nc)}")
    use_att = att is not None
    cos_t, sin_t, var_z, var_c, centers = geom.arrays(xp)
    if is_device_array(image):
        from kernels import spect_cuda  # noqa: PLC0415

        ws = _device_workspace(xp, workspace, views.size, image.shape, geom.n_depth, nc)
        array_module(image=image, **{"workspace.planes": ws.planes, "workspace.image_t": ws.image_t})
        mu = att.mu if use_att else _dummy(xp, image, 2)
        trans = att.trans_total if use_att else _dummy(xp, image, 3)
        step, n_sq = (att.step_mm, att.n_sq) if use_att else (1.0, 0)
        profile, band = geom.column_band(xp, nc)
        spect_cuda.to_zlast(image, ws.image_t)
        spect_cuda.forward_views(ws.image_t, ny, nx, mu, trans, use_att, step, n_sq, views, cos_t, sin_t, var_z, var_c,
                                 centers, profile, band, ws.planes[:views.size], out)
    else:
        from kernels import spect_cpu  # noqa: PLC0415

        ws = _host_workspace(workspace, image.shape, nc)
        spect_cpu.to_zlast(image, ws.image_t)
        mu = att.mu if use_att else _dummy(np, image, 2)
        trans = att.trans_total if use_att else _dummy(np, image, 3)
        step = att.step_mm if use_att else 1.0
        air, n_sq = (att.air, att.n_sq) if use_att else (_AIR_DUMMY, 0)
        spect_cpu.forward_views(ws.image_t, ny, nx, mu, air, n_sq, trans, use_att, step, views, cos_t, sin_t, var_z, var_c,
                                centers, out)
    return out


def back(proj: Any, geom: RotateSumGeometry, views: Any, image_shape: tuple[int, int, int],
         att: AttenuationModel | None = None, workspace: ProjectorWorkspace | None = None,
         out: Any | None = None) -> Any:
    """Adjoint of :func:`forward`: image (nz, ny, nx) = A^T proj; adds into ``out`` when given."""
    _check_float32("proj", proj, 3)
    _check_views(views, geom)
    xp = array_module(proj=proj, views=views, **({} if att is None else {"att.mu": att.mu}), out=out)
    n_sub, nz, nc = proj.shape
    if n_sub != views.size:
        raise ValueError(f"proj has {n_sub} views but {views.size} view indices were given")
    if tuple(image_shape)[0] != nz:
        raise ValueError(f"image has {image_shape[0]} slices but projections have {nz} rows")
    if att is not None:
        _check_att(att, geom, tuple(image_shape), nc)
    if out is None:
        out = xp.zeros(tuple(image_shape), dtype=xp.float32)
    _check_float32("out", out, 3)
    if tuple(out.shape) != tuple(image_shape):
        raise ValueError(f"out shape {tuple(out.shape)} must be {tuple(image_shape)}")
    nk = geom.n_depth
    use_att = att is not None
    step = att.step_mm if use_att else 1.0
    cos_t, sin_t, var_z, var_c, centers = geom.arrays(xp)
    if is_device_array(proj):
        from kernels import spect_cuda  # noqa: PLC0415

        ws = _device_workspace(xp, workspace, n_sub, tuple(image_shape), nk, nc)
        array_module(proj=proj, **{"workspace.planes": ws.planes})
        mu = att.mu if use_att else _dummy(xp, proj, 2)
        n_sq = att.n_sq if use_att else 0
        profile, band = geom.column_band(xp, nc)
        _, ny, nx = image_shape
        spect_cuda.back_views(proj, ny, nx, mu, use_att, step, n_sq, views, cos_t, sin_t, var_z, var_c, centers,
                              profile, band, ws.planes[:n_sub], ws.image_t, out)
    else:
        from kernels import spect_cpu  # noqa: PLC0415

        _, ny, nx = image_shape
        ws = _host_workspace(workspace, tuple(image_shape), nc)
        ws.parts.fill(0.0)
        mu = att.mu if use_att else _dummy(np, proj, 2)
        air, n_sq = (att.air, att.n_sq) if use_att else (_AIR_DUMMY, 0)
        spect_cpu.back_views(proj, ny, nx, mu, air, n_sq, use_att, step, views, cos_t, sin_t, var_z, var_c, centers, ws.parts)
        spect_cpu.add_parts(ws.parts, out)
    return out
