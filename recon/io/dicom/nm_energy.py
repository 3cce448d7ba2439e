"""NM energy windows, the photopeak among them, and the radionuclide a file names."""
from __future__ import annotations

import logging
import re

from pydicom.dataset import Dataset

from recon.data.radionuclides import get_radionuclide, radionuclide_names
from recon.data.spect import EnergyWindow
from recon.io.dicom.values import DicomFormatError, require

logger = logging.getLogger(__name__)

__all__ = [
    "choose_photopeak", "energy_windows", "infer_radionuclide", "main_photopeak_kev", "radionuclide_from_header",
]

_ELEMENTS = {
    "tc": "Tc", "technetium": "Tc", "i": "I", "iodine": "I", "in": "In", "indium": "In",
    "lu": "Lu", "lutetium": "Lu", "ga": "Ga", "gallium": "Ga", "tl": "Tl", "thallium": "Tl",
    "y": "Y", "yttrium": "Y", "f": "F", "fluorine": "F",
}  # fmt: skip


def main_photopeak_kev(radionuclide: str | None) -> float | None:
    """The radionuclide's highest-yield photon (keV) from :mod:`recon.data.radionuclides`, or None."""
    if not radionuclide:
        return None
    try:
        return get_radionuclide(radionuclide).main_photon.energy_kev
    except (KeyError, ValueError):
        return None


def _normalise_radionuclide(text: str) -> str | None:
    """'^99m^Technetium', 'Tc-99m', 'Tc99m', '99mTc' -> 'Tc-99m'; None when not recognised."""
    s = re.sub(r"[^a-z0-9]", "", text.lower())
    m = re.search(r"\d+m?", s)
    if not m:
        return None
    element = (s[: m.start()] + s[m.end():]).strip()
    if element not in _ELEMENTS:
        return None
    return f"{_ELEMENTS[element]}-{m.group(0)}"


def radionuclide_from_header(ds: Dataset) -> str | None:
    """Radionuclide name ('Tc-99m') from RadiopharmaceuticalInformationSequence[0].RadionuclideCodeSequence."""
    seq = ds.get("RadiopharmaceuticalInformationSequence")
    if not seq:
        return None
    item = seq[0]
    for code in item.get("RadionuclideCodeSequence", []) or []:
        for key in ("CodeMeaning", "CodeValue"):
            text = str(code.get(key, "") or "")
            if text:
                found = _normalise_radionuclide(text)
                if found:
                    return found
        meaning = str(code.get("CodeMeaning", "") or "")
        if meaning:
            return meaning
    return None


def energy_windows(ds: Dataset, n_windows: int) -> list[EnergyWindow]:
    """The ``n_windows`` energy windows (keV) of EnergyWindowInformationSequence (0054,0012), unique names."""
    seq = require(ds, "EnergyWindowInformationSequence")
    if len(seq) != n_windows:
        raise DicomFormatError(
            f"EnergyWindowInformationSequence (0054,0012) has {len(seq)} items "
            f"but the file has {n_windows} energy windows"
        )
    windows: list[EnergyWindow] = []
    used: set[str] = set()
    for i, item in enumerate(seq):
        where = f"EnergyWindowInformationSequence[{i}]."
        ranges = require(item, "EnergyWindowRangeSequence", where)
        if len(ranges) != 1:
            raise DicomFormatError(
                f"{where}EnergyWindowRangeSequence has {len(ranges)} ranges; one per window is supported"
            )
        lo = float(require(ranges[0], "EnergyWindowLowerLimit", where + "EnergyWindowRangeSequence[0]."))
        hi = float(require(ranges[0], "EnergyWindowUpperLimit", where + "EnergyWindowRangeSequence[0]."))
        name = str(item.get("EnergyWindowName", "") or "").strip() or f"EW{i + 1}"
        if name in used:
            name = f"{name}_{i + 1}"
        used.add(name)
        windows.append(EnergyWindow(name, lo, hi))
    return windows


def choose_photopeak(windows: list[EnergyWindow], photopeak: str | None, energy_kev: float | None) -> EnergyWindow:
    """The window named ``photopeak``, else the narrowest holding ``energy_kev``, else the only window."""
    names = [w.name for w in windows]
    if photopeak is not None:
        for w in windows:
            if w.name == photopeak:
                return w
        raise DicomFormatError(f"photopeak window {photopeak!r} not in the file's energy windows {names}")
    if energy_kev is not None:
        holding = [w for w in windows if w.lower_kev <= energy_kev <= w.upper_kev]
        if holding:
            return min(holding, key=lambda w: w.width_kev)
        raise DicomFormatError(
            f"no energy window holds the photopeak {energy_kev} keV; windows {names}; pass photopeak="
        )
    if len(windows) == 1:
        return windows[0]
    raise DicomFormatError(
        f"cannot tell the photopeak window among {names}: radionuclide unknown; pass photopeak= or photon_energy_kev="
    )


# Inference of the radionuclide from the windows (when the code sequence is empty, e.g. anonymised files)
_MIN_YIELD = 0.05  # photons per decay: lines weaker than this are not acquired on their own
_MIN_KEV = 50.0  # below this, lines are X-rays that SPECT does not window
_CENTRAL_FRACTION = 1.0 / 6.0  # a window is "on" a line when the line lies within width/6 of its centre


def _window_lines(name: str) -> list[float]:
    """Single-photon lines (keV) of ``name`` that a photopeak window could be set on (no 511 keV)."""
    return [p.energy_kev for p in get_radionuclide(name).photons
            if p.yield_per_decay >= _MIN_YIELD and p.energy_kev >= _MIN_KEV and abs(p.energy_kev - 511.0) > 1.0]


def infer_radionuclide(windows: list[EnergyWindow]) -> tuple[str | None, str]:
    """The radionuclide whose photon lines the windows are set on, and how it was decided.

    Rule: a window is *on* a line when the line (yield >= 5 %, >= 50 keV, not
    annihilation) lies within a sixth of the window's width from its centre.
    A radionuclide qualifies when a window is on its most intense line; among
    those, the one with the most lines that windows are on wins. No candidate or
    a tie gives None, with the reason.
    """
    scores: dict[str, list[float]] = {}
    for name in radionuclide_names():
        lines = _window_lines(name)
        if not lines:
            continue
        on = [e for e in lines if any(abs(e - w.center_kev) <= _CENTRAL_FRACTION * w.width_kev for w in windows)]
        main = get_radionuclide(name).main_photon.energy_kev
        if on and main in on:
            scores[name] = on
    if not scores:
        return None, "no energy window is centred on a known radionuclide's main photon line"
    best = max(len(v) for v in scores.values())
    winners = sorted(n for n, v in scores.items() if len(v) == best)
    if len(winners) > 1:
        return None, f"the windows fit {', '.join(winners)} equally well"
    name = winners[0]
    lines = ", ".join(f"{e:g}" for e in sorted(scores[name]))
    return name, f"windows centred on its {lines} keV line(s)"
