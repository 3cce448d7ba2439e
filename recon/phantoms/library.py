"""Standard phantoms: uniform water cylinder, NEMA IEC body phantom, Tc-99m MDP bone-scan torso.

Positions are LPS mm (+x patient's left, +y posterior, +z superior). Each phantom is
placed at ``center_mm`` (default: the grid's geometric centre) and must fit inside
the grid (ValueError naming the shape otherwise).
"""
from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from recon.data.grid import ImageGrid
from recon.phantoms.phantom import Phantom, PhantomBuilder
from recon.phantoms.shapes import Bounds, Ellipsoid, EllipticCylinder, Shape, Sphere, ZExtrusion, rotation_matrix

logger = logging.getLogger(__name__)

TC99M_KEV = 140.5


def _center(grid: ImageGrid, center_mm: Sequence[float] | None) -> tuple[float, float, float]:
    if center_mm is None:
        return grid.center_mm
    c = tuple(float(v) for v in center_mm)
    if len(c) != 3 or not all(math.isfinite(v) for v in c):
        raise ValueError(f"center_mm must be 3 finite numbers (x, y, z) mm, got {center_mm!r}")
    return c  # type: ignore[return-value]


def _non_negative(name: str, value: float) -> float:
    v = float(value)
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    return v


# ----------------------------------------------------------------------------- uniform cylinder


def uniform_cylinder(
    grid: ImageGrid,
    radius_mm: float,
    length_mm: float,
    concentration_bq_ml: float,
    energy_kev: float = TC99M_KEV,
    *,
    center_mm: Sequence[float] | None = None,
    subsamples: int = 4,
) -> Phantom:
    """Water-filled right circular cylinder along z, uniform at ``concentration_bq_ml`` (region "cylinder")."""
    c = _center(grid, center_mm)
    conc = _non_negative("concentration_bq_ml", concentration_bq_ml)
    b = PhantomBuilder(grid, energy_kev, subsamples=subsamples)
    b.paint("cylinder", EllipticCylinder.circular(c, radius_mm, length_mm), conc, material="water")
    return b.build(description="uniform water cylinder", radius_mm=float(radius_mm), length_mm=float(length_mm),
                   center_mm=c)


# ----------------------------------------------------------------------------- NEMA IEC body phantom
#
# Interior dimensions of the NEMA NU 2-2012 / IEC 61675-1 body ("image quality") phantom,
# as drawn in NEMA NU 2-2012 section 7 (figures of the body phantom and sphere insert) and
# as modelled in OpenGATE's nemaiec phantom (opengate/contrib/phantoms/nemaiec.py):
#  * cross-section (outer 300 x 230 mm, 3 mm PMMA wall, so interior 294 x 224 mm): a half
#    disc of radius 147 mm (the "top", anterior when the phantom lies on its flat side)
#    above a 140 mm wide x 77 mm deep rectangle flanked by two quarter discs of radius
#    77 mm whose centres lie 70 mm either side of the half disc's centre;
#  * interior length 180 mm (the NEMA minimum; commercial phantoms are ~194 mm inside);
#  * six spheres, inner diameters 10, 13, 17, 22, 28, 37 mm, centres on a circle of
#    radius 57.2 mm (diameter 114.4 mm) in a transverse plane 70 mm from the inside of
#    the lid, spaced 60 deg apart;
#  * the sphere circle and the lung insert share one axis, 35 mm from the half disc's
#    centre towards the top; this axis is also the centre of the interior's bounding box;
#  * lung insert: cylinder of 50 mm outer diameter (NEMA 50 +- 2 mm; commercial 51 mm)
#    through the whole length, filled with low-Z material of density 0.30 g/mL (NEMA
#    0.3 +- 0.1) and no activity.
# Sphere walls (<= 1 mm), the insert's wall and the filling stems are not modelled: the
# spheres' fillings touch the background directly, and the whole 50 mm insert is lung.
IEC_HALF_DISC_RADIUS_MM = 147.0
IEC_CORNER_RADIUS_MM = 77.0
IEC_CORNER_OFFSET_MM = 70.0
IEC_AXIS_OFFSET_MM = 35.0
IEC_LENGTH_MM = 180.0
IEC_SPHERE_DIAMETERS_MM = (10.0, 13.0, 17.0, 22.0, 28.0, 37.0)
IEC_SPHERE_RING_RADIUS_MM = 57.2
IEC_SPHERE_PLANE_FROM_LID_MM = 70.0
IEC_LUNG_DIAMETER_MM = 50.0
# Angle (deg, in the transverse plane, 0 = +x, positive towards the top/anterior) of each sphere:
# 37 mm on the patient's right, then 28, 22 towards the flat side, 17 on the left, 13, 10 on top.
IEC_SPHERE_ANGLES_DEG = {37.0: 180.0, 28.0: 240.0, 22.0: 300.0, 17.0: 0.0, 13.0: 60.0, 10.0: 120.0}
#: NEMA NU 2-2012 background concentration at the start of the image-quality scan (Bq/mL).
IEC_BACKGROUND_BQ_ML = 5.3e3


