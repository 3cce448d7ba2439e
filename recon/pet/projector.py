"""PET projector operators: sinogram subsets and list-mode event blocks as linear operators.

Both wrap the Joseph projector of :mod:`kernels.pet_projector` (sampling, TOF kernel and its
exactness condition are documented in :mod:`kernels.pet_math`). Lines of response are in patient
LPS (mm): scanner-frame detector positions mapped by :meth:`ScannerPlacement.to_patient`. TOF bin
t counts from the LOR midpoint towards the second detector (:mod:`recon.data.pet_sinogram`).

* :class:`SinogramProjector` -> ``.operator(views)``: image (grid.shape) -> sinogram rows of those
  views, (len(views), n_planes, n_radial[, n_tof]) in the layout's axis order. Each bin is the line
  integral (mm x image units) times the plane weight (ring pairs merged into the plane); block-gap
  bins are 0.
* :class:`ListModeProjector` -> ``.operator(event_indices)``: image -> (len(event_indices),), each
  event's line integral (TOF: its own bin's share). Events in block gaps project to 0.

Arrays stay in the caller's array module: operators built for ``device="cuda"`` take and return
CuPy arrays, with all geometry held on the device.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from kernels import pet_projector as kp
from recon.algorithms.operators import check_into
from recon.backend import is_device_array, resolve_device, to_device
from recon.data.grid import ImageGrid
from recon.data.pet import ScannerPlacement
from recon.data.pet_scanner import PETScanner
from recon.data.pet_sinogram import SinogramLayout

DEFAULT_TOF_N_SIGMAS = 3.0


def tof_kernel_of(scanner: PETScanner, n_sigmas: float = DEFAULT_TOF_N_SIGMAS) -> kp.TOFKernel:
    """The scanner's TOF kernel (bins, bin width and sigma in mm along the LOR); refuses a non-TOF scanner."""
    if not scanner.has_tof:
        raise ValueError(f"scanner {scanner.name!r} has no time of flight")
    return kp.TOFKernel(scanner.n_tof_bins, scanner.tof_bin_width_mm, scanner.tof_sigma_mm, n_sigmas)


def placement_signs_offset(placement: ScannerPlacement) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """(axis signs, offset mm) with patient = signs * scanner + offset (:attr:`ScannerPlacement.axis_signs`)."""
    return (tuple(float(s) for s in placement.axis_signs),  # type: ignore[return-value]
            tuple(float(o) for o in placement.table_position_mm))


def _image_args(grid: ImageGrid) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    dz, dy, dx = grid.spacing_mm
    return grid.origin_mm, (dx, dy, dz)


def _indices(name: str, indices: Any, n: int) -> np.ndarray:
    """Host int64 copy of 1-D ``indices`` (unique not required), range-checked against ``n``."""
    try:
        host = np.asarray(indices.get() if hasattr(indices, "get") else indices)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise ValueError(f"{name} must be a 1-D array of integers") from exc
    if host.ndim != 1 or (host.size and not np.issubdtype(host.dtype, np.integer)):
        raise ValueError(f"{name} must be a 1-D array of integers, got shape {host.shape} dtype {host.dtype}")
    if host.size == 0:
        raise ValueError(f"{name} is empty")
    if int(host.min()) < 0 or int(host.max()) >= n:
        raise ValueError(f"{name} must lie in 0..{n - 1}, found {int(host.min())}..{int(host.max())}")
    return host.astype(np.int64)


class _BackScratch:
    """The host back projection's per-thread buffers, shared by the operators of one projector (they run
    one at a time): allocated on first use (:func:`kernels.pet_projector.cpu_back_scratch_size`), reused."""

    def __init__(self) -> None:
        self._buffer: np.ndarray | None = None

    def for_image(self, image_shape: tuple[int, ...]) -> np.ndarray:
        """A float32 scratch large enough for back projections into ``image_shape`` images."""
        need = kp.cpu_back_scratch_size(image_shape)
        if self._buffer is None or self._buffer.size < need:
            self._buffer = np.empty(need, np.float32)
        return self._buffer


