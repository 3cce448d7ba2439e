"""The bone-scan torso as an F-18 sodium fluoride (NaF) PET study, and cropping a phantom to a field of view.

Uptake (SUVbw, body weight 70 kg, 250 MBq injected, referred to the acquisition start) - our
assumptions, chosen from the published ranges:

- injected activity 250 MBq (SNMMI/EANM NaF guideline: 185-370 MBq for adults; Segall et al.,
  J Nucl Med 2010;51:1813);
- normal bone SUV 6 (normal lumbar and thoracic vertebrae SUVmean ~4-8 at 45-60 min; e.g.
  Kurdziel et al., J Nucl Med 2012;53:1175, and Sabbah et al., Eur J Nucl Med Mol Imaging 2015);
- soft tissue SUV 0.5, lungs 0.2 (NaF clears quickly from soft tissue: background SUV < 1);
- kidneys SUV 3 and bladder SUV 40 (renal excretion: urine is the hottest "organ" in NaF);
- metastases at 2.5x, 4x and 6x normal bone (SUVmax ~15-36, the range of osteoblastic
  metastases), the degenerative focus at 1.8x (SUV ~11: degenerative change overlaps with low-grade
  metastases, the known pitfall of NaF).

The lesions stay where :func:`recon.phantoms.library.bone_torso` puts them (L3 25 mm, L1 18 mm,
T10 12 mm, degenerative L4 endplate); the anatomy and the mu-map (511 keV) are that torso's.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from recon.data.grid import ImageGrid, Volume
from recon.phantoms.library import bone_torso
from recon.phantoms.phantom import Phantom, RegionFractions

PET_KEV = 511.0
NAF_INJECTED_MBQ = 250.0
NAF_WEIGHT_KG = 70.0
NAF_SUV1_BQ_ML = NAF_INJECTED_MBQ * 1e6 / (NAF_WEIGHT_KG * 1000.0)  # Bq/mL at SUV 1
NAF_SUV = {"normal_bone": 6.0, "soft_tissue": 0.5, "lung": 0.2, "kidney": 3.0, "bladder": 40.0}
NAF_LESION_CONTRASTS = (2.5, 4.0, 6.0)  # x normal bone, L3, L1, T10
NAF_DEGENERATIVE_CONTRAST = 1.8


def naf_bone_torso(grid: ImageGrid, *, center_mm: tuple[float, float, float] | None = None,
                   subsamples: int = 4) -> Phantom:
    """The bone torso with F-18 NaF uptake (module docstring) and a 511 keV mu-map; metadata carry the
    NaF injected activity (Bq) and weight (kg) for SUVbw."""
    s = NAF_SUV1_BQ_ML
    ph = bone_torso(grid, normal_bone_bq_ml=NAF_SUV["normal_bone"] * s, soft_tissue_bq_ml=NAF_SUV["soft_tissue"] * s,
                    lesion_contrasts=NAF_LESION_CONTRASTS, degenerative_contrast=NAF_DEGENERATIVE_CONTRAST,
                    energy_kev=PET_KEV, kidney_bq_ml=NAF_SUV["kidney"] * s, bladder_bq_ml=NAF_SUV["bladder"] * s,
                    lung_bq_ml=NAF_SUV["lung"] * s, center_mm=center_mm, subsamples=subsamples)
    meta = dict(ph.metadata, description="F-18 NaF bone PET torso (simplified adult anatomy)",
                radiopharmaceutical="F-18 NaF", injected_activity_bq=NAF_INJECTED_MBQ * 1e6,
                body_weight_kg=NAF_WEIGHT_KG, suv_unit_bq_ml=s)
    return replace(ph, metadata=meta)


def _offset(outer: ImageGrid, inner: ImageGrid) -> np.ndarray:
    """Integer (z, y, x) index of ``inner``'s voxel [0, 0, 0] in ``outer``; refuses misaligned grids."""
    if not np.allclose(outer.spacing_mm, inner.spacing_mm):
        raise ValueError(f"cannot crop: spacings differ ({outer.spacing_mm} vs {inner.spacing_mm} mm)")
    shift_xyz = (np.asarray(inner.origin_mm) - np.asarray(outer.origin_mm)) / np.asarray(outer.spacing_mm[::-1])
    idx = np.round(shift_xyz).astype(int)
    if not np.allclose(shift_xyz, idx, atol=1e-3):
        raise ValueError("cannot crop: the grids' voxel centres are not aligned")
    zyx = idx[::-1]
    if np.any(zyx < 0) or np.any(zyx + np.asarray(inner.shape) > np.asarray(outer.shape)):
        raise ValueError(f"cannot crop: grid {inner} is not inside {outer}")
    return zyx


def crop_phantom(phantom: Phantom, grid: ImageGrid) -> Phantom:
    """The part of ``phantom`` on ``grid`` (same spacing, aligned voxels, inside the phantom's grid).

    Regions keep their names; ``volume_ml`` becomes the rasterised volume left inside ``grid``
    (regions entirely outside are dropped). Used to simulate only the scanner's axial field of view,
    which loses nothing for the trues: every LOR lies between the rings.
    """
    o = _offset(phantom.grid, grid)
    box = tuple(slice(int(a), int(a + n)) for a, n in zip(o, grid.shape))
    act = Volume(np.asarray(phantom.activity.data)[box], grid, phantom.activity.unit)
    mu = Volume(np.asarray(phantom.mu_map.data)[box], grid, phantom.mu_map.unit)
    blocks: dict[str, Any] = {}
    for name in phantom.regions:
        sl = phantom.regions.bbox(name)
        lo = [max(s.start, b.start) for s, b in zip(sl, box)]
        hi = [min(s.stop, b.stop) for s, b in zip(sl, box)]
        if any(a >= b for a, b in zip(lo, hi)):
            continue
        w = phantom.regions.block(name)[tuple(slice(a - s.start, b - s.start) for a, b, s in zip(lo, hi, sl))]
        if not w.any():
            continue
        new = tuple(slice(a - b.start, c - b.start) for a, c, b in zip(lo, hi, box))
        blocks[name] = (new, np.array(w, np.float32))
    regions = RegionFractions(grid, blocks)
    conc = {n: phantom.concentration_bq_ml[n] for n in blocks}
    vol = {n: regions.rasterised_volume_ml(n) for n in blocks}
    return replace(phantom, activity=act, mu_map=mu, regions=regions, concentration_bq_ml=conc, volume_ml=vol,
                   shapes={n: v for n, v in phantom.shapes.items() if n in blocks},
                   materials={n: v for n, v in phantom.materials.items() if n in blocks})
