"""DICOM CT series -> a Volume of CT numbers (HU) on its LPS grid. No physics here: HU -> mu is
:mod:`recon.physics` (the caller's job)."""
from __future__ import annotations

import copy
import logging
import os
from typing import Any

from recon.data.grid import Volume
from recon.io.dicom.series import read_axial_series
from recon.io.dicom.values import get_float

logger = logging.getLogger(__name__)

__all__ = ["read_ct_series"]


def read_ct_series(directory: str | os.PathLike[str], *, series_uid: str | None = None) -> Volume:
    """Read a CT series directory into a Volume of CT numbers (unit ``"HU"``) on its LPS grid.

    The Volume's ``frame_of_reference_uid`` is the series'; ``metadata`` holds
    ``kvp`` (tube voltage, kV, or None), the UIDs and the first slice's header
    (``dicom_header``, no pixel data).
    """
    series = read_axial_series(directory, modalities=("CT",), series_uid=series_uid)
    first = series.datasets[0]
    frame = str(first.get("FrameOfReferenceUID", "") or "")
    metadata: dict[str, Any] = {
        "series_instance_uid": str(first.get("SeriesInstanceUID", "") or ""),
        "study_instance_uid": str(first.get("StudyInstanceUID", "") or ""),
        "kvp": get_float(first, "KVP"),
        "dicom_header": copy.deepcopy(first),
    }
    logger.info("read CT %s: %s voxels of %s mm", directory, series.grid.shape, series.grid.spacing_mm)
    return Volume(series.data, series.grid, unit="HU", metadata=metadata, frame_of_reference_uid=frame)
