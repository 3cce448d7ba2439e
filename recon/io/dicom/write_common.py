"""What every DICOM writer here shares: SOP classes, patient/study attributes, file meta."""
from __future__ import annotations

import copy
from datetime import datetime

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

__all__ = ["NM_IMAGE_STORAGE", "PATIENT_STUDY_KEYWORDS", "PET_IMAGE_STORAGE", "fill_patient_study", "new_instance"]

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