class _ProjectorOperator:
    """Shape-checked apply/adjoint around two callables (a LinearOperator), and their allocation-free
    ``apply_into`` / ``adjoint_into``.

    ``forward(x, out=None)`` returns A x (into ``out`` when given); ``back(y, out=None, scratch=None)``
    returns A^T y, added into ``out`` when given, with ``scratch`` for the host path's buffers.
    """

    inplace_safe = False  # out must not overlap the input (a projection, not an elementwise map)

    def __init__(self, name: str, in_shape: tuple[int, ...], out_shape: tuple[int, ...], forward: Any, back: Any,
                 scratch: _BackScratch | None = None):
        self.name = name
        self.in_shape = tuple(int(s) for s in in_shape)
        self.out_shape = tuple(int(s) for s in out_shape)
        self._forward = forward
        self._back = back
        self._scratch = scratch if scratch is not None else _BackScratch()

    def apply(self, x: Any) -> Any:
        """A x: image (in_shape) -> projections (out_shape), a new float32 array."""
        if tuple(x.shape) != self.in_shape:
            raise ValueError(f"{self.name}: apply input shape {tuple(x.shape)} != expected {self.in_shape}")
        return self._forward(_as_f32(x))

    def adjoint(self, y: Any) -> Any:
        """A^T y: projections (out_shape) -> image (in_shape), a new float32 array."""
        if tuple(y.shape) != self.out_shape:
            raise ValueError(f"{self.name}: adjoint input shape {tuple(y.shape)} != expected {self.out_shape}")
        return self._back(_as_f32(y))

    def apply_into(self, x: Any, out: Any) -> Any:
        """A x written into ``out`` (out_shape, float32, C-contiguous, x's device); returns ``out``."""
        check_into(self.name, "apply", x, self.in_shape, out, self.out_shape)
        self._forward(_as_f32(x), out=out)
        return out

    def adjoint_into(self, y: Any, out: Any) -> Any:
        """A^T y written into ``out`` (in_shape, float32, C-contiguous, y's device), overwritten (zeroed,
        then the back projection added); returns ``out``."""
        check_into(self.name, "adjoint", y, self.out_shape, out, self.in_shape)
        out.fill(0)
        scratch = None if is_device_array(out) else self._scratch.for_image(self.in_shape)
        self._back(_as_f32(y), out=out, scratch=scratch)
        return out

    def __repr__(self) -> str:
        return f"{self.name}({self.in_shape} -> {self.out_shape})"


def _as_f32(a: Any) -> Any:
    if a.dtype == np.float32 and a.flags.c_contiguous:
        return a
    return a.astype("float32", order="C")


class SinogramProjector:
    """Joseph projector of a sinogram ``layout`` for an image on ``grid``, scanner placed by ``placement``."""

    def __init__(self, layout: SinogramLayout, placement: ScannerPlacement, grid: ImageGrid, device: str = "cpu",
                 tof_n_sigmas: float = DEFAULT_TOF_N_SIGMAS) -> None:
        if not isinstance(layout, SinogramLayout):
            raise ValueError(f"layout must be a SinogramLayout, got {type(layout).__name__}")
        if not isinstance(placement, ScannerPlacement):
            raise ValueError(f"placement must be a ScannerPlacement, got {type(placement).__name__}")
        if not isinstance(grid, ImageGrid):
            raise ValueError(f"grid must be an ImageGrid, got {type(grid).__name__}")
        self.layout, self.placement, self.grid = layout, placement, grid
        self.device = resolve_device(device)
        self.tof = tof_kernel_of(layout.scanner, tof_n_sigmas) if layout.tof else None
        xy_a, xy_b = layout.transaxial_endpoints_mm()
        z_a, z_b = layout.plane_z_mm()
        signs, offset = placement_signs_offset(placement)
        present = layout.transaxial_present().astype(np.float32)
        self.geometry = kp.SinogramGeometry(xy_a, xy_b, z_a, z_b, layout.plane_weights(), present, signs, offset)
        # line integrals without plane weights (attenuation factors), gaps included
        self.unit_geometry = kp.SinogramGeometry(xy_a, xy_b, z_a, z_b, np.ones_like(z_a), np.ones_like(present),
                                                 signs, offset)
        self._origin, self._voxel = _image_args(grid)
        self._scratch = _BackScratch()

    @property
    def data_shape(self) -> tuple[int, ...]:
        return self.layout.shape

    def _views_on_device(self, views: Any) -> tuple[np.ndarray, Any]:
        host = _indices("views", views, self.layout.n_views)
        return host, to_device(host, self.device)

    def operator(self, views: Any) -> _ProjectorOperator:
        """A_b for the sinogram views ``views``: out_shape (len(views), n_planes, n_radial[, n_tof])."""
        host, dev_views = self._views_on_device(views)
        out_shape = (host.size,) + tuple(self.layout.shape[1:])
        origin, voxel, geom, tof, shape = self._origin, self._voxel, self.geometry, self.tof, self.grid.shape
        return _ProjectorOperator(
            "SinogramOperator", shape, out_shape,
            lambda x, out=None: kp.sinogram_forward(x, origin, voxel, geom, dev_views, tof=tof, out=out),
            lambda y, out=None, scratch=None: kp.sinogram_back(y, shape, origin, voxel, geom, dev_views, tof=tof,
                                                               out=out, scratch=scratch),
            self._scratch,
        )

    def line_integrals(self, image: Any, views: Any | None = None) -> Any:
        """Non-TOF line integrals (mm x image units) of ``image`` for ``views`` (default all), no plane
        or gap weights: (len(views), n_planes, n_radial), in the image's array module."""
        host, dev_views = self._views_on_device(np.arange(self.layout.n_views) if views is None else views)
        return kp.sinogram_forward(_as_f32(image), self._origin, self._voxel, self.unit_geometry, dev_views)


