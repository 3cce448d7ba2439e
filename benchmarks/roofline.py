"""Bandwidth (roofline) model of the SPECT projector's CUDA passes: bytes each pass must move through
device memory, divided by the device's bandwidth, to set beside measured times.

Per view of a subset, with one rotated view volume P = nz x n_depth x n_cols x 4 bytes (8 MiB at 128^3):
- forward: ``forward_samples`` writes the attenuated samples (P), ``forward_sum`` reads them (P) and
  writes the projection; the image and mu-map are read once per launch (they stay in L2 across views);
- back: ``back_planes`` writes the blurred planes (P), ``back_attenuate`` reads and writes them (2 P,
  skipped without attenuation), ``gather`` reads them (P) and updates the image once per launch.
The blur recursion's own traffic (two sweeps of one 2-D plane per depth step) stays in L2 and is not
counted; that recursion runs one block per view and is bound by latency, not bandwidth, so measured
times above this bound show how much it costs.
"""
from __future__ import annotations

from typing import Any

# Memory bandwidth, bytes/s (vendor figures).
BANDWIDTH_B_PER_S: dict[str, float] = {"H100 SXM": 3.35e12, "H200": 4.8e12}


def pass_bytes(n_views: int, n_subsets: int, nz: int, ny: int, nx: int, n_depth: int, n_cols: int,
               attenuation: bool) -> dict[str, float]:
    """Bytes one full forward and one full back projection (all views, in ``n_subsets`` launches) move."""
    plane = nz * n_depth * n_cols * 4.0
    image = nz * ny * nx * 4.0
    proj = nz * n_cols * 4.0
    mu = image if attenuation else 0.0
    trans = nz * n_cols * 4.0 if attenuation else 0.0
    fwd = n_views * (2 * plane + proj + trans) + n_subsets * (image + mu)
    back = n_views * ((4 if attenuation else 2) * plane + proj) + n_subsets * (2 * image + mu)
    return {"forward_all_views": fwd, "back_all_views": back}


def osem_roofline(n_views: int, n_subsets: int, n_iterations: int, nz: int, ny: int, nx: int, n_depth: int,
                  n_cols: int, attenuation: bool = True) -> dict[str, Any]:
    """Bytes and bandwidth-bound seconds of forward, back and the OSEM loop (sensitivity: one back pass)."""
    b = pass_bytes(n_views, n_subsets, nz, ny, nx, n_depth, n_cols, attenuation)
    b["osem_loop_with_sensitivity"] = n_iterations * (b["forward_all_views"] + b["back_all_views"]) + b["back_all_views"]
    return {
        "bytes": b,
        "bound_seconds": {dev: {k: v / bw for k, v in b.items()} for dev, bw in BANDWIDTH_B_PER_S.items()},
        "bandwidth_b_per_s": dict(BANDWIDTH_B_PER_S),
    }
