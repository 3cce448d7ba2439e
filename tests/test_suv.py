"""SUV from DICOM headers: each Units / DecayCorrection / time / dose variant, and each error.

Truth is computed here from the closed forms (SUV = C W / (D exp(-lambda dt)), the
body-size formulas as published), never from the code under test. Synthetic
pydicom datasets are built in the test; the reader tests write small series to
a temporary directory.
"""
from __future__ import annotations

import gzip
import math
import struct
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from recon.io.dicom import DicomFormatError, read_image_series, read_series_header
from recon.io.nifti import NiftiError, read_nifti, resample_to_grid
from recon.quant.suv import SUVError, suv_volume
from recon.quant.suv import suv_factors as _suv_factors

F18_HL = 6586.2  # s, as a typical header gives it
LN2 = math.log(2.0)
W_KG, H_M, DOSE_BQ = 70.0, 1.75, 370e6
PET_SOP = "1.2.840.10008.5.1.4.1.1.128"


def make_ds(**kw) -> Dataset:
    """A PET slice header: F-18, 70 kg, 370 MBq injected 10:00, scan and series 11:00, BQML, START."""
    ds = Dataset()
    ds.Modality = "PT"
    ds.Manufacturer = "Synthetic"
    ds.SeriesDate = "20250101"
    ds.SeriesTime = "110000"
    ds.AcquisitionDate = "20250101"
    ds.AcquisitionTime = "110000"
    ds.PatientWeight = str(W_KG)
    ds.PatientSize = str(H_M)
    ds.PatientSex = "F"
    ds.Units = "BQML"
    ds.DecayCorrection = "START"
    ds.ActualFrameDuration = 300000
    ds.FrameReferenceTime = "150000"
    ds.PixelSpacing = [4.0, 4.0]
    ds.SliceThickness = "4.0"
    rp = Dataset()
    rp.RadiopharmaceuticalStartDateTime = "20250101100000"
    rp.RadiopharmaceuticalStartTime = "100000"
    rp.RadionuclideTotalDose = str(DOSE_BQ)
    rp.RadionuclideHalfLife = str(F18_HL)
    code = Dataset()
    code.CodeValue = "C-111A1"
    code.CodingSchemeDesignator = "SRT"
    code.CodeMeaning = "^18^Fluorine"
    rp.RadionuclideCodeSequence = Sequence([code])
    ds.RadiopharmaceuticalInformationSequence = Sequence([rp])
    for k, v in kw.items():
        if v is None:
            if k in ds:
                delattr(ds, k)
        else:
            setattr(ds, k, v)
    return ds


def rp_of(ds: Dataset) -> Dataset:
    return ds.RadiopharmaceuticalInformationSequence[0]


def suv_bw_closed_form(c_bqml: float, uptake_s: float, w_kg: float = W_KG, dose: float = DOSE_BQ,
                       hl: float = F18_HL) -> float:
    return c_bqml * w_kg * 1000.0 / (dose * math.exp(-LN2 / hl * uptake_s))


def suv_factors(datasets, kind="bw", **kw):
    """SUV factors of pydicom datasets: the DICOM header builder, then the pure SUV function."""
    return _suv_factors(read_series_header(datasets), kind, **kw)


def read_pet_series(directory):
    return read_image_series(directory, modalities=("PT",))


def factor(ds_list, kind="bw", **kw) -> np.ndarray:
    return suv_factors(ds_list if isinstance(ds_list, list) else [ds_list], kind, **kw).factors


# --------------------------------------------------------------------------- BQML, decay correction

def test_bqml_start_series_time():
    f = factor(make_ds())[0]
    assert f * 5000.0 == pytest.approx(suv_bw_closed_form(5000.0, 3600.0), rel=1e-9)


def test_dose_in_mbq_and_weight_in_grams_give_the_same_suv():
    ref = factor(make_ds())[0]
    ds = make_ds(PatientWeight="70000")
    rp_of(ds).RadionuclideTotalDose = "370"
    h = read_series_header([ds])
    assert h.dose_bq == pytest.approx(370e6) and h.weight_kg == pytest.approx(70.0)
    assert factor(ds)[0] == pytest.approx(ref, rel=1e-12)
    assert any("MBq" in n for n in h.notes) and any("grams" in n for n in h.notes)