class ListModeProjector:
    """Joseph projector of list-mode events (detector ids ``ring * crystals_per_ring + crystal``).

    ``layout_or_scanner``: a SinogramLayout (its scanner is used) or a PETScanner. TOF is used when
    ``tof_bins`` (per event, counted towards ``detector_b``) is given; the scanner must have TOF.
    """

    def __init__(self, layout_or_scanner: SinogramLayout | PETScanner, placement: ScannerPlacement,
                 grid: ImageGrid, detector_a: Any, detector_b: Any, tof_bins: Any | None = None,
                 device: str = "cpu", tof_n_sigmas: float = DEFAULT_TOF_N_SIGMAS) -> None:
        if isinstance(layout_or_scanner, SinogramLayout):
            scanner = layout_or_scanner.scanner
        elif isinstance(layout_or_scanner, PETScanner):
            scanner = layout_or_scanner
        else:
            raise ValueError(f"layout_or_scanner must be a SinogramLayout or PETScanner, "
                             f"got {type(layout_or_scanner).__name__}")
        if not isinstance(grid, ImageGrid):
            raise ValueError(f"grid must be an ImageGrid, got {type(grid).__name__}")
        da, db = np.asarray(detector_a), np.asarray(detector_b)
        if da.ndim != 1 or da.shape != db.shape:
            raise ValueError(f"detector_a and detector_b must be 1-D of equal length, got {da.shape}, {db.shape}")
        self.scanner, self.placement, self.grid = scanner, placement, grid
        self.device = resolve_device(device)
        a = placement.to_patient(scanner.detector_positions_mm(da))
        b = placement.to_patient(scanner.detector_positions_mm(db))
        present = scanner.crystal_present()
        gap = ~(present[da % scanner.crystals_per_ring] & present[db % scanner.crystals_per_ring])
        b[gap] = a[gap]  # a LOR with coincident ends projects to 0
        self.n_events = int(da.size)
        self.tof = None
        tb = None
        if tof_bins is not None:
            self.tof = tof_kernel_of(scanner, tof_n_sigmas)
            tb = np.asarray(tof_bins)
            if tb.shape != da.shape or (tb.size and not np.issubdtype(tb.dtype, np.integer)):
                raise ValueError(f"tof_bins must be integers of shape {da.shape}, got {tb.shape} {tb.dtype}")
            if tb.size and (int(tb.min()) < 0 or int(tb.max()) >= self.tof.n_bins):
                raise ValueError(f"tof_bins must lie in 0..{self.tof.n_bins - 1}, found {int(tb.min())}..{int(tb.max())}")
            tb = to_device(np.ascontiguousarray(tb, np.int32), self.device)
        self._a = to_device(np.ascontiguousarray(a, np.float32), self.device)
        self._b = to_device(np.ascontiguousarray(b, np.float32), self.device)
        self._tof_bins = tb
        self._origin, self._voxel = _image_args(grid)
        self._scratch = _BackScratch()

    def operator(self, event_indices: Any) -> _ProjectorOperator:
        """A_b for the events ``event_indices``: out_shape (len(event_indices),)."""
        host = _indices("event_indices", event_indices, self.n_events)
        idx = to_device(host, self.device)
        a, b = self._a[idx], self._b[idx]
        tb = None if self._tof_bins is None else self._tof_bins[idx]
        origin, voxel, tof, shape = self._origin, self._voxel, self.tof, self.grid.shape
        return _ProjectorOperator(
            "ListModeOperator", shape, (host.size,),
            lambda x, out=None: kp.joseph_forward(x, origin, voxel, a, b, tof=tof, tof_bins=tb, out=out),
            lambda y, out=None, scratch=None: kp.joseph_back(y, shape, origin, voxel, a, b, tof=tof, tof_bins=tb,
                                                             out=out, scratch=scratch),
            self._scratch,
        )

    def line_integrals(self, image: Any, event_indices: Any | None = None) -> Any:
        """Non-TOF line integrals (mm x image units) of ``image`` along the events' LORs (gap events: 0)."""
        idx = np.arange(self.n_events) if event_indices is None else _indices("event_indices", event_indices,
                                                                              self.n_events)
        idx = to_device(idx, self.device)
        return kp.joseph_forward(_as_f32(image), self._origin, self._voxel, self._a[idx], self._b[idx])
