"""``recon-pet-sinogram``: one frame of PET prompts as a 3D sinogram, with its scanner, layout,
placement, optional delayed/randoms/normalisation/attenuation sinograms and typed study metadata.

Schema in docs/file-format.md. Axis order and TOF sign as in :mod:`recon.data.pet_sinogram`:
``(view, plane, radial[, tof])``, TOF bins counted towards the second crystal of each bin.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from recon.data.pet import PETSinogram, SinogramCorrections
from recon.data.pet_sinogram import SinogramLayout
from recon.io.hdf5.container import (
    FileFormatError,
    create,
    metadata_from_json,
    metadata_to_json,
    open_checked,
    read_grid,
    require_attr,
    require_node,
    write_grid,
)
from recon.io.hdf5.pet_common import (
    read_placement,
    read_records,
    read_scanner,
    require_dataset,
    write_placement,
    write_records,
    write_scanner,
)

__all__ = ["FORMAT_PET_SINOGRAM", "PET_SINOGRAM_VERSION", "read_pet_sinogram", "write_pet_sinogram"]

logger = logging.getLogger(__name__)

FORMAT_PET_SINOGRAM = "recon-pet-sinogram"
PET_SINOGRAM_VERSION = 1

_CORRECTIONS = ("randoms", "normalisation", "attenuation_factors")
_UNITS = {"prompts": "counts", "delayed": "counts", "randoms": "counts", "normalisation": "1",
          "attenuation_factors": "1"}


def _dataset(group: h5py.Group, name: str, data: np.ndarray, axes: str) -> None:
    ds = group.create_dataset(name, data=np.ascontiguousarray(data, np.float32), compression="gzip",
                              compression_opts=4)
    ds.attrs["axes"] = axes
    ds.attrs["unit"] = _UNITS[name]


def write_pet_sinogram(sinogram: PETSinogram, path: str | os.PathLike[str],
                       corrections: SinogramCorrections | None = None, metadata: dict[str, Any] | None = None,
                       overwrite: bool = False) -> Path:
    """Write ``sinogram`` (and its ``corrections``, same layout) atomically; returns the path.

    ``metadata``: pass-through items (settings) kept as ``metadata_json``.
    """
    layout = sinogram.layout
    if corrections is not None and corrections.layout != layout:
        raise ValueError("the corrections were made for another sinogram layout than the prompts")
    axes = "view,plane,radial,tof" if layout.tof else "view,plane,radial"

    def write(f: h5py.File) -> None:
        f.attrs["frame_start_s"] = float(sinogram.frame_start_s)
        f.attrs["frame_duration_s"] = float(sinogram.frame_duration_s)
        f.attrs["metadata_json"] = metadata_to_json(dict(metadata or {}))
        write_scanner(f.create_group("scanner"), layout.scanner)
        lg = f.create_group("layout")
        lg.attrs["n_radial"] = np.int64(layout.n_radial)
        lg.attrs["span"] = np.int64(layout.span)
        lg.attrs["max_ring_difference"] = np.int64(layout.max_ring_difference)
        lg.attrs["tof"] = np.bool_(layout.tof)
        lg.attrs["shape"] = np.asarray(layout.shape, np.int64)
        lg.attrs["axes"] = axes
        write_placement(f.create_group("placement"), sinogram.placement)
        sg = f.create_group("sinogram")
        _dataset(sg, "prompts", sinogram.prompts, axes)
        if sinogram.delayed is not None:
            _dataset(sg, "delayed", sinogram.delayed, "view,plane,radial")
        if corrections is not None:
            for name in _CORRECTIONS:
                value = getattr(corrections, name)
                if value is not None:
                    _dataset(sg, name, value, "view,plane,radial")
        write_records(f, sinogram)
        if sinogram.image_grid is not None:
            write_grid(f.create_group("image_grid"), sinogram.image_grid)

    return create(path, FORMAT_PET_SINOGRAM, PET_SINOGRAM_VERSION, write, overwrite)


def _read_layout(f: h5py.File, where: str) -> SinogramLayout:
    scanner = read_scanner(require_node(f, "scanner", where), f"{where}:/scanner")
    lg = require_node(f, "layout", where)
    lw = f"{where}:/layout"
    try:
        return SinogramLayout(scanner, n_radial=int(require_attr(lg, "n_radial", lw)),
                              span=int(require_attr(lg, "span", lw)),
                              max_ring_difference=int(require_attr(lg, "max_ring_difference", lw)),
                              tof=bool(require_attr(lg, "tof", lw)))
    except (TypeError, ValueError) as exc:
        if isinstance(exc, FileFormatError):
            raise
        raise FileFormatError(f"{lw}: invalid sinogram layout ({exc})") from None


def _check_shape(where: str, name: str, shape: tuple[int, ...], layout: SinogramLayout, tof: bool) -> None:
    expected = layout.shape if tof else layout.shape[:3]
    if tof and len(shape) == 4 and shape[3] != layout.n_tof:
        raise FileFormatError(f"{where}: {name} has {shape[3]} TOF bins; scanner {layout.scanner.name!r} has "
                              f"{layout.n_tof}")
    if tuple(shape) != tuple(expected):
        raise FileFormatError(f"{where}: {name} has shape {tuple(shape)}; the sinogram layout expects "
                              f"{tuple(expected)} ({'view, plane, radial, tof' if len(expected) == 4 else 'view, plane, radial'})")


def read_pet_sinogram(path: str | os.PathLike[str]) -> tuple[PETSinogram, SinogramCorrections, dict[str, Any]]:
    """Read a file written by :func:`write_pet_sinogram`: (sinogram, corrections, pass-through metadata).

    Shapes are checked against the stored layout (and TOF bins against the scanner) before the
    arrays are read; NaN, infinite or negative values are refused. Every problem is a one-line
    :class:`FileFormatError` naming the file and the dataset.
    """
    where = str(path)
    f, _ = open_checked(path, FORMAT_PET_SINOGRAM, PET_SINOGRAM_VERSION)
    with f:
        layout = _read_layout(f, where)
        sg = require_node(f, "sinogram", where)
        sw = f"{where}:/sinogram"
        datasets = {"prompts": require_dataset(sg, "prompts", sw)}
        for name in ("delayed",) + _CORRECTIONS:
            if name in sg:
                datasets[name] = require_dataset(sg, name, sw)
        for name, ds in datasets.items():
            _check_shape(sw, name, ds.shape, layout, tof=name == "prompts")
        arrays = {name: ds[()] for name, ds in datasets.items()}
        meta = metadata_from_json(f.attrs.get("metadata_json", "{}"), where)
        try:
            grid = read_grid(f["image_grid"], f"{where}:/image_grid") if "image_grid" in f else None
            sinogram = PETSinogram(
                layout, arrays["prompts"], frame_duration_s=float(require_attr(f, "frame_duration_s", where)),
                frame_start_s=float(require_attr(f, "frame_start_s", where)), delayed=arrays.get("delayed"),
                placement=read_placement(f, where), image_grid=grid, **read_records(f, where))
            corrections = SinogramCorrections(layout, **{k: arrays.get(k) for k in _CORRECTIONS})
        except (TypeError, ValueError) as exc:
            if isinstance(exc, FileFormatError):
                raise
            raise FileFormatError(f"{where}: {exc}") from None
    logger.debug("read %s: %s prompts, %d counts", where, layout.shape, int(sinogram.prompts.sum()))
    return sinogram, corrections, meta