def test_admin_uses_dose_without_decay():
    f = factor(make_ds(DecayCorrection="ADMIN"))[0]
    assert f == pytest.approx(W_KG * 1000.0 / DOSE_BQ, rel=1e-12)


def test_none_corrects_each_slice_from_its_own_acquisition():
    t = 300.0
    slices = [make_ds(DecayCorrection="NONE", AcquisitionTime=at) for at in ("110000", "110500", "111000")]
    f = factor(slices)
    lam = LN2 / F18_HL
    for i, minutes in enumerate((60, 65, 70)):
        dt = minutes * 60.0
        expect = W_KG * 1000.0 / DOSE_BQ * (lam * t / (1 - math.exp(-lam * t))) * math.exp(lam * dt)
        assert f[i] == pytest.approx(expect, rel=1e-12)


def test_only_start_time_uses_series_date():
    ds = make_ds()
    del rp_of(ds).RadiopharmaceuticalStartDateTime
    assert factor(ds)[0] == pytest.approx(factor(make_ds())[0], rel=1e-12)


def test_only_start_datetime_without_start_time():
    ds = make_ds()
    del rp_of(ds).RadiopharmaceuticalStartTime
    assert factor(ds)[0] == pytest.approx(factor(make_ds())[0], rel=1e-12)


def test_midnight_crossing_with_start_time_only():
    # injected 23:30 on Dec 31, scanned 00:30 on Jan 1: 1 h uptake
    ds = make_ds(SeriesDate="20250101", SeriesTime="003000", AcquisitionTime="003000")
    del rp_of(ds).RadiopharmaceuticalStartDateTime
    rp_of(ds).RadiopharmaceuticalStartTime = "233000"
    conv = suv_factors([ds])
    assert conv.details["midnight_crossing"] is True
    assert conv.details["uptake_time_s"] == pytest.approx(3600.0)
    assert conv.factors[0] * 1000 == pytest.approx(suv_bw_closed_form(1000.0, 3600.0), rel=1e-12)


def test_midnight_crossing_with_datetime_is_exact():
    ds = make_ds(SeriesDate="20250102", SeriesTime="003000", AcquisitionDate="20250102", AcquisitionTime="003000")
    rp_of(ds).RadiopharmaceuticalStartDateTime = "20250101233000"
    assert suv_factors([ds]).details["uptake_time_s"] == pytest.approx(3600.0)


def test_ge_private_scan_datetime_wins_over_series_time():
    ds = make_ds(Manufacturer="GE MEDICAL SYSTEMS", SeriesTime="113000", AcquisitionTime="113000")
    ds.add_new((0x0009, 0x100D), "DT", "20250101110000.000000")
    conv = suv_factors([ds])
    assert "GE" in conv.details["reference_source"]
    assert conv.factors[0] == pytest.approx(W_KG * 1000 / (DOSE_BQ * math.exp(-LN2 / F18_HL * 3600)), rel=1e-12)


def test_ge_private_tag_ignored_for_other_vendors():
    ds = make_ds(Manufacturer="SIEMENS")
    ds.add_new((0x0009, 0x100D), "DT", "20250101103000")
    assert "GE" not in suv_factors([ds]).details["reference_source"]


def test_series_time_after_acquisition_back_computes_reference():
    # post-processed series: SeriesTime 12:00 is after the 11:00 acquisition
    slices = [make_ds(SeriesTime="120000", AcquisitionTime="110000"),
              make_ds(SeriesTime="120000", AcquisitionTime="110000")]
    conv = suv_factors(slices)
    lam, t, fref = LN2 / F18_HL, 300.0, 150.0
    t_ave = math.log(lam * t / (1 - math.exp(-lam * t))) / lam
    uptake = 3600.0 + t_ave - fref
    assert "back-computed" in conv.details["reference_source"]
    assert conv.details["uptake_time_s"] == pytest.approx(uptake, abs=1e-5)
    assert conv.factors[0] == pytest.approx(W_KG * 1000 / (DOSE_BQ * math.exp(-lam * uptake)), rel=1e-9)


@pytest.mark.parametrize("tags", [{"FrameReferenceTime": "0"}, {"ActualFrameDuration": 0}],
                         ids=["frame-reference-time-0", "frame-duration-0"])
