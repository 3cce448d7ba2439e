"""The PET system models, sinogram and list-mode, for the shared :func:`recon.algorithms.reconstruct`.

Expected prompts in sinogram bin i (TOF bin t)::

    y_it = m_i (G_t R x)_i + a_it,      m_i = n_i * att_i

- R: image-space Gaussian resolution model (FWHM from the scanner), self-adjoint;
- G: the Joseph projector (line integrals in mm; TOF-weighted per bin with TOF);
- m: multiplicative factors per LOR (normalisation times attenuation), the same for every TOF bin;
- a: the additive expectation (randoms + scatter), in counts.

x is in "counts" (mm^-1 scaled line-integral units over the frame); :mod:`recon.pet.calibration`
turns it into Bq/mL with the scanner calibration factor. Subsets are sets of views. The list-mode
model uses the same subsets (events grouped by their sinogram view) and the sinogram geometry's
sensitivity, so list-mode and sinogram OSEM of the same events take the same steps.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np

from recon.algorithms.operators import ElementwiseMultiply, compose
from recon.backend import array_module, resolve_device, to_device
from recon.data.grid import ImageGrid
from recon.data.pet import ListModeEvents, ScannerPlacement
from recon.data.pet_sinogram import SinogramLayout
from recon.pet.projector import ListModeProjector, SinogramProjector
from recon.pet.resolution import GaussianPSF

logger = logging.getLogger(__name__)


def _factors(layout: SinogramLayout, multiplicative: np.ndarray | None) -> np.ndarray:
    """Multiplicative factors (view, plane, radial), checked; ones when None."""
    shape = layout.shape[:3]
    if multiplicative is None:
        return np.ones(shape, np.float32)
    m = np.asarray(multiplicative)
    if tuple(m.shape) != shape:
        raise ValueError(f"multiplicative factors have shape {tuple(m.shape)}; expected the non-TOF sinogram {shape}")
    m = np.ascontiguousarray(m, dtype=np.float32)
    if not np.isfinite(m).all() or (m < 0).any():
        raise ValueError("multiplicative factors (normalisation x attenuation) must be finite and >= 0")
    return m


def _psf(grid: ImageGrid, fwhm_mm: float | tuple[float, float, float] | None) -> GaussianPSF | None:
    if fwhm_mm is None:
        return None
    return GaussianPSF(grid, fwhm_mm)


class PETSinogramModel:
    """y = m . (G R x) + a over a sinogram layout; subsets are sets of views."""

    def __init__(self, layout: SinogramLayout, placement: ScannerPlacement, grid: ImageGrid, *,
                 multiplicative: np.ndarray | None = None,
                 psf_fwhm_mm: float | tuple[float, float, float] | None = None, device: str = "auto") -> None:
        self.layout = layout
        self.placement = placement
        self.grid = grid
        self.device = resolve_device(device)
        self.data_shape = tuple(layout.shape)
        self.n_subset_units = layout.n_views
        self.projector = SinogramProjector(layout, placement, grid, self.device)
        self.psf = _psf(grid, psf_fwhm_mm)
        self._m = to_device(_factors(layout, multiplicative), self.device)

    @property
    def xp(self) -> Any:
        return array_module(self._m)

    def _views(self, indices: Any) -> np.ndarray:
        v = np.asarray(indices, dtype=np.int64)
        if v.ndim != 1 or v.size == 0 or v.min() < 0 or v.max() >= self.n_subset_units:
            raise ValueError(f"views must be a non-empty 1-D set in 0..{self.n_subset_units - 1}")
        return v

    def subset_operator(self, indices: Any) -> Any:
        views = self._views(indices)
        g = self.projector.operator(views)
        m = self._m[to_device(views, self.device)]
        if self.layout.tof:
            m = m[..., None]
        parts = [ElementwiseMultiply(self.xp.ascontiguousarray(m), shape=tuple(g.out_shape)), g]
        if self.psf is not None:
            parts.append(self.psf)
        return compose(*parts)

    def subset_data(self, array: Any, indices: Any) -> Any:
        views = to_device(self._views(indices), self.device)
        return self.xp.ascontiguousarray(to_device(array, self.device)[views])

    def forward(self, image: Any) -> Any:
        """m . (G R x) for the whole sinogram (layout shape), on the model's device."""
        return self.subset_operator(np.arange(self.n_subset_units)).apply(to_device(image, self.device))


