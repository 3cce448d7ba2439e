"""The parallel-hole SPECT system model and its per-subset linear operators.

For view theta the expected photopeak counts are::

    y_theta = M . PSF_d . Att_theta . Rot_theta x  (+ s_theta, the additive scatter term)

- Rot_theta: bilinear rotation of the image into the view's frame (depth towards
  the detector, columns across);
- Att_theta: exp(-integral of mu from each voxel to the detector), from a mu-map
  (1/mm) at the photopeak energy, computed on the fly in every pass (the mu-map is
  sampled through the image's own rotation taps; only each ray's total transmission is
  kept, :class:`kernels.spect_projector.AttenuationModel`);
- PSF_d: the distance-dependent Gaussian collimator-detector response, whose
  variance at distance d from the collimator face, sigma(d)^2, follows the
  collimator geometry (:mod:`recon.data.collimator`). d = R_theta - depth, with
  R_theta the radius of rotation of that view, so non-circular orbits are exact;
- M: the detector's axial (row) sensitivity, a diagonal weight per projection row
  (:mod:`recon.spect.detector_rows`: 0 on rows outside the useful field of view or
  partially shielded), applied as an :class:`~recon.algorithms.operators.ElementwiseMultiply`
  on the projection side; absent (the identity, not a multiplication by ones) by default.

x is in counts per voxel over the acquisition of one view ("counts"): the sum of
a projection equals the sum of the attenuated image. Quantification to Bq/mL
divides by sensitivity x time x voxel volume (:mod:`recon.quant.calibration`).
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np

from kernels import spect_projector as projector
from recon.algorithms.operators import ElementwiseMultiply, compose
from recon.backend import array_module, resolve_device, to_device, to_host
from recon.data.collimator import Collimator
from recon.data.grid import ImageGrid, Volume
from recon.data.spect import SPECTGeometry

logger = logging.getLogger(__name__)

# mu above this fraction of water's counts as "inside the body" for the orbit check
_BODY_MU_FRACTION_OF_WATER = 0.5
# a mu-map must sit on the reconstruction grid: shape equal, spacing and origin within this (mm)
_GRID_TOLERANCE_MM = 1e-3


def check_grid_matches(grid: ImageGrid, geometry: SPECTGeometry) -> None:
    """Raise ValueError unless ``grid`` has the shape and spacing the projections define."""
    expected = geometry.image_grid()
    if grid.shape != expected.shape:
        raise ValueError(
            f"image grid shape {grid.shape} does not match the projections' grid {expected.shape} "
            f"(rows, cols, cols)"
        )
    if not np.allclose(grid.spacing_mm, expected.spacing_mm, rtol=1e-4, atol=1e-4):
        raise ValueError(f"image voxel spacing {grid.spacing_mm} mm does not match detector pixels {expected.spacing_mm} mm")


def depth_offsets_mm(n_depth: int, pixel_mm: float) -> np.ndarray:
    """Signed distance (mm) of each depth plane from the rotation axis towards the detector."""
    return (np.arange(n_depth, dtype=np.float64) - (n_depth - 1) / 2.0) * pixel_mm


def blur_increments(sigma_px: np.ndarray) -> np.ndarray:
    """Variance increments (pixel^2) for incremental blurring, from per-plane sigma (n_views, n_depth).

    Entry k < K is what plane k-1 and farther need beyond plane k; entry 0 is 0;
    entry K is the nearest plane's own variance. sigma must not increase with k.
    """
    var = sigma_px.astype(np.float64) ** 2
    inc = np.zeros((var.shape[0], var.shape[1] + 1), dtype=np.float64)
    inc[:, 1:-1] = var[:, :-1] - var[:, 1:]
    inc[:, -1] = var[:, -1]
    return np.maximum(inc, 0.0)


def fov_radius_mm(grid: ImageGrid) -> float:
    """Radius (mm) of the reconstruction circle: voxels whose centre lies inside it are seen, with all
    their interpolation taps, by every view of the rotated (depth x column) frame."""
    _, dy, dx = grid.spacing_mm
    ny, nx = grid.shape[1:]
    return ((min(ny, nx) - 1) / 2.0 - 1.0) * min(dy, dx)


def fov_mask(grid: ImageGrid) -> np.ndarray:
    """(ny, nx) bool: the transaxial reconstruction circle of :func:`fov_radius_mm`."""
    _, dy, dx = grid.spacing_mm
    ny, nx = grid.shape[1:]
    y = (np.arange(ny) - (ny - 1) / 2.0) * dy
    x = (np.arange(nx) - (nx - 1) / 2.0) * dx
    return np.hypot(y[:, None], x[None, :]) <= fov_radius_mm(grid) + 1e-6


def check_inside_fov(mask_zyx: np.ndarray, grid: ImageGrid, what: str) -> None:
    """Raise ValueError when any voxel of ``mask_zyx`` lies outside the reconstruction circle."""
    outside = mask_zyx.any(axis=0) & ~fov_mask(grid)
    if outside.any():
        raise ValueError(
            f"{what} extends beyond the reconstruction circle of radius {fov_radius_mm(grid):.1f} mm "
            f"({int(outside.sum())} transaxial voxels outside): use a larger detector matrix or crop it"
        )


def check_orbit_clears_body(body_mask: np.ndarray, grid: ImageGrid, geometry: SPECTGeometry) -> None:
    """Raise ValueError naming the view when a body voxel centre lies more than one voxel beyond that view's
    detector face (a real body touches the face within a voxel: the outline is sampled, radii are rounded)."""
    zyx = np.nonzero(body_mask.any(axis=0))
    if zyx[0].size == 0:
        return
    _, dy, dx = grid.spacing_mm
    ny, nx = body_mask.shape[1:]
    y = (zyx[0] - (ny - 1) / 2.0) * dy
    x = (zyx[1] - (nx - 1) / 2.0) * dx
    theta = np.deg2rad(geometry.angles_deg)
    touching = []
    for v, (t, r) in enumerate(zip(theta, geometry.radius_mm)):
        reach = float(np.max(x * np.sin(t) - y * np.cos(t)))
        if reach > r + max(dx, dy):
            raise ValueError(
                f"orbit radius {r:.1f} mm at view {v} ({geometry.angles_deg[v]:.1f} deg) lies inside the body "
                f"outline, which reaches {reach:.1f} mm from the rotation axis: check the radii / mu-map"
            )
        if reach > r:
            touching.append(v)
    if touching:
        logger.warning("the body outline touches the detector face (within one voxel) in %d views", len(touching))


class SPECTSystemModel:
    """Parallel-hole SPECT forward model on one device, built once per study; a
    :class:`~recon.algorithms.protocol.SystemModel` whose subset units are the views.

    Parameters: geometry (orbit, detector), collimator, photon energy (keV),
    optional mu-map Volume (1/mm at that energy, on ``grid``), ``psf`` to model the
    collimator-detector response, ``device``, and ``grid``: the reconstruction grid in
    patient space (LPS, mm), with the shape and spacing the projections define (default
    ``geometry.image_grid()``, centred on the origin). The grid's centre is on the
    rotation axis; only its placement in patient space comes from ``grid``. ``row_weights``
    (n_rows,), each in [0, 1]: the detector's axial sensitivity M (module docstring); None or all
    ones: no weighting.
    """

    def __init__(
        self,
        geometry: SPECTGeometry,
        collimator: Collimator,
        photon_energy_kev: float,
        mu_map: Volume | None = None,
        psf: bool = True,
        device: str = "auto",
        grid: ImageGrid | None = None,
        row_weights: Any | None = None,
    ) -> None:
        self.geometry = geometry
        self.collimator = collimator
        self.photon_energy_kev = float(photon_energy_kev)
        self.device = resolve_device(device)
        if grid is not None and not isinstance(grid, ImageGrid):
            raise TypeError(f"grid must be an ImageGrid, got {type(grid).__name__}")
        self._grid = geometry.image_grid() if grid is None else grid
        check_grid_matches(self._grid, geometry)
        self.psf = bool(psf)
        self.image_shape: tuple[int, int, int] = self._grid.shape
        self.projection_shape: tuple[int, int, int] = (geometry.n_views, geometry.n_rows, geometry.n_cols)
        self.n_depth = geometry.n_cols
        if self.device == "cuda":
            projector.check_device_limits(geometry.n_rows, geometry.n_cols)
        self.proj_geometry = self._projector_geometry()
        self._xp = array_module(to_device(np.zeros(1, np.float32), self.device))
        self.attenuation = None
        if mu_map is not None:
            self.attenuation = self._attenuation_model(mu_map)
        self.fov = self._xp.asarray(fov_mask(self.grid).astype(np.float32))[None, :, :]
        self._masked_image = self._xp.empty(self.image_shape, dtype=self._xp.float32)
        self._workspaces: dict[int, projector.ProjectorWorkspace] = {}
        self._all_views = self._xp.arange(geometry.n_views, dtype=self._xp.int64)
        self.row_weights = self._row_weights(row_weights)

    def _row_weights(self, row_weights: Any | None) -> Any | None:
        if row_weights is None:
            return None
        w = np.asarray(to_host(row_weights), dtype=np.float64)
        if w.shape != (self.geometry.n_rows,):
            raise ValueError(f"row_weights must have one value per detector row ({self.geometry.n_rows}), got shape "
                             f"{w.shape}")
        if not np.isfinite(w).all() or w.min() < 0 or w.max() > 1:
            raise ValueError("row_weights must lie in [0, 1] (the detector's relative axial sensitivity)")
        if (w == 1.0).all():
            return None  # the normal case: the model stays exactly the unweighted one
        return self._xp.asarray(w.astype(np.float32)[None, :, None])

    @property
    def xp(self) -> Any:
        """Array module (numpy or cupy) of this model's device."""
        return self._xp

    @property
    def grid(self) -> ImageGrid:
        """The reconstruction grid in patient space (LPS, mm), fixed at construction."""
        return self._grid

    @property
    def data_shape(self) -> tuple[int, int, int]:
        """Shape of the full projections: (views, rows, cols)."""
        return self.projection_shape

    @property
    def n_subset_units(self) -> int:
        """Subsets are made of views."""
        return self.geometry.n_views

    def subset_data(self, array: Any, views: Any) -> Any:
        """The projections (len(views), rows, cols) of ``views`` from a full (views, rows, cols) array, as
        C-contiguous float32 on this model's device (the full array is copied there first if it is elsewhere:
        pass device arrays to avoid one copy per subset)."""
        if tuple(array.shape) != self.projection_shape:
            raise ValueError(f"projections shape {tuple(array.shape)} != model data shape {self.projection_shape}")
        full = to_device(array, self.device)
        return self._xp.ascontiguousarray(full[self.views_array(views)], dtype=self._xp.float32)

    def _projector_geometry(self) -> projector.RotateSumGeometry:
        g = self.geometry
        pixel = g.pixel_size_mm
        theta = np.deg2rad(g.angles_deg)
        n_views, nk = g.n_views, self.n_depth
        if self.psf:
            distance = g.radius_mm[:, None] - depth_offsets_mm(nk, pixel)[None, :]
            sigma_mm = self.collimator.system_sigma_mm(distance, self.photon_energy_kev)
            var_c = blur_increments(sigma_mm / pixel)
            var_z = blur_increments(sigma_mm / g.slice_thickness_mm)
        else:
            var_c = np.zeros((n_views, nk + 1))
            var_z = np.zeros((n_views, nk + 1))
        ny, nx = self.grid.shape[1:]
        centers = np.array([(nk - 1) / 2.0, (g.n_cols - 1) / 2.0, (ny - 1) / 2.0, (nx - 1) / 2.0])
        return projector.RotateSumGeometry(np.cos(theta), np.sin(theta), var_z, var_c, centers)

    def _attenuation_model(self, mu_map: Volume) -> projector.AttenuationModel:
        if mu_map.unit != "1/mm":
            raise ValueError(f"mu-map unit must be '1/mm', got {mu_map.unit!r}")
        if not mu_map.grid.same_as(self.grid, tol_mm=_GRID_TOLERANCE_MM):
            raise ValueError(
                f"mu-map grid (shape {mu_map.grid.shape}, spacing {mu_map.grid.spacing_mm} mm, origin "
                f"{mu_map.grid.origin_mm} mm) differs from the reconstruction grid (shape {self.grid.shape}, "
                f"spacing {self.grid.spacing_mm} mm, origin {self.grid.origin_mm} mm): resample the mu-map "
                f"onto the reconstruction grid first"
            )
        mu = to_host(mu_map.data)
        from recon.spect.plausibility import check_mu_values  # noqa: PLC0415

        check_mu_values(mu, self.photon_energy_kev)
        from recon.data.materials import linear_mu_per_mm  # noqa: PLC0415

        water = linear_mu_per_mm("water", min(max(self.photon_energy_kev, 50.0), 600.0))
        body = mu > _BODY_MU_FRACTION_OF_WATER * water
        check_inside_fov(body, self.grid, "the body outline of the mu-map")
        check_orbit_clears_body(body, self.grid, self.geometry)
        mu_dev = to_device(np.ascontiguousarray(mu, dtype=np.float32), self.device)
        att = projector.attenuation_model(mu_dev, self.proj_geometry, self.geometry.pixel_size_mm, self.geometry.n_cols)
        logger.info("attenuation on the fly: %d views, %.1f MiB (mu-map and ray transmissions) on %s",
                    self.geometry.n_views, att.nbytes / 2**20, self.device)
        return att

    def views_array(self, views: Any | None) -> Any:
        """View indices as an int64 array on this model's device (all views when None), range-checked."""
        if views is None:
            return self._all_views
        host = np.asarray(to_host(views), dtype=np.int64).reshape(-1)
        if host.size == 0 or host.min() < 0 or host.max() >= self.geometry.n_views:
            raise ValueError(f"view indices must be a non-empty set in [0, {self.geometry.n_views})")
        return self._xp.asarray(host)

    def workspace(self, n_views: int) -> projector.ProjectorWorkspace:
        """Scratch buffers for up to ``n_views`` views, allocated once and reused."""
        for size, ws in self._workspaces.items():
            if size >= n_views:
                return ws
        nz, ny, nx = self.image_shape
        ws = projector.ProjectorWorkspace.allocate(self._xp, n_views, nz, self.n_depth, self.geometry.n_cols, (ny, nx))
        self._workspaces = {n_views: ws}
        return ws

    def forward(self, image: Any, views: Any | None = None) -> Any:
        """Expected counts (len(views), rows, cols) of image (z, y, x) without the additive term.

        Only the reconstruction circle (:func:`fov_mask`) is projected, the same in every view.
        """
        return self.subset_operator(views).apply(image)

    def back(self, proj: Any, views: Any | None = None) -> Any:
        """Adjoint of :meth:`forward`: image (z, y, x), zero outside the reconstruction circle."""
        return self.subset_operator(views).adjoint(proj)

    def subset_operator(self, views: Any) -> Any:
        """The linear operator restricted to ``views`` (checked and moved to the device once): the
        projector, times the row weights M when the model has them."""
        op = SPECTViewsOperator(self, self.views_array(views))
        if self.row_weights is None:
            return op
        return compose(ElementwiseMultiply(self.row_weights, shape=op.out_shape), op)

    def _forward_views(self, image: Any, views_dev: Any, out: Any | None = None) -> Any:
        """Projections of ``views_dev`` into ``out`` (overwritten), or a new array when None."""
        if tuple(image.shape) != self.image_shape:
            raise ValueError(f"image shape {tuple(image.shape)} != model image shape {self.image_shape}")
        masked = self._mask_into(image, self._masked_image)  # reused buffer: no image-sized allocation per subset
        return projector.forward(masked, self.proj_geometry, views_dev, self.attenuation,
                                 self.workspace(int(views_dev.size)), out=out)

    def _back_views(self, proj: Any, views_dev: Any, out: Any | None = None) -> Any:
        """Back projection of ``views_dev`` into ``out`` (overwritten, not added to), or a new array when None."""
        if out is not None:
            out.fill(0.0)  # the projector adds into out
        img = projector.back(proj, self.proj_geometry, views_dev, self.image_shape, self.attenuation,
                             self.workspace(int(views_dev.size)), out=out)
        return self._mask_into(img, img)

    def _mask_into(self, image: Any, out: Any) -> Any:
        """out = image x the reconstruction circle (``out`` may be ``image``); returns out. On the host slice
        by slice: a broadcast NumPy multiply allocates an iterator buffer (32 KiB) per call on small images."""
        if self.device == "cpu":
            fov = self.fov[0]
            for z in range(image.shape[0]):
                np.multiply(image[z], fov, out=out[z])
        else:
            self._xp.multiply(image, self.fov, out=out)
        return out


