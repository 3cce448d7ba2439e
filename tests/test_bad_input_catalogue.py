"""The bad-input catalogue (docs/bad-input.md): every case through the ``recon`` command line.

Each case builds its bad input in its own directory (tiny simulated studies, hand-made DICOM, corrupted
files, bad arguments; builders in tests/bad_input_builders.py) and asserts the exit status, the message
(a regex), that no traceback reached the user, and that nothing was written or changed: the directory's
files (names, sizes, mtimes, bytes) are the same before and after. Cases that only warn (possible but
implausible values) run to the end: their inputs are unchanged and only the outputs they name appear.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from recon.cli import main as recon_main
from recon.data.study import DoseInfo, PatientInfo
from tests.bad_input_builders import (
    RECON, SCAN, Base, Case, _argv, _c, _copy, _del, _dirs, _file, _geometry, _h5_attr, _h5_edit, _manifest, _nan_count,
    _nm_variant, _on_slice, _pet, _set, _spect, _spect_on, _study, _suv_on, _touch, _truncate_pixels, _truncated,
    _with, build_base,
)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Base:
    return build_base(tmp_path_factory.mktemp("base"))


SPECT = [
    _c("spect-missing-input", _argv("spect", "{d}/nope.h5", "-o", "{d}/o.h5"), r"nope\.h5 does not exist"),
    _c("spect-input-is-directory", _argv("spect", "{d}", "-o", "{d}/o.h5"), r"is a directory; give an HDF5"),
    _c("spect-empty-h5", _spect_on(_file(b"", "empty.h5")), r"empty\.h5 is not an HDF5 file \(it is empty\)"),
    _c("spect-text-h5", _spect_on(_file(b"hello\n", "text.h5")), r"text\.h5 is not an HDF5 file"),
    _c("spect-truncated-h5", _spect_on(_truncated("study")), r"cut_study\.h5 is not a readable HDF5 file"),
    _c("spect-empty-dcm", _spect_on(_file(b"", "empty.dcm")), r"empty\.dcm is not a DICOM file"),
    _c("spect-text-dcm", _spect_on(_file(b"not dicom", "text.dcm")), r"text\.dcm is not a DICOM file"),
    _c("spect-volume-as-projections", _spect(input="suv_map"),
       r"expected an HDF5 file of format 'recon-spect-projections', found format 'recon-volume'"),
    _c("spect-bad-metadata-json", _spect_on(_h5_attr("metadata_json", "{not json")),
       r"study\.h5: metadata_json is not valid JSON"),
    _c("h5-nan-counts", _spect_on(_h5_edit(_nan_count)),
       r"study\.h5: window 'photopeak': projections contain NaN or infinite values"),
    _c("h5-no-geometry", _spect_on(_h5_edit(lambda f: f.__delitem__("geometry"))), r"study\.h5: 'geometry' missing"),
    _c("h5-newer-version", _spect_on(_h5_attr("format_version", 99)),
       r"study\.h5: format version 99 is not supported by this reader"),
    _c("h5-photopeak-unknown", _spect_on(_h5_attr("photopeak", "nope")),
       r"study\.h5: photopeak window 'nope' is not among"),
    _c("h5-frame-duration-text", _spect_on(_h5_attr("frame_duration_s", "abc")),
       r"study\.h5: could not convert string to float: 'abc'"),
    _c("h5-radionuclide-unknown", _spect_on(_h5_attr("radionuclide", "Xx-999"), "--calibration", "91"),
       r"study\.h5: unknown radionuclide 'Xx-999'; known: Tc-99m"),
    _c("spect-output-exists", _with(_touch("o.h5"), _spect()), r"o\.h5 exists; refusing to overwrite"),
    _c("spect-output-is-input", lambda b, d: ["spect", str(_copy(b, "study", d)), "-o", str(d / "study.h5"),
                                              "--overwrite", *RECON], r"equals the input path"),
    _c("spect-bed-twice", lambda b, d: ["spect", str(_copy(b, "study", d)), str(d / "study.h5"), "-o",
                                        str(d / "o.h5"), *RECON], r"the same bed is given twice"),
    _c("spect-output-dir-missing", _spect("-o", "{d}/no/o.h5"), r"output directory .*no does not exist"),
    _c("spect-output-is-directory", _with(_dirs("out.h5"), _spect("-o", "{d}/out.h5")),
       r"out\.h5 is a directory; give an output file name"),
    _c("spect-output-dir-read-only", _with(_dirs("ro"), _spect("-o", "{d}/ro/o.h5")),
       r"output directory .*ro is not writable", read_only=("ro",)),
    _c("spect-nifti-bad-suffix", _spect("--nifti-out", "{d}/o.img"), r"o\.img: a NIfTI file name ends with"),
    _c("spect-nifti-exists", _with(_touch("o.nii"), _spect("--nifti-out", "{d}/o.nii")),
       r"o\.nii exists; refusing to overwrite"),
    _c("spect-dicom-out-not-empty", _with(_touch("dcm/x.dcm"), _spect("--dicom-out", "{d}/dcm")),
       r"dcm is not an empty directory"),
    _c("spect-dicom-out-parent-missing", _spect("--dicom-out", "{d}/no/dcm"),
       r"parent directory of --dicom-out .* does not exist"),
    _c("spect-dicom-out-read-only", _with(_dirs("ro"), _spect("--dicom-out", "{d}/ro/dcm")),
       r"ro is not writable", read_only=("ro",)),
    _c("spect-calibration-zero", _spect("--calibration", "0"), r"--calibration must be a positive number, got 0"),
    _c("spect-calibration-nan", _spect("--calibration", "nan"), r"--calibration must be a positive number, got nan"),
    _c("spect-calibration-negative", _spect("--calibration", "-91"), r"--calibration must be a positive number"),
    _c("spect-reference-time-without-calibration", _spect("--reference-time", "2026-11-25T08:00:00"),
       r"--reference-time needs --calibration"),
    _c("spect-reference-time-not-iso", _spect("--calibration", "91", "--reference-time", "yesterday"),
       r"argument --reference-time: invalid fromisoformat value: 'yesterday'"),
    _c("spect-iterations-zero", _spect("--iterations", "0"), r"n_iterations must be >= 1, got 0"),
    _c("spect-iterations-not-integer", _spect("--iterations", "two"), r"argument --iterations: invalid int value"),
    _c("spect-subsets-exceed-views", _spect("--subsets", "99"), r"n_subsets \(99\) exceeds the number of subset units"),
    _c("spect-scatter-unknown", _spect("--scatter", "magic"), r"argument --scatter: invalid choice: 'magic'"),
    _c("spect-device-unknown", _spect("--device", "tpu"), r"argument --device: invalid choice: 'tpu'"),
    _c("spect-collimator-unknown", _spect("--collimator", "XX-LEHR"), r"unknown collimator 'XX-LEHR'.*SY-LEHR"),
    _c("spect-ct-with-hdf5", _with(_dirs("ct"), _spect("--ct", "{d}/ct")), r"--ct applies to DICOM input"),
    _c("spect-no-mu-map", _spect_on(lambda b, d: _study(b, d, mu=False)), r"no mu-map for .*bad\.h5"),
    _c("spect-mu-map-in-per-cm", _spect_on(lambda b, d: _study(b, d, mu_scale=10.0)),
       r"mu-map body values \(median 0\.154 1/mm\) are implausible at 140\.5 keV .* not 1/cm\?"),
    _c("spect-mu-map-negative", _spect_on(lambda b, d: _study(b, d, mu_scale=-1.0)),
       r"mu-map has negative attenuation coefficients"),
    _c("spect-angles-in-radians", _spect_on(lambda b, d: _study(
        b, d, geometry=_geometry(b, np.radians(b.acq.geometry.angles_deg)))),
       r"the 16 view angles span 0 to 5\.89: they look like radians"),
    _c("spect-angles-in-radians-centred", _spect_on(lambda b, d: _study(
        b, d, geometry=_geometry(b, np.radians(b.acq.geometry.angles_deg - 180.0)))),
       r"the 16 view angles span -3\.14 to 2\.75: they look like radians"),
    _c("spect-angles-all-equal", _spect_on(lambda b, d: _study(b, d, geometry=_geometry(b, np.zeros(16)))),
       r"all 16 view angles are 0 deg"),
    _c("spect-injection-after-scan", _spect_on(lambda b, d: _study(
        b, d, dose=DoseInfo("Tc-99m", 740e6, SCAN + timedelta(minutes=59))), "--calibration", "91"),
       r"injection \(.*\) is 3540 s after the decay reference time"),
    _c("spect-injection-10-days-before", _spect_on(lambda b, d: _study(
        b, d, dose=DoseInfo("Tc-99m", 740e6, SCAN - timedelta(days=10))), "--calibration", "91"),
       r"uptake time 240\.0 h .* half-lives \(over 10"),
    _c("spect-frame-duration-in-ms", _spect_on(lambda b, d: _study(b, d, frame_duration_s=20000.0)),
       r"frame duration 20000 s per view is implausible \(above 600 s\)", status=0, writes=("o.h5",)),
    _c("spect-frame-duration-tiny", _spect_on(lambda b, d: _study(b, d, frame_duration_s=0.02)),
       r"frame duration 0\.02 s per view is implausible \(under 1 s\)", status=0, writes=("o.h5",)),
    _c("spect-short-arc", _spect_on(lambda b, d: _study(b, d, geometry=_geometry(b, 7.5 * np.arange(16)))),
       r"the orbit covers 120\.0 deg \(under 170 deg\)", status=0, writes=("o.h5",)),
    _c("spect-weight-500-kg", _spect_on(lambda b, d: _study(
        b, d, patient=PatientInfo(weight_kg=500.0, height_m=1.7, sex="F")), "--calibration", "91"),
       r"patient weight 500 kg is implausible \(outside 2-250 kg\)", status=0, writes=("o.h5", "o_suvbw.h5")),
    _c("spect-dose-bq-read-as-mbq", _spect_on(lambda b, d: _study(
        b, d, dose=DoseInfo("Tc-99m", 740e12, SCAN - timedelta(hours=3))), "--calibration", "91"),
       r"injected activity 7\.4e\+08 MBq is implausible \(outside 1-20000 MBq\)", status=0,
       writes=("o.h5", "o_suvbw.h5")),
    _c("nm-nan-rescale-slope", _spect_on(lambda b, d: _nm_variant(b, d, _set(RescaleSlope="NaN")), "--no-attenuation"),
       r"nm_bad\.dcm: RescaleSlope \(0028,1053\) is NaN; it must be a finite non-zero number"),
    _c("nm-truncated-pixels", _spect_on(lambda b, d: _nm_variant(b, d, _truncate_pixels), "--no-attenuation"),
       r"nm_bad\.dcm: PixelData .*(truncated|cannot be decoded)"),
    _c("nm-missing-rows", _spect_on(lambda b, d: _nm_variant(b, d, _del("Rows")), "--no-attenuation"),
       r"nm_bad\.dcm: missing required DICOM tag Rows \(0028,0010\)"),
    _c("nm-pixel-spacing-zero", _spect_on(lambda b, d: _nm_variant(b, d, _set(PixelSpacing=[0, 0])), "--no-attenuation"),
       r"nm_bad\.dcm: pixel_size_mm must be positive, got 0\.0"),
    _c("nm-frame-duration-zero", _spect_on(lambda b, d: _nm_variant(
        b, d, lambda ds: setattr(ds.RotationInformationSequence[0], "ActualFrameDuration", 0)), "--no-attenuation"),
       r"nm_bad\.dcm: frame_duration_s must be positive, got 0\.0"),
    _c("nm-modality-ct", _spect_on(lambda b, d: _nm_variant(b, d, _set(Modality="CT")), "--no-attenuation"),
       r"nm_bad\.dcm: Modality \(0008,0060\) is 'CT', expected 'NM'"),
    _c("nm-reconstruction-as-projections", _spect_on(lambda b, d: _nm_variant(
        b, d, _set(ImageType=["ORIGINAL", "PRIMARY", "RECON TOMO", "EMISSION"])), "--no-attenuation"),
       r"nm_bad\.dcm: ImageType \(0008,0008\) is 'RECON TOMO', a reconstruction, not projections"),
    _c("nm-frame-count-mismatch", _spect_on(lambda b, d: _nm_variant(b, d, _set(NumberOfFrames=59)), "--no-attenuation"),
       r"nm_bad\.dcm: inconsistent frame counts: NumberOfFrames \(0028,0008\) is 59"),
    _c("nm-no-energy-windows", _spect_on(lambda b, d: _nm_variant(b, d, _del("EnergyWindowInformationSequence")),
                                         "--no-attenuation"),
       r"nm_bad\.dcm: missing required DICOM tag EnergyWindowInformationSequence \(0054,0012\)"),
    _c("nm-ct-missing", _spect("--ct", "{d}/noct", input="nm"), r"no such DICOM series directory: .*noct"),
    _c("nm-ct-empty", _with(_dirs("ct"), _spect("--ct", "{d}/ct", input="nm")),
       r"no DICOM image files with Modality in \('CT',\) in .*ct"),
    _c("nm-truncated-file", _spect_on(_truncated("nm"), "--no-attenuation"), r"cut_nm\.dcm"),
]

SUV = [
    _c("suv-missing-input", _argv("suv", "{d}/nope"), r"nope does not exist"),
    _c("suv-empty-directory", _argv("suv", "{d}/empty", files=_dirs("empty")), r"no DICOM image files"),
    _c("suv-empty-dcm", _suv_on(_file(b"", "empty.dcm")), r"empty\.dcm is not a DICOM file"),
    _c("suv-text-h5", _suv_on(_file(b"text", "text.h5")), r"text\.h5 is not an HDF5 file"),
    _c("suv-projections-h5", _suv_on(lambda b, d: _copy(b, "study", d)),
       r"expected an HDF5 file of format 'recon-volume', found format 'recon-spect-projections'"),
    _c("suv-counts-volume", _suv_on(lambda b, d: _copy(b, "counts", d)), r"holds a volume in 'counts', not SUV"),
    _c("suv-map-with-overrides", _suv_on(lambda b, d: _copy(b, "suv_map", d), "--weight-kg", "80"),
       r"is an SUV map already: --weight-kg cannot change it"),
    _c("suv-json-exists", _with(_touch("r.json"), _suv_on(lambda b, d: _copy(b, "suv_map", d), "--json", "{d}/r.json")),
       r"r\.json exists; refusing to overwrite"),
    _c("suv-json-dir-missing", _suv_on(lambda b, d: _copy(b, "suv_map", d), "--json", "{d}/no/r.json"),
       r"output directory .*no does not exist"),
    _c("suv-json-is-directory", _with(_dirs("r.json"), _suv_on(lambda b, d: _copy(b, "suv_map", d), "--json",
                                                               "{d}/r.json")), r"r\.json is a directory"),
    _c("suv-json-read-only", _with(_dirs("ro"), _suv_on(lambda b, d: _copy(b, "suv_map", d), "--json",
                                                        "{d}/ro/r.json")), r"ro is not writable", read_only=("ro",)),
    _c("suv-dose-zero", _suv_on(_pet(), "--dose-mbq", "0"), r"--dose-mbq must be a positive number, got 0"),
    _c("suv-weight-negative", _suv_on(_pet(), "--weight-kg", "-70"), r"--weight-kg must be a positive number"),
    _c("suv-half-life-nan", _suv_on(_pet(), "--half-life-s", "nan"), r"--half-life-s must be a positive number"),
    _c("suv-percent-out-of-range", _suv_on(_pet(), "--lesions", "--percent", "410"), r"--percent must be in \(0, 100\]"),
    _c("suv-kind-unknown", _suv_on(_pet(), "--suv-type", "lbm_foo"), r"argument --suv-type: invalid choice"),
    _c("suv-injection-10-days-before", _suv_on(_pet(injection=SCAN - timedelta(days=10))),
       r"uptake time 240\.0 h .* half-lives \(over 10"),
    _c("suv-injection-59-min-after", _suv_on(_pet(injection=SCAN + timedelta(minutes=59))),
       r"is 3540 s after the decay reference time"),
    _c("suv-lbm-james-negative", _suv_on(_pet(weight="200", height="1.50", sex="M"), "--suv-type", "lbm_james"),
       r"lean body mass by the James formula is -?\d+\.\d kg \(<= 0\) for weight 200 kg, height 150 cm"),
    _c("suv-incomplete-series", _suv_on(_pet(lambda i, ds: setattr(ds, "NumberOfSlices", 5))),
       r"incomplete series .*NumberOfSlices \(0054,0081\) is 5 but 4 slice file"),
    _c("suv-nan-slope-one-slice", _suv_on(_pet(_on_slice(2, _set(RescaleSlope="NaN")))),
       r"pet_002\.dcm \(slice 2\): RescaleSlope \(0028,1053\) is NaN"),
    _c("suv-truncated-slice", _suv_on(_pet(_on_slice(1, _truncate_pixels))),
       r"pet_001\.dcm \(slice 1\): PixelData"),
    _c("suv-units-unsupported", _suv_on(_pet(lambda i, ds: setattr(ds, "Units", "PROPCPS"))),
       r"Units \(0054,1001\) = 'PROPCPS' cannot be converted"),
    _c("suv-decay-correction-missing", _suv_on(_pet(lambda i, ds: delattr(ds, "DecayCorrection"))),
       r"DecayCorrection \(0054,1102\) is missing"),
    _c("suv-weight-missing", _suv_on(_pet(weight="")), r"PatientWeight \(0010,1030\)"),
    _c("suv-mask-missing", _suv_on(_pet(), "--mask", "{d}/nope.nii"), r"nope\.nii does not exist"),
    _c("suv-mask-format", _with(_touch("mask.txt"), _suv_on(_pet(), "--mask", "{d}/mask.txt")),
       r"mask .*mask\.txt: unsupported format"),
    _c("suv-mask-wrong-shape", _with(lambda b, d: np.save(d / "m.npy", np.ones((2, 2, 2), bool)),
                                     _suv_on(_pet(), "--mask", "{d}/m.npy")), r"has shape \(2, 2, 2\)"),
    _c("suv-mask-npy-garbage", _with(_touch("m.npy", b"garbage"), _suv_on(_pet(), "--mask", "{d}/m.npy")),
       r"mask .*m\.npy: not a readable \.npy array"),
    _c("suv-mask-nii-garbage", _with(_touch("m.nii", b"garbage"), _suv_on(_pet(), "--mask", "{d}/m.nii")),
       r"m\.nii: not a readable NIfTI image"),
    _c("suv-segment-without-mask", _suv_on(_pet(), "--segment", "3"), r"--segment N needs --mask SEG\.dcm"),
    _c("suv-threshold-nan", _suv_on(_pet(), "--lesions", "--threshold", "nan"), r"--threshold must be a finite SUV"),
    _c("suv-min-volume-negative", _suv_on(_pet(), "--lesions", "--min-volume-ml", "-1"),
       r"--min-volume-ml must be >= 0 \(mL\), got -1"),
    _c("suv-nm-projections", _suv_on(lambda b, d: _copy(b, "nm", d)),
       r"nm\.dcm: ImageType \(0008,0008\) .* is not a reconstruction \(RECON TOMO\)"),
    _c("suv-dicom-seg-not-empty", _with(_touch("seg/x"), _suv_on(_pet(), "--lesions", "--dicom-seg", "{d}/seg")),
       r"seg is not an empty directory"),
    _c("suv-weight-500-kg", _suv_on(_pet(), "--weight-kg", "500"),
       r"patient weight 500 kg is implausible \(outside 2-250 kg\)", status=0),
    _c("suv-dose-bq-as-mbq", _suv_on(_pet(), "--dose-mbq", "370000000"),
       r"injected activity 3\.7e\+08 MBq is implausible", status=0),
    _c("suv-dose-mbq-as-bq", _suv_on(_pet(), "--dose-mbq", "0.00037"),
       r"injected activity 0\.00037 MBq is implausible", status=0),
    _c("suv-height-in-cm", _suv_on(_pet(), "--height-m", "170", "--suv-type", "bsa"),
       r"patient height 170 m is implausible \(outside 0\.4-2\.3 m\)", status=0),
    _c("suv-uptake-6-half-lives", _suv_on(_pet(injection=SCAN - timedelta(hours=11))),
       r"uptake time 11\.0 h is 6\.0 half-lives \(over 5", status=0),
]

OTHER = [
    _c("response-missing-followup", _argv("response", "{suv}", "{d}/nope.h5"), r"nope\.h5 does not exist"),
    _c("response-text-input", _argv("response", "{suv}", "{d}/t.dcm", files=_touch("t.dcm")),
       r"t\.dcm is not a DICOM file"),
    _c("response-json-exists", _argv("response", "{suv}", "{suv}", "--json", "{d}/r.json", files=_touch("r.json")),
       r"r\.json exists; refusing to overwrite"),
    _c("response-max-distance-negative", _argv("response", "{suv}", "{suv}", "--max-distance-mm", "-1"),
       r"--max-distance-mm must be positive, got -1"),
    _c("response-percent-out-of-range", _argv("response", "{suv}", "{suv}", "--percent", "500"),
       r"--percent must be in \(0, 100\], got 500"),
    _c("response-pet-needs-sul", _argv("response", "{suv}", "{suv}", "--modality", "pet"),
       r"PERCIST needs SUL \(SUV normalised to lean body mass\), the study gives SUVbw"),
    _c("response-liver-negative", _argv("response", "{suv}", "{suv}", "--liver-baseline", "-1", "0.2"),
       r"--liver-baseline: liver mean SUL must be a positive number, got -1"),
    _c("response-liver-for-spect", _argv("response", "{suv}", "{suv}", "--liver-followup", "1.5", "0.2"),
       r"--liver-baseline/--liver-followup apply to PET \(PERCIST\) only"),
    _c("batch-missing-manifest", _argv("batch", "{d}/nope.csv", "-o", "{d}/out"), r"manifest .*nope\.csv does not exist"),
    _c("batch-bad-row", lambda b, d: ["batch", str(_manifest(d, f"a,{_copy(b, 'study', d)},two\n")), "-o", str(d / "out")],
       r"row 2, column iterations: .two. invalid"),
    _c("batch-missing-input-column", lambda b, d: ["batch", str(_manifest(d, "")), "-o", str(d / "out")],
       r"manifest .*m\.csv"),
    _c("batch-binary-manifest", _argv("batch", "{d}/b.csv", "-o", "{d}/out", files=_touch("b.csv", bytes(range(256)))),
       r"manifest .*b\.csv is not a UTF-8 CSV text file"),
    _c("batch-output-is-file", lambda b, d: ["batch", str(_manifest(d, f"a,{_copy(b, 'study', d)},1\n")), "-o",
                                             str(d / "m.csv")], r"m\.csv is not a directory"),
    _c("batch-output-read-only", _with(_dirs("ro"), lambda b, d: [
        "batch", str(_manifest(d, f"a,{_copy(b, 'study', d)},1\n")), "-o", str(d / "ro" / "out")]),
       r"output directory .*ro is not writable", read_only=("ro",)),
    _c("batch-resume-and-overwrite", lambda b, d: ["batch", str(_manifest(d, f"a,{_copy(b, 'study', d)},1\n")),
                                                   "-o", str(d / "out"), "--resume", "--overwrite"],
       r"--resume keeps finished studies and --overwrite redoes them"),
    _c("response-counts-volume", _argv("response", "{suv}", "{d}/counts.h5",
                                       files=lambda b, d: _copy(b, "counts", d)), r"counts\.h5 holds a volume in 'counts', not SUV"),
    _c("demo-out-is-file", _argv("demo", "--size", "64", "--out", "{d}/f", files=_touch("f")),
       r"--out .*f is a file, not a directory"),
    _c("demo-out-read-only", _argv("demo", "--size", "64", "--out", "{d}/ro/x", files=_dirs("ro")),
       r"ro is not writable", read_only=("ro",)),
    _c("demo-size-unknown", _argv("demo", "--size", "100"), r"argument --size: invalid choice"),
    _c("cli-no-command", _argv(), r"the following arguments are required: command"),
    _c("cli-unknown-command", _argv("petct"), r"argument command: invalid choice: 'petct'"),
    _c("cli-spect-without-output", _argv("spect", "{d}/x.h5"), r"the following arguments are required: -o/--output"),
]

CATALOGUE = SPECT + SUV + OTHER


# --------------------------------------------------------------------------- running a case

def _snapshot(d: Path) -> dict[str, tuple[int, int, str]]:
    """Every file and directory under ``d``: (size, mtime ns, sha1) for files, (-1, 0, '') for directories."""
    out = {}
    for p in sorted(d.rglob("*")):
        rel = str(p.relative_to(d))
        if p.is_dir():
            out[rel] = (-1, 0, "")
        else:
            st = p.stat()
            out[rel] = (st.st_size, st.st_mtime_ns, hashlib.sha1(p.read_bytes()).hexdigest())
    return out


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> tuple[int, str]:
    """Exit status and everything the user saw (stdout, stderr, log) of ``recon -q ARGV``."""
    caplog.clear()
    try:
        status = recon_main(["-q", *argv] if argv else [])
    except SystemExit as exc:  # argparse usage errors
        status = int(exc.code or 0)
    captured = capsys.readouterr()
    return status, captured.out + captured.err + caplog.text


@pytest.mark.filterwarnings("ignore:Invalid value for VR DS")
@pytest.mark.parametrize("case", CATALOGUE, ids=[c.id for c in CATALOGUE])
def test_bad_input(case: Case, base: Base, tmp_path: Path, capsys, caplog, monkeypatch) -> None:
    d = tmp_path / "case"
    d.mkdir()
    argv = case.setup(base, d)
    if case.read_only:
        real_access = os.access
        blocked = {(d / r).resolve() for r in case.read_only}
        monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p).resolve() in blocked
                            else real_access(p, mode, **kw))
    before = _snapshot(d)
    capsys.readouterr()
    caplog.set_level(logging.WARNING)
    status, seen = run_cli(argv, capsys, caplog)
    assert status == case.status, seen
    assert re.search(case.message, seen), seen
    assert "Traceback" not in seen, seen
    after = _snapshot(d)
    changed = {k for k in before if after.get(k) != before[k]}
    assert not changed, f"inputs changed: {changed}"
    new = {k for k in after if k not in before}
    assert new == set(case.writes), f"written: {sorted(new)}"


def test_catalogue_size_and_unique_ids() -> None:
    ids = [c.id for c in CATALOGUE]
    assert len(ids) >= 60 and len(set(ids)) == len(ids)


def test_verbose_shows_the_traceback(tmp_path: Path, capsys, caplog) -> None:
    (tmp_path / "empty.dcm").write_bytes(b"")
    caplog.set_level(logging.DEBUG)
    status = recon_main(["-v", "spect", str(tmp_path / "empty.dcm"), "-o", str(tmp_path / "o.h5")])
    assert status == 2
    assert "Traceback" in caplog.text and "is not a DICOM file" in caplog.text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.dcm"]


def test_progress_bar_unless_quiet(base: Base, tmp_path: Path, capsys) -> None:
    """``recon spect`` shows iterations x subsets with an ETA on stderr; ``-q`` silences it."""
    study = _copy(base, "study", tmp_path)
    args = ["spect", str(study), "--iterations", "2", "--subsets", "2", "--scatter", "none"]
    assert recon_main([*args, "-o", str(tmp_path / "a.h5")]) == 0
    err = capsys.readouterr().err
    assert "OSEM" in err and "/4 [" in err and "subset/s" in err
    assert recon_main(["-q", *args, "-o", str(tmp_path / "b.h5")]) == 0
    assert "OSEM" not in capsys.readouterr().err


def test_verbose_shows_the_traceback_of_recon_suv(tmp_path: Path, capsys, caplog) -> None:
    (tmp_path / "empty.dcm").write_bytes(b"")
    caplog.set_level(logging.DEBUG)
    assert recon_main(["-v", "suv", str(tmp_path / "empty.dcm")]) == 2
    assert "Traceback" in caplog.text
    assert "recon suv: error:" in capsys.readouterr().err
