"""Our HDF5 files: one shared container (:mod:`.container`) and one schema per kind (docs/file-format.md).

Kinds: ``recon-volume`` (:mod:`.volume`), ``recon-spect-projections``
(:mod:`.spect_projections`), ``recon-pet-sinogram`` (:mod:`.pet_sinogram`) and
``recon-pet-listmode`` (:mod:`.pet_listmode`).
"""
from recon.io.hdf5.container import FileFormatError, format_of, is_hdf5, json_default
from recon.io.hdf5.pet_listmode import FORMAT_PET_LISTMODE, PET_LISTMODE_VERSION, read_pet_listmode, write_pet_listmode
from recon.io.hdf5.pet_sinogram import FORMAT_PET_SINOGRAM, PET_SINOGRAM_VERSION, read_pet_sinogram, write_pet_sinogram
from recon.io.hdf5.spect_projections import (
    FORMAT_PROJECTIONS,
    PROJECTIONS_VERSION,
    read_mu_map,
    read_projections,
    write_projections,
)
from recon.io.hdf5.volume import FORMAT_VOLUME, VOLUME_VERSION, read_volume, write_volume

#: the highest version any kind has (kinds are versioned separately: PROJECTIONS_VERSION, VOLUME_VERSION, ...)
FORMAT_VERSION = max(PROJECTIONS_VERSION, VOLUME_VERSION, PET_SINOGRAM_VERSION, PET_LISTMODE_VERSION)

__all__ = [
    "FORMAT_PET_LISTMODE",
    "FORMAT_PET_SINOGRAM",
    "PET_LISTMODE_VERSION",
    "PET_SINOGRAM_VERSION",
    "read_pet_listmode",
    "read_pet_sinogram",
    "write_pet_listmode",
    "write_pet_sinogram",
    "FORMAT_PROJECTIONS",
    "FORMAT_VERSION",
    "FORMAT_VOLUME",
    "PROJECTIONS_VERSION",
    "VOLUME_VERSION",
    "FileFormatError",
    "format_of",
    "is_hdf5",
    "json_default",
    "read_mu_map",
    "read_projections",
    "read_volume",
    "write_projections",
    "write_volume",
]
