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
    if p.is_dir():
        raise IsADirectoryError(f"{p} is a directory; give an output file name")
    if p.exists() and not overwrite:
        raise FileExistsError(f"{p} exists; refusing to overwrite (pass overwrite=True / --overwrite)")
    check_writable_directory(p.parent)
    return p


def check_writable_directory(directory: str | os.PathLike[str]) -> Path:
    """``directory`` as a Path; FileNotFoundError if it does not exist, NotADirectoryError if it is a file,
    PermissionError if files cannot be created in it (checked before any compute)."""
    d = Path(directory)
    if not d.exists():
        raise FileNotFoundError(f"output directory {d} does not exist")
    if not d.is_dir():
        raise NotADirectoryError(f"output directory {d} is a file, not a directory")
    if not os.access(d, os.W_OK | os.X_OK):
        raise PermissionError(f"output directory {d} is not writable")
    return d


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
