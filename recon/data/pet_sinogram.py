"""3D PET sinogram layout: which detector pair each bin holds, and its line of response in mm.

Axis order of sinogram data: ``(view, plane, radial)`` without TOF and ``(view, plane, radial, tof)``
with TOF; views come first so that subsets (sets of views) are contiguous blocks.

Transaxial bins. With ``N`` crystals per ring (gap crystals included), view ``v`` in ``0..N/2-1``
and radial offset ``k = r - n_radial // 2`` for radial index ``r``, the bin joins the *first*
crystal ``i = (v - floor(k / 2)) mod N`` and the *second* crystal ``j = (i + N/2 + k) mod N``.
Thus ``i + j = 2v + N/2 + (k mod 2)`` (interleaved angles: both parities share a view) and
``k = 0`` is a diameter. Every unordered crystal pair with ``|k|`` in range appears exactly once.

Axial bins (planes). A ring pair ``(ra, rb)`` (ring of the first, of the second crystal) has ring
difference ``d = rb - ra``. With span ``S`` (odd), segment ``s`` holds the ring differences
``s*S - (S-1)/2 .. s*S + (S-1)/2`` (clipped to the maximum ring difference); segments are ordered
0, +1, -1, +2, -2, ... Within a segment, planes are ordered by ``ra + rb``; a plane merges every ring
pair of its segment with that sum (span 1: one ring pair per plane). A merged plane is modelled
by one LOR at the mean axial positions of its ring pairs, with weight = the number of ring pairs
(the usual span approximation; exact for span 1).

TOF. Bin ``t`` of ``n_tof`` is centred ``(t - (n_tof - 1) / 2) * tof_bin_width_mm`` from the LOR
midpoint towards the *second* crystal. An event recorded with the crystals the other way round
has its TOF bin mirrored (``n_tof - 1 - t``).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from recon.data.pet_scanner import PETScanner


@dataclass(frozen=True)
class SinogramLayout:
    """Sinogram bins of ``scanner``: radial bins, span, maximum ring difference and TOF on/off."""

    scanner: PETScanner
    n_radial: int
    span: int = 1
    max_ring_difference: int | None = None
    tof: bool = False

    def __post_init__(self) -> None:
        n = self.scanner.crystals_per_ring
        if isinstance(self.n_radial, bool) or int(self.n_radial) != self.n_radial or not 1 <= self.n_radial <= n // 2:
            raise ValueError(f"n_radial must be an integer in 1..{n // 2} for {n} crystals per ring, got {self.n_radial!r}")
        if isinstance(self.span, bool) or int(self.span) != self.span or self.span < 1 or self.span % 2 == 0:
            raise ValueError(f"span must be an odd integer >= 1, got {self.span!r}")
        mrd = self.scanner.max_ring_difference if self.max_ring_difference is None else int(self.max_ring_difference)
        if not 0 <= mrd <= self.scanner.n_rings - 1:
            raise ValueError(f"max_ring_difference must be in 0..{self.scanner.n_rings - 1}, got {self.max_ring_difference}")
        object.__setattr__(self, "max_ring_difference", mrd)
        if self.tof and not self.scanner.has_tof:
            raise ValueError(f"scanner {self.scanner.name!r} has no time of flight; use tof=False")

    @classmethod
    def for_fov(cls, scanner: PETScanner, fov_diameter_mm: float, **kwargs) -> "SinogramLayout":
        """A layout whose radial bins cover a transaxial field of view of ``fov_diameter_mm``."""
        n = scanner.crystals_per_ring
        half_angle = np.arcsin(min(1.0, fov_diameter_mm / 2.0 / scanner.lor_radius_mm))
        k_max = int(np.ceil(half_angle * n / np.pi))
        return cls(scanner, n_radial=min(n // 2, 2 * k_max + 1), **kwargs)

    # --- sizes -----------------------------------------------------------------------
    @property
    def n_views(self) -> int:
        return self.scanner.crystals_per_ring // 2

    @property
    def n_tof(self) -> int:
        return self.scanner.n_tof_bins if self.tof else 1

    @property
    def n_planes(self) -> int:
        return int(self._planes[0].shape[0])

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of sinogram data: (view, plane, radial) or (view, plane, radial, tof)."""
        base = (self.n_views, self.n_planes, self.n_radial)
        return base + (self.n_tof,) if self.tof else base

    @property
    def n_lors(self) -> int:
        return self.n_views * self.n_planes * self.n_radial

    # --- transaxial geometry ------------------------------------------------------------
    def crystal_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """(first, second) crystal indices within a ring, each of shape (n_views, n_radial)."""
        n = self.scanner.crystals_per_ring
        v = np.arange(self.n_views)[:, None]
        k = np.arange(self.n_radial)[None, :] - self.n_radial // 2
        first = (v - np.floor_divide(k, 2)) % n
        second = (first + n // 2 + k) % n
        return first.astype(np.int64), second.astype(np.int64)

    def transaxial_endpoints_mm(self) -> tuple[np.ndarray, np.ndarray]:
        """(xy_first, xy_second): float32 (n_views, n_radial, 2) scanner-frame positions (mm)."""
        first, second = self.crystal_pairs()
        xy = self.scanner.crystal_xy_mm()
        return xy[first].astype(np.float32), xy[second].astype(np.float32)

    def transaxial_present(self) -> np.ndarray:
        """(n_views, n_radial) bool: both crystals are real (not block-gap crystals)."""
        first, second = self.crystal_pairs()
        present = self.scanner.crystal_present()
        return present[first] & present[second]

    @cached_property
    def _transaxial_lut(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = self.scanner.crystals_per_ring
        view = np.full((n, n), -1, np.int32)
        radial = np.full((n, n), -1, np.int32)
        flipped = np.zeros((n, n), bool)
        first, second = self.crystal_pairs()
        v = np.broadcast_to(np.arange(self.n_views)[:, None], first.shape)
        r = np.broadcast_to(np.arange(self.n_radial)[None, :], first.shape)
        view[first, second], radial[first, second] = v, r
        view[second, first], radial[second, first], flipped[second, first] = v, r, True
        return view, radial, flipped

    # --- axial geometry ------------------------------------------------------------------
    def segment_ring_differences(self) -> list[tuple[int, int]]:
        """Inclusive (lowest, highest) ring difference of each segment, in segment order."""
        half = (self.span - 1) // 2
        mrd = self.max_ring_difference
        out = [(max(-half, -mrd), min(half, mrd))]
        s = 1
        while s * self.span - half <= mrd:
            lo, hi = s * self.span - half, min(s * self.span + half, mrd)
            out += [(lo, hi), (-hi, -lo)]
            s += 1
        return out

    @cached_property
    def _planes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per plane: segment index, mean ring of first / second crystal, weight; and the ring-pair LUT."""
        n_rings = self.scanner.n_rings
        lut = np.full((n_rings, n_rings), -1, np.int32)
        seg_of, ra_mean, rb_mean, weight = [], [], [], []
        for seg, (lo, hi) in enumerate(self.segment_ring_differences()):
            pairs = [(ra, ra + d) for d in range(lo, hi + 1) for ra in range(n_rings) if 0 <= ra + d < n_rings]
            for total in sorted({ra + rb for ra, rb in pairs}):
                members = [(ra, rb) for ra, rb in pairs if ra + rb == total]
                plane = len(seg_of)
                for ra, rb in members:
                    lut[ra, rb] = plane
                seg_of.append(seg)
                ra_mean.append(np.mean([p[0] for p in members]))
                rb_mean.append(np.mean([p[1] for p in members]))
                weight.append(len(members))
        return (np.asarray(seg_of, np.int32), np.asarray(ra_mean), np.asarray(rb_mean),
                np.asarray(weight, np.float32), lut)

    def plane_segments(self) -> np.ndarray:
        """(n_planes,) int32: segment index of each plane (order of :meth:`segment_ring_differences`)."""
        return self._planes[0]

    def plane_weights(self) -> np.ndarray:
        """(n_planes,) float32: ring pairs merged into each plane."""
        return self._planes[3]

    def plane_z_mm(self) -> tuple[np.ndarray, np.ndarray]:
        """(z_first, z_second): float32 (n_planes,) axial positions (mm, scanner frame) of each plane's LOR."""
        pitch = self.scanner.ring_spacing_mm
        centre = (self.scanner.n_rings - 1) / 2.0
        _, ra, rb, _, _ = self._planes
        return ((ra - centre) * pitch).astype(np.float32), ((rb - centre) * pitch).astype(np.float32)

    def ring_pair_plane(self) -> np.ndarray:
        """(n_rings, n_rings) int32: the plane of ring pair (ring of first, ring of second); -1 if excluded."""
        return self._planes[4]

    # --- lines of response --------------------------------------------------------------
    def lor_endpoints_mm(self, views: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(first, second): float32 (n_sel_views, n_planes, n_radial, 3) scanner-frame LOR ends (x, y, z, mm)."""
        xy_a, xy_b = self.transaxial_endpoints_mm()
        if views is not None:
            xy_a, xy_b = xy_a[np.asarray(views)], xy_b[np.asarray(views)]
        za, zb = self.plane_z_mm()
        shape = (xy_a.shape[0], self.n_planes, self.n_radial, 3)
        a = np.empty(shape, np.float32)
        b = np.empty(shape, np.float32)
        a[..., :2] = xy_a[:, None, :, :]
        b[..., :2] = xy_b[:, None, :, :]
        a[..., 2] = za[None, :, None]
        b[..., 2] = zb[None, :, None]
        return a, b

    def bins_of_events(self, detector_a: np.ndarray, detector_b: np.ndarray,
                       tof_bin: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Flat sinogram bin index of each event and whether it falls in the sinogram.

        Detector ids are ``ring * crystals_per_ring + crystal``; ids out of range are refused.
        Events outside the radial range, beyond the maximum ring difference, in a block gap or
        between two crystals of the same half-ring chord (no bin) are marked invalid.
        """
        sc = self.scanner
        da = np.asarray(detector_a, np.int64)
        db = np.asarray(detector_b, np.int64)
        for name, ids in (("detector_a", da), ("detector_b", db)):
            if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= sc.n_crystals):
                raise ValueError(f"{name} ids out of range 0..{sc.n_crystals - 1} for scanner {sc.name!r}: "
                                 f"found {int(ids.min())}..{int(ids.max())}")
        ring_a, cry_a = np.divmod(da, sc.crystals_per_ring)
        ring_b, cry_b = np.divmod(db, sc.crystals_per_ring)
        view_lut, radial_lut, flipped_lut = self._transaxial_lut
        view = view_lut[cry_a, cry_b]
        radial = radial_lut[cry_a, cry_b]
        flip = flipped_lut[cry_a, cry_b]
        first_ring = np.where(flip, ring_b, ring_a)
        second_ring = np.where(flip, ring_a, ring_b)
        plane = self.ring_pair_plane()[first_ring, second_ring]
        present = sc.crystal_present()
        valid = (view >= 0) & (plane >= 0) & present[cry_a] & present[cry_b]
        flat = (view.astype(np.int64) * self.n_planes + plane) * self.n_radial + radial
        if self.tof:
            if tof_bin is None:
                raise ValueError("a TOF sinogram needs the events' TOF bins")
            t = np.asarray(tof_bin, np.int64)
            if t.size and (int(t.min()) < 0 or int(t.max()) >= self.n_tof):
                raise ValueError(f"TOF bins out of range 0..{self.n_tof - 1}: found {int(t.min())}..{int(t.max())}")
            t = np.where(flip, self.n_tof - 1 - t, t)
            flat = flat * self.n_tof + t
        return np.where(valid, flat, -1), valid
