"""Standard phantoms: uniform cylinder, NEMA IEC body phantom, bone-scan torso.

All positions in LPS mm relative to the grid's patient-space origin (0, 0, 0):
+x patient's left, +y posterior, +z superior.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from recon.data.grid import ImageGrid
from recon.phantoms.phantom import Phantom, PhantomBuilder
from recon.phantoms.shapes import Bounds, Ellipsoid, EllipticCylinder, Shape, Sphere, rotation_matrix

TC99M_KEV = 140.5


def uniform_cylinder(grid: ImageGrid, radius_mm: float, length_mm: float, concentration_bq_ml: float,
                     energy_kev: float = TC99M_KEV, subsamples: int = 4) -> Phantom:
    """A water cylinder along z, centred at the origin, uniformly filled."""
    b = PhantomBuilder(grid, energy_kev, subsamples)
    b.paint("cylinder", EllipticCylinder.circular((0.0, 0.0, 0.0), radius_mm, length_mm), concentration_bq_ml,
            b.mu_of("water"))
    return b.build(description="uniform water cylinder")


# NEMA NU 2 / IEC 61675-1 body phantom, interior dimensions (mm). The cross-section is a half
# disc of radius 147 (anterior) on top of a 140 mm wide rectangle of depth 77 flanked by two
# quarter discs of radius 77 (posterior): 294 mm wide, 224 mm deep; 180 mm long inside.
# Sphere inner diameters 10-37 mm, centres on a circle of radius 57.2 mm around the phantom
# axis, in a plane 70 mm from the lid; lung insert 50 mm diameter along the axis.
# (Dimensions as in the NEMA NU 2-2012 drawings and OpenGATE's nemaiec model.) Sphere and
# insert walls are not modelled: spheres touch background directly.
IEC_HALF_DISC_RADIUS_MM = 147.0
IEC_CORNER_RADIUS_MM = 77.0
IEC_CENTRE_HALF_WIDTH_MM = 70.0
IEC_LENGTH_MM = 180.0
IEC_SPHERE_DIAMETERS_MM = (10.0, 13.0, 17.0, 22.0, 28.0, 37.0)
IEC_SPHERE_RING_RADIUS_MM = 57.2
IEC_SPHERE_PLANE_FROM_LID_MM = 70.0
IEC_LUNG_DIAMETER_MM = 50.0


@dataclass(frozen=True)
class IECBodyOutline(Shape):
    """Interior of the IEC body phantom, axis along z through ``center`` (the half disc's centre)."""

    center: tuple[float, float, float] = (0.0, 0.0, 0.0)
    length_mm: float = IEC_LENGTH_MM

    def contains(self, x: Any, y: Any, z: Any) -> np.ndarray:
        cx, cy, cz = self.center
        dx, dy = np.subtract(x, cx), np.subtract(y, cy)
        r, w, c = IEC_HALF_DISC_RADIUS_MM, IEC_CENTRE_HALF_WIDTH_MM, IEC_CORNER_RADIUS_MM
        anterior = (dy <= 0) & (dx**2 + dy**2 <= r**2)
        posterior = (dy > 0) & (dy <= c) & ((np.abs(dx) <= w) | ((np.abs(dx) - w) ** 2 + dy**2 <= c**2))
        return (anterior | posterior) & (np.abs(np.subtract(z, cz)) <= self.length_mm / 2.0)

    def bounds_mm(self) -> Bounds:
        cx, cy, cz = self.center
        half_w = IEC_CENTRE_HALF_WIDTH_MM + IEC_CORNER_RADIUS_MM
        return ((cx - IEC_HALF_DISC_RADIUS_MM, cx + IEC_HALF_DISC_RADIUS_MM) if half_w < IEC_HALF_DISC_RADIUS_MM
                else (cx - half_w, cx + half_w),
                (cy - IEC_HALF_DISC_RADIUS_MM, cy + IEC_CORNER_RADIUS_MM),
                (cz - self.length_mm / 2.0, cz + self.length_mm / 2.0))

    @property
    def volume_ml(self) -> float:
        area = (math.pi * IEC_HALF_DISC_RADIUS_MM**2 / 2.0 + 2 * IEC_CENTRE_HALF_WIDTH_MM * IEC_CORNER_RADIUS_MM
                + math.pi * IEC_CORNER_RADIUS_MM**2 / 2.0)
        return area * self.length_mm / 1000.0

    @property
    def center_mm(self) -> tuple[float, float, float]:
        return self.center


def iec_sphere_centers_mm(center: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> dict[float, tuple[float, ...]]:
    """Centre (x, y, z) mm of each IEC sphere by inner diameter; smallest and largest neighbours."""
    cx, cy, cz = center
    z = cz + IEC_LENGTH_MM / 2.0 - IEC_SPHERE_PLANE_FROM_LID_MM
    out = {}
    for k, d in enumerate(IEC_SPHERE_DIAMETERS_MM):
        a = math.radians(180.0 + 60.0 * k)
        out[d] = (cx + IEC_SPHERE_RING_RADIUS_MM * math.cos(a), cy + IEC_SPHERE_RING_RADIUS_MM * math.sin(a), z)
    return out


def nema_iec_body(grid: ImageGrid, sphere_to_background: float = 4.0, background_bq_ml: float = 5.3e3,
                  energy_kev: float = TC99M_KEV, lung_insert: bool = True, subsamples: int = 4) -> Phantom:
    """NEMA IEC body phantom with all six spheres hot at ``sphere_to_background`` x background."""
    if sphere_to_background < 0 or background_bq_ml < 0:
        raise ValueError("sphere_to_background and background_bq_ml must be >= 0")
    b = PhantomBuilder(grid, energy_kev, subsamples)
    water = b.mu_of("water")
    b.paint("background", IECBodyOutline(), background_bq_ml, water)
    if lung_insert:
        b.paint("lung_insert", EllipticCylinder.circular((0.0, 0.0, 0.0), IEC_LUNG_DIAMETER_MM / 2.0, IEC_LENGTH_MM),
                0.0, b.mu_of("lung"))
    for d, c in iec_sphere_centers_mm().items():
        b.paint(f"sphere_{d:.0f}", Sphere(c, d / 2.0), background_bq_ml * sphere_to_background, water)
    return b.build(description="NEMA IEC body phantom", sphere_to_background=sphere_to_background)


# Bone-scan torso (Tc-99m MDP about 3 h after injection). Concentrations are set through SUVbw:
# SUV = C / (A_injected / W); with 740 MBq and 70 kg, SUV 1 = 10.57 kBq/mL. Normal vertebral bone
# SUV 5, soft tissue 0.4, kidneys 2.5, bladder 20 (urine); metastases 13-20 (above both
# published cut-offs, 7.40 and 11.26), the degenerative spot 9 (between them).
BONE_TORSO_INJECTED_MBQ = 740.0
BONE_TORSO_WEIGHT_KG = 70.0
_VERTEBRA_HEIGHT_MM = 24.0
_DISC_MM = 8.0
_SPINE_Y_MM = 50.0  # vertebral body centre, posterior of the torso axis
# vertebra name -> centre z (mm): L5 lowest; 12 vertebrae from L5 to T8
_VERTEBRAE = ("L5", "L4", "L3", "L2", "L1", "T12", "T11", "T10", "T9", "T8", "T7", "T6")


def _vertebra_z(index: int) -> float:
    return -150.0 + index * (_VERTEBRA_HEIGHT_MM + _DISC_MM)


def bone_torso(grid: ImageGrid, normal_bone_suv: float = 5.0, soft_tissue_suv: float = 0.4,
               lesions: tuple[tuple[str, float, float], ...] = (("T8", 10.0, 4.0), ("L1", 8.0, 3.0),
                                                                ("L3", 12.5, 2.6)),
               pelvic_lesion_contrast: float = 3.0, degenerative_contrast: float = 1.8,
               energy_kev: float = TC99M_KEV, subsamples: int = 4) -> Phantom:
    """Torso with lungs, spine, pelvis, kidneys and bladder; vertebral metastases and a degenerative spot.

    ``lesions``: (vertebra, radius mm, contrast vs normal bone) for spheres inside vertebral bodies.
    """
    suv1 = BONE_TORSO_INJECTED_MBQ * 1e6 / (BONE_TORSO_WEIGHT_KG * 1000.0)  # Bq/mL per SUV unit
    bone_c = normal_bone_suv * suv1
    b = PhantomBuilder(grid, energy_kev, subsamples)
    tissue_mu = b.mu_of("soft_tissue")
    bone_mu = 0.5 * (b.mu_of("cortical_bone") + tissue_mu)  # vertebral body: cortical shell + marrow
    b.paint("soft_tissue", EllipticCylinder((0.0, 0.0, -10.0), (170.0, 115.0), 560.0), soft_tissue_suv * suv1,
            tissue_mu)
    for side, x in (("left", 75.0), ("right", -75.0)):
        b.paint(f"lung_{side}", Ellipsoid((x, -5.0, 150.0), (55.0, 70.0, 100.0)), 0.1 * suv1, b.mu_of("lung"))
        b.paint(f"kidney_{side}", Ellipsoid((x * 0.95, 45.0, -20.0), (28.0, 24.0, 55.0)), 2.5 * suv1, tissue_mu)
        b.paint(f"iliac_{side}", Ellipsoid((x * 1.3, 35.0, -205.0), (55.0, 14.0, 55.0),
                                           rotation_matrix(z_deg=35.0 if x > 0 else -35.0)), bone_c, bone_mu)
    b.paint("bladder", Sphere((0.0, -30.0, -255.0), 32.0), 20.0 * suv1, tissue_mu)
    b.paint("sacrum", Ellipsoid((0.0, 70.0, -200.0), (38.0, 18.0, 45.0)), bone_c, bone_mu)
    for i, name in enumerate(_VERTEBRAE):
        z = _vertebra_z(i)
        b.paint(f"vertebra_{name}", EllipticCylinder((0.0, _SPINE_Y_MM, z), (22.0, 17.0), _VERTEBRA_HEIGHT_MM),
                bone_c, bone_mu)
        b.paint(f"posterior_{name}", Ellipsoid((0.0, _SPINE_Y_MM + 35.0, z), (18.0, 14.0, 11.0)), bone_c, bone_mu)
    for name, radius, contrast in lesions:
        if name not in _VERTEBRAE:
            raise ValueError(f"unknown vertebra {name!r}; choose from {_VERTEBRAE}")
        z = _vertebra_z(_VERTEBRAE.index(name))
        b.paint(f"lesion_{name}", Sphere((0.0, _SPINE_Y_MM, z), radius), contrast * bone_c, bone_mu)
    b.paint("lesion_iliac_left", Sphere((1.3 * 75.0 + 10.0, 35.0, -195.0), 10.0), pelvic_lesion_contrast * bone_c,
            bone_mu)
    b.paint("degenerative_L4", Sphere((12.0, _SPINE_Y_MM + 35.0, _vertebra_z(1)), 7.0),
            degenerative_contrast * bone_c, bone_mu)
    return b.build(description="Tc-99m MDP bone-scan torso", injected_activity_bq=BONE_TORSO_INJECTED_MBQ * 1e6,
                   body_weight_kg=BONE_TORSO_WEIGHT_KG, suv_unit_bq_ml=suv1)
