"""The detector's axial (row) sensitivity, read from the projections.

A gamma camera's useful field of view can be shorter than its projection matrix: the GE Discovery 670's
128 rows of 4.42 mm (566 mm) cover a 40 cm crystal, so about 18 rows at each end hold only stray counts
and the 2-3 rows at the crystal's edge record a fraction (3-86 %) of what the object sends them. Those
edge rows, modelled at full sensitivity, force the end slices to explain counts that were never
recorded (they come out low, then overshoot).

:func:`row_mask` classifies each row as fully sensitive (1) or not (0):

* rows outside the run of rows with counts (:func:`active_rows`: the share of (view, column) pixels with
  counts, all windows, at least half the highest row's) are outside the field of view;
* next to such empty rows only (a detector edge), walking inwards, a row whose counts (all windows, summed
  over views and columns) are below ``PARTIAL_FRACTION`` of the median of the next
  ``REFERENCE_ROWS`` rows inwards is partially shielded; at most ``MAX_PARTIAL_ROWS`` rows per end.

The mask is a row weight on the projection side of the system model (``y = M (A x) + s``, M diagonal,
self-adjoint), so OSEM ignores the masked rows; the slices seen only by masked rows get no sensitivity
and are set to 0. Projections whose every row holds counts (the normal case) get no mask at all: the
model is then exactly the unmasked one.
"""
from __future__ import annotations

import numpy as np

from recon.data.spect import SPECTAcquisition

PARTIAL_FRACTION = 0.9  # an edge row below 90 % of its inner neighbours is partially shielded
REFERENCE_ROWS = 3  # inner neighbours whose median is the reference level
MAX_PARTIAL_ROWS = 4  # at most this many partial rows per detector edge (GE 670: 3)

__all__ = ["MAX_PARTIAL_ROWS", "PARTIAL_FRACTION", "active_rows", "row_mask"]


def _total(acq: SPECTAcquisition) -> np.ndarray:
    total = np.zeros(acq.counts[acq.windows[0].name].shape, dtype=np.float64)
    for w in acq.windows:
        total += np.asarray(acq.counts[w.name], dtype=np.float64)
    return total


def active_rows(acq: SPECTAcquisition, fraction: float = 0.5) -> np.ndarray:
    """(n_rows,) float: 1 on rows where the share of (view, column) pixels with counts, all windows summed,
    is at least ``fraction`` of the highest row's share, else 0. Rows outside the detector's useful field of
    view hold only stray counts (the GE 670: about 1 % of their pixels, against 60-87 % inside)."""
    share = (_total(acq) > 0).mean(axis=(0, 2))
    if share.max() <= 0:
        return np.zeros_like(share)
    return (share >= fraction * share.max()).astype(np.float64)


def row_mask(acq: SPECTAcquisition) -> np.ndarray:
    """(n_rows,) float: 1 on the fully sensitive detector rows, 0 on empty rows outside the field of view
    and on the partially shielded rows next to them (module docstring); all ones for projections whose
    every row holds counts."""
    active = active_rows(acq)
    on = np.nonzero(active)[0]
    if on.size == 0:
        return active
    n = active.size
    mask = np.zeros(n, dtype=np.float64)
    lo, hi = int(on[0]), int(on[-1])
    mask[lo:hi + 1] = 1.0  # a row with few counts inside the run is not a detector edge
    rows = _total(acq).sum(axis=(0, 2))
    for start, step, edge in ((lo, 1, lo > 0), (hi, -1, hi < n - 1)):
        if not edge:
            continue  # the run reaches the end of the matrix: no detector edge seen
        r = start
        for _ in range(MAX_PARTIAL_ROWS):
            inner = rows[r + 1:r + 1 + REFERENCE_ROWS] if step > 0 else rows[max(r - REFERENCE_ROWS, 0):r]
            if inner.size < REFERENCE_ROWS or rows[r] >= PARTIAL_FRACTION * float(np.median(inner)):
                break
            mask[r] = 0.0
            r += step
    return mask
