"""The import graph keeps its layers: read every module's imports with ``ast`` and check the rules.

Rules (docs/architecture.md):
- ``recon/algorithms`` imports no modality (``recon.spect``, ``recon.pet``) and no I/O (``recon.io``);
- ``recon/io`` imports neither ``recon.quant`` nor a modality package;
- ``recon/quant`` imports no I/O;
- ``recon/physics`` imports no I/O, no modality and no quantification;
- ``kernels/`` imports nothing from ``recon``;
- only ``recon/backend.py`` imports ``cupy``.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODALITIES = ("recon.spect", "recon.pet")


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(path: Path, root: Path = ROOT) -> set[str]:
    """Every module name imported anywhere in ``path`` (top level and inside functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    module = _module_name(path, root)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node, module, path.name == "__init__.py")
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _sources(*packages: str) -> list[Path]:
    files: list[Path] = []
    for package in packages:
        files.extend(sorted((ROOT / package).rglob("*.py")))
    return files


def _violations(files: list[Path], forbidden: tuple[str, ...], root: Path = ROOT) -> list[str]:
    bad = []
    for f in files:
        for name in sorted(imports_of(f, root)):
            if any(name == p or name.startswith(p + ".") for p in forbidden):
                bad.append(f"{f.relative_to(root)} imports {name}")
    return bad


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("recon/algorithms", MODALITIES + ("recon.io",)),
        ("recon/io", MODALITIES + ("recon.quant",)),
        ("recon/quant", ("recon.io",)),
        ("recon/physics", MODALITIES + ("recon.io", "recon.quant")),
        ("recon/data", MODALITIES + ("recon.io", "recon.quant", "recon.algorithms", "recon.physics")),
        ("kernels", ("recon",)),
    ],
)
def test_layer_imports(package: str, forbidden: tuple[str, ...]) -> None:
    files = _sources(package)
    assert files, f"no Python files under {package}"
    assert _violations(files, forbidden) == []


def test_only_backend_imports_cupy() -> None:
    files = _sources("recon", "kernels", "benchmarks")
    offenders = [str(f.relative_to(ROOT)) for f in files
                 if any(n == "cupy" or n.startswith("cupy.") for n in imports_of(f))]
    assert offenders == ["recon/backend.py"]


def test_checker_sees_a_violation(tmp_path: Path) -> None:
    """The checker itself can fail: a function-level relative import of a forbidden package is found."""
    probe = tmp_path / "recon" / "algorithms" / "probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text("def f():\n    from ..spect import system_model\n    import cupy\n", encoding="utf-8")
    names = imports_of(probe, tmp_path)
    assert {"recon.spect", "recon.spect.system_model", "cupy"} <= names
    assert _violations([probe], MODALITIES, tmp_path) != []


def test_no_module_is_overgrown() -> None:
    """Small modules with one job: none in recon/ or kernels/ above 500 lines."""
    long = {str(f.relative_to(ROOT)): n for f in _sources("recon", "kernels")
            if (n := len(f.read_text(encoding="utf-8").splitlines())) > 500}
    assert long == {}