def test_series_time_after_acquisition_with_invalid_frame_times_uses_earliest_acquisition(tags):
    """QIBA back-computes the scan time only from FrameReferenceTime and ActualFrameDuration > 0; otherwise
    the earliest AcquisitionTime (11:00, one hour after the injection) is the reference."""
    slices = [make_ds(SeriesTime="120000", AcquisitionTime="110000", **tags),
              make_ds(SeriesTime="120000", AcquisitionTime="110500", **tags)]
    conv = suv_factors(slices)
    assert "earliest AcquisitionDate" in conv.details["reference_source"]
    assert conv.details["uptake_time_s"] == pytest.approx(3600.0)
    lam = LN2 / F18_HL
    assert conv.factors[0] == pytest.approx(W_KG * 1000 / (DOSE_BQ * math.exp(-lam * 3600.0)), rel=1e-9)


def test_backcompute_method_and_series_method():
    ds = make_ds(FrameReferenceTime="0")  # reference = acquisition start + T_ave
    lam, t = LN2 / F18_HL, 300.0
    t_ave = math.log(lam * t / (1 - math.exp(-lam * t))) / lam
    assert suv_factors([ds], reference_time="backcompute").details["uptake_time_s"] == pytest.approx(3600 + t_ave)
    assert suv_factors([ds], reference_time="series").details["uptake_time_s"] == pytest.approx(3600.0)


def test_decay_correction_datetime_tag():
    ds = make_ds()
    ds.DecayCorrectionDateTime = "20250101103000"
    conv = suv_factors([ds])
    assert conv.details["uptake_time_s"] == pytest.approx(1800.0)


# --------------------------------------------------------------------------- half-life

def test_dicom_half_life_wins_over_table():
    ds = make_ds()
    rp_of(ds).RadionuclideHalfLife = "6000"
    assert suv_factors([ds]).details["half_life_s"] == pytest.approx(6000.0)


def test_half_life_from_code_sequence_when_tag_missing():
    ds = make_ds()
    del rp_of(ds).RadionuclideHalfLife
    conv = suv_factors([ds])
    assert conv.details["half_life_s"] == pytest.approx(109.77 * 60, rel=2e-3)
    assert "table" in conv.details["sources"]["half_life"]


def test_missing_half_life_is_an_error_naming_the_tag():
    ds = make_ds()
    del rp_of(ds).RadionuclideHalfLife
    del rp_of(ds).RadionuclideCodeSequence
    with pytest.raises(SUVError, match="RadionuclideHalfLife"):
        suv_factors([ds])
    # ADMIN needs no half-life
    assert factor(make_ds(DecayCorrection="ADMIN"))[0] > 0


# --------------------------------------------------------------------------- normalisations

def _lbm_james(w, h_cm, sex):
    return {"M": 1.10 * w - 128 * (w / h_cm) ** 2, "F": 1.07 * w - 148 * (w / h_cm) ** 2}[sex]


def _lbm_janma(w, h_cm, sex):
    bmi = w / (h_cm / 100) ** 2
    return {"M": 9270 * w / (6680 + 216 * bmi), "F": 9270 * w / (8780 + 244 * bmi)}[sex]


def _ibw(h_cm, sex):
    return {"M": 48.0 + 1.06 * (h_cm - 152), "F": 45.5 + 0.91 * (h_cm - 152)}[sex]


@pytest.mark.parametrize("sex", ["M", "F", "O"])
def test_lbm_ibw_bsa_from_bqml(sex):
    bw = factor(make_ds(PatientSex=sex))[0]
    h = H_M * 100

    def by_sex(fn):
        return 0.5 * (fn("M") + fn("F")) if sex == "O" else fn(sex)

    lbm_j = by_sex(lambda s: _lbm_james(W_KG, h, s))
    lbm_n = by_sex(lambda s: _lbm_janma(W_KG, h, s))
    ibw = by_sex(lambda s: _ibw(h, s))
    bsa_cm2 = 0.007184 * W_KG**0.425 * h**0.725 * 1e4
    ds = make_ds(PatientSex=sex)
    assert factor(ds, "lbm_james")[0] == pytest.approx(bw * lbm_j / W_KG, rel=1e-12)
    assert factor(ds, "lbm_janma")[0] == pytest.approx(bw * lbm_n / W_KG, rel=1e-12)
    assert factor(ds, "ibw")[0] == pytest.approx(bw * ibw / W_KG, rel=1e-12)
    assert factor(ds, "bsa")[0] == pytest.approx(bw * bsa_cm2 / (W_KG * 1000), rel=1e-12)
    assert suv_factors([ds], "bsa").unit == "cm2/mL"


