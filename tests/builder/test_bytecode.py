"""Bundle bytecode: the compiler of the runtime's version, PEP 552 headers, /var/task paths, determinism."""

from __future__ import annotations

import importlib.util
import json
import marshal
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from builder.bytecode import (
    MAGIC_NUMBERS,
    BytecodeError,
    Compiler,
    compile_bundle,
    find_compiler,
    native_compiler,
    pyc_header_ok,
    pyodide_compiler,
    pyodide_python_version,
    source_hash,
)

HOST_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"
LAMBDA_DEFAULT_VERSION = "3.14"
# Real modules with every kind of construct: the stdlib's own and an installed runtime library's.
STDLIB_MODULES = ("json", "argparse", "dataclasses", "typing", "asyncio")
SITE_PACKAGES_MODULES = ("aws_lambda_powertools.logging", "numpy.linalg")
PACKAGE = {
    "pkg/__init__.py": "",
    "pkg/answer.py": "ANSWER = 1\n\ndef fail():\n    raise ValueError('from the bundle')\n",
    "pkg/sub/__init__.py": "from pkg.answer import ANSWER\n",
    "pkg/legacy_tests.py": "print 'python 2 only'\n",
}


def _write_tree(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text, encoding="utf-8")
    return root


def _copy_modules(root: Path, names: tuple[str, ...]) -> Path:
    """Copy each module's source (a file, or a package's .py files) to root, as in a bundle."""
    for name in names:
        origin = Path(importlib.util.find_spec(name).origin)
        relative = Path(*name.split("."))
        if origin.name == "__init__.py":
            shutil.copytree(origin.parent, root / relative, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
        else:
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(origin, root / relative.with_suffix(".py"))
    return root


def _pycs(root: Path) -> dict[str, bytes]:
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in sorted(root.rglob("*.pyc"))}


def _pyc_of(source: Path, python_version: str) -> Path:
    return source.parent / "__pycache__" / f"{source.stem}.cpython-{python_version.replace('.', '')}.pyc"


def _compiler_or_skip(python_version: str) -> Compiler:
    try:
        return find_compiler(python_version)
    except BytecodeError as error:
        pytest.skip(str(error))


@pytest.mark.parametrize("size", [0, 1, 7, 8, 9, 15, 16, 17, 255, 256, 257, 4096 + 3])
def test_source_hash_is_cpythons_keyed_siphash(size: int) -> None:
    data = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    assert source_hash(data, HOST_VERSION) == importlib.util.source_hash(data)


def test_pyodide_releases_map_to_the_cpython_they_embed() -> None:
    assert [pyodide_python_version(release) for release in ("0.25.1", "0.27.7", "0.29.5", "314.0.8", "0.18.0")] \
        == ["3.11", "3.12", "3.13", "3.14", None]


