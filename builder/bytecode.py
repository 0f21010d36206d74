"""Bytecode for a Lambda bundle, compiled by the exact CPython minor version of the runtime.

Lambda's /var/task is read-only, so a bundle without bytecode compiles every module it imports at
each cold start. Pycs must come from the runtime's minor version, and they must be hash-based
(PEP 552) and unchecked: zip extraction resets mtimes, so timestamp pycs would be stale on arrival
and silently ignored. Each pyc names its source as /var/task/<path>, so tracebacks show real files.

The compiler is, in order: an interpreter of that version (python3.X on PATH, this interpreter,
or one uv already manages; nothing is downloaded), else pyodide, CPython in WebAssembly, from the
npm dev dependencies run by Node (builder/pyc_compile.mjs). One process compiles a whole bundle.

    python -m builder.bytecode <bundle dir> [--python 3.14] [--prefix /var/task]

This file is also the compile worker: the target interpreter (native or pyodide) runs it, so it
imports only the standard library and stays valid Python for every supported version.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import py_compile
import shutil
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# PEP 552 magic numbers of the final releases; a compiler that reports another one is refused.
MAGIC_NUMBERS = {"3.11": 3495, "3.12": 3531, "3.13": 3571, "3.14": 3627}
UNCHECKED_HASH_FLAGS = 0b01  # bit 0: hash-based, bit 1 (check_source): clear
PYC_HEADER_BYTES = 16
LAMBDA_TASK_ROOT = "/var/task"
# pyodide releases by the CPython minor version they embed (314.0.x and later name it themselves).
PYODIDE_CPYTHON = {"0.23": "3.11", "0.24": "3.11", "0.25": "3.11", "0.26": "3.12", "0.27": "3.12",
                   "0.28": "3.13", "0.29": "3.13"}
PYODIDE_FILES = ("pyodide.mjs", "pyodide.asm.wasm", "python_stdlib.zip")  # all it needs offline
PROJECT_ROOT = Path(__file__).resolve().parent.parent
NODE_MODULES = PROJECT_ROOT / "node_modules"
NODE_SCRIPT = Path(__file__).resolve().with_name("pyc_compile.mjs")
_WORKER_FLAG = "--compile-job"


class BytecodeError(RuntimeError):
    """No compiler of the target version, or the compiler failed as a whole."""


@dataclass(frozen=True)
class Compiler:
    """A CPython of one minor version, and the command that runs a compile job in it."""

    description: str
    python_version: str
    command: tuple[str, ...]  # reads the job (JSON) on stdin, writes the result (JSON) on stdout


@dataclass(frozen=True)
class CompileReport:
    """What a bundle's bytecode came from and how much of it there is."""

    compiler: str
    compiled: int
    failures: tuple[tuple[str, str], ...]  # (relative path, reason): sources that do not compile
    seconds: float

    def summary(self) -> str:
        """One line for the bundle report."""
        skipped = f", {len(self.failures)} skipped (do not compile)" if self.failures else ""
        return (f"bytecode: {self.compiled} modules compiled by {self.compiler}{skipped} "
                f"in {self.seconds:.1f} s")