def test_known_lbm_value():
    # James, male 70 kg, 175 cm: 1.10*70 - 128*(70/175)^2 = 56.52 kg
    ds = make_ds(PatientSex="M")
    assert factor(ds, "lbm_james")[0] / factor(ds, "bw")[0] == pytest.approx(56.52 / 70.0, rel=1e-12)


def test_gml_default_bw_and_lbm_stored():
    assert factor(make_ds(Units="GML"))[0] == 1.0
    ds = make_ds(Units="GML", SUVType="LBMJAMES128", PatientSex="M")
    assert factor(ds, "bw")[0] == pytest.approx(70.0 / 56.52, rel=1e-12)
    assert factor(ds, "lbm_james")[0] == 1.0
    # GML needs no dose or time
    ds2 = make_ds(Units="GML")
    del rp_of(ds2).RadionuclideTotalDose
    assert factor(ds2)[0] == 1.0


def test_gml_ibw_with_sex_other_uses_mean_of_sexes():
    # H = 175 cm: IBW male 48.0 + 1.06*23, female 45.5 + 0.91*23, "O" their mean
    ibw_o = 0.5 * ((48.0 + 1.06 * 23) + (45.5 + 0.91 * 23))
    ds = make_ds(Units="GML", SUVType="IBW", PatientSex="O")
    assert factor(ds, "bw")[0] == pytest.approx(W_KG / ibw_o, rel=1e-12)


def test_cm2ml_to_bw():
    bsa_cm2 = 0.007184 * W_KG**0.425 * 175.0**0.725 * 1e4
    assert factor(make_ds(Units="CM2ML", SUVType="BSA"))[0] == pytest.approx(W_KG * 1000 / bsa_cm2, rel=1e-12)
    assert factor(make_ds(Units="CM2ML"))[0] == pytest.approx(W_KG * 1000 / bsa_cm2, rel=1e-12)


def test_inconsistent_units_and_suvtype():
    with pytest.raises(SUVError, match="SUVType"):
        suv_factors([make_ds(Units="CM2ML", SUVType="BW")])
    with pytest.raises(SUVError, match="SUVType"):
        suv_factors([make_ds(Units="GML", SUVType="XYZ")])


# --------------------------------------------------------------------------- counts

def _philips(**kw) -> Dataset:
    ds = make_ds(Units="CNTS", Manufacturer="Philips Medical Systems", **kw)
    return ds


def test_cnts_philips_suv_scale_factor():
    ds = _philips()
    ds.add_new((0x7053, 0x1000), "DS", "0.0005")
    assert factor(ds)[0] == pytest.approx(0.0005)
    # via the private creator instead of the manufacturer
    ds2 = make_ds(Units="CNTS", Manufacturer="Other")
    ds2.add_new((0x7053, 0x0010), "LO", "Philips PET Private Group")
    ds2.add_new((0x7053, 0x1000), "DS", "0.002")
    assert factor(ds2)[0] == pytest.approx(0.002)


def test_cnts_philips_activity_scale_factor():
    ds = _philips()
    ds.add_new((0x7053, 0x1009), "DS", "2.5")
    ds.add_new((0x7053, 0x1000), "DS", "0.0005")
    assert factor(ds)[0] == pytest.approx(2.5 * factor(make_ds())[0], rel=1e-12)


def test_cnts_zero_factor_is_an_error():
    ds = _philips()
    ds.add_new((0x7053, 0x1000), "DS", "0.0")
    with pytest.raises(SUVError, match="7053"):
        suv_factors([ds])


def test_cnts_without_factors_goes_through_cps():
    ds = make_ds(Units="CNTS", CorrectedImage=["ATTN", "DECY", "DCAL"])
    voxel_ml = 4.0 * 4.0 * 4.0 / 1000
    assert factor(ds)[0] == pytest.approx(factor(make_ds())[0] / 300.0 / voxel_ml, rel=1e-12)
    ds2 = make_ds(Units="CPS", DoseCalibrationFactor="3.0")
    assert factor(ds2)[0] == pytest.approx(factor(make_ds())[0] * 3.0 / voxel_ml, rel=1e-12)
    with pytest.raises(SUVError, match="DoseCalibrationFactor"):
        suv_factors([make_ds(Units="CPS")])