@dataclass(frozen=True)
class IECBodyInterior(ZExtrusion):
    """Water-filled interior of the NEMA IEC body phantom, axis along z.

    ``center`` is the point on the lung-insert / sphere-ring axis at mid-length; the
    half disc (radius 147 mm) lies anterior (-y), the flat side with the 77 mm corners
    posterior (+y), as when the phantom rests on the couch.
    """

    center: tuple[float, float, float]
    length_mm: float = IEC_LENGTH_MM

    def __post_init__(self) -> None:
        c = tuple(float(v) for v in self.center)
        if len(c) != 3 or not all(math.isfinite(v) for v in c):
            raise ValueError(f"IEC body center must be 3 finite numbers, got {self.center!r}")
        if not (math.isfinite(self.length_mm) and self.length_mm > 0):
            raise ValueError(f"IEC body length_mm must be positive, got {self.length_mm!r}")
        object.__setattr__(self, "center", c)
        object.__setattr__(self, "length_mm", float(self.length_mm))

    def _disc_centre_y(self) -> float:
        return self.center[1] + IEC_AXIS_OFFSET_MM

    def contains_xy(self, x: Any, y: Any) -> np.ndarray:
        dx = np.abs(np.subtract(x, self.center[0]))
        dy = np.subtract(y, self._disc_centre_y())  # > 0: posterior of the half disc's centre
        r, rc, w = IEC_HALF_DISC_RADIUS_MM, IEC_CORNER_RADIUS_MM, IEC_CORNER_OFFSET_MM
        top = (dy <= 0) & (dx**2 + dy**2 <= r * r)
        corner = (dx - w) ** 2 + dy**2 <= rc * rc
        bottom = (dy > 0) & (dy <= rc) & ((dx <= w) | corner)
        return top | bottom

    def z_range_mm(self) -> tuple[float, float]:
        h = self.length_mm / 2.0
        return (self.center[2] - h, self.center[2] + h)

    def bounds_mm(self) -> Bounds:
        cx, _, cz = self.center
        yc = self._disc_centre_y()
        half_w = max(IEC_HALF_DISC_RADIUS_MM, IEC_CORNER_OFFSET_MM + IEC_CORNER_RADIUS_MM)
        h = self.length_mm / 2.0
        return ((cx - half_w, cx + half_w), (yc - IEC_HALF_DISC_RADIUS_MM, yc + IEC_CORNER_RADIUS_MM), (cz - h, cz + h))

    @property
    def cross_section_mm2(self) -> float:
        """Interior cross-sectional area, mm^2: half disc + rectangle + two quarter discs."""
        r, rc, w = IEC_HALF_DISC_RADIUS_MM, IEC_CORNER_RADIUS_MM, IEC_CORNER_OFFSET_MM
        return math.pi * r * r / 2.0 + 2.0 * w * rc + math.pi * rc * rc / 2.0

    @property
    def volume_ml(self) -> float:
        return self.cross_section_mm2 * self.length_mm / 1000.0

    @property
    def center_mm(self) -> tuple[float, float, float]:
        return self.center

    @property
    def min_half_size_mm(self) -> float:
        return min(IEC_CORNER_RADIUS_MM, self.length_mm / 2.0)


