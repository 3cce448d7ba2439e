"""Lesion measurements as a DICOM Comprehensive 3D SR, TID 1500 Measurement Report (highdicom).

One TID 1411 Volumetric ROI group per lesion, referencing its segment in the
SEG: SUVbw (DCM 126401) with derivation Maximum (SCT 56851009), Mean (SCT
373098007) and Peak Value Within ROI (DCM 126031, the 1 mL sphere), unit
UCUM ``{SUVbw}g/ml``; Volume (SCT 118565006) in ``ml``. Each cut-off comparison
of SUVmax is a qualitative evaluation in recon's own coding scheme
(``99RECON``): concept ``CUTOFF-<c>`` "SUVmax compared with cut-off <c>",
value ``ABOVE`` / ``BELOW`` ("above cut-off" / "below cut-off"): a
comparison, never a diagnosis (no standard code says this).
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence as SequenceOf
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.dataset import Dataset

from recon.io.atomic import atomic_output

logger = logging.getLogger(__name__)

__all__ = ["LesionMeasurement", "write_lesion_sr"]


@dataclass(frozen=True)
class LesionMeasurement:
    """One lesion's SUVbw statistics (g/mL), volume (mL), its SEG segment number and cut-off comparisons
    ((cut-off, above)) of SUVmax."""

    segment_number: int
    label: str
    suv_max: float
    suv_peak: float
    suv_mean: float
    volume_ml: float
    cutoffs: tuple[tuple[float, bool], ...] = field(default_factory=tuple)


def write_lesion_sr(path: str | os.PathLike[str], lesions: SequenceOf[LesionMeasurement], seg: Dataset,
                    sources: SequenceOf[Dataset], *, modality: str = "NM", overwrite: bool = False) -> Path:
    """Write a TID 1500 Measurement Report of ``lesions`` (their segments in ``seg``, drawn on ``sources``,
    the image datasets) as a Comprehensive 3D SR; returns the path."""
    try:
        import highdicom as hd  # noqa: PLC0415 (optional dependency: the 'dicom' extra)
    except ImportError:
        raise ImportError("DICOM SEG/SR output needs highdicom: pip install 'recon[dicom]'") from None
    from highdicom.sr import CodedConcept  # noqa: PLC0415
    from pydicom.sr.codedict import codes  # noqa: PLC0415

    suvbw = CodedConcept("126401", "DCM", "SUVbw")
    suv_unit = CodedConcept("{SUVbw}g/ml", "UCUM", "Standardized Uptake Value body weight")
    ml = CodedConcept("ml", "UCUM", "milliliter")
    source_series = hd.sr.SourceSeriesForSegmentation(str(sources[0].SeriesInstanceUID))
    groups = []
    for lesion in lesions:
        measurements = [
            hd.sr.Measurement(name=suvbw, value=lesion.suv_max, unit=suv_unit, derivation=codes.SCT.Maximum),
            hd.sr.Measurement(name=suvbw, value=lesion.suv_peak, unit=suv_unit,
                              derivation=codes.DCM.PeakValueWithinROI),
            hd.sr.Measurement(name=suvbw, value=lesion.suv_mean, unit=suv_unit, derivation=codes.SCT.Mean),
            hd.sr.Measurement(name=codes.SCT.Volume, value=lesion.volume_ml, unit=ml),
        ]
        evaluations = [
            hd.sr.QualitativeEvaluation(
                CodedConcept(f"CUTOFF-{c:g}"[:16], "99RECON", f"SUVmax compared with cut-off {c:g}"),
                CodedConcept("ABOVE", "99RECON", "above cut-off") if above
                else CodedConcept("BELOW", "99RECON", "below cut-off"))
            for c, above in lesion.cutoffs
        ]
        groups.append(hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=lesion.label),
            referenced_segment=hd.sr.ReferencedSegment(
                sop_class_uid=str(seg.SOPClassUID), sop_instance_uid=str(seg.SOPInstanceUID),
                segment_number=lesion.segment_number, source_series=source_series),
            finding_type=codes.SCT.Lesion, measurements=measurements,
            qualitative_evaluations=evaluations or None,
        ))
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(uid=hd.UID(), name="recon"))
    procedure = (codes.SCT.SinglePhotonEmissionComputerizedTomography if modality == "NM"
                 else codes.SCT.NuclearMedicineProcedure)
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=procedure, imaging_measurements=groups)
    sr = hd.sr.Comprehensive3DSR(
        evidence=[seg, *sources], content=report, series_instance_uid=hd.UID(), series_number=2002,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="recon",
        series_description="recon lesion measurements", is_complete=True, is_final=False, is_verified=False)
    with atomic_output(path, overwrite, suffix=".dcm") as tmp:
        sr.save_as(tmp)
    logger.info("wrote DICOM SR %s (%d lesions)", path, len(lesions))
    return Path(path)
