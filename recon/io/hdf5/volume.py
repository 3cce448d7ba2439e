"""``recon-volume``: one image on its patient-space grid (schema in docs/file-format.md).

Version 2 adds the volume's frame of reference (``frame_of_reference_uid``
attribute of ``/volume``); version 1 files read with ``""``.
"""
from __future__ import annotations

import os
from pathlib import Path

import h5py

from recon.data.grid import Volume
from recon.io.hdf5.container import (
    FileFormatError,
    create,
    metadata_from_json,
    metadata_to_json,
    open_checked,
    read_grid,
    require_node,
    write_grid,
)

__all__ = ["FORMAT_VOLUME", "VOLUME_VERSION", "read_volume", "write_volume"]

FORMAT_VOLUME = "recon-volume"
VOLUME_VERSION = 2


def write_volume(volume: Volume, path: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """Write a Volume (array, grid, unit, frame of reference, metadata) to ``path``; returns the path."""
    host = volume.to_host()

    def write(f: h5py.File) -> None:
        ds = f.create_dataset("volume", data=host.data, compression="gzip", compression_opts=4)
        ds.attrs["unit"] = host.unit
        ds.attrs["axes"] = "z,y,x"
        ds.attrs["frame_of_reference_uid"] = host.frame_of_reference_uid
        write_grid(ds, host.grid)
        f.attrs["metadata_json"] = metadata_to_json(host.metadata)

    return create(path, FORMAT_VOLUME, VOLUME_VERSION, write, overwrite)


def read_volume(path: str | os.PathLike[str]) -> Volume:
    """Read a Volume written by :func:`write_volume` (format versions 1 and 2)."""
    f, _ = open_checked(path, FORMAT_VOLUME, VOLUME_VERSION)
    with f:
        ds = require_node(f, "volume", str(path))
        grid = read_grid(ds, f"{path}:/volume")
        meta = metadata_from_json(f.attrs.get("metadata_json", "{}"), str(path))
        unit = ds.attrs.get("unit", "")
        frame = ds.attrs.get("frame_of_reference_uid", "")
        try:
            return Volume(ds[()], grid, unit.decode() if isinstance(unit, bytes) else str(unit), meta,
                          frame.decode() if isinstance(frame, bytes) else str(frame))
        except ValueError as exc:
            raise FileFormatError(f"{path}:/volume: {exc}") from None