def iec_sphere_centers_mm(center_mm: Sequence[float] = (0.0, 0.0, 0.0)) -> dict[float, tuple[float, float, float]]:
    """LPS centre (x, y, z) mm of each IEC sphere, keyed by inner diameter (mm).

    ``center_mm`` is the phantom's reference point (insert axis at mid-length); the lid
    is at the superior (+z) end, so the sphere plane is at z = centre + 90 - 70 mm.
    """
    cx, cy, cz = (float(v) for v in center_mm)
    z = cz + IEC_LENGTH_MM / 2.0 - IEC_SPHERE_PLANE_FROM_LID_MM
    out: dict[float, tuple[float, float, float]] = {}
    for d in IEC_SPHERE_DIAMETERS_MM:
        a = math.radians(IEC_SPHERE_ANGLES_DEG[d])
        # positive angles run towards the top of the phantom, which is anterior (-y)
        out[d] = (cx + IEC_SPHERE_RING_RADIUS_MM * math.cos(a), cy - IEC_SPHERE_RING_RADIUS_MM * math.sin(a), z)
    return out


def nema_iec_body(
    grid: ImageGrid,
    sphere_to_background: float = 4.0,
    background_bq_ml: float = IEC_BACKGROUND_BQ_ML,
    energy_kev: float = TC99M_KEV,
    lung_insert: bool = True,
    *,
    center_mm: Sequence[float] | None = None,
    subsamples: int = 4,
) -> Phantom:
    """NEMA NU 2 / IEC 61675-1 body phantom: six hot spheres at ``sphere_to_background`` x background.

    Regions: "background" (water, ``background_bq_ml``), "sphere_10" ... "sphere_37"
    (water), "lung_insert" (lung, 0 Bq/mL) when ``lung_insert``. Dimensions and sources
    are listed above (module constants ``IEC_*``); sphere walls are not modelled.
    """
    ratio = _non_negative("sphere_to_background", sphere_to_background)
    bg = _non_negative("background_bq_ml", background_bq_ml)
    c = _center(grid, center_mm)
    b = PhantomBuilder(grid, energy_kev, subsamples=subsamples)
    b.paint("background", IECBodyInterior(c), bg, material="water")
    if lung_insert:
        b.paint("lung_insert", EllipticCylinder.circular(c, IEC_LUNG_DIAMETER_MM / 2.0, IEC_LENGTH_MM), 0.0,
                material="lung", carve_from=("background",))
    centers = iec_sphere_centers_mm(c)
    for d in IEC_SPHERE_DIAMETERS_MM:
        b.paint(f"sphere_{d:.0f}", Sphere(centers[d], d / 2.0), ratio * bg, material="water",
                carve_from=("background",))
    return b.build(
        description="NEMA NU 2 / IEC 61675-1 body phantom (sphere walls not modelled)",
        sphere_to_background=ratio,
        center_mm=c,
        sphere_centers_mm={f"sphere_{d:.0f}": centers[d] for d in IEC_SPHERE_DIAMETERS_MM},
    )