class SPECTViewsOperator:
    """A LinearOperator for a subset of views: apply (image -> projections) and its exact adjoint, as new
    arrays or (``apply_into`` / ``adjoint_into``) into preallocated ones without allocating."""

    inplace_safe = False  # image and projections differ in shape: out is never the input

    def __init__(self, model: SPECTSystemModel, views: Any) -> None:
        self.model = model
        self.views = views
        self.in_shape: tuple[int, ...] = model.image_shape
        self.out_shape: tuple[int, ...] = (int(views.size), model.geometry.n_rows, model.geometry.n_cols)

    def apply(self, x: Any) -> Any:
        """Forward projection of x for this subset's views."""
        return self.model._forward_views(x, self.views)

    def adjoint(self, y: Any) -> Any:
        """Back projection of y for this subset's views."""
        return self.model._back_views(y, self.views)

    def apply_into(self, x: Any, out: Any) -> Any:
        """Forward projection of x written into ``out`` (``out_shape``, float32, C-contiguous); returns out."""
        _check_into("apply", out, self.out_shape)
        return self.model._forward_views(x, self.views, out=out)

    def adjoint_into(self, y: Any, out: Any) -> Any:
        """Back projection of y written into ``out`` (``in_shape``, float32, C-contiguous; overwritten);
        returns out."""
        if tuple(y.shape) != self.out_shape:
            raise ValueError(f"SPECTViewsOperator: adjoint input shape {tuple(y.shape)} != expected {self.out_shape}")
        _check_into("adjoint", out, self.in_shape)
        return self.model._back_views(y, self.views, out=out)


def _check_into(what: str, out: Any, shape: tuple[int, ...]) -> None:
    if tuple(out.shape) != tuple(shape):
        raise ValueError(f"SPECTViewsOperator: {what} out shape {tuple(out.shape)} != expected {tuple(shape)}")
