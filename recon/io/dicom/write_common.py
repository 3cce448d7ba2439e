"""What every DICOM writer here shares: SOP classes, patient/study attributes, file meta."""
from __future__ import annotations

import copy
from datetime import datetime

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from recon.data.study import DoseInfo, PatientInfo
from recon.io.dicom.values import format_ds, present

__all__ = [
    "NM_IMAGE_STORAGE", "PATIENT_STUDY_KEYWORDS", "PET_IMAGE_STORAGE", "fill_patient_study", "new_instance",
    "radiopharmaceutical_sequence", "write_patient",
]

NM_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.20"
PET_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.128"

PATIENT_STUDY_KEYWORDS = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "PatientAge", "PatientWeight", "PatientSize",
    "EthnicGroup", "StudyInstanceUID", "StudyDate", "StudyTime", "StudyID", "AccessionNumber",
    "ReferringPhysicianName", "StudyDescription",
)  # fmt: skip


def fill_patient_study(ds: Dataset, reference: Dataset | None, now: datetime) -> None:
    """Patient and study attributes: anonymous defaults and a new study, or copies of ``reference``'s."""
    ds.PatientName = "Anonymous"
    ds.PatientID = "RECON"
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.StudyInstanceUID = generate_uid()
    ds.StudyDate = now.strftime("%Y%m%d")
    ds.StudyTime = now.strftime("%H%M%S")
    ds.StudyID = "1"
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    if reference is not None:
        for kw in PATIENT_STUDY_KEYWORDS:
            if kw in reference:
                setattr(ds, kw, copy.deepcopy(reference[kw].value))


def new_instance(ds: Dataset, sop_class_uid: str) -> None:
    """Give ``ds`` a new SOP instance of ``sop_class_uid`` and explicit-VR little-endian file meta."""
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class_uid
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian


_TC99M_CODE = ("C-163A8", "SRT", "^99m^Technetium")


def write_patient(ds: Dataset, patient: PatientInfo) -> None:
    """Patient module values that ``patient`` sets (name, ID, weight kg, height m, sex)."""
    if patient.name:
        ds.PatientName = patient.name
    if patient.patient_id:
        ds.PatientID = patient.patient_id
    if patient.weight_kg is not None:
        ds.PatientWeight = format_ds(patient.weight_kg)
    if patient.height_m is not None:
        ds.PatientSize = format_ds(patient.height_m)
    if patient.sex is not None:
        ds.PatientSex = patient.sex


def radiopharmaceutical_sequence(radionuclide: str, dose: DoseInfo, reference: Dataset | None) -> Sequence:
    """RadiopharmaceuticalInformationSequence: the reference's (or a radionuclide code item), then the
    typed dose fields where set (activity Bq, injection DT, half-life s, radiopharmaceutical)."""
    if reference is not None and present(reference, "RadiopharmaceuticalInformationSequence"):
        seq = copy.deepcopy(reference.RadiopharmaceuticalInformationSequence)
    else:
        code = Dataset()
        if radionuclide == "Tc-99m":
            code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = _TC99M_CODE
        else:
            code.CodeValue, code.CodingSchemeDesignator = radionuclide[:16], "99RECON"
            code.CodeMeaning = radionuclide
        rp = Dataset()
        rp.RadionuclideCodeSequence = Sequence([code])
        seq = Sequence([rp])
    item = seq[0]
    if dose.radiopharmaceutical:
        item.Radiopharmaceutical = dose.radiopharmaceutical
    if dose.injected_activity_bq is not None:
        item.RadionuclideTotalDose = format_ds(dose.injected_activity_bq)
    if dose.injection_time is not None:
        item.RadiopharmaceuticalStartDateTime = dose.injection_time.strftime("%Y%m%d%H%M%S.%f")
        item.RadiopharmaceuticalStartTime = dose.injection_time.strftime("%H%M%S.%f")
    if dose.half_life_s is not None:
        item.RadionuclideHalfLife = format_ds(dose.half_life_s)
    return seq