def compile_bundle(root: Path, python_version: str, *, prefix: str = LAMBDA_TASK_ROOT,
                   only: set[str] | None = None, compiler: Compiler | None = None) -> CompileReport:
    """Write an unchecked hash-based pyc next to every .py under root (or the relative paths in only).

    Sources stay. A source that does not compile is skipped and reported, not fatal.
    """
    compiler = compiler or find_compiler(python_version)
    if compiler.python_version != python_version:
        raise BytecodeError(f"{compiler.description} compiles for {compiler.python_version}, not {python_version}")
    root = root.resolve()
    files = sorted(only) if only is not None else sorted(
        path.relative_to(root).as_posix() for path in root.rglob("*.py") if "__pycache__" not in path.parts)
    if not files:  # nothing asked for: no need to start the compiler
        return CompileReport(compiler=compiler.description, compiled=0, failures=(), seconds=0.0)
    job = json.dumps({"root": str(root), "prefix": prefix.rstrip("/"), "files": files})
    started = time.perf_counter()
    run = subprocess.run([*compiler.command, str(root)], input=job, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if run.returncode != 0:
        raise BytecodeError(f"{compiler.description} failed (exit {run.returncode}):\n{run.stderr[-3000:]}")
    result = json.loads(run.stdout)
    if result["magic"] != MAGIC_NUMBERS[python_version]:
        raise BytecodeError(f"{compiler.description} writes magic {result['magic']}, "
                            f"CPython {python_version} reads {MAGIC_NUMBERS[python_version]}")
    return CompileReport(compiler=f"{compiler.description} (CPython {result['version']})",
                         compiled=result["compiled"], failures=tuple(map(tuple, result["failures"])),
                         seconds=seconds)


def find_compiler(python_version: str, *, node_modules: Path = NODE_MODULES) -> Compiler:
    """A native interpreter of the exact minor version, else pyodide of that version, else an error naming both."""
    if python_version not in MAGIC_NUMBERS:
        raise BytecodeError(f"no bytecode support for Python {python_version} (known: {', '.join(MAGIC_NUMBERS)})")
    compiler = native_compiler(python_version) or pyodide_compiler(python_version, node_modules)
    if compiler is None:
        raise BytecodeError(
            f"no CPython {python_version} to compile the bundle's bytecode: put python{python_version} on PATH, "
            f"or `uv python install {python_version}`, or run `npm ci` in {PROJECT_ROOT} for the pinned "
            f"pyodide-py{python_version.replace('.', '')} dev dependency (and have Node on PATH)")
    return compiler


def native_compiler(python_version: str) -> Compiler | None:
    """python3.X on PATH, this interpreter, or a uv-managed one of that minor version: no downloads."""
    for candidate in _native_candidates(python_version):
        executable = _interpreter_of_version(candidate, python_version)
        if executable:
            return Compiler(description=f"native python{python_version} at {executable}",
                            python_version=python_version,
                            command=(executable, "-I", "-S", str(Path(__file__).resolve()), _WORKER_FLAG))
    return None


def pyodide_compiler(python_version: str, node_modules: Path = NODE_MODULES) -> Compiler | None:
    """pyodide (any npm alias of the package) embedding CPython python_version, run by Node."""
    node = shutil.which("node")
    if node is None or not node_modules.is_dir():
        return None
    for package in sorted(node_modules.iterdir()):
        release = _pyodide_release(package)
        if release and pyodide_python_version(release) == python_version:
            return Compiler(description=f"pyodide {release}", python_version=python_version,
                            command=(node, str(NODE_SCRIPT), str(package), str(Path(__file__).resolve())))
    return None


def pyodide_python_version(release: str) -> str | None:
    """The CPython minor version a pyodide release embeds: 0.27.7 -> 3.12, 314.0.8 -> 3.14."""
    major, minor, *_ = release.split(".")
    if int(major) >= 300:
        return f"3.{int(major) - 300}"
    return PYODIDE_CPYTHON.get(f"{major}.{minor}")


def _pyodide_release(package: Path) -> str | None:
    try:
        metadata = json.loads((package / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    complete = all((package / name).is_file() for name in PYODIDE_FILES)
    return metadata.get("version") if metadata.get("name") == "pyodide" and complete else None


def _native_candidates(python_version: str) -> Iterator[str]:
    """Cheapest first; uv is asked only when nothing closer fits."""
    on_path = shutil.which(f"python{python_version}")
    if on_path:
        yield on_path
    yield sys.executable
    if shutil.which("uv"):
        environment = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
        found = subprocess.run(["uv", "python", "find", "--no-python-downloads", python_version],
                               capture_output=True, text=True, env=environment, check=False)
        if found.returncode == 0:
            yield found.stdout.strip()


def _interpreter_of_version(candidate: str, python_version: str) -> str | None:
    """The real executable behind candidate if it runs and is CPython python_version (shims may not run)."""
    probe = "import sys; print(sys.implementation.name, '%d.%d' % sys.version_info[:2], sys.executable)"
    try:
        run = subprocess.run([candidate, "-I", "-S", "-c", probe], capture_output=True, text=True, timeout=30,
                             check=False)
    except OSError:
        return None
    implementation, version, executable = (run.stdout.split(maxsplit=2) + ["", "", ""])[:3]
    ok = run.returncode == 0 and implementation == "cpython" and version == python_version
    return executable.strip() if ok else None


def compile_job(job_text: str) -> str:
    """The worker, run by the target interpreter: compile the job's files, answer in JSON."""
    job = json.loads(job_text)
    failures = []
    compiled = 0
    # What Lambda would warn about at import (e.g. invalid escapes) is not the build's concern.
    warnings.simplefilter("ignore")
    for relative in job["files"]:
        source = os.path.join(job["root"], relative)
        try:
            py_compile.compile(source, cfile=importlib.util.cache_from_source(source, optimization=""),
                               dfile=f"{job['prefix']}/{relative}", doraise=True, optimize=0,
                               invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
            compiled += 1
        except (py_compile.PyCompileError, OSError) as error:
            failures.append((relative, str(error).strip().splitlines()[-1]))
    return json.dumps({"version": sys.version.split()[0], "compiled": compiled, "failures": failures,
                       "magic": int.from_bytes(importlib.util.MAGIC_NUMBER[:2], "little")})


def magic_number(python_version: str) -> bytes:
    """The four bytes a pyc of python_version starts with."""
    return MAGIC_NUMBERS[python_version].to_bytes(2, "little") + b"\r\n"


def source_hash(source: bytes, python_version: str) -> bytes:
    """importlib.util.source_hash as CPython python_version computes it, from any version.

    CPython keys SipHash-1-3 with the version's raw magic number (`_imp.source_hash(_RAW_MAGIC_NUMBER, data)`).
    """
    return _siphash13(int.from_bytes(magic_number(python_version), "little"), source).to_bytes(8, "little")


def pyc_header_ok(pyc: Path, source: Path, python_version: str) -> bool:
    """Whether pyc is an unchecked hash-based pyc of python_version for exactly the bytes of source."""
    with pyc.open("rb") as stream:
        header = stream.read(PYC_HEADER_BYTES)
    return (header[:4] == magic_number(python_version)
            and int.from_bytes(header[4:8], "little") == UNCHECKED_HASH_FLAGS
            and header[8:16] == source_hash(source.read_bytes(), python_version))


_MASK = (1 << 64) - 1


def _siphash13(key: int, data: bytes) -> int:
    """SipHash-1-3 with the key (key, 0), as CPython's Python/pyhash.c (_Py_KeyedHash)."""
    v0, v1 = key ^ 0x736F6D6570736575, 0x646F72616E646F6D
    v2, v3 = key ^ 0x6C7967656E657261, 0x7465646279746573
    whole = len(data) - len(data) % 8
    words = [int.from_bytes(data[offset:offset + 8], "little") for offset in range(0, whole, 8)]
    # The last word holds the remaining bytes and, in its top byte, the length.
    words.append(int.from_bytes(data[whole:], "little") | ((len(data) & 0xFF) << 56))
    for word in words:
        v3 ^= word
        v0, v1, v2, v3 = _sip_round(v0, v1, v2, v3)
        v0 ^= word
    v2 ^= 0xFF
    for _ in range(3):
        v0, v1, v2, v3 = _sip_round(v0, v1, v2, v3)
    return v0 ^ v1 ^ v2 ^ v3


def _sip_round(v0: int, v1: int, v2: int, v3: int) -> tuple[int, int, int, int]:
    v0 = (v0 + v1) & _MASK
    v2 = (v2 + v3) & _MASK
    v1 = ((v1 << 13 | v1 >> 51) & _MASK) ^ v0
    v3 = ((v3 << 16 | v3 >> 48) & _MASK) ^ v2
    v0 = (v0 << 32 | v0 >> 32) & _MASK
    v2 = (v2 + v1) & _MASK
    v0 = (v0 + v3) & _MASK
    v1 = ((v1 << 17 | v1 >> 47) & _MASK) ^ v2
    v3 = ((v3 << 21 | v3 >> 43) & _MASK) ^ v0
    v2 = (v2 << 32 | v2 >> 32) & _MASK
    return v0, v1, v2, v3


def main(argv: list[str] | None = None) -> None:
    """Compile a bundle directory in place and print the report line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--python", default="3.14", choices=sorted(MAGIC_NUMBERS))
    parser.add_argument("--prefix", default=LAMBDA_TASK_ROOT)
    args = parser.parse_args(argv)
    try:
        report = compile_bundle(args.root, args.python, prefix=args.prefix)
    except BytecodeError as error:
        sys.exit(str(error))
    print(report.summary())
    for relative, reason in report.failures:
        print(f"  skipped {relative}: {reason}")


if __name__ == "__main__":
    # The target interpreter runs this file as the worker: `python3.X -I -S bytecode.py --compile-job <root>`.
    if sys.argv[1:2] == [_WORKER_FLAG]:
        sys.stdout.write(compile_job(sys.stdin.read()))
    else:
        main()
