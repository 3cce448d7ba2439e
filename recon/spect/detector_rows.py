"""The detector's axial (row) sensitivity, read from the projections.

A gamma camera's useful field of view can be shorter than its projection matrix: the GE Discovery 670's
128 rows of 4.42 mm (566 mm) cover a 40 cm crystal, so about 18 rows at each end hold only stray counts
and the 2-3 rows at the crystal's edge record a fraction (3-86 %) of what the object sends them. Those
edge rows, modelled at full sensitivity, force the end slices to explain counts that were never
recorded (they come out low, then overshoot).

:func:`row_mask` classifies each row as fully sensitive (1) or not (0):

* only when the projections show a detector edge (:func:`is_detector_edge`): rows without counts at both
  ends (:func:`active_rows`: the share of (view, column) pixels with counts, all windows, below half the
  highest row's), in runs of equal length within 2 rows (a useful field centred on the matrix), around a
  run of rows with counts at least half the matrix long (the GE 670: 18 empty rows at each end, 92 with
  counts). Otherwise the mask is all ones: empty rows beyond an object that ends inside the field carry
  the information that there is no activity there, and its end rows are not partially shielded;
* the empty rows are outside the field of view;
* walking inwards from the first row with counts, the rows
  whose counts (all windows, summed over views and columns) are below ``PARTIAL_FRACTION`` of the
  reference level are partially shielded, up to the first row that is not and at most
  ``MAX_PARTIAL_ROWS``; the reference level is the median of the ``REFERENCE_ROWS`` rows just beyond
  the widest partial edge (rows ``MAX_PARTIAL_ROWS`` to ``MAX_PARTIAL_ROWS + REFERENCE_ROWS - 1`` from
  the first row with counts). On the GE study: rows 18-20 and 107-109 (10-86 % of the level), both beds.

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
SYMMETRY_ROWS = 2  # the empty runs at the two ends of a centred useful field differ by at most this (GE 670: 0)
MIN_FIELD_FRACTION = 0.5  # a useful field spans at least this share of the rows (GE 670: 92 of 128)

__all__ = ["MAX_PARTIAL_ROWS", "PARTIAL_FRACTION", "active_rows", "is_detector_edge", "row_mask"]


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


def is_detector_edge(lo: int, hi: int, n_rows: int) -> bool:
    """Whether the run of rows with counts ``lo``..``hi`` of ``n_rows`` is the detector's useful field of view:
    rows without counts at both ends, in runs of equal length within ``SYMMETRY_ROWS`` (the useful field is
    centred on the projection matrix), and the run at least ``MIN_FIELD_FRACTION`` of the rows. An object
    ending inside the field (a head's top, a phantom with no counts beyond it) leaves empty rows at one end
    or in unequal runs, and keeps its model unchanged."""
    below, above = lo, n_rows - 1 - hi
    return (below > 0 and above > 0 and abs(below - above) <= SYMMETRY_ROWS
            and hi - lo + 1 >= MIN_FIELD_FRACTION * n_rows)


def row_mask(acq: SPECTAcquisition) -> np.ndarray:
    """(n_rows,) float: 1 on the fully sensitive detector rows, 0 on empty rows outside the field of view
    and on the partially shielded rows next to them (module docstring); all ones for projections whose
    every row holds counts."""
    active = active_rows(acq)
    on = np.nonzero(active)[0]
    if on.size == 0:
        return active
    n = active.size
    lo, hi = int(on[0]), int(on[-1])
    if not is_detector_edge(lo, hi, n):
        return np.ones(n, dtype=np.float64)  # counts on every row, or an object that ends inside the field
    mask = np.zeros(n, dtype=np.float64)
    mask[lo:hi + 1] = 1.0  # a row with few counts inside the run is not a detector edge
    rows = _total(acq).sum(axis=(0, 2))
    for start, step in ((lo, 1), (hi, -1)):
        first_ref = start + step * MAX_PARTIAL_ROWS  # the reference rows lie beyond the widest partial edge
        ref_rows = [first_ref + step * k for k in range(REFERENCE_ROWS)]
        if not all(lo <= r <= hi for r in ref_rows):
            continue  # too few rows to tell an edge
        level = float(np.median(rows[ref_rows]))
        r = start
        while r != first_ref and rows[r] < PARTIAL_FRACTION * level:
            mask[r] = 0.0
            r += step
    return mask
