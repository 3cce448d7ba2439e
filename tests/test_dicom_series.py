"""The shared image-series reader: incomplete series refused via NumberOfSlices; the I/O layer's import boundary."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from recon.data.grid import ImageGrid, Volume
from recon.io.dicom import DicomFormatError, read_ct_series, read_image_series, read_volume_series, write_volume_series

REPO = Path(__file__).resolve().parents[1]


def _series(tmp_path: Path, modality: str) -> list[Path]:
    grid = ImageGrid((5, 4, 6), (3.0, 2.0, 2.5), (-7.0, -3.0, 40.0))
    data = np.arange(np.prod(grid.shape), dtype=np.float32).reshape(grid.shape) + 1.0
    return write_volume_series(Volume(data, grid, "Bq/mL"), tmp_path / "s", modality=modality,
                               series_description="test series")


@pytest.mark.parametrize("modality", ["PT"])  # our NM output is one multi-frame file
@pytest.mark.parametrize("which", [0, -1])
def test_series_missing_an_end_slice_is_refused(tmp_path: Path, modality: str, which: int) -> None:
    """An end slice gone leaves uniform spacing: only NumberOfSlices (0054,0081) can tell."""
    paths = _series(tmp_path, modality)
    uid = str(pydicom.dcmread(paths[0], stop_before_pixels=True).SeriesInstanceUID)
    assert read_image_series(tmp_path / "s").volume.grid.shape == (5, 4, 6)  # complete: fine
    paths[which].unlink()
    for reader in (read_image_series, read_volume_series):
        with pytest.raises(DicomFormatError, match=rf"incomplete series {uid} .*NumberOfSlices \(0054,0081\) is 5 "
                                                   r"but 4 slice file\(s\)"):
            reader(tmp_path / "s")


def test_series_missing_a_middle_slice_names_the_gap(tmp_path: Path) -> None:
    paths = _series(tmp_path, "PT")
    ds = pydicom.dcmread(paths[0])
    for p in paths:  # drop NumberOfSlices so the spacing check is what fires
        d = pydicom.dcmread(p)
        del d.NumberOfSlices
        d.save_as(p)
    paths[2].unlink()
    with pytest.raises(DicomFormatError, match=r"not uniform: 1 slice\(s\) missing between slice_0002.dcm and "
                                               r"slice_0004.dcm"):
        read_image_series(tmp_path / "s")
    assert ds.NumberOfSlices == 5


def test_ct_reader_returns_hu_with_its_frame_of_reference(tmp_path: Path) -> None:
    paths = _series(tmp_path, "PT")
    for p in paths:  # the same slices as CT
        d = pydicom.dcmread(p)
        d.Modality, d.KVP, d.FrameOfReferenceUID = "CT", "120", "1.2.840.99"
        d.save_as(p)
    ct = read_ct_series(tmp_path / "s")
    assert ct.unit == "HU" and ct.frame_of_reference_uid == "1.2.840.99" and ct.metadata["kvp"] == 120.0


def test_io_imports_no_quantification_or_modality_package() -> None:
    """recon.io reads and writes; it runs no physics and no quantification (grep-level check)."""
    offenders = []
    for path in sorted((REPO / "recon" / "io").rglob("*.py")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if ("import" in code) and any(m in code for m in ("recon.quant", "recon.spect", "recon.pet")):
                offenders.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert not offenders, "recon.io imports quantification/modality code:\n" + "\n".join(offenders)
    assert (REPO / "recon" / "io" / "dicom" / "__init__.py").is_file()
    for gone in ("dicom_nm.py", "dicom_ct.py", "dicom_pet.py", "dicom_image_out.py"):
        assert not (REPO / "recon" / "io" / gone).exists(), gone