# --------------------------------------------------------------------------- dose from GE private tags

def test_ge_pre_and_post_injection_activities():
    ds = make_ds(Manufacturer="GE MEDICAL SYSTEMS")
    del rp_of(ds).RadionuclideTotalDose
    ds.add_new((0x0009, 0x1038), "FL", 400.0)  # MBq at 09:50
    ds.add_new((0x0009, 0x1039), "DT", "20250101095000")
    ds.add_new((0x0009, 0x103C), "FL", 10.0)  # MBq residual at 10:10
    ds.add_new((0x0009, 0x103D), "DT", "20250101101000")
    lam = LN2 / F18_HL
    net = 400e6 * math.exp(-lam * 600) - 10e6 * math.exp(lam * 600)
    conv = suv_factors([ds])
    assert conv.details["dose_bq"] == pytest.approx(net, rel=1e-6)
    assert conv.factors[0] == pytest.approx(W_KG * 1000 / (net * math.exp(-lam * 3600)), rel=1e-6)


# --------------------------------------------------------------------------- errors

def test_missing_weight():
    with pytest.raises(SUVError, match=r"PatientWeight \(0010,1030\)"):
        suv_factors([make_ds(PatientWeight=None)])
    with pytest.raises(SUVError, match="PatientWeight"):
        suv_factors([make_ds(PatientWeight="0")])
    # an override supplies it
    assert factor(make_ds(PatientWeight=None), weight_kg=70.0)[0] == pytest.approx(factor(make_ds())[0])


def test_missing_dose():
    ds = make_ds()
    del rp_of(ds).RadionuclideTotalDose
    with pytest.raises(SUVError, match=r"RadionuclideTotalDose \(0018,1074\)"):
        suv_factors([ds])


def test_missing_injection_time():
    ds = make_ds()
    del rp_of(ds).RadiopharmaceuticalStartDateTime
    del rp_of(ds).RadiopharmaceuticalStartTime
    with pytest.raises(SUVError, match="RadiopharmaceuticalStartTime"):
        suv_factors([ds])


def test_missing_radiopharmaceutical_sequence():
    with pytest.raises(SUVError, match="RadionuclideTotalDose"):
        suv_factors([make_ds(RadiopharmaceuticalInformationSequence=None)])


@pytest.mark.parametrize("units", ["PROPCPS", "PROPCNTS", "1CM", "MGMINML"])
def test_unknown_units(units):
    with pytest.raises(SUVError, match=rf"Units \(0054,1001\) = '{units}'"):
        suv_factors([make_ds(Units=units)])


def test_missing_units_and_decay_correction():
    with pytest.raises(SUVError, match="Units"):
        suv_factors([make_ds(Units=None)])
    with pytest.raises(SUVError, match="DecayCorrection"):
        suv_factors([make_ds(DecayCorrection=None)])
    with pytest.raises(SUVError, match="DecayCorrection"):
        suv_factors([make_ds(DecayCorrection="WHATEVER")])


def test_lbm_needs_sex_and_height():
    with pytest.raises(SUVError, match="PatientSex"):
        suv_factors([make_ds(PatientSex=None)], "lbm_james")
    with pytest.raises(SUVError, match="PatientSize"):
        suv_factors([make_ds(PatientSize=None)], "lbm_janma")
    assert factor(make_ds(PatientSex=None))[0] > 0  # bw does not need them


def test_injection_after_scan_is_an_error():
    ds = make_ds()
    rp_of(ds).RadiopharmaceuticalStartDateTime = "20250101150000"
    with pytest.raises(SUVError, match="after the decay reference"):
        suv_factors([ds])


def test_none_without_acquisition_time():
    with pytest.raises(SUVError, match="AcquisitionDate/AcquisitionTime"):
        suv_factors([make_ds(DecayCorrection="NONE", AcquisitionTime=None)])


# --------------------------------------------------------------------------- reader

