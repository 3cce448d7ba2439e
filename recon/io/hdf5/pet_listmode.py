"""``recon-pet-listmode``: coincidence events with the scanner that recorded them (our cache; the open
interchange is PETSIRD, :mod:`recon.io.petsird`). Schema in docs/file-format.md.

Events: ``detector_a``/``detector_b`` int32 (``ring * crystals_per_ring + crystal``), ``tof_bin`` int16
(counted towards ``detector_b``, see :mod:`recon.data.pet_sinogram`; absent without TOF),
``time_s`` float64 (from the acquisition start), ``delayed`` bool (absent: all prompts).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from recon.data.pet import ListModeAcquisition, ListModeEvents
from recon.io.hdf5.container import (
    FileFormatError,
    create,
    metadata_from_json,
    metadata_to_json,
    open_checked,
    require_attr,
    require_node,
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

__all__ = ["FORMAT_PET_LISTMODE", "PET_LISTMODE_VERSION", "read_pet_listmode", "write_pet_listmode"]

logger = logging.getLogger(__name__)

FORMAT_PET_LISTMODE = "recon-pet-listmode"
PET_LISTMODE_VERSION = 1

_DTYPES = {"detector_a": np.int32, "detector_b": np.int32, "tof_bin": np.int16, "time_s": np.float64,
           "delayed": np.bool_}
_CHUNK = 1 << 16


def write_pet_listmode(acquisition: ListModeAcquisition, path: str | os.PathLike[str],
                       metadata: dict[str, Any] | None = None, overwrite: bool = False) -> Path:
    """Write ``acquisition`` (events, scanner, placement, study records) atomically; returns the path."""
    ev = acquisition.events
    sc = acquisition.scanner
    if sc.n_crystals > np.iinfo(np.int32).max:
        raise ValueError(f"scanner {sc.name!r} has too many crystals for int32 detector ids")
    if ev.tof_bin is not None and sc.n_tof_bins > np.iinfo(np.int16).max:
        raise ValueError(f"scanner {sc.name!r} has too many TOF bins for int16")

    def write(f: h5py.File) -> None:
        f.attrs["acquisition_duration_s"] = float(ev.acquisition_duration_s)
        f.attrs["n_events"] = np.int64(ev.n_events)
        f.attrs["metadata_json"] = metadata_to_json(dict(metadata or {}))
        write_scanner(f.create_group("scanner"), sc)
        write_placement(f.create_group("placement"), acquisition.placement)
        eg = f.create_group("events")
        for name, dtype in _DTYPES.items():
            value = getattr(ev, name)
            if value is None:
                continue
            data = np.ascontiguousarray(value, dtype)
            chunks = (min(_CHUNK, data.size),) if data.size else None
            eg.create_dataset(name, data=data, chunks=chunks, compression="gzip" if data.size else None,
                              compression_opts=4 if data.size else None)
        eg["time_s"].attrs["unit"] = "s"
        if acquisition.time_blocks_s is not None:
            ds = f.create_dataset("time_blocks_s", data=acquisition.time_blocks_s)
            ds.attrs["axes"] = "block,start_stop"
        write_records(f, acquisition)

    return create(path, FORMAT_PET_LISTMODE, PET_LISTMODE_VERSION, write, overwrite)


def _events_array(eg: h5py.Group, name: str, where: str, n: int) -> np.ndarray | None:
    if name not in eg:
        if name in ("tof_bin", "delayed"):
            return None
        raise FileFormatError(f"{where}: {name!r} missing")
    ds = require_dataset(eg, name, where)
    if ds.shape != (n,):
        raise FileFormatError(f"{where}: {name} has shape {ds.shape}, expected ({n},) like detector_a")
    expected = np.dtype(_DTYPES[name])
    kind_ok = (ds.dtype.kind in "iu") if expected.kind == "i" else (ds.dtype.kind == expected.kind)
    if not kind_ok:
        raise FileFormatError(f"{where}: {name} has dtype {ds.dtype}, expected {expected}")
    return ds[()]


def read_pet_listmode(path: str | os.PathLike[str]) -> tuple[ListModeAcquisition, dict[str, Any]]:
    """Read a file written by :func:`write_pet_listmode`: (acquisition, pass-through metadata).

    Refused with a one-line :class:`FileFormatError`: detector ids out of range for the stored
    scanner, TOF bins that do not match its TOF bin count, times that are NaN, negative or after
    the acquisition, event arrays of different lengths.
    """
    where = str(path)
    f, _ = open_checked(path, FORMAT_PET_LISTMODE, PET_LISTMODE_VERSION)
    with f:
        scanner = read_scanner(require_node(f, "scanner", where), f"{where}:/scanner")
        eg = require_node(f, "events", where)
        ew = f"{where}:/events"
        n = require_dataset(eg, "detector_a", ew).shape[0]
        arrays = {name: _events_array(eg, name, ew, n) for name in _DTYPES}
        meta = metadata_from_json(f.attrs.get("metadata_json", "{}"), where)
        blocks = f["time_blocks_s"][()] if "time_blocks_s" in f else None
        try:
            events = ListModeEvents(scanner.name, arrays["detector_a"], arrays["detector_b"], arrays["time_s"],
                                    float(require_attr(f, "acquisition_duration_s", where)),
                                    tof_bin=arrays["tof_bin"], delayed=arrays["delayed"])
            acquisition = ListModeAcquisition(scanner, events, placement=read_placement(f, where),
                                              time_blocks_s=blocks, **read_records(f, where))
        except (TypeError, ValueError) as exc:
            if isinstance(exc, FileFormatError):
                raise
            raise FileFormatError(f"{where}: {exc}") from None
    logger.debug("read %s: %d events on %s", where, n, scanner.name)
    return acquisition, meta
