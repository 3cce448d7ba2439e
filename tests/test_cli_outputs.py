"""The command line's outputs: NIfTI beside HDF5, SUV maps read by ``recon suv``, ``recon response``,
and reports that never overwrite an existing file."""
from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from recon.cli import main as recon_main
from recon.data import ImageGrid, Volume
from recon.io.hdf5 import read_volume, write_volume
from tests.test_patient_placement import CENTRE, OFFSET, RECON, _hand_built_nm

SUV_UNIT = "SUVbw (g/mL)"


def _suv_map(path: Path, lesions: list[tuple[tuple[float, float, float], float]]) -> Path:
    """A uniform SUV 1 background with Gaussian lesions (centre LPS mm on a voxel centre, SUVmax), 4 mm grid."""
    grid = ImageGrid.centered((30, 40, 40), (4.0, 4.0, 4.0))
    xyz = grid.index_to_mm(np.stack(np.indices(grid.shape), axis=-1))
    data = np.ones(grid.shape)
    for centre, peak in lesions:
        d2 = ((xyz - np.asarray(centre)) ** 2).sum(axis=-1)
        data += (peak - 1.0) * np.exp(-d2 / (2 * 5.0**2))
    return write_volume(Volume(data.astype(np.float32), grid, SUV_UNIT), path)


def test_spect_writes_nifti_in_ras_at_the_patient_position(tmp_path: Path) -> None:
    nm = _hand_built_nm(tmp_path / "nm.dcm", attenuate=False)
    out, nii = tmp_path / "r.h5", tmp_path / "r.nii.gz"
    assert recon_main(["-q", "spect", str(nm), "-o", str(out), "--no-attenuation", *RECON,
                       "--nifti-out", str(nii)]) == 0
    img = nib.load(str(nii))
    data = np.asarray(img.dataobj)
    ijk = np.unravel_index(int(np.argmax(data)), data.shape)
    ras = nib.affines.apply_affine(img.affine, ijk)
    lps = np.array([-ras[0], -ras[1], ras[2]])
    assert np.all(np.abs(lps - (CENTRE + OFFSET)) <= 6.0), lps
    np.testing.assert_allclose(data.transpose(2, 1, 0), read_volume(out).data, rtol=1e-6)
    # a second run refuses to overwrite either output, before reconstructing
    before = nii.read_bytes()
    assert recon_main(["-q", "spect", str(nm), "-o", str(tmp_path / "other.h5"), "--no-attenuation", *RECON,
                       "--nifti-out", str(nii)]) == 2
    assert nii.read_bytes() == before and not (tmp_path / "other.h5").exists()


def test_suv_reads_the_suv_map_of_recon_spect(tmp_path: Path) -> None:
    suv_map = _suv_map(tmp_path / "s_suvbw.h5", [((18.0, -14.0, 6.0), 9.0)])
    report = tmp_path / "report.json"
    assert recon_main(["-q", "suv", str(suv_map), "--json", str(report)]) == 0
    stats = json.loads(report.read_text())
    assert stats["voi"]["max"] == pytest.approx(9.0, rel=0.02)
    np.testing.assert_allclose(stats["voi"]["max_position_mm"], (18.0, -14.0, 6.0), atol=1e-6)
    # the report is never overwritten without --overwrite
    before = report.read_bytes()
    assert recon_main(["-q", "suv", str(suv_map), "--json", str(report)]) == 2
    assert report.read_bytes() == before
    assert recon_main(["-q", "suv", str(suv_map), "--json", str(report), "--overwrite"]) == 0


def test_suv_refuses_a_volume_that_is_not_suv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    grid = ImageGrid.centered((4, 4, 4), (4.0, 4.0, 4.0))
    path = write_volume(Volume(np.ones(grid.shape, np.float32), grid, "Bq/mL"), tmp_path / "bq.h5")
    assert recon_main(["-q", "suv", str(path)]) == 2
    assert "not SUV" in capsys.readouterr().err


