"""Detecting-element positions (PETSIRD replicated modules) -> a cylindrical :class:`PETScanner`.

Pure NumPy, no ``petsird`` import: :mod:`recon.io.petsird` hands over the module and element
transforms (3x4 homogeneous matrices, ``world = M @ [p, 1]``) and the crystal box's 8 corners.
The rules (one cylinder, equally spaced rings, block gaps as virtual crystals) are documented in
:mod:`recon.io.petsird`.
"""
from __future__ import annotations

import math

import numpy as np

from recon.data.pet_scanner import PETScanner

__all__ = ["PETSIRDError", "cylindrical_scanner", "element_centres_mm"]

_RADIUS_TOLERANCE = 0.03  # relative spread of element radii accepted as one cylinder
_GAP_FACTOR = 1.5  # an angular step wider than this many median pitches is a block gap


class PETSIRDError(ValueError):
    """A PETSIRD file this reader cannot use (version, geometry, events), in one line."""


def element_centres_mm(modules: np.ndarray, elements: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """(n_modules * n_elements, 3) centres in the gantry frame (mm), element index fastest."""
    centre = corners.mean(axis=0)
    local = elements[:, :, :3] @ centre + elements[:, :, 3]  # (ne, 3) in the module frame
    world = np.einsum("mij,ej->mei", modules[:, :, :3], local) + modules[:, None, :, 3]
    return world.reshape(-1, 3)


def _crystal_size(modules: np.ndarray, elements: np.ndarray, corners: np.ndarray,
                  centre: np.ndarray) -> tuple[float, float, float, int]:
    """(transaxial, axial, depth, depth axis) box extents (mm), the box axes matched to the directions at one
    element; the depth axis is the index of the box's local axis that points radially."""
    extent = corners.max(axis=0) - corners.min(axis=0)
    rotation = modules[0, :, :3] @ elements[0, :, :3]
    radial = np.array([centre[0], centre[1], 0.0]) / max(float(np.hypot(centre[0], centre[1])), 1e-9)
    depth_axis = int(np.argmax(np.abs(radial @ rotation)))
    axial_axis = int(np.argmax(np.abs(rotation[2, :])))
    if depth_axis == axial_axis:
        raise PETSIRDError("PETSIRD crystals are not oriented radially (their depth runs along the scanner axis); "
                           "non-cylindrical layouts are not supported")
    trans_axis = 3 - depth_axis - axial_axis
    return float(extent[trans_axis]), float(extent[axial_axis]), float(extent[depth_axis]), depth_axis


def face_points_mm(modules: np.ndarray, elements: np.ndarray, centres: np.ndarray, depth_axis: int,
                   depth_mm: float) -> np.ndarray:
    """(n, 3) centres of the crystals' front faces: each centre moved inwards by half the depth along its own
    depth axis. Flat modules tile the ring at their faces, so face angles are evenly spaced where centre
    angles are not."""
    rot = np.einsum("mij,ejk->meik", modules[:, :, :3], elements[:, :, :3]).reshape(-1, 3, 3)
    direction = rot[:, :, depth_axis]
    radial = centres * np.array([1.0, 1.0, 0.0])
    sign = np.where(np.einsum("ni,ni->n", direction, radial) < 0, -1.0, 1.0)
    return centres - 0.5 * depth_mm * sign[:, None] * direction


def _rings(z: np.ndarray, axial_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """(ring index per element, ring centres) by clustering z; rings must be equally spaced."""
    order = np.sort(z)
    breaks = np.flatnonzero(np.diff(order) > 0.25 * axial_mm)
    edges = np.concatenate([[order[0] - 1.0], (order[breaks] + order[breaks + 1]) / 2.0, [order[-1] + 1.0]])
    ring = np.searchsorted(edges, z) - 1
    centres = np.array([z[ring == r].mean() for r in range(edges.size - 1)])
    if centres.size > 1:
        pitch = (centres[-1] - centres[0]) / (centres.size - 1)
        uniform = centres[0] + pitch * np.arange(centres.size)
        if np.abs(centres - uniform).max() > 0.1 * pitch:
            raise PETSIRDError(f"PETSIRD rings are not equally spaced along z (centres {np.round(centres, 2).tolist()} mm); "
                               "axial gaps between modules are not supported")
    return ring, centres


def _crystal_indices(phi: np.ndarray, n_modules_around: int = 1) -> tuple[np.ndarray, int, int, int, float]:
    """Crystal index per angle of one ring: (index, crystals per block, gap crystals, blocks, angle of crystal 0).

    Without gaps the blocks are the ``n_modules_around`` modules when they divide the ring.
    """
    two_pi = 2.0 * math.pi
    order = np.argsort(phi)
    sorted_phi = phi[order]
    steps = np.diff(np.concatenate([sorted_phi, [sorted_phi[0] + two_pi]]))  # step after each crystal
    pitch = float(np.median(steps))
    if pitch <= 0 or np.any(steps < 0.5 * pitch):
        raise PETSIRDError("PETSIRD crystals of a ring overlap in angle (several crystal layers?); "
                           "only one layer per ring is supported")
    gap_after = np.flatnonzero(steps > _GAP_FACTOR * pitch)
    n_real = phi.size
    if gap_after.size == 0:
        start = int(np.argmin(np.mod(sorted_phi, two_pi)))
        per_block, gap, blocks = n_real, 0, 1
        if n_modules_around > 1 and n_real % n_modules_around == 0:
            per_block, blocks = n_real // n_modules_around, n_modules_around
    else:
        start = int((gap_after[0] + 1) % n_real)  # the first crystal after a gap begins block 0
        runs = np.diff(np.concatenate([gap_after, [gap_after[0] + n_real]]))
        gaps = np.rint(steps[gap_after] / pitch).astype(int) - 1
        if np.unique(runs).size != 1 or np.unique(gaps).size != 1:
            raise PETSIRDError(f"PETSIRD blocks are irregular around the ring (crystals per block {sorted(set(runs.tolist()))}, "
                               f"gap crystals {sorted(set(gaps.tolist()))}); not supported")
        per_block, gap, blocks = int(runs[0]), int(gaps[0]), int(runs.size)
    rolled = np.roll(np.arange(n_real), -start)  # positions in sorted order, from the start crystal on
    slot = (np.arange(n_real) // per_block) * (per_block + gap) + np.arange(n_real) % per_block
    index_sorted = np.empty(n_real, np.int64)
    index_sorted[rolled] = slot
    n_total = blocks * (per_block + gap)
    nominal = two_pi * index_sorted / n_total
    residual = np.angle(np.exp(1j * (sorted_phi - nominal)))
    offset = float(np.angle(np.mean(np.exp(1j * residual))))
    misfit = np.abs(np.angle(np.exp(1j * (residual - offset))))
    if misfit.max() > 0.5 * two_pi / n_total:
        raise PETSIRDError(f"PETSIRD crystals are not equally spaced in angle (misfit up to {math.degrees(misfit.max()):.3g} deg "
                           f"for a pitch of {360.0 / n_total:.3g} deg); not a cylindrical layout we support")
    index = np.empty(n_real, np.int64)
    index[order] = index_sorted
    return index, per_block, gap, blocks, offset


def cylindrical_scanner(name: str, modules: np.ndarray, elements: np.ndarray, corners: np.ndarray, *,
                        n_tof_bins: int, tof_fwhm_ps: float, tof_bin_width_ps: float,
                        coincidence_window_ns: float) -> tuple[PETScanner, np.ndarray]:
    """(PETScanner, LUT element id -> our detector id) for elements on one cylinder around z."""
    centres = element_centres_mm(modules, elements, corners)
    radius = np.hypot(centres[:, 0], centres[:, 1])
    mean_r = float(radius.mean())
    if not mean_r > 0 or (radius.max() - radius.min()) > _RADIUS_TOLERANCE * mean_r:
        raise PETSIRDError(f"PETSIRD detecting elements are not on one cylinder around the z axis (radii "
                           f"{radius.min():.1f}..{radius.max():.1f} mm); non-cylindrical layouts are not supported")
    transaxial, axial, depth, depth_axis = _crystal_size(modules, elements, corners, centres[0])
    ring, ring_z = _rings(centres[:, 2], axial)
    n_rings = ring_z.size
    faces = face_points_mm(modules, elements, centres, depth_axis, depth)
    phi = np.arctan2(faces[:, 1], faces[:, 0])
    counts = np.bincount(ring, minlength=n_rings)
    if np.unique(counts).size != 1:
        raise PETSIRDError(f"PETSIRD rings hold different numbers of crystals ({sorted(set(counts.tolist()))}); "
                           "not a cylindrical layout we support")
    first = ring == 0
    module_centres = centres.reshape(modules.shape[0], elements.shape[0], 3).mean(axis=1)
    module_angles = np.round(np.arctan2(module_centres[:, 1], module_centres[:, 0]), 3)
    index0, per_block, gap, blocks, offset = _crystal_indices(phi[first], int(np.unique(module_angles).size))
    n_total = blocks * (per_block + gap)
    crystal = np.mod(np.rint((phi - offset) * n_total / (2.0 * math.pi)), n_total).astype(np.int64)
    if not np.array_equal(crystal[first], index0):
        raise PETSIRDError("PETSIRD crystal angles do not match a regular ring; not supported")
    lut = ring * n_total + crystal
    if np.unique(lut).size != lut.size:
        raise PETSIRDError("two PETSIRD detecting elements share one (ring, crystal) position (several crystal layers, "
                           "or rings rotated against each other); not supported")
    pitch = float((ring_z[-1] - ring_z[0]) / (n_rings - 1)) if n_rings > 1 else axial
    if pitch < axial and axial - pitch <= 1e-3 * axial:
        pitch = axial  # float32 positions of touching crystals
    face_radius = mean_r - depth / 2.0
    if not face_radius > 0:
        raise PETSIRDError(f"PETSIRD crystals of depth {depth:.3g} mm do not fit a ring of radius {mean_r:.3g} mm")
    try:
        scanner = PETScanner(
            name=name, ring_diameter_mm=2.0 * face_radius, n_rings=n_rings, crystals_per_block=per_block,
            blocks_per_ring=blocks, gap_crystals_per_block=gap, crystal_transaxial_mm=transaxial,
            crystal_axial_mm=axial, crystal_depth_mm=depth, ring_spacing_mm=pitch, mean_doi_mm=depth / 2.0,
            tof_fwhm_ps=tof_fwhm_ps, tof_bin_width_ps=tof_bin_width_ps, n_tof_bins=n_tof_bins,
            coincidence_window_ns=coincidence_window_ns if coincidence_window_ns > 0 else 4.0,
            first_crystal_angle_deg=math.degrees(offset),
            source=f"derived from a PETSIRD scanner geometry ({modules.shape[0]} modules x {elements.shape[0]} elements; "
                   f"axial centre at gantry z = {float(ring_z.mean()):.3f} mm; spatial resolution not in the file: "
                   "default)",
        )
    except ValueError as exc:
        raise PETSIRDError(f"PETSIRD geometry does not make a valid scanner: {exc}") from None
    return scanner, lut.astype(np.int64)