def _write_series(tmp: Path, positions_z, *, iop=(1, 0, 0, 0, 1, 0), slopes=None, uid=None, rows=3, cols=4,
                  ipp_xy=(-10.0, -20.0), name="s", units="BQML") -> list[np.ndarray]:
    uid = uid or generate_uid()
    arrays = []
    for i, z in enumerate(positions_z):
        ds = make_ds(Units=units)
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = PET_SOP
        ds.SOPClassUID = PET_SOP
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.SeriesInstanceUID = uid
        ds.FrameOfReferenceUID = "1.2.3"
        ds.ImageOrientationPatient = list(iop)
        ds.ImagePositionPatient = [ipp_xy[0], ipp_xy[1], float(z)]
        ds.PixelSpacing = [2.0, 3.0]  # row spacing (along columns), column spacing (along rows)
        ds.Rows, ds.Columns = rows, cols
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        stored = (np.arange(rows * cols, dtype=np.int16).reshape(rows, cols) + 100 * i).astype(np.int16)
        slope = 1.0 if slopes is None else slopes[i]
        ds.RescaleSlope = str(slope)
        ds.RescaleIntercept = "0"
        ds.PixelData = stored.tobytes()
        arrays.append(stored.astype(np.float64) * slope)
        ds.save_as(tmp / f"{name}_{i:03d}.dcm", enforce_file_format=True)
    return arrays


def test_reader_sorts_slices_and_applies_per_slice_slope(tmp_path):
    zs = [8.0, 0.0, 4.0, 12.0]  # written out of order
    arrays = _write_series(tmp_path, zs, slopes=[1.0, 2.0, 0.5, 4.0])
    s = read_pet_series(tmp_path)
    order = np.argsort(zs)
    assert s.volume.grid.shape == (4, 3, 4)
    assert s.volume.grid.spacing_mm == (4.0, 2.0, 3.0)
    assert s.volume.grid.origin_mm == (-10.0, -20.0, 0.0)
    assert s.volume.unit == "Bq/mL"
    for k, i in enumerate(order):
        np.testing.assert_allclose(s.volume.data[k], arrays[i], rtol=1e-6)
    vol, conv = suv_volume(s.volume, s.header, "bw", slice_axis=s.slice_axis, slice_order=s.slice_order)
    np.testing.assert_allclose(vol.data, s.volume.data * conv.factors[0], rtol=1e-6)


def test_reader_flipped_row_direction_maps_to_lps(tmp_path):
    # rows run towards the patient's right (-x): the reader flips x so the grid increases along +x
    arrays = _write_series(tmp_path, [0.0, 5.0], iop=(-1, 0, 0, 0, 1, 0))
    s = read_pet_series(tmp_path)
    # normal = row x col = (-1,0,0) x (0,1,0) = (0,0,-1): slices sorted by decreasing z, then flipped to +z
    assert s.volume.grid.origin_mm == (-10.0 - 3 * 3.0, -20.0, 0.0)
    np.testing.assert_allclose(s.volume.data[0], arrays[0][:, ::-1])
    np.testing.assert_allclose(s.volume.data[1], arrays[1][:, ::-1])
    # the voxel at index (0, r, c) of the file sits at x = -10 - 3c
    assert s.volume.grid.index_to_mm((0, 0, 3))[0] == pytest.approx(-10.0)


def test_reader_missing_slice(tmp_path):
    _write_series(tmp_path, [0.0, 4.0, 12.0, 16.0])
    with pytest.raises(DicomFormatError, match="missing"):
        read_pet_series(tmp_path)


def test_reader_mixed_series(tmp_path):
    _write_series(tmp_path, [0.0, 4.0], name="a")
    _write_series(tmp_path, [0.0, 4.0], name="b")
    with pytest.raises(DicomFormatError, match="2 series"):
        read_pet_series(tmp_path)


def test_reader_duplicate_position(tmp_path):
    uid = generate_uid()
    _write_series(tmp_path, [0.0, 4.0], uid=uid, name="a")
    _write_series(tmp_path, [4.0], uid=uid, name="b")
    with pytest.raises(DicomFormatError, match="same slice position"):
        read_pet_series(tmp_path)


