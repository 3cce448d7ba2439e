"""The native HDF5 container: exact round trips, refusals with clear messages, no overwriting."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from recon.data import EnergyWindow, ImageGrid, SPECTAcquisition, SPECTGeometry, Volume, get_collimator
from recon.io.hdf5 import FileFormatError, read_mu_map, read_projections, read_volume, write_projections, write_volume


def _acquisition(rng):
    geo = SPECTGeometry(np.arange(6) * 60.0 + 2.5, 200.0 + np.arange(6), n_rows=5, n_cols=7, pixel_size_mm=4.42,
                        slice_thickness_mm=4.5)
    wins = (EnergyWindow("peak", 126.45, 154.55), EnergyWindow("low", 119.43, 126.45))
    counts = {w.name: rng.poisson(20, (6, 5, 7)).astype(np.float32) for w in wins}
    return SPECTAcquisition(counts, wins, "peak", geo, get_collimator("GI-LEHR"), 25.0, 140.5, "Tc-99m",
                            {"patient": "phantom"})


def test_projection_round_trip_is_exact(tmp_path, rng):
    acq = _acquisition(rng)
    mu = Volume(rng.random((5, 7, 7)).astype(np.float32) * 0.02, acq.geometry.image_grid(), "1/mm")
    path = write_projections(acq, tmp_path / "p.h5", mu_map=mu)
    back = read_projections(path)
    assert [w for w in back.windows] == list(acq.windows)
    for name in acq.counts:
        np.testing.assert_array_equal(back.counts[name], acq.counts[name])
    np.testing.assert_array_equal(back.geometry.angles_deg, acq.geometry.angles_deg)
    np.testing.assert_array_equal(back.geometry.radius_mm, acq.geometry.radius_mm)
    assert back.geometry.slice_thickness_mm == 4.5
    assert back.collimator == acq.collimator
    assert back.frame_duration_s == 25.0 and back.photopeak == "peak" and back.metadata == {"patient": "phantom"}
    mu_back = read_mu_map(path)
    np.testing.assert_array_equal(mu_back.data, mu.data)
    assert mu_back.grid == mu.grid


def test_volume_round_trip_is_exact(tmp_path, rng):
    grid = ImageGrid((3, 4, 5), (2.0, 3.0, 4.0), (-10.0, 20.5, 7.0))
    vol = Volume(rng.random((3, 4, 5)), grid, "Bq/mL", {"iterations": 4})
    back = read_volume(write_volume(vol, tmp_path / "v.h5"))
    np.testing.assert_array_equal(back.data, vol.data)
    assert back.grid == grid and back.unit == "Bq/mL" and back.metadata == {"iterations": 4}


def test_refuses_to_overwrite(tmp_path, rng):
    grid = ImageGrid((2, 2, 2), (1.0, 1.0, 1.0))
    path = tmp_path / "v.h5"
    path.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        write_volume(Volume(np.ones((2, 2, 2)), grid), path)
    assert path.read_bytes() == b"precious"


def test_refuses_foreign_and_future_files(tmp_path, rng):
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f.create_dataset("x", data=np.ones(3))
    with pytest.raises(FileFormatError, match="found format None"):
        read_projections(foreign)
    vol_path = write_volume(Volume(np.ones((2, 2, 2)), ImageGrid((2, 2, 2), (1.0, 1.0, 1.0))), tmp_path / "v.h5")
    with pytest.raises(FileFormatError, match="expected an HDF5 file of format 'recon-spect-projections'"):
        read_projections(vol_path)
    with h5py.File(vol_path, "a") as f:
        f.attrs["format_version"] = 99
    with pytest.raises(FileFormatError, match="version 99 is not supported"):
        read_volume(vol_path)
    text = tmp_path / "notes.h5"
    text.write_text("not hdf5")
    with pytest.raises(FileFormatError, match="not an HDF5 file"):
        read_volume(text)