class PETListModeModel:
    """List-mode y_e = 1 per event, expected m_e (G_e R x) + a_e; subsets = events grouped by sinogram view.

    Events are mapped to the layout's bins (:meth:`SinogramLayout.bins_of_events`); events outside the
    layout (radial range, ring difference, block gaps) are dropped and counted. The sensitivity of a
    subset is the sinogram geometry's ``(m G_b R)^T 1`` over *all* its LORs, non-TOF (the TOF kernel of
    every LOR sums to its non-TOF line integral over the bins).
    """

    def __init__(self, layout: SinogramLayout, placement: ScannerPlacement, grid: ImageGrid,
                 events: ListModeEvents, *, multiplicative: np.ndarray | None = None,
                 psf_fwhm_mm: float | tuple[float, float, float] | None = None, device: str = "auto") -> None:
        if layout.span != 1:
            raise ValueError("list-mode reconstruction needs a span-1 layout (its sensitivity is computed per ring pair)")
        self.layout = layout
        self.grid = grid
        self.device = resolve_device(device)
        tof_bins = events.tof_bin if layout.tof else None
        if layout.tof and tof_bins is None:
            raise ValueError("a TOF list-mode reconstruction needs the events' TOF bins")
        if layout.tof and events.tof_bin is not None:
            t = np.asarray(events.tof_bin)
            if t.size and (t.min() < 0 or t.max() >= layout.n_tof):
                raise ValueError(f"event TOF bins span {int(t.min())}..{int(t.max())}; the scanner has {layout.n_tof} bins")
        prompts = np.ones(events.n_events, bool) if events.delayed is None else ~np.asarray(events.delayed, bool)
        flat, valid = layout.bins_of_events(np.asarray(events.detector_a)[prompts], np.asarray(events.detector_b)[prompts],
                                            None if tof_bins is None else np.asarray(tof_bins)[prompts])
        self.n_dropped = int((~valid).sum())
        if self.n_dropped:
            logger.info("list-mode: %d of %d prompt events fall outside the sinogram layout and are not used",
                        self.n_dropped, int(prompts.sum()))
        keep = np.flatnonzero(prompts)[valid]
        flat = flat[valid]
        per_view = layout.n_planes * layout.n_radial * layout.n_tof
        view = flat // per_view
        order = np.argsort(view, kind="stable")
        self.event_index = keep[order]  # the events used, grouped by view
        self.event_bin = flat[order]  # flat (TOF) sinogram bin of each used event
        self._view_start = np.searchsorted(view[order], np.arange(layout.n_views + 1))
        self.data_shape = (int(self.event_index.size),)
        self.n_subset_units = layout.n_views
        m = _factors(layout, multiplicative)
        self._m_sino = m
        nontof_bin = self.event_bin // layout.n_tof
        self._m_event = to_device(np.ascontiguousarray(m.reshape(-1)[nontof_bin]), self.device)
        da = np.asarray(events.detector_a)[self.event_index]
        db = np.asarray(events.detector_b)[self.event_index]
        tb = None if tof_bins is None else np.asarray(tof_bins)[self.event_index]
        self.projector = ListModeProjector(layout, placement, grid, da, db, tb, self.device)
        self.psf = _psf(grid, psf_fwhm_mm)
        nontof = SinogramLayout(layout.scanner, layout.n_radial, 1, layout.max_ring_difference, tof=False)
        self._sensitivity_model = PETSinogramModel(nontof, placement, grid, multiplicative=m,
                                                   psf_fwhm_mm=psf_fwhm_mm, device=self.device)

    @property
    def xp(self) -> Any:
        return self._sensitivity_model.xp

    def _events(self, indices: Any) -> np.ndarray:
        views = np.asarray(indices, dtype=np.int64)
        if views.ndim != 1 or views.size == 0 or views.min() < 0 or views.max() >= self.n_subset_units:
            raise ValueError(f"views must be a non-empty 1-D set in 0..{self.n_subset_units - 1}")
        parts = [np.arange(self._view_start[v], self._view_start[v + 1]) for v in views]
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    def subset_operator(self, indices: Any) -> Any:
        ev = self._events(indices)
        g = self.projector.operator(ev)
        m = self._m_event[to_device(ev, self.device)]
        parts = [ElementwiseMultiply(self.xp.ascontiguousarray(m)), g]
        if self.psf is not None:
            parts.append(self.psf)
        return compose(*parts)

    def subset_data(self, array: Any, indices: Any) -> Any:
        ev = to_device(self._events(indices), self.device)
        return self.xp.ascontiguousarray(to_device(array, self.device)[ev])

    def subset_sensitivity(self, indices: Any) -> Any:
        op = self._sensitivity_model.subset_operator(indices)
        return op.adjoint(self.xp.ones(tuple(op.out_shape), dtype=self.xp.float32))

    def event_values(self, sinogram: np.ndarray) -> np.ndarray:
        """Per used event, the value of a layout-shaped sinogram (e.g. randoms + scatter) in its bin."""
        s = np.asarray(sinogram, np.float32)
        if tuple(s.shape) != tuple(self.layout.shape):
            raise ValueError(f"sinogram shape {tuple(s.shape)} != layout {tuple(self.layout.shape)}")
        return np.ascontiguousarray(s.reshape(-1)[self.event_bin])
