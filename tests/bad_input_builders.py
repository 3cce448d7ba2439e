"""Builders of the bad-input catalogue (tests/test_bad_input_catalogue.py): good inputs built once, and the
small combinators that derive each bad input from them in a case's own directory."""
from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path

import h5py
import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from recon.data import ImageGrid, SPECTGeometry, Volume
from recon.data.study import DoseInfo, PatientInfo
from recon.io.hdf5 import write_projections, write_volume
from recon.spect.simulate import AcquisitionProtocol, simulate_spect
from tests.test_patient_placement import _hand_built_nm

RECON = ["--iterations", "1", "--subsets", "2", "--scatter", "none"]
SCAN = datetime(2026, 11, 25, 11, 0, 0)
PET_SOP = "1.2.840.10008.5.1.4.1.1.128"


# --------------------------------------------------------------------------- inputs built once per module

@dataclass
class Base:
    """Good inputs, built once; cases copy or derive from them."""

    root: Path
    acq: object
    mu: Volume
    study: Path  # projections + mu-map, patient, dose and times (Tc-99m, 70 kg, 740 MBq, 3 h uptake)
    nm: Path  # hand-built DICOM NM projections
    suv_map: Path  # recon HDF5 SUVbw volume
    counts: Path  # recon HDF5 volume in counts


def build_base(root: Path) -> Base:
    """The good inputs in ``root``: a tiny simulated study (4 x 16 x 16 voxels of 6 mm, 16 views) with its
    mu-map and typed patient/dose data, an SUV map, a counts volume and a hand-built NM file."""
    grid = ImageGrid.centered((4, 16, 16), (6.0, 6.0, 6.0))
    act = np.zeros(grid.shape, np.float32)
    act[:, 6:10, 6:10] = 1000.0
    yy, xx = np.mgrid[:16, :16]
    mu_data = np.zeros(grid.shape, np.float32)
    mu_data[:, (yy - 7.5) ** 2 + (xx - 7.5) ** 2 < 25] = 0.0154
    mu = Volume(mu_data, grid, "1/mm")
    sim = simulate_spect(Volume(act, grid, "Bq/mL"), mu, AcquisitionProtocol(n_views=16, radius_mm=200.0))
    acq = replace(sim, patient=PatientInfo(weight_kg=70.0, height_m=1.7, sex="F"),
                  dose=DoseInfo("Tc-99m", 740e6, SCAN - timedelta(hours=3)),
                  info=replace(sim.info, start_time=SCAN))
    study = write_projections(acq, root / "study.h5", mu)
    suv = write_volume(Volume(np.ones(grid.shape, np.float32), grid, "SUVbw (g/mL)"), root / "s_suvbw.h5")
    counts = write_volume(Volume(np.ones(grid.shape, np.float32), grid, "counts"), root / "counts.h5")
    nm = _hand_built_nm(root / "nm.dcm", attenuate=False)
    return Base(root, acq, mu, study, nm, suv, counts)


def _copy(base: Base, name: str, d: Path) -> Path:
    return Path(shutil.copy2(getattr(base, name), d / getattr(base, name).name))


def _study(base: Base, d: Path, name: str = "bad.h5", mu_scale: float = 1.0, mu: bool = True, **changes) -> Path:
    """The base study with fields of the acquisition replaced (and the mu-map scaled or left out)."""
    acq = replace(base.acq, **changes)
    mu_map = Volume(base.mu.data * mu_scale, base.mu.grid, "1/mm") if mu else None
    return write_projections(acq, d / name, mu_map)


def _geometry(base: Base, angles_deg: np.ndarray) -> SPECTGeometry:
    g = base.acq.geometry
    return SPECTGeometry(angles_deg, g.radius_mm, g.n_rows, g.n_cols, g.pixel_size_mm, g.slice_thickness_mm)


def _nm_variant(base: Base, d: Path, change: Callable[[Dataset], None]) -> Path:
    ds = pydicom.dcmread(base.nm)
    change(ds)
    ds.save_as(d / "nm_bad.dcm", enforce_file_format=True)
    return d / "nm_bad.dcm"


def _pet_series(d: Path, n: int = 4, change: Callable[[int, Dataset], None] | None = None, *,
                injection: datetime = SCAN - timedelta(hours=1), weight: str = "70", height: str = "1.70",
                sex: str = "F") -> Path:
    """A 4-slice 4x4 PET series (F-18, BQML, START, SeriesTime = AcquisitionTime) in ``d/pet``."""
    out = d / "pet"
    out.mkdir()
    uid = generate_uid()
    for i in range(n):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = PET_SOP
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
        ds.Modality, ds.Manufacturer, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = "PT", "Synthetic", uid, "1.2.3"
        ds.SeriesDate = ds.AcquisitionDate = SCAN.strftime("%Y%m%d")
        ds.SeriesTime = ds.AcquisitionTime = SCAN.strftime("%H%M%S")
        ds.PatientWeight, ds.PatientSize, ds.PatientSex = weight, height, sex
        ds.Units, ds.DecayCorrection = "BQML", "START"
        ds.ActualFrameDuration, ds.FrameReferenceTime = 300000, "150000"
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [-6.0, -6.0, 4.0 * i]
        ds.PixelSpacing, ds.SliceThickness = [4.0, 4.0], "4.0"
        ds.Rows = ds.Columns = 4
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated = ds.BitsStored = 16
        ds.HighBit, ds.PixelRepresentation = 15, 0
        ds.RescaleSlope, ds.RescaleIntercept = "10.0", "0"
        ds.PixelData = (np.arange(16, dtype="<u2") + 500).tobytes()
        rp = Dataset()
        rp.RadiopharmaceuticalStartDateTime = injection.strftime("%Y%m%d%H%M%S")
        rp.RadionuclideTotalDose, rp.RadionuclideHalfLife = "370000000", "6586.2"
        ds.RadiopharmaceuticalInformationSequence = Sequence([rp])
        if change is not None:
            change(i, ds)
        ds.save_as(out / f"pet_{i:03d}.dcm", enforce_file_format=True)
    return out


