"""Views of a bundle: the bytecode each measurement runs with, and nothing an interpreter left behind."""

from __future__ import annotations

import py_compile
import sys
from pathlib import Path

from toolkit.measure import is_shipped_pyc, make_view

TAG = sys.implementation.cache_tag


def compiled(source: Path, mode: py_compile.PycInvalidationMode) -> Path:
    return Path(py_compile.compile(str(source), cfile=str(source.parent / "__pycache__" / f"{source.stem}.{TAG}.pyc"),
                                   invalidation_mode=mode, doraise=True))


def bundle(tmp_path: Path) -> Path:
    """A bundle with one shipped pyc (unchecked hash), one stray timestamp pyc, and one module without any."""
    root = tmp_path / "bundle"
    (root / "pkg").mkdir(parents=True)
    for name in ("shipped", "stray", "bare"):
        (root / "pkg" / f"{name}.py").write_text(f"NAME = {name!r}\n", encoding="utf-8")
    compiled(root / "pkg" / "shipped.py", py_compile.PycInvalidationMode.UNCHECKED_HASH)
    compiled(root / "pkg" / "stray.py", py_compile.PycInvalidationMode.TIMESTAMP)
    return root


def pycs(view: Path) -> list[str]:
    return sorted(path.name.split(".")[0] for path in view.rglob("*.pyc"))


def test_a_shipped_view_keeps_the_bundlers_pycs_and_drops_the_ones_an_interpreter_wrote(tmp_path):
    # Given / When
    source = bundle(tmp_path)
    view = make_view(source, tmp_path / "shipped", "shipped")

    # Then
    assert pycs(view) == ["shipped"] and sorted(path.name for path in view.rglob("*.py")) == [
        "bare.py", "shipped.py", "stray.py"]
    assert (view / "pkg" / "shipped.py").stat().st_ino == (source / "pkg" / "shipped.py").stat().st_ino  # a link


def test_a_naive_view_has_no_bytecode_and_a_full_view_has_it_for_every_module(tmp_path):
    # Given
    source = bundle(tmp_path)

    # When
    naive = make_view(source, tmp_path / "none", "none")
    full = make_view(source, tmp_path / "full", "full")

    # Then: the full view adds unchecked hash-based pycs, the bundle itself is untouched
    assert pycs(naive) == [] and not list(naive.rglob("__pycache__"))
    assert pycs(full) == ["bare", "shipped", "stray"] and all(is_shipped_pyc(pyc) for pyc in full.rglob("*.pyc"))
    assert pycs(source) == ["shipped", "stray"]
