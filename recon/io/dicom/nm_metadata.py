"""Typed study metadata of an NM file: where and when (AcquisitionInfo), who (PatientInfo), what was given (DoseInfo).

Patient and dose values are read through the quantitative series header
(:func:`~recon.io.dicom.series_header.read_series_header`), so NM and PET
files share one reading of PatientWeight (kg; grams above 1000),
PatientSize (m; cm above 3), RadionuclideTotalDose (Bq; MBq below 1e5) and
the half-life (RadionuclideHalfLife, else the radionuclide table).
"""
from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

from pydicom.dataset import Dataset

from recon.data.series_header import SeriesHeader, place_time_only
from recon.data.study import AcquisitionInfo, DoseInfo, PatientInfo
from recon.io.dicom.dates import combine, parse_da, parse_dt, parse_tm
from recon.io.dicom.values import get_str, raw

logger = logging.getLogger(__name__)

__all__ = ["acquisition_info", "acquisition_start", "dose_info", "patient_info", "study_metadata"]


def _text(ds: Dataset, keyword: str) -> str:
    return str(ds.get(keyword, "") or "").strip()


def acquisition_start(ds: Dataset) -> datetime | None:
    """Start of the acquisition: AcquisitionDateTime, else AcquisitionDate/Time, else SeriesDate/Time."""
    start = parse_dt(raw(ds, "AcquisitionDateTime"))
    if start is not None:
        return start
    d = parse_da(raw(ds, "AcquisitionDate")) or parse_da(raw(ds, "SeriesDate"))
    t = parse_tm(raw(ds, "AcquisitionTime")) or parse_tm(raw(ds, "SeriesTime"))
    return combine(d, t)


def acquisition_info(ds: Dataset, source: str | Path = "") -> AcquisitionInfo:
    """UIDs, frame of reference, start time, patient position and equipment of ``ds``."""
    from recon.io.dicom.nm_placement import patient_position  # noqa: PLC0415

    position = patient_position(ds)
    return AcquisitionInfo(
        frame_of_reference_uid=_text(ds, "FrameOfReferenceUID"),
        study_instance_uid=_text(ds, "StudyInstanceUID"),
        series_instance_uid=_text(ds, "SeriesInstanceUID"),
        start_time=acquisition_start(ds),
        patient_position=position,
        manufacturer=_text(ds, "Manufacturer"),
        model=_text(ds, "ManufacturerModelName"),
        source=str(source),
    )


def patient_info(ds: Dataset, header: SeriesHeader) -> PatientInfo:
    """Weight (kg), height (m), sex, ID and name; a PatientSex other than M/F/O is dropped (logged)."""
    sex = (header.sex or "").strip().upper()[:1] or None
    if sex is not None and sex not in ("M", "F", "O"):
        logger.warning("PatientSex (0010,0040) %r is not M, F or O; ignored", header.sex)
        sex = None
    return PatientInfo(
        weight_kg=header.weight_kg,
        height_m=header.height_m,
        sex=sex,
        patient_id=_text(ds, "PatientID"),
        name=str(ds.get("PatientName", "") or ""),
    )


def dose_info(ds: Dataset, header: SeriesHeader, radionuclide: str | None, start: datetime | None) -> DoseInfo:
    """Radionuclide, injected activity (Bq), injection time, radiopharmaceutical and half-life (s).

    The injection time is RadiopharmaceuticalStartDateTime (0018,1078), else
    RadiopharmaceuticalStartTime (0018,1072) on the series (acquisition) date;
    a time-only injection more than an hour after ``start`` is taken as the
    previous day (midnight crossing).
    """
    injection = header.injection_datetime
    if injection is None and header.injection_time_only is not None and header.series_date is not None:
        injection, crossed = place_time_only(header.series_date, header.injection_time_only, start)
        if crossed:
            logger.info("injection time %s is after the acquisition start: taken as the previous day",
                        injection.time())
    rp_seq = raw(ds, "RadiopharmaceuticalInformationSequence")
    rp = rp_seq[0] if rp_seq else None
    return DoseInfo(
        radionuclide=radionuclide,
        injected_activity_bq=header.dose_bq,
        injection_time=injection,
        radiopharmaceutical=get_str(rp, "Radiopharmaceutical") or "",
        half_life_s=header.half_life_s,
    )


def study_metadata(ds: Dataset, source: str | Path = "",
                   radionuclide: str | None = None) -> tuple[AcquisitionInfo, PatientInfo, DoseInfo]:
    """The typed study metadata of an NM header (no pixel data needed): where and when, who, what was given."""
    from recon.io.dicom.series_header import read_series_header  # noqa: PLC0415

    header = read_series_header([ds])
    info = acquisition_info(ds, source)
    return info, patient_info(ds, header), dose_info(ds, header, radionuclide, info.start_time)