def test_without_any_compiler_the_error_names_what_to_install(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no python3.14, no uv, no node
    other_version = next(version for version in MAGIC_NUMBERS if version != HOST_VERSION)
    with pytest.raises(BytecodeError, match=rf"python{other_version} on PATH.*uv python install.*npm ci"):
        find_compiler(other_version, node_modules=tmp_path)


@pytest.mark.slow
def test_a_shim_that_does_not_run_gives_way_to_the_uv_managed_interpreter(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    managed = tmp_path / "managed" / "bin" / "python3.14"
    scripts = {
        # A pyenv shim for a version pyenv does not select: on PATH, but it cannot run.
        "python3.14": "echo 'pyenv: python3.14: command not found' >&2; exit 127",
        "uv": f'[ "$UV_PYTHON_DOWNLOADS" = never ] && [ "$*" = "python find --no-python-downloads 3.14" ] '
              f'&& echo {managed}',
        "managed/bin/python3.14": f"echo cpython 3.14 {managed}",
    }
    for relative, body in scripts.items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
        path.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    compiler = native_compiler("3.14")
    assert compiler is not None and compiler.description == f"native python3.14 at {managed}"
    assert compiler.command[0] == str(managed)


@pytest.mark.slow
def test_pyodide_and_native_interpreter_write_identical_pycs(tmp_path: Path) -> None:
    """The WebAssembly CPython is the same compiler: same minor version, same bytes."""
    pyodide = pyodide_compiler(HOST_VERSION)
    if pyodide is None:
        pytest.skip(f"no pyodide for Python {HOST_VERSION} in node_modules: run `npm ci`")
    trees = {}
    for name, compiler in {"native": native_compiler(HOST_VERSION), "pyodide": pyodide}.items():
        trees[name] = _copy_modules(tmp_path / name, STDLIB_MODULES + SITE_PACKAGES_MODULES)
        report = compile_bundle(trees[name], HOST_VERSION, compiler=compiler)
        assert report.compiled > 50 and not report.failures
    native, wasm = _pycs(trees["native"]), _pycs(trees["pyodide"])
    assert len(native) > 50
    assert native == wasm


@pytest.mark.slow
def test_compiled_tree_is_imported_from_its_unchecked_pycs(tmp_path: Path) -> None:
    root = _write_tree(tmp_path / "bundle", PACKAGE)
    report = compile_bundle(root, HOST_VERSION)
    assert (report.compiled, [path for path, _ in report.failures]) == (3, ["pkg/legacy_tests.py"])
    assert "native" in report.compiler and report.compiler.endswith(f"(CPython {sys.version.split()[0]})")
    for source in root.rglob("*.py"):
        pyc = _pyc_of(source, HOST_VERSION)
        assert pyc.exists() == (source.name != "legacy_tests.py")
        if pyc.exists():
            assert pyc_header_ok(pyc, source, HOST_VERSION)
            code = marshal.loads(pyc.read_bytes()[16:])
            assert code.co_filename == f"/var/task/{source.relative_to(root).as_posix()}"

    # Unchecked: the interpreter trusts the pyc, so a changed source shows only in the header check.
    answer = root / "pkg" / "answer.py"
    answer.write_text(answer.read_text(encoding="utf-8").replace("ANSWER = 1", "ANSWER = 2"), encoding="utf-8")
    assert not pyc_header_ok(_pyc_of(answer, HOST_VERSION), answer, HOST_VERSION)
    probe = ("import json, sys; sys.path.insert(0, sys.argv[1]); import pkg.sub, pkg.answer; "
             "print(json.dumps([pkg.sub.ANSWER, pkg.answer.__cached__]))")
    run = subprocess.run([sys.executable, "-I", "-S", "-B", "-c", probe, str(root)], capture_output=True,
                         text=True, check=True)
    assert json.loads(run.stdout) == [1, str(_pyc_of(answer, HOST_VERSION))]


@pytest.mark.slow
def test_only_the_listed_modules_get_bytecode(tmp_path: Path) -> None:
    root = _write_tree(tmp_path, PACKAGE)
    report = compile_bundle(root, HOST_VERSION, only={"pkg/answer.py"})
    assert report.compiled == 1
    assert list(_pycs(root)) == [f"pkg/__pycache__/answer.cpython-{HOST_VERSION.replace('.', '')}.pyc"]


@pytest.mark.slow
@pytest.mark.parametrize("python_version", sorted({HOST_VERSION, LAMBDA_DEFAULT_VERSION}))
def test_compiling_twice_gives_identical_bytes_with_the_targets_header(tmp_path: Path,
                                                                       python_version: str) -> None:
    compiler = _compiler_or_skip(python_version)
    first, second = (_copy_modules(tmp_path / name, STDLIB_MODULES[:2] + SITE_PACKAGES_MODULES[:1])
                     for name in ("first", "second"))
    for root in (first, second):
        compile_bundle(root, python_version, compiler=compiler)
    assert _pycs(first) == _pycs(second)
    sources = sorted(first.rglob("*.py"))
    assert len(_pycs(first)) == len(sources) > 10
    # The hash is recomputed here for the target's version, whatever version runs the test.
    assert all(pyc_header_ok(_pyc_of(source, python_version), source, python_version) for source in sources)
