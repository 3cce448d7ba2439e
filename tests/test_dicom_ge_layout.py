"""The GE Discovery NM/CT 670 header layout in CI (the real study is too large to commit; ``tools/ge670_lu177.py``
checks it): six energy windows, two named ``Lu177_EM``, an empty radionuclide code sequence, the Detector
Information Sequence's ImagePositionPatient at the first voxel of the reconstruction volume, no
PatientPosition but a Patient Gantry Relationship Code Sequence (feet-first or headfirst)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from recon.cli import main as recon_main
from recon.io.dicom import read_nm
from recon.io.dicom.nm_placement import patient_position
from tests.test_dicom_nm_windows import _lu177_file
from tests.test_patient_placement import CENTRE, N_COLS, N_ROWS, OFFSET, PIXEL, RECON, _source_position

GANTRY = {"FF": ("F-10480", "feet-first"), "HF": ("F-10470", "headfirst")}


def _code(value: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "99SDM", meaning
    return item


def ge_layout_file(path: Path, gantry: str) -> Path:
    """The hand-built Lu-177 study rewritten in GE's header layout (module docstring)."""
    ds = pydicom.dcmread(_lu177_file(path.with_name("lu.dcm")))
    ds.Manufacturer, ds.ManufacturerModelName = "GE MEDICAL SYSTEMS", "Tandem_Discovery_670_Pro"
    del ds.PatientPosition
    orientation = _code("F-10450", "recumbent")
    orientation.PatientOrientationModifierCodeSequence = Sequence([_code("F-10340", "supine")])
    ds.PatientOrientationCodeSequence = Sequence([orientation])
    ds.PatientGantryRelationshipCodeSequence = Sequence([_code(*GANTRY[gantry])])
    det = ds.DetectorInformationSequence[0]
    half_xy, half_z = 0.5 * (N_COLS - 1) * PIXEL, 0.5 * (N_ROWS - 1) * PIXEL
    det.ImagePositionPatient = [float(v) for v in CENTRE + np.array([-half_xy, -half_xy, half_z])]
    ds.RotationInformationSequence[0].RadialPosition = ds.DetectorInformationSequence[0].RadialPosition[0]
    del det.RadialPosition  # GE states one radius per rotation
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.mark.parametrize("gantry", ["FF", "HF"])
def test_ge_header_layout_is_read(tmp_path: Path, gantry: str) -> None:
    path = ge_layout_file(tmp_path / "ge.dcm", gantry)
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    assert "PatientPosition" not in ds and patient_position(ds) == gantry + "S"
    acq = read_nm(path, photopeak="Lu177_EM")
    assert [w.name for w in acq.windows][:2] == ["Lu177_EM", "Lu177_EM_2"] and len(acq.windows) == 6
    assert acq.radionuclide == "Lu-177"
    assert acq.info.patient_position == gantry + "S"
    np.testing.assert_allclose(acq.center_mm, CENTRE, atol=1e-6)  # first voxel -> volume centre


def test_ge_layout_point_source_lands_at_its_patient_position(tmp_path: Path) -> None:
    path = ge_layout_file(tmp_path / "ge.dcm", "FF")
    out = tmp_path / "r.h5"
    assert recon_main(["-q", "spect", str(path), "-o", str(out), "--no-attenuation", "--photopeak", "Lu177_EM",
                       *RECON]) == 0
    peak, centroid, voxel = _source_position(out)
    truth = CENTRE + OFFSET
    assert np.all(np.abs(peak - truth) <= voxel), (peak, truth)
    assert np.all(np.abs(centroid - truth) <= 0.5 * voxel), (centroid, truth)


def test_a_ct_away_from_the_emission_is_warned(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from recon.data.grid import Volume
    from recon.spect.plausibility import check_mu_covers_emission

    acq = read_nm(ge_layout_file(tmp_path / "ge.dcm", "FF"), photopeak="Lu177_EM")
    grid = acq.image_grid
    mu = np.zeros(grid.shape, np.float32)
    mu[:2] = 0.0134  # tissue on two slices only
    with caplog.at_level(logging.WARNING):
        share = check_mu_covers_emission(acq, Volume(mu, grid, "1/mm").data)
    assert share < 0.5 and "holds tissue on only" in caplog.text
    mu[:] = 0.0134
    assert check_mu_covers_emission(acq, mu) == 1.0