def test_response_matches_lesions_and_reports_changes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = _suv_map(tmp_path / "base.h5", [((18.0, -14.0, 6.0), 10.0), ((-22.0, 14.0, -18.0), 6.0)])
    follow = _suv_map(tmp_path / "follow.h5", [((22.0, -14.0, 6.0), 7.0), ((2.0, 30.0, 18.0), 5.0)])
    report = tmp_path / "response.json"
    assert recon_main(["-q", "response", str(base), str(follow), "--threshold", "3", "--json", str(report)]) == 0
    result = json.loads(report.read_text())
    assert len(result["matched"]) == 1
    pair = result["matched"][0]
    assert pair["suv_max_baseline"] == pytest.approx(10.0, rel=0.02)
    assert pair["suv_max_followup"] == pytest.approx(7.0, rel=0.05)
    assert pair["suv_max_change_pct"] == pytest.approx(-30.0, abs=3.0)
    assert len(result["new"]) == 1 and len(result["vanished"]) == 1
    assert "1 matched, 1 new, 1 vanished" in capsys.readouterr().out
    assert recon_main(["-q", "response", str(base), str(follow), "--json", str(report)]) == 2
    assert recon_main(["-q", "response", str(base), str(follow), "--json", str(report), "--overwrite"]) == 0


def test_suv_options_cannot_change_an_suv_map(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suv_map = _suv_map(tmp_path / "s_suvbw.h5", [((18.0, -14.0, 6.0), 9.0)])
    assert recon_main(["-q", "suv", str(suv_map), "--weight-kg", "90", "--suv-type", "lbm_james"]) == 2
    assert "--weight-kg, --suv-type cannot change it" in capsys.readouterr().err


@pytest.mark.parametrize("bad", ["nifti-suffix", "nifti-dir", "output-dir", "dicom-parent"])
def test_bad_output_paths_are_refused_before_compute(tmp_path: Path, bad: str, monkeypatch) -> None:
    import recon.commands.spect as spect_command

    def no_compute(*_args, **_kwargs):
        raise AssertionError("reconstruction started before the outputs were checked")

    monkeypatch.setattr(spect_command, "reconstruct_spect", no_compute)
    nm = _hand_built_nm(tmp_path / "nm.dcm", attenuate=False)
    args = {"nifti-suffix": ["-o", str(tmp_path / "r.h5"), "--nifti-out", str(tmp_path / "r.img")],
            "nifti-dir": ["-o", str(tmp_path / "r.h5"), "--nifti-out", str(tmp_path / "no" / "r.nii")],
            "output-dir": ["-o", str(tmp_path / "no" / "r.h5")],
            "dicom-parent": ["-o", str(tmp_path / "r.h5"), "--dicom-out", str(tmp_path / "no" / "series")]}[bad]
    assert recon_main(["-q", "spect", str(nm), "--no-attenuation", *RECON, *args]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nm.dcm"]


def test_dicom_output_of_an_hdf5_study_carries_its_typed_patient_and_dose(tmp_path: Path) -> None:
    """An HDF5 study without a DICOM header: the NM series still has weight, dose and injection time, so its
    SUV equals the SUV map written from the typed data."""
    from dataclasses import replace

    from recon.io.dicom import read_image_series
    from recon.io.dicom.nm_projections import read_nm
    from recon.io.hdf5 import write_projections
    from recon.quant.suv import suv_volume

    acq = read_nm(_hand_built_nm(tmp_path / "nm.dcm", attenuate=False))
    bare = replace(acq, metadata={})
    h5 = write_projections(bare, tmp_path / "study.h5")
    series = tmp_path / "series"
    assert recon_main(["-q", "spect", str(h5), "-o", str(tmp_path / "r.h5"), "--no-attenuation", *RECON,
                       "--calibration", "91", "--dicom-out", str(series)]) == 0
    back = read_image_series(series / "nm_recon.dcm")
    assert back.header.weight_kg == pytest.approx(acq.patient.weight_kg)
    assert back.header.dose_bq == pytest.approx(acq.dose.injected_activity_bq)
    _, conversion = suv_volume(back.volume, back.header, "bw", slice_axis=back.slice_axis,
                               slice_order=back.slice_order)
    direct = read_volume(tmp_path / "r_suvbw.h5")
    bqml = read_volume(tmp_path / "r.h5")
    hot = bqml.data > 0.05 * bqml.data.max()
    np.testing.assert_allclose(conversion.factors, np.median(direct.data[hot] / bqml.data[hot]), rtol=1e-6)