# ----------------------------------------------------------------------------- bone-scan torso
#
# Tc-99m MDP whole-body/SPECT bone scan about 3 h after injection, adult, 70 kg, 740 MBq
# (the EANM bone-scintigraphy guideline's usual adult activity is 500-740 MBq). The
# activity is referred to the acquisition start (decay-corrected there), so the truth
# SUVbw of a concentration C is C / (740e6 Bq / 70000 g): SUV 1 = 10.57 kBq/mL.
# Defaults: normal bone SUV 5 (quantitative Tc-99m SPECT of normal vertebrae reports
# mean SUVs of about 4-7), soft tissue 0.4, lungs 0.1, kidneys 2.5, bladder urine 20;
# metastases 2.5x, 4x, 6x normal bone (SUV 12.5, 20, 30: above both published
# metastasis cut-offs of Tc-99m bone SPECT, SUVmax 7.40 and 11.26), a degenerative
# endplate spot at 1.8x (SUV 9: between the two cut-offs).
# Geometry (adult, simplified): torso an elliptic cylinder 340 x 240 mm, 560 mm long;
# vertebral bodies as elliptic cylinders (lumbar 48 x 34 mm, 28 mm high, 10 mm discs;
# thoracic 36 x 28 mm, 22 mm high, 6 mm discs) from L5 up to the torso's top, with a
# neural arch and a spinous process behind each; sacrum and iliac wings as tilted flat
# ellipsoids; kidneys at L1-L2; bladder low in the pelvis; lungs above the diaphragm.
# Bone material is cortical bone (ICRU 44, 1.92 g/cm^3) throughout.
BONE_TORSO_INJECTED_MBQ = 740.0
BONE_TORSO_WEIGHT_KG = 70.0
_SUV1_BQ_ML = BONE_TORSO_INJECTED_MBQ * 1e6 / (BONE_TORSO_WEIGHT_KG * 1000.0)
BONE_TORSO_NORMAL_BONE_BQ_ML = 5.0 * _SUV1_BQ_ML
BONE_TORSO_SOFT_TISSUE_BQ_ML = 0.4 * _SUV1_BQ_ML
BONE_TORSO_LUNG_BQ_ML = 0.1 * _SUV1_BQ_ML
BONE_TORSO_KIDNEY_BQ_ML = 2.5 * _SUV1_BQ_ML
BONE_TORSO_BLADDER_BQ_ML = 20.0 * _SUV1_BQ_ML
#: Default metastases: (vertebra, sphere diameter mm), paired in order with ``lesion_contrasts``.
BONE_TORSO_LESION_SITES: tuple[tuple[str, float], ...] = (("L3", 25.0), ("L1", 18.0), ("T10", 12.0))

_TORSO_SEMI_AXES_MM = (170.0, 120.0)
_TORSO_LENGTH_MM = 560.0
_SPINE_Y_MM = 40.0  # vertebral body axis, posterior of the torso axis
_SACRUM_TOP_Z_MM = -150.0  # S1 endplate, relative to the torso centre


@dataclass(frozen=True)
class _Level:
    name: str
    height_mm: float
    semi_x_mm: float
    semi_y_mm: float
    disc_below_mm: float
    arch_semi_x_mm: float


def _spine_levels() -> list[_Level]:
    lumbar = [_Level(f"L{i}", 28.0, 24.0, 17.0, 10.0, 26.0) for i in (5, 4, 3, 2, 1)]
    thoracic = [
        _Level("T12", 25.0, 21.0, 15.5, 9.0, 24.0),
        _Level("T11", 24.0, 20.0, 15.0, 8.0, 23.0),
    ] + [_Level(f"T{i}", 22.0, 18.0, 14.0, 6.0, 22.0) for i in range(10, 0, -1)]
    return lumbar + thoracic


def _surface_points(sphere: Sphere, n: int = 400) -> np.ndarray:
    """Points (n, 3) spread over a sphere's surface (Fibonacci lattice), plus its centre."""
    k = np.arange(n) + 0.5
    polar = np.arccos(1.0 - 2.0 * k / n)
    azim = math.pi * (1.0 + 5.0**0.5) * k
    unit = np.stack([np.sin(polar) * np.cos(azim), np.sin(polar) * np.sin(azim), np.cos(polar)], axis=1)
    return np.vstack([np.asarray(sphere.center)[None, :], np.asarray(sphere.center) + sphere.radius_mm * unit])


def sphere_inside(sphere: Sphere, container: Shape) -> bool:
    """True when ``sphere`` lies inside the convex shape ``container`` (checked on 400 surface points)."""
    p = _surface_points(sphere)
    return bool(np.all(container.contains(p[:, 0], p[:, 1], p[:, 2])))


