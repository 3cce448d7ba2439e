"""Pictures of volumes: maximum-intensity projections and central slices as an 8-bit grey PNG.

The PNG encoder is the format's minimal subset (IHDR, one zlib IDAT, IEND; colour
type 0, bit depth 8), written with the standard library: no imaging dependency.
"""
from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np

from recon.data.grid import Volume


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)


def write_png_gray(image: np.ndarray, path: str | os.PathLike) -> Path:
    """Write a 2-D uint8 array as a greyscale PNG (row 0 at the top)."""
    img = np.asarray(image)
    if img.ndim != 2 or img.dtype != np.uint8:
        raise ValueError(f"PNG writer needs a 2-D uint8 array, got {img.ndim}-D {img.dtype}")
    h, w = img.shape
    raw = b"".join(b"\x00" + img[r].tobytes() for r in range(h))
    data = (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + _chunk(b"IDAT", zlib.compress(raw, 6)) + _chunk(b"IEND", b""))
    p = Path(path)
    p.write_bytes(data)
    return p


def _resample_aspect(img: np.ndarray, row_mm: float, col_mm: float, pixel_mm: float) -> np.ndarray:
    """Nearest-neighbour resampling of a 2-D image to square pixels of ``pixel_mm``."""
    rows = max(1, int(round(img.shape[0] * row_mm / pixel_mm)))
    cols = max(1, int(round(img.shape[1] * col_mm / pixel_mm)))
    ri = np.minimum((np.arange(rows) * pixel_mm / row_mm).astype(int), img.shape[0] - 1)
    ci = np.minimum((np.arange(cols) * pixel_mm / col_mm).astype(int), img.shape[1] - 1)
    return img[np.ix_(ri, ci)]


def _crop_to_content(v: np.ndarray, fraction: float = 0.02, margin: int = 2) -> np.ndarray:
    """The bounding box of voxels above ``fraction`` of the maximum, with a margin (the whole volume if empty)."""
    top = float(v.max())
    if top <= 0:
        return v
    idx = np.nonzero(v > fraction * top)
    sl = tuple(slice(max(int(i.min()) - margin, 0), int(i.max()) + margin + 1) for i in idx)
    return v[sl]


def overview_panels(volume: Volume) -> list[np.ndarray]:
    """Anterior (coronal) MIP, lateral (sagittal) MIP, central transverse, coronal, sagittal slices.

    Displayed as a radiologist reads them: head up, patient's right on the image left.
    """
    v = _crop_to_content(np.asarray(volume.to_host().data, dtype=np.float32))
    nz, ny, nx = v.shape
    dz, dy, dx = volume.grid.spacing_mm
    pixel = min(dz, dy, dx) / 2.0
    head_up = lambda a: a[::-1]  # noqa: E731 - z index grows superior; image rows grow downwards
    panels = [
        _resample_aspect(head_up(v.max(axis=1)), dz, dx, pixel),  # coronal MIP (z, x)
        _resample_aspect(head_up(v.max(axis=2)), dz, dy, pixel),  # sagittal MIP (z, y)
        _resample_aspect(v[nz // 2], dy, dx, pixel),  # transverse (y, x): anterior up
        _resample_aspect(head_up(v[:, ny // 2, :]), dz, dx, pixel),
        _resample_aspect(head_up(v[:, :, nx // 2]), dz, dy, pixel),
    ]
    return panels


def write_overview_png(volume: Volume, path: str | os.PathLike, percentile: float = 99.9) -> Path:
    """MIPs and central slices side by side, scaled to the volume's ``percentile`` value."""
    panels = overview_panels(volume)
    top = float(np.percentile(np.concatenate([p.ravel() for p in panels]), percentile)) or 1.0
    height = max(p.shape[0] for p in panels)
    gap = 4
    canvas = np.zeros((height, sum(p.shape[1] for p in panels) + gap * (len(panels) - 1)), dtype=np.uint8)
    col = 0
    for p in panels:
        scaled = np.clip(p / top, 0.0, 1.0) * 255.0
        canvas[: p.shape[0], col: col + p.shape[1]] = scaled.astype(np.uint8)
        col += p.shape[1] + gap
    return write_png_gray(canvas, path)
