"""Radionuclide table: half-life, main photon lines, positron fraction.

Values (half-life in s, photon energy in keV, photon yield per decay, positron
fraction per decay) are the evaluated nuclear data of ENSDF as tabulated by
NNDC NuDat 3 (https://www.nndc.bnl.gov/nudat3/) and the DDEP/LNHB "Table de
Radionucleides" recommended data (http://www.lnhb.fr/nuclear-data/); where the
two evaluations differ, the difference is below 0.2 % in half-life, which is
far inside SUV uncertainty. Only lines with yield above about 1 % (or the
lines used for imaging) are listed. The 511 keV "line" of a positron emitter is
annihilation radiation with yield 2 x positron fraction.

The half-life recorded in a DICOM header (RadionuclideHalfLife, 0018,1075)
always wins over this table (see :mod:`recon.quant.suv`); the table is the
fallback and the source of photon energies for SPECT energy windows.

DICOM codes: PET radionuclides follow CID 4020 (SNOMED-RT ``SRT`` codes and
their SNOMED CT ``SCT`` equivalents) and SPECT isotopes CID 18 (SRT codes;
Lu-177 has none there and is found by its code meaning); code meanings use the DICOM
``^A^Element`` form, e.g. ``^99m^Technetium``.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

__all__ = [
    "PhotonLine",
    "Radionuclide",
    "RADIONUCLIDES",
    "get_radionuclide",
    "radionuclide_from_dicom_code",
    "radionuclide_names",
]

_HOUR = 3600.0
_DAY = 86400.0
_MIN = 60.0


@dataclass(frozen=True)
class PhotonLine:
    """One photon emission: energy (keV) and yield (photons per decay)."""

    energy_kev: float
    yield_per_decay: float

    def __post_init__(self) -> None:
        if not (self.energy_kev > 0 and math.isfinite(self.energy_kev)):
            raise ValueError(f"photon energy must be positive (keV), got {self.energy_kev}")
        if not (self.yield_per_decay >= 0 and math.isfinite(self.yield_per_decay)):
            raise ValueError(f"photon yield must be >= 0, got {self.yield_per_decay}")


@dataclass(frozen=True)
class Radionuclide:
    """A radionuclide: name (``"Tc-99m"``), half-life (s), photon lines, positron fraction.

    ``aliases`` are extra names accepted by :func:`get_radionuclide`;
    ``dicom_codes`` are (code value, coding scheme) pairs from the DICOM
    radionuclide context groups; ``dicom_meaning`` is the DICOM code meaning.
    """

    name: str
    half_life_s: float
    photons: tuple[PhotonLine, ...]
    positron_fraction: float
    dicom_meaning: str
    dicom_codes: tuple[tuple[str, str], ...] = ()
    aliases: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not (self.half_life_s > 0 and math.isfinite(self.half_life_s)):
            raise ValueError(f"{self.name}: half-life must be positive (s), got {self.half_life_s}")
        if not 0.0 <= self.positron_fraction <= 1.0:
            raise ValueError(f"{self.name}: positron fraction must be in [0, 1], got {self.positron_fraction}")

    @property
    def decay_constant_per_s(self) -> float:
        """lambda = ln 2 / T1/2, in 1/s."""
        return math.log(2.0) / self.half_life_s

    @property
    def main_photon(self) -> PhotonLine:
        """The line with the highest yield (the imaging photopeak)."""
        return max(self.photons, key=lambda p: p.yield_per_decay)

    def photons_between(self, low_kev: float, high_kev: float) -> tuple[PhotonLine, ...]:
        """Lines with energy in [low_kev, high_kev]."""
        return tuple(p for p in self.photons if low_kev <= p.energy_kev <= high_kev)


def _pl(*pairs: tuple[float, float]) -> tuple[PhotonLine, ...]:
    return tuple(PhotonLine(e, y) for e, y in pairs)


_TABLE: tuple[Radionuclide, ...] = (
    Radionuclide(
        "Tc-99m", 6.0067 * _HOUR, _pl((140.511, 0.885), (18.37, 0.040)), 0.0,
        "^99m^Technetium", (("C-163A8", "SRT"),),
        aliases=("Tc99m", "99mTc", "Technetium-99m"),
    ),
    Radionuclide(
        "F-18", 109.77 * _MIN, _pl((511.0, 2 * 0.9673)), 0.9673,
        "^18^Fluorine", (("C-111A1", "SRT"), ("77004003", "SCT")),
        aliases=("F18", "18F", "Fluorine-18"),
    ),
    Radionuclide(
        "Ga-68", 67.71 * _MIN, _pl((511.0, 2 * 0.8891), (1077.34, 0.0322)), 0.8891,
        "^68^Gallium", (("C-131A3", "SRT"), ("35337001", "SCT")),
        aliases=("Ga68", "68Ga", "Gallium-68"),
    ),
    Radionuclide(
        "Lu-177", 6.647 * _DAY, _pl((208.366, 0.1036), (112.950, 0.0620), (54.6, 0.045)), 0.0,
        "^177^Lutetium", (),
        aliases=("Lu177", "177Lu", "Lutetium-177"),
    ),
    Radionuclide(
        "In-111", 2.8047 * _DAY, _pl((171.28, 0.9066), (245.35, 0.9409), (23.17, 0.70)), 0.0,
        "^111^Indium", (("C-145A4", "SRT"),),
        aliases=("In111", "111In", "Indium-111"),
    ),
    Radionuclide(
        "I-123", 13.2234 * _HOUR, _pl((158.97, 0.833), (27.47, 0.46), (528.96, 0.0128)), 0.0,
        "^123^Iodine", (("C-114A4", "SRT"),),
        aliases=("I123", "123I", "Iodine-123"),
    ),
    Radionuclide(
        "I-131", 8.0252 * _DAY,
        _pl((364.49, 0.815), (636.99, 0.0716), (284.31, 0.0612), (80.19, 0.0262), (722.91, 0.0177)), 0.0,
        "^131^Iodine", (("C-114B1", "SRT"),),
        aliases=("I131", "131I", "Iodine-131"),
    ),
    Radionuclide(
        # pure beta emitter; internal pair production gives 3.19e-5 positrons per decay
        "Y-90", 64.05 * _HOUR, _pl((511.0, 2 * 3.19e-5)), 3.19e-5,
        "^90^Yttrium", (("C-162A7", "SRT"), ("14691008", "SCT")),
        aliases=("Y90", "90Y", "Yttrium-90"),
    ),
    Radionuclide(
        "Zr-89", 78.41 * _HOUR, _pl((511.0, 2 * 0.2274), (909.15, 0.9904)), 0.2274,
        "^89^Zirconium", (("C-168A4", "SRT"), ("63360001", "SCT")),
        aliases=("Zr89", "89Zr", "Zirconium-89"),
    ),
    Radionuclide(
        "Cu-64", 12.701 * _HOUR, _pl((511.0, 2 * 0.1752), (1345.77, 0.00475)), 0.1752,
        "^64^Copper", (("C-127A2", "SRT"), ("3932008", "SCT")),
        aliases=("Cu64", "64Cu", "Copper-64"),
    ),
)

RADIONUCLIDES: dict[str, Radionuclide] = {r.name: r for r in _TABLE}
"""The table, keyed by canonical name (``"Tc-99m"``, ``"F-18"``, ...)."""

_ELEMENTS = {
    "tc": "technetium", "f": "fluorine", "ga": "gallium", "lu": "lutetium", "in": "indium",
    "i": "iodine", "y": "yttrium", "zr": "zirconium", "cu": "copper",
}


def _key(text: str) -> str:
    """Normalise a radionuclide name to ``<element symbol><mass>[m]`` lower case, e.g. ``tc99m``."""
    s = text.strip().lower()
    s = s.replace("^", " ").replace("-", " ").replace("_", " ")
    for sym, full in _ELEMENTS.items():
        s = re.sub(rf"\b{full}\b", sym, s)
    s = re.sub(r"\b([a-z]{1,2})\s+\1\b", r"\1", s)  # "technetium tc 99m" -> "tc 99m"
    s = s.replace(" ", "")
    m = re.fullmatch(r"([a-z]{1,2})(\d{1,3})(m?)", s) or None
    if m:
        return f"{m.group(1)}{m.group(2)}{m.group(3)}"
    m = re.fullmatch(r"(\d{1,3})(m?)([a-z]{1,2})", s)
    if m:
        return f"{m.group(3)}{m.group(1)}{m.group(2)}"
    return s


_BY_KEY: dict[str, Radionuclide] = {}
for _r in _TABLE:
    for _n in (_r.name, _r.dicom_meaning, *_r.aliases):
        _BY_KEY[_key(_n)] = _r
_BY_CODE: dict[str, Radionuclide] = {code.upper(): r for r in _TABLE for code, _scheme in r.dicom_codes}


def radionuclide_names() -> tuple[str, ...]:
    """Canonical names in the table."""
    return tuple(RADIONUCLIDES)


def get_radionuclide(name: str) -> Radionuclide:
    """Look a radionuclide up by a common name.

    Accepts ``"Tc-99m"``, ``"99mTc"``, ``"Tc99m"``, ``"F18"``, ``"18F"``,
    ``"Fluorine-18"``, ``"^18^Fluorine"`` and similar, case-insensitive.
    Raises KeyError naming the known nuclides when the name is not in the table.
    """
    if not isinstance(name, str) or not name.strip():
        raise KeyError(f"radionuclide name must be a non-empty string, got {name!r}")
    r = _BY_KEY.get(_key(name))
    if r is None:
        raise KeyError(f"unknown radionuclide {name!r}; known: {', '.join(RADIONUCLIDES)}")
    return r


def radionuclide_from_dicom_code(
    code_value: str | None = None, code_meaning: str | None = None
) -> Radionuclide:
    """Radionuclide from a RadionuclideCodeSequence item (CodeValue and/or CodeMeaning).

    The code meaning (``"^18^Fluorine"``) is used first because it is
    self-describing (some writers put a wrong code value next to a correct
    meaning); the code value (SRT ``C-111A1`` or SCT ``77004003``) is the
    fallback. Raises KeyError when neither is recognised.
    """
    if code_meaning:
        try:
            return get_radionuclide(str(code_meaning))
        except KeyError:
            pass
    if code_value:
        r = _BY_CODE.get(str(code_value).strip().upper())
        if r is not None:
            return r
    raise KeyError(
        f"radionuclide code not recognised (CodeValue={code_value!r}, CodeMeaning={code_meaning!r}); "
        f"known: {', '.join(RADIONUCLIDES)}"
    )
