"""DICOM in and out: CT/PET/NM image series, NM projections and NM multi-frame reconstructions.

Readers return our data objects in our units (HU volumes, Bq/mL volumes with
their :class:`~recon.data.series_header.SeriesHeader`, SPECT acquisitions
with typed metadata); nothing here converts HU to mu or computes SUV.
"""
from recon.io.dicom.ct import read_ct_series
from recon.io.dicom.image_series import read_volume_series, write_volume_series
from recon.io.dicom.nm_collimator import collimator_from_dicom_name
from recon.io.dicom.nm_geometry import dicom_angle_to_recon_deg, recon_angle_to_dicom_deg
from recon.io.dicom.nm_projections import read_nm
from recon.io.dicom.nm_recon import read_nm_recon
from recon.io.dicom.nm_recon_write import NMRotation, NMStudyFacts, write_nm_recon
from recon.io.dicom.nm_write import write_nm
from recon.io.dicom.series import UNIT_NAMES, AxialSeries, ImageSeries, read_axial_series, read_image_series
from recon.io.dicom.series_header import read_series_header
from recon.io.dicom.values import DicomFormatError
from recon.io.dicom.write_common import NM_IMAGE_STORAGE, PET_IMAGE_STORAGE

__all__ = [
    "AxialSeries",
    "DicomFormatError",
    "ImageSeries",
    "NMRotation",
    "NMStudyFacts",
    "NM_IMAGE_STORAGE",
    "PET_IMAGE_STORAGE",
    "UNIT_NAMES",
    "collimator_from_dicom_name",
    "dicom_angle_to_recon_deg",
    "read_axial_series",
    "read_ct_series",
    "read_image_series",
    "read_nm",
    "read_nm_recon",
    "read_series_header",
    "read_volume_series",
    "recon_angle_to_dicom_deg",
    "write_nm",
    "write_nm_recon",
    "write_volume_series",
]
