"""Radionuclide table and name/DICOM-code lookup.

Reference numbers are the well-known textbook values (half-lives to about
0.5 %, principal photopeaks), independent of the table's exact evaluation.
"""
from __future__ import annotations

import math

import pytest

from recon.data.radionuclides import (
    RADIONUCLIDES,
    get_radionuclide,
    radionuclide_from_dicom_code,
    radionuclide_names,
)

# name: (half-life in s, main photopeak keV or None for pure positron/beta imaging, positron emitter)
KNOWN = {
    "Tc-99m": (6.01 * 3600, 140.5, False),
    "F-18": (109.8 * 60, 511.0, True),
    "Ga-68": (67.8 * 60, 511.0, True),
    "Lu-177": (6.65 * 86400, 208.4, False),
    "In-111": (2.80 * 86400, 245.4, False),
    "I-123": (13.22 * 3600, 159.0, False),
    "I-131": (8.02 * 86400, 364.5, False),
    "Y-90": (64.1 * 3600, None, False),
    "Zr-89": (78.4 * 3600, 909.2, True),
    "Cu-64": (12.70 * 3600, 511.0, True),
}


def test_table_holds_the_required_nuclides():
    assert set(KNOWN) <= set(radionuclide_names())


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_half_life_and_photopeak(name):
    hl, peak, positron = KNOWN[name]
    r = RADIONUCLIDES[name]
    assert r.half_life_s == pytest.approx(hl, rel=5e-3)
    assert r.decay_constant_per_s == pytest.approx(math.log(2) / r.half_life_s)
    if peak is not None:
        assert r.main_photon.energy_kev == pytest.approx(peak, abs=0.5)
    assert (r.positron_fraction > 0.1) == positron
    for p in r.photons:
        if p.energy_kev == 511.0:  # annihilation radiation: two photons per positron
            assert p.yield_per_decay == pytest.approx(2 * r.positron_fraction)


@pytest.mark.parametrize(
    "alias, name",
    [("Tc-99m", "Tc-99m"), ("99mTc", "Tc-99m"), ("tc99m", "Tc-99m"), ("Technetium-99m", "Tc-99m"),
     ("^99m^Technetium", "Tc-99m"), ("Technetium Tc-99m", "Tc-99m"), ("F18", "F-18"), ("18F", "F-18"),
     ("f-18", "F-18"), ("Fluorine-18", "F-18"), ("^18^Fluorine", "F-18"), ("68Ga", "Ga-68"),
     ("Lu177", "Lu-177"), ("177Lu", "Lu-177"), ("I-131", "I-131"), ("131I", "I-131"), ("Y90", "Y-90"),
     ("89Zr", "Zr-89"), ("Cu-64", "Cu-64"), ("In111", "In-111"), ("123I", "I-123")],
)
def test_lookup_by_common_names(alias, name):
    assert get_radionuclide(alias).name == name


@pytest.mark.parametrize("bad", ["Tc-99", "F-19", "banana", ""])
def test_unknown_names(bad):
    with pytest.raises(KeyError):
        get_radionuclide(bad)


def test_dicom_codes():
    assert radionuclide_from_dicom_code("C-111A1").name == "F-18"
    assert radionuclide_from_dicom_code("77004003").name == "F-18"  # SNOMED CT
    assert radionuclide_from_dicom_code("C-163A8").name == "Tc-99m"
    assert radionuclide_from_dicom_code("C-131A3").name == "Ga-68"
    assert radionuclide_from_dicom_code(None, "^177^Lutetium").name == "Lu-177"
    # the meaning wins over a mismatched value (C-131A1 is ^66^Gallium in CID 4020)
    assert radionuclide_from_dicom_code("C-131A1", "^68^Gallium").name == "Ga-68"
    with pytest.raises(KeyError):
        radionuclide_from_dicom_code("C-131A1", None)
    with pytest.raises(KeyError):
        radionuclide_from_dicom_code(None, None)


def test_photons_between():
    tc = get_radionuclide("Tc-99m")
    assert [p.energy_kev for p in tc.photons_between(126, 154)] == [140.511]
