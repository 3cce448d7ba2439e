"""Real-file options for NM energy windows: duplicate window names, a radionuclide inferred from the window
energies when the code sequence is empty (anonymised files), and --photopeak / --radionuclide / --energy-kev."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.sequence import Sequence

from recon.cli import main as recon_main
from recon.data import EnergyWindow
from recon.io.dicom import read_nm
from recon.io.dicom.nm_energy import infer_radionuclide
from recon.io.hdf5 import read_volume
from tests.test_patient_placement import RECON, _hand_built_nm

# GE Lu-177 study's layout: two photopeaks and four scatter windows (keV)
LU177_WINDOWS = [("Lu177_EM", 187.2, 228.8), ("Lu177_EM", 101.7, 124.3), ("sc4_SC", 166.4, 187.2),
                 ("sc5_SC", 228.8, 249.6), ("sc2_SC", 90.4, 101.7), ("sc3_SC", 124.3, 135.6)]


def _lu177_file(path: Path) -> Path:
    """The hand-built NM study with the Lu-177 window set and no radionuclide code (each window holds the
    same projections scaled, so every window reconstructs)."""
    src = pydicom.dcmread(_hand_built_nm(path.with_name("base.dcm"), attenuate=False))
    n = int(src.NumberOfFrames)
    frames = src.pixel_array.reshape(n, src.Rows, src.Columns)
    items = []
    for name, lo, hi in LU177_WINDOWS:
        limits = pydicom.Dataset()
        limits.EnergyWindowLowerLimit, limits.EnergyWindowUpperLimit = lo, hi
        item = pydicom.Dataset()
        item.EnergyWindowName = name
        item.EnergyWindowRangeSequence = Sequence([limits])
        items.append(item)
    src.EnergyWindowInformationSequence = Sequence(items)
    k = len(LU177_WINDOWS)
    src.NumberOfEnergyWindows = k
    src.NumberOfFrames = n * k
    src.EnergyWindowVector = [w + 1 for w in range(k) for _ in range(n)]
    for key in ("DetectorVector", "RotationVector", "AngularViewVector"):
        setattr(src, key, list(getattr(src, key)) * k)
    stack = np.concatenate([(frames // (w + 1)).astype(np.uint16) for w in range(k)])
    src.PixelData = stack.tobytes()
    src.RadiopharmaceuticalInformationSequence[0].RadionuclideCodeSequence = Sequence([])
    src.save_as(path, enforce_file_format=True)
    return path


def test_lu177_is_inferred_from_its_windows_and_duplicate_names_become_unique(tmp_path, caplog) -> None:
    acq = read_nm(_lu177_file(tmp_path / "lu.dcm"))
    names = [w.name for w in acq.windows]
    assert len(set(names)) == len(names) == 6 and names[:2] == ["Lu177_EM", "Lu177_EM_2"]
    assert acq.radionuclide == "Lu-177" and acq.dose.radionuclide == "Lu-177"
    assert "inferred Lu-177" in caplog.text
    assert acq.photopeak == "Lu177_EM" and acq.photon_energy_kev == pytest.approx(208.4, abs=0.1)


@pytest.mark.parametrize(("windows", "expected"), [
    ([("TC", 126.45, 154.55)], "Tc-99m"),
    ([("IN1", 154.0, 188.0), ("IN2", 220.0, 270.0)], "In-111"),
    ([("I131", 328.0, 401.0)], "I-131"),
    ([("I123", 143.0, 175.0)], "I-123"),
    ([("EW1", 60.0, 80.0)], None),  # no main line centred in any window
])
def test_inference_rule(windows, expected) -> None:
    found, how = infer_radionuclide([EnergyWindow(*w) for w in windows])
    assert found == expected, how


def test_cli_options_choose_window_radionuclide_and_energy(tmp_path) -> None:
    lu = _lu177_file(tmp_path / "lu.dcm")
    out = tmp_path / "r.h5"
    assert recon_main(["-q", "spect", str(lu), "-o", str(out), "--no-attenuation", *RECON,
                       "--photopeak", "Lu177_EM_2", "--scatter", "none"]) == 0
    assert read_volume(out).data.max() > 0
    acq = read_nm(lu, photopeak="Lu177_EM_2", radionuclide="Tc-99m", photon_energy_kev=113.0)
    assert (acq.photopeak, acq.radionuclide, acq.photon_energy_kev) == ("Lu177_EM_2", "Tc-99m", 113.0)
    assert recon_main(["-q", "spect", str(lu), "-o", str(tmp_path / "x.h5"), "--no-attenuation", *RECON,
                       "--photopeak", "nope"]) == 2
    assert recon_main(["-q", "spect", str(lu), "-o", str(tmp_path / "y.h5"), "--no-attenuation", *RECON,
                       "--radionuclide", "Xx-999"]) == 2
    with pytest.raises(SystemExit):
        recon_main(["-q", "spect", str(lu), "-o", str(tmp_path / "z.h5"), "--energy-kev", "-5"])
    assert not (tmp_path / "x.h5").exists() and not (tmp_path / "y.h5").exists()
