"""List-mode events -> sinograms, and time frames for dynamic studies.

Histogramming uses :meth:`SinogramLayout.bins_of_events` and ``np.bincount``: an event and
the same pair recorded the other way round land in the same bin, the TOF bin mirrored
(see :mod:`recon.data.pet_sinogram`). Events that fall in no bin of the layout (outside the
radial range, beyond the maximum ring difference, in a block gap) are dropped and counted
(logged at INFO). Prompts keep their TOF bins when the layout is TOF; delayed coincidences
always go to a non-TOF sinogram ``(view, plane, radial)`` (their timing carries no position).

Frames. A frame is the half-open interval ``[start_s, start_s + duration_s)`` of time from the
acquisition start; a frame that ends exactly at the end of the acquisition also holds the
events recorded at that last instant, so consecutive frames covering the acquisition split its
events exactly. Frames outside ``0 .. acquisition_duration_s`` are refused before any work.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from recon.data.pet import ListModeAcquisition, ListModeEvents, PETSinogram
from recon.data.pet_sinogram import SinogramLayout

__all__ = ["EventFrame", "frame_events", "histogram_delayed", "histogram_events", "histogram_prompts"]

logger = logging.getLogger(__name__)

_TIME_TOLERANCE_S = 1e-9


@dataclass(frozen=True)
class EventFrame:
    """One time frame: start and duration (s, from the acquisition start) and its events (times unchanged)."""

    start_s: float
    duration_s: float
    events: ListModeEvents

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s


def _check_scanner(events: ListModeEvents, layout: SinogramLayout) -> None:
    sc = layout.scanner
    if events.scanner_name != sc.name:
        raise ValueError(f"list-mode events were recorded on scanner {events.scanner_name!r}, "
                         f"the sinogram layout is for {sc.name!r}")
    if events.tof_bin is not None and events.n_events:
        t = np.asarray(events.tof_bin)
        if int(t.min()) < 0 or int(t.max()) >= sc.n_tof_bins:
            raise ValueError(f"list-mode TOF bins {int(t.min())}..{int(t.max())} do not match scanner {sc.name!r}, "
                             f"which has {sc.n_tof_bins} TOF bin(s) (0..{sc.n_tof_bins - 1})")


def _bincount(layout: SinogramLayout, da: np.ndarray, db: np.ndarray, tof: np.ndarray | None,
              what: str) -> np.ndarray:
    flat, valid = layout.bins_of_events(da, db, tof)
    n_bins = int(np.prod(layout.shape))
    counts = np.bincount(flat[valid], minlength=n_bins).astype(np.float32)
    dropped = int(valid.size - np.count_nonzero(valid))
    if dropped:
        logger.info("%s: %d of %d events fall in no sinogram bin of the layout and were dropped",
                    what, dropped, valid.size)
    return counts.reshape(layout.shape)


def _selection(events: ListModeEvents, delayed: bool) -> np.ndarray:
    if events.delayed is None:
        return np.full(events.n_events, not delayed)
    flags = np.asarray(events.delayed, bool)
    return flags if delayed else ~flags


def histogram_prompts(events: ListModeEvents, layout: SinogramLayout) -> np.ndarray:
    """Prompt events (``delayed`` False or absent) -> float32 sinogram of ``layout.shape`` (counts).

    A TOF layout needs the events' TOF bins; a non-TOF layout sums over them.
    """
    _check_scanner(events, layout)
    keep = _selection(events, delayed=False)
    tof = None
    if layout.tof:
        if events.tof_bin is None:
            raise ValueError("a TOF sinogram layout needs list-mode events with TOF bins (tof_bin is absent)")
        tof = np.asarray(events.tof_bin)[keep]
    return _bincount(layout, np.asarray(events.detector_a)[keep], np.asarray(events.detector_b)[keep], tof,
                     "prompts")


def histogram_delayed(events: ListModeEvents, layout: SinogramLayout) -> np.ndarray | None:
    """Delayed events -> float32 non-TOF sinogram ``(view, plane, radial)`` (counts); None without delayed flags."""
    _check_scanner(events, layout)
    if events.delayed is None:
        return None
    keep = _selection(events, delayed=True)
    flat_layout = dataclasses.replace(layout, tof=False) if layout.tof else layout
    return _bincount(flat_layout, np.asarray(events.detector_a)[keep], np.asarray(events.detector_b)[keep], None,
                     "delayed")


def histogram_events(events: ListModeEvents | EventFrame | ListModeAcquisition, layout: SinogramLayout, *,
                     frame_start_s: float | None = None, frame_duration_s: float | None = None,
                     **metadata: Any) -> PETSinogram:
    """A :class:`PETSinogram` of prompts (and delayed, when the events carry the flag).

    ``events`` is a whole acquisition (frame 0 .. ``acquisition_duration_s``; a
    :class:`ListModeAcquisition` also hands over its placement and study records) or an
    :class:`EventFrame` (its start and duration). ``frame_start_s`` / ``frame_duration_s`` (s)
    override those. ``metadata``: the other :class:`PETSinogram` fields (``placement``, ``info``,
    ``patient``, ``dose``, ``image_grid``), which win over the acquisition's.
    """
    if isinstance(events, ListModeAcquisition):
        metadata = {"placement": events.placement, "info": events.info, "patient": events.patient,
                    "dose": events.dose, **metadata}
        events = events.events
    if isinstance(events, EventFrame):
        start, duration, ev = events.start_s, events.duration_s, events.events
    else:
        start, duration, ev = 0.0, float(events.acquisition_duration_s), events
    start = start if frame_start_s is None else float(frame_start_s)
    duration = duration if frame_duration_s is None else float(frame_duration_s)
    prompts = histogram_prompts(ev, layout)
    delayed = histogram_delayed(ev, layout)
    return PETSinogram(layout, prompts, frame_duration_s=duration, frame_start_s=start, delayed=delayed, **metadata)


def _subset(events: ListModeEvents, keep: np.ndarray) -> ListModeEvents:
    def pick(value: Any) -> Any:
        return None if value is None else np.asarray(value)[keep]

    return dataclasses.replace(events, detector_a=pick(events.detector_a), detector_b=pick(events.detector_b),
                               time_s=pick(events.time_s), tof_bin=pick(events.tof_bin),
                               delayed=pick(events.delayed))


def frame_events(events: ListModeEvents, frame_starts_s: Sequence[float],
                 frame_durations_s: Sequence[float]) -> list[EventFrame]:
    """Split ``events`` into time frames ``[start, start + duration)`` (s from the acquisition start).

    Every frame is checked before any event is touched: starts >= 0, durations > 0 and every
    frame within the acquisition (``0 .. acquisition_duration_s``); otherwise a ValueError names
    the frame. Frames may overlap or leave gaps; each event goes to every frame holding its time.
    """
    starts = np.atleast_1d(np.asarray(frame_starts_s, np.float64))
    durations = np.atleast_1d(np.asarray(frame_durations_s, np.float64))
    if starts.ndim != 1 or starts.shape != durations.shape or starts.size == 0:
        raise ValueError(f"frame starts and durations must be two equal-length non-empty lists, got "
                         f"{starts.size} starts and {durations.size} durations")
    total = float(events.acquisition_duration_s)
    for i, (s, d) in enumerate(zip(starts, durations)):
        if not (np.isfinite(s) and np.isfinite(d)):
            raise ValueError(f"frame {i}: start {s} s and duration {d} s must be finite")
        if d <= 0:
            raise ValueError(f"frame {i}: duration must be positive, got {d} s")
        if s < 0 or s + d > total + _TIME_TOLERANCE_S:
            raise ValueError(f"frame {i} ({s:g}..{s + d:g} s) lies outside the acquisition (0..{total:g} s)")
    t = np.asarray(events.time_s, np.float64)
    frames = []
    for s, d in zip(starts, durations):
        end = s + d
        keep = (t >= s) & (t < end)
        if end >= total - _TIME_TOLERANCE_S:
            keep |= t >= total  # the acquisition's last instant belongs to the frame that ends there
        frames.append(EventFrame(float(s), float(d), _subset(events, keep)))
    return frames
