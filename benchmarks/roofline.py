"""Bandwidth (roofline) model of the SPECT projector's CUDA passes: bytes each pass must move through
device memory, divided by the device's bandwidth, to set beside measured times.

Per view of a subset, with one rotated view volume P = nz x n_depth x n_cols x 4 bytes (8 MiB at 128^3):
- forward: ``forward_samples`` writes the attenuated samples (P); ``blur_columns`` reads and writes
  them (2 P, only with a PSF); ``depth_sum`` reads them (P) and writes the projection. The image's
  z-last copy is written and read once per launch, the image and the mu-map read once per launch
  (they stay in L2 across the views of a subset).
- back: ``depth_spread`` writes the planes (P); ``blur_columns`` reads and writes them (2 P, with a
  PSF); ``back_attenuate`` reads and writes them (2 P, with attenuation); ``gather`` reads them (P) and
  writes a z-last image, which ``transpose`` reads and adds into the image (read and write) once per launch.
The column band, the row recursion's column (shared memory) and the per-view tables are small and
not counted.
"""
from __future__ import annotations

from typing import Any

# Memory bandwidth, bytes/s (vendor figures).
BANDWIDTH_B_PER_S: dict[str, float] = {"H100 SXM": 3.35e12, "H200": 4.8e12}


def pass_bytes(n_views: int, n_subsets: int, nz: int, ny: int, nx: int, n_depth: int, n_cols: int,
               attenuation: bool, psf: bool = True) -> dict[str, float]:
    """Bytes one full forward and one full back projection (all views, in ``n_subsets`` launches) move."""
    plane = nz * n_depth * n_cols * 4.0
    image = nz * ny * nx * 4.0
    proj = nz * n_cols * 4.0
    mu = image if attenuation else 0.0
    trans = nz * n_cols * 4.0 if attenuation else 0.0
    blur = 2 * plane if psf else 0.0
    fwd = n_views * (2 * plane + blur + proj + trans) + n_subsets * (3 * image + mu)
    back = n_views * ((4 if attenuation else 2) * plane + blur + proj) + n_subsets * (4 * image + mu)
    return {"forward_all_views": fwd, "back_all_views": back}


def osem_roofline(n_views: int, n_subsets: int, n_iterations: int, nz: int, ny: int, nx: int, n_depth: int,
                  n_cols: int, attenuation: bool = True, psf: bool = True) -> dict[str, Any]:
    """Bytes and bandwidth-bound seconds of forward, back and the OSEM loop (sensitivity: one back pass)."""
    b = pass_bytes(n_views, n_subsets, nz, ny, nx, n_depth, n_cols, attenuation, psf)
    b["osem_loop_with_sensitivity"] = n_iterations * (b["forward_all_views"] + b["back_all_views"]) + b["back_all_views"]
    return {
        "bytes": b,
        "bound_seconds": {dev: {k: v / bw for k, v in b.items()} for dev, bw in BANDWIDTH_B_PER_S.items()},
        "bandwidth_b_per_s": dict(BANDWIDTH_B_PER_S),
    }
