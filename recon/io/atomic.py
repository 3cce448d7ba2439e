"""Atomic outputs: write under a temporary name beside the target, rename on success, never overwrite unasked."""
from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def check_writable_target(path: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """``path`` as a Path; raises FileExistsError if it exists (unless ``overwrite``) and FileNotFoundError
    if its directory does not exist."""
    p = Path(path)
    if p.exists() and not overwrite:
        raise FileExistsError(f"{p} exists; refusing to overwrite (pass overwrite=True / --overwrite)")
    if not p.parent.is_dir():
        raise FileNotFoundError(f"output directory {p.parent} does not exist")
    return p


@contextmanager
def atomic_output(path: str | os.PathLike[str], overwrite: bool = False, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on a clean exit it is renamed onto ``path``, on an error removed.

    ``suffix`` ends the temporary name (e.g. ``".nii.gz"`` for writers that pick the format from it).
    """
    p = check_writable_target(path, overwrite)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".partial" + suffix, dir=p.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if p.exists() and not overwrite:
            raise FileExistsError(f"{p} appeared while writing; refusing to overwrite")
        os.replace(tmp, p)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(path: str | os.PathLike[str], text: str, overwrite: bool = False) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; an existing file is refused unless ``overwrite``."""
    with atomic_output(path, overwrite) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