def bone_torso(
    grid: ImageGrid,
    normal_bone_bq_ml: float = BONE_TORSO_NORMAL_BONE_BQ_ML,
    soft_tissue_bq_ml: float = BONE_TORSO_SOFT_TISSUE_BQ_ML,
    lesion_contrasts: Sequence[float] = (2.5, 4.0, 6.0),
    degenerative_contrast: float = 1.8,
    energy_kev: float = TC99M_KEV,
    *,
    lesion_sites: Sequence[tuple[str, float]] = BONE_TORSO_LESION_SITES,
    kidney_bq_ml: float = BONE_TORSO_KIDNEY_BQ_ML,
    bladder_bq_ml: float = BONE_TORSO_BLADDER_BQ_ML,
    lung_bq_ml: float = BONE_TORSO_LUNG_BQ_ML,
    center_mm: Sequence[float] | None = None,
    subsamples: int = 4,
) -> Phantom:
    """Tc-99m MDP bone-scan torso: spine and pelvis at normal-bone uptake, vertebral metastases, a degenerative spot.

    Concentrations in Bq/mL; contrasts are relative to ``normal_bone_bq_ml``. The k-th
    metastasis is a sphere of ``lesion_sites[k][1]`` mm diameter inside the body of
    vertebra ``lesion_sites[k][0]`` (L5..L1, T12..) at ``lesion_contrasts[k]``.
    Regions: "soft_tissue", "lung_left"/"lung_right", "kidney_left"/"kidney_right",
    "bladder", "normal_bone" (vertebrae, arches, spinous processes, sacrum, iliac wings),
    "lesion_<vertebra>", "degenerative_L4" (inferior endplate of L4). Needs a field of
    view of at least 340 x 240 x 560 mm (e.g. 128^3 x 4.8 mm or 64^3 x 9.6 mm).
    Metadata carry the injected activity (740 MBq, referred to the acquisition start)
    and body weight (70 kg) for SUVbw = C / (A / W).
    """
    bone = _non_negative("normal_bone_bq_ml", normal_bone_bq_ml)
    tissue = _non_negative("soft_tissue_bq_ml", soft_tissue_bq_ml)
    contrasts = [_non_negative("lesion contrast", v) for v in lesion_contrasts]
    if len(contrasts) != len(lesion_sites):
        raise ValueError(f"{len(contrasts)} lesion_contrasts for {len(lesion_sites)} lesion_sites; give one each")
    degen = _non_negative("degenerative_contrast", degenerative_contrast)
    cx, cy, cz = _center(grid, center_mm)
    b = PhantomBuilder(grid, energy_kev, subsamples=subsamples)

    torso = EllipticCylinder((cx, cy, cz), _TORSO_SEMI_AXES_MM, _TORSO_LENGTH_MM)
    b.paint("soft_tissue", torso, tissue, material="soft_tissue")
    top_z = cz + _TORSO_LENGTH_MM / 2.0

    # lungs: from the diaphragm (~T10/T11) to just below the torso's top
    for side, sx in (("left", 1.0), ("right", -1.0)):
        b.paint(f"lung_{side}", Ellipsoid((cx + sx * 85.0, cy - 5.0, top_z - 112.5), (55.0, 75.0, 107.5)),
                _non_negative("lung_bq_ml", lung_bq_ml), material="lung", carve_from=("soft_tissue",))

    # spine: vertebral bodies from L5 upwards, each with a neural arch and spinous process
    spine_y = cy + _SPINE_Y_MM
    bodies: dict[str, EllipticCylinder] = {}
    z = cz + _SACRUM_TOP_Z_MM
    for lev in _spine_levels():
        z_bottom = z + lev.disc_below_mm
        z_top = z_bottom + lev.height_mm
        if z_top > top_z - 20.0:
            break
        zc = 0.5 * (z_bottom + z_top)
        body = EllipticCylinder((cx, spine_y, zc), (lev.semi_x_mm, lev.semi_y_mm), lev.height_mm)
        arch_y = spine_y + lev.semi_y_mm + 15.0 + 7.0  # 15 mm spinal canal, arch 14 mm thick
        arch = Ellipsoid((cx, arch_y, zc), (lev.arch_semi_x_mm, 7.0, 0.4 * lev.height_mm))
        spinous = Ellipsoid((cx, arch_y + 7.0 + 12.0, zc - 0.1 * lev.height_mm), (5.0, 12.0, 0.3 * lev.height_mm))
        for part in (body, arch, spinous):
            b.paint("normal_bone", part, bone, material="cortical_bone", carve_from=("soft_tissue",))
        bodies[lev.name] = body
        z = z_top

    # pelvis: sacrum tilted with its top anterior; iliac wings flaring antero-laterally
    s1_z = cz + _SACRUM_TOP_Z_MM
    sacrum = Ellipsoid((cx, cy + 55.0, s1_z - 50.0), (45.0, 16.0, 55.0), rotation_matrix(x_deg=25.0))
    b.paint("normal_bone", sacrum, bone, material="cortical_bone", carve_from=("soft_tissue",))
    for sx in (1.0, -1.0):
        wing = Ellipsoid((cx + sx * 100.0, cy + 30.0, s1_z - 15.0), (8.0, 70.0, 55.0),
                         rotation_matrix(z_deg=sx * 35.0, y_deg=sx * 20.0))
        b.paint("normal_bone", wing, bone, material="cortical_bone", carve_from=("soft_tissue",))

    # kidneys at L1-L2 (upper poles tilted medially); bladder low in the pelvis, anterior
    for side, sx in (("left", 1.0), ("right", -1.0)):
        kidney = Ellipsoid((cx + sx * 75.0, cy + 50.0, s1_z + 145.0), (27.0, 22.0, 55.0),
                           rotation_matrix(y_deg=-sx * 12.0))
        b.paint(f"kidney_{side}", kidney, _non_negative("kidney_bq_ml", kidney_bq_ml), material="soft_tissue",
                carve_from=("soft_tissue",))
    b.paint("bladder", Ellipsoid((cx, cy - 35.0, s1_z - 85.0), (45.0, 35.0, 30.0)),
            _non_negative("bladder_bq_ml", bladder_bq_ml), material="water", carve_from=("soft_tissue",))

    # metastases inside vertebral bodies, slightly off the body's axis
    lesions_meta: dict[str, dict[str, Any]] = {}
    for (level, diameter_mm), contrast in zip(lesion_sites, contrasts):
        if level not in bodies:
            raise ValueError(f"lesion site {level!r} is not a modelled vertebra; choose from {', '.join(bodies)}")
        name = f"lesion_{level}"
        if name in lesions_meta:
            raise ValueError(f"two lesions at {level}; give each vertebra at most one")
        body = bodies[level]
        sphere = Sphere((body.center[0] + 3.0, body.center[1] - 2.0, body.center[2]), float(diameter_mm) / 2.0)
        if not sphere_inside(sphere, body):
            a, c = body.semi_axes_mm
            raise ValueError(f"a {diameter_mm} mm lesion does not fit inside vertebral body {level} "
                             f"({2 * a:.0f} x {2 * c:.0f} x {body.length_mm:.0f} mm)")
        b.paint(name, sphere, contrast * bone, material="cortical_bone", carve_from=("normal_bone",))
        lesions_meta[name] = {"vertebra": level, "center_mm": sphere.center, "diameter_mm": float(diameter_mm),
                              "contrast": contrast}

    # degenerative change: a 12 mm focus at the inferior endplate of L4, antero-lateral (osteophyte)
    l4 = bodies["L4"]
    degen_sphere = Sphere((l4.center[0] + 12.0, l4.center[1] - 6.0, l4.center[2] - l4.length_mm / 2.0 + 6.5), 6.0)
    if not sphere_inside(degen_sphere, l4):  # pragma: no cover - fixed geometry
        raise ValueError("degenerative focus does not fit inside L4")
    b.paint("degenerative_L4", degen_sphere, degen * bone, material="cortical_bone", carve_from=("normal_bone",))

    return b.build(
        description="Tc-99m MDP bone-scan torso (simplified adult anatomy)",
        radiopharmaceutical="Tc-99m MDP",
        injected_activity_bq=BONE_TORSO_INJECTED_MBQ * 1e6,
        injected_activity_reference="decay-corrected to the acquisition start; truth SUVbw = C / (A / W)",
        body_weight_kg=BONE_TORSO_WEIGHT_KG,
        suv_unit_bq_ml=_SUV1_BQ_ML,
        center_mm=(cx, cy, cz),
        lesions=lesions_meta,
        degenerative={"degenerative_L4": {"vertebra": "L4", "center_mm": degen_sphere.center, "diameter_mm": 12.0,
                                          "contrast": degen}},
        vertebrae=tuple(bodies),
    )