def _manifest(d: Path, body: str) -> Path:
    (d / "m.csv").write_text("id,input,iterations\n" + body)
    return d / "m.csv"


def _set(**values) -> Callable[[Dataset], None]:
    def change(ds: Dataset) -> None:
        for key, value in values.items():
            setattr(ds, key, value)
    return change


def _truncate_pixels(ds: Dataset) -> None:
    ds.PixelData = ds.PixelData[: len(ds.PixelData) // 2]


def _del(keyword: str) -> Callable[[Dataset], None]:
    def change(ds: Dataset) -> None:
        delattr(ds, keyword)
    return change


# --------------------------------------------------------------------------- the catalogue

Setup = Callable[[Base, Path], list[str]]


@dataclass(frozen=True)
class Case:
    """One bad input: the command line it builds, the exit status and message expected; ``writes`` lists the
    outputs a warning case may create (an error case writes nothing)."""

    id: str
    setup: Setup
    status: int
    message: str
    writes: tuple[str, ...] = ()
    read_only: tuple[str, ...] = field(default=())  # directories that refuse writes (os.access patched)


def _c(id: str, setup: Setup, message: str, status: int = 2, writes: tuple[str, ...] = (),
       read_only: tuple[str, ...] = ()) -> Case:
    return Case(id, setup, status, message, writes, read_only)


def _spect(*extra: str, input: str = "study") -> Setup:
    def setup(b: Base, d: Path) -> list[str]:
        src = _copy(b, input, d)
        return ["spect", str(src), "-o", str(d / "o.h5"), *RECON, *[e.replace("{d}", str(d)) for e in extra]]
    return setup


def _spect_on(make: Callable[[Base, Path], Path], *extra: str) -> Setup:
    def setup(b: Base, d: Path) -> list[str]:
        return ["spect", str(make(b, d)), "-o", str(d / "o.h5"), *RECON, *[e.replace("{d}", str(d)) for e in extra]]
    return setup


def _suv_on(make: Callable[[Base, Path], Path], *extra: str) -> Setup:
    def setup(b: Base, d: Path) -> list[str]:
        return ["suv", str(make(b, d)), *[e.replace("{d}", str(d)) for e in extra]]
    return setup


def _file(content: bytes, name: str) -> Callable[[Base, Path], Path]:
    def make(b: Base, d: Path) -> Path:
        (d / name).write_bytes(content)
        return d / name
    return make


def _h5_edit(change: Callable[[h5py.File], None]) -> Callable[[Base, Path], Path]:
    def make(b: Base, d: Path) -> Path:
        p = _copy(b, "study", d)
        with h5py.File(p, "r+") as f:
            change(f)
        return p
    return make


def _h5_attr(key: str, value: object) -> Callable[[Base, Path], Path]:
    return _h5_edit(lambda f: f.attrs.__setitem__(key, value))


def _nan_count(f: h5py.File) -> None:
    counts = f["windows/photopeak"][...]
    counts[0, 0, 0] = np.nan
    f["windows/photopeak"][...] = counts


def _truncated(name: str) -> Callable[[Base, Path], Path]:
    def make(b: Base, d: Path) -> Path:
        data = getattr(b, name).read_bytes()
        (d / f"cut_{getattr(b, name).name}").write_bytes(data[: len(data) // 2])
        return d / f"cut_{getattr(b, name).name}"
    return make


def _dirs(*names: str) -> Callable[[Base, Path], None]:
    def make(b: Base, d: Path) -> None:
        for n in names:
            (d / n).mkdir(parents=True, exist_ok=True)
    return make


def _with(prep: Callable[[Base, Path], object], setup: Setup) -> Setup:
    def both(b: Base, d: Path) -> list[str]:
        prep(b, d)
        return setup(b, d)
    return both


def _touch(name: str, content: bytes = b"keep") -> Callable[[Base, Path], None]:
    def make(b: Base, d: Path) -> None:
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        (d / name).write_bytes(content)
    return make


def _argv(*args: str, files: Callable[[Base, Path], object] | None = None) -> Setup:
    def setup(b: Base, d: Path) -> list[str]:
        if files is not None:
            files(b, d)
        return [a.replace("{d}", str(d)).replace("{suv}", str(_copy(b, "suv_map", d)) if "{suv}" in a else a)
                for a in args]
    return setup


def _pet(change: Callable[[int, Dataset], None] | None = None, n: int = 4, **kw) -> Callable[[Base, Path], Path]:
    return lambda b, d: _pet_series(d, n, change, **kw)


def _on_slice(k: int, change: Callable[[Dataset], None]) -> Callable[[int, Dataset], None]:
    return lambda i, ds: change(ds) if i == k else None