def test_reader_differing_orientation(tmp_path):
    uid = generate_uid()
    _write_series(tmp_path, [0.0], uid=uid, name="a")
    _write_series(tmp_path, [4.0], uid=uid, name="b", iop=(0, 1, 0, 1, 0, 0))
    with pytest.raises(DicomFormatError, match="ImageOrientationPatient"):
        read_pet_series(tmp_path)


def test_reader_oblique_refused(tmp_path):
    c = math.cos(0.3)
    s_ = math.sin(0.3)
    _write_series(tmp_path, [0.0, 4.0], iop=(c, s_, 0, -s_, c, 0))
    with pytest.raises(DicomFormatError, match="oblique"):
        read_pet_series(tmp_path)


def test_reader_empty_directory(tmp_path):
    (tmp_path / "notes.txt").write_text("not dicom")
    with pytest.raises(DicomFormatError, match="no DICOM"):
        read_pet_series(tmp_path)


# --------------------------------------------------------------------------- NIfTI

def _write_nifti(path: Path, data: np.ndarray, *, srow=None, quat=None, pixdim=(1.0, 1.0, 1.0), qfac=1.0) -> None:
    hdr = bytearray(352)
    struct.pack_into("<i", hdr, 0, 348)
    dim = [3, *data.shape, 1, 1, 1, 1]
    struct.pack_into("<8h", hdr, 40, *dim)
    struct.pack_into("<h", hdr, 70, 2)  # uint8
    struct.pack_into("<h", hdr, 72, 8)
    struct.pack_into("<8f", hdr, 76, qfac, *pixdim, 0, 0, 0, 0)
    struct.pack_into("<f", hdr, 108, 352.0)
    struct.pack_into("<f", hdr, 112, 1.0)
    if quat is not None:
        struct.pack_into("<h", hdr, 252, 1)
        struct.pack_into("<6f", hdr, 256, *quat)
    if srow is not None:
        struct.pack_into("<h", hdr, 254, 1)
        struct.pack_into("<12f", hdr, 280, *np.asarray(srow, dtype=float).ravel())
    hdr[344:348] = b"n+1\x00"
    payload = bytes(hdr) + data.astype(np.uint8).tobytes(order="F")
    path.write_bytes(gzip.compress(payload) if path.name.endswith(".gz") else payload)


def test_nifti_sform_maps_to_lps(tmp_path):
    from recon.data.grid import ImageGrid

    data = np.zeros((5, 6, 7), dtype=np.uint8)
    data[1, 2, 3] = 1
    # RAS sform: x_RAS = -2 i + 10, y_RAS = -3 j + 20, z = 4 k - 5  ->  LPS (2i - 10, 3j - 20, 4k - 5)
    srow = [[-2, 0, 0, 10], [0, -3, 0, 20], [0, 0, 4, -5]]
    _write_nifti(tmp_path / "m.nii.gz", data, srow=srow, pixdim=(2, 3, 4))
    img = read_nifti(tmp_path / "m.nii.gz")
    assert img.transform_source == "sform"
    np.testing.assert_allclose(img.affine_lps @ [1, 2, 3, 1], [2 - 10, 6 - 20, 12 - 5, 1])
    grid = ImageGrid((7, 6, 5), (4.0, 3.0, 2.0), (-10.0, -20.0, -5.0))
    m = resample_to_grid(img, grid)
    assert m.shape == grid.shape and m.sum() == 1 and m[3, 2, 1] == 1


def test_nifti_qform_rotation_180_about_z(tmp_path):
    data = np.zeros((4, 4, 2), dtype=np.uint8)
    data[3, 0, 1] = 1
    # quaternion (b, c, d) = (0, 0, 1): 180 deg about z, i.e. RAS = diag(-1, -1, 1) -> LPS = identity scaling
    _write_nifti(tmp_path / "q.nii", data, quat=(0, 0, 1, 0, 0, 0), pixdim=(2.0, 2.0, 5.0))
    img = read_nifti(tmp_path / "q.nii")
    assert img.transform_source == "qform"
    np.testing.assert_allclose(img.affine_lps[:3, :3], np.diag([2.0, 2.0, 5.0]), atol=1e-12)


def test_nifti_bad_file(tmp_path):
    (tmp_path / "x.nii").write_bytes(b"\0" * 400)
    with pytest.raises(NiftiError):
        read_nifti(tmp_path / "x.nii")
