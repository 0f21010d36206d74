"""Docker-free Lambda bundles: Linux wheels for the target, plus handler/ and the model files it loads.

pip downloads manylinux wheels for the Lambda architecture and Python version of the manifest's
runtime group (`runtime-sklearn` or `runtime-onnx`), the result is slimmed (tests, caches, sources,
stubs, what the runtime never imports) and cached under build/bundles/<hash>/, keyed on everything
that goes in. The same builder makes a bundle for this machine, so tests can run the exact bundle
contents.

    python -m builder.bundler --target lambda|host [--arch arm64] [--python 3.14] [--print-path]
"""

from __future__ import annotations

import argparse
import csv
import functools
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from builder.bytecode import Compiler, compile_bundle, find_compiler
from builder.sizes import LAMBDA_UNZIPPED_LIMIT, files, megabytes, package_sizes, tree_bytes, zipped_size
from handler.config import MODEL_DIR_NAME
from handler.manifest import MANIFEST_FILE, Manifest, ManifestError, read_manifest
from handler.runtimes import PANDAS_DISTRIBUTIONS, RUNTIMES, needs_pandas

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BUNDLES_DIR = PROJECT_ROOT / "build" / "bundles"
HANDLER_DIR = "handler"
MODEL_DIR = MODEL_DIR_NAME
PIP_ARCHITECTURES = {"arm64": "aarch64", "x86_64": "x86_64"}
# Every runtime pin has cp312–cp314 manylinux wheels for both architectures.
PYTHON_RUNTIMES = ("python3.12", "python3.13", "python3.14")
DEFAULT_ARCHITECTURE, DEFAULT_PYTHON_RUNTIME = "arm64", PYTHON_RUNTIMES[-1]
# Runtimes whose bundles get bytecode for every module; the others for the modules a cold start imports.
FULL_BYTECODE_RUNTIMES = frozenset({"onnx"})
# Bundles and dependency trees kept in build/bundles/ (the most recently used): each is ~100-200 MB.
KEEP_BUNDLES = 8
# Amazon Linux 2023 has glibc 2.34: manylinux wheels for glibc 2.17 to 2.34 all run there.
AL2023_GLIBC_MINORS = range(34, 16, -1)
# A model pickled by another scikit-learn only loads with it and the libraries it was pickled with, at the
# versions its manifest records (pandas for DataFrame-fed models only).
PICKLING_LIBRARIES = ("scikit-learn", "numpy", "scipy", "joblib", "pandas")
WHEEL_CHECK_TIMEOUT_SECONDS = 300


@dataclass(frozen=True)
class Unused:
    """What a runtime's wheels bring that inference never imports."""

    directories: tuple[str, ...] = ()
    files: tuple[str, ...] = ()  # glob patterns relative to the bundle root
    distributions: tuple[str, ...] = ()


# onnxruntime's wheel requires flatbuffers, protobuf and packaging for its converters and tools;
# `import onnxruntime` and an InferenceSession need none of them (the host bundle test proves it).
# libonnxruntime.so is the C API library for native callers: the Python binding carries its own
# copy of the runtime and never loads it (no DT_NEEDED entry, no dlopen), so a third of the package goes.
# numpy's and scipy's compiled test helpers (numpy/_core/_umath_tests, scipy/_lib/_test_ccallback...) are
# imported by their test suites only, which the slimming already removes.
TEST_EXTENSIONS = ("numpy/_core/_*_tests.*.so", "scipy/*/_test_*.*.so")
UNUSED_AT_RUN_TIME = {
    "onnx": Unused(directories=("onnxruntime/tools", "onnxruntime/transformers", "onnxruntime/quantization",
                                "onnxruntime/backend", "onnxruntime/datasets"),
                   files=("onnxruntime/capi/libonnxruntime.so*", *TEST_EXTENSIONS),
                   distributions=("flatbuffers", "protobuf", "packaging")),
    # scikit-learn's example datasets (load_iris, the sample images) are for tutorials; inference never reads them.
    # (numpy's f2py stays: scipy's array API layer runs `from numpy import *`, which imports it.)
    # scipy's Sobol direction numbers load only when a Sobol sequence is drawn, which no estimator does.
    "sklearn": Unused(directories=("sklearn/datasets/data", "sklearn/datasets/images", "sklearn/datasets/descr"),
                      files=("scipy/stats/_sobol_direction_numbers.npz", *TEST_EXTENSIONS)),
}
# Nothing at run time needs these; sources and stubs matter only to compilers and type checkers.
SLIMMED_DIRS = frozenset({"tests", "__pycache__"})
# Test modules that library code imports at run time, kept when the importing file names them (test module ->
# importer, name): numpy 2.2's numpy.testing, which scikit-learn 1.6 imports, imports numpy._core.tests._natype.
IMPORTED_TEST_MODULES = {"numpy/_core/tests/_natype.py": ("numpy/testing/_private/utils.py", "_natype")}
SCRIPTS_DIR = "bin"  # where `pip install --target` puts console scripts
SLIMMED_SUFFIXES = frozenset({".pyc", ".pyo", ".pyx", ".pxd", ".pxi", ".c", ".cpp", ".h", ".hpp", ".pyi", ".a"})
# A change in any module that shapes a bundle must invalidate cached bundles and their reports.
_BUNDLER_SOURCES = tuple(Path(__file__).with_name(name).read_bytes()
                         for name in ("bundler.py", "sizes.py", "bytecode.py", "pyc_compile.mjs"))

Log = Callable[[str], None]
stderr_log: Log = functools.partial(print, file=sys.stderr, flush=True)


class BundleError(RuntimeError):
    """The bundle cannot be built from the project as it stands."""


@dataclass(frozen=True)
class Target:
    """Where a bundle runs, the pip arguments that fetch wheels for it, and the CPython its bytecode is for."""

    name: str
    pip_args: tuple[str, ...]
    python_version: str
    architecture: str | None = None  # Lambda's; None for this machine

    @property
    def description(self) -> str:
        """`python3.14 on arm64`, or `this machine`."""
        return f"python{self.python_version} on {self.architecture}" if self.architecture else "this machine"


def lambda_target(architecture: str, python_version: str) -> Target:
    """Lambda on Amazon Linux 2023: manylinux wheels only, for this architecture and CPython."""
    arch = PIP_ARCHITECTURES[architecture]
    platforms = [f"manylinux_2_{minor}_{arch}" for minor in AL2023_GLIBC_MINORS] + [f"manylinux2014_{arch}"]
    platform_args = [arg for platform in platforms for arg in ("--platform", platform)]
    return Target(name=f"lambda-{architecture}-py{python_version}",
                  pip_args=(*platform_args, "--python-version", python_version, "--implementation", "cp",
                            "--only-binary=:all:"),
                  python_version=python_version, architecture=architecture)


def host_target() -> Target:
    """This machine's platform and Python: what local tests of the bundle run on."""
    return Target(name=f"host-{sysconfig.get_platform()}-{sys.implementation.cache_tag}",
                  pip_args=("--only-binary=:all:",), python_version=f"{sys.version_info[0]}.{sys.version_info[1]}")


def project_name(requirement: str) -> str:
    """`Python_Dateutil==2.9` -> `python-dateutil` (PEP 503 normalised)."""
    name = re.split(r"[=<>!~;\[\s]", requirement, maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_group(manifest: Manifest) -> str:
    """The dependency group a model's runtime installs: `runtime-sklearn` or `runtime-onnx`."""
    return RUNTIMES[manifest.runtime].dependency_group


def runtime_pins(pyproject: Path, group: str) -> list[str]:
    """A dependency group of pyproject.toml with its `include-group` entries resolved: exact pins only."""
    groups = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("dependency-groups", {})
    entries = _group_entries(groups, group, including=())
    loose = [entry for entry in entries if not isinstance(entry, str) or "==" not in entry]
    if loose:
        raise BundleError(f"the {group} group must hold exact pins (name==version); not: {loose}")
    pins = list(dict.fromkeys(entries))  # a pin two included groups share is installed once
    names = [project_name(pin) for pin in pins]
    conflicting = sorted({pin for pin in pins if names.count(project_name(pin)) > 1})
    if conflicting:
        raise BundleError(f"the {group} group pins a project twice: {', '.join(conflicting)}")
    return pins


def _group_entries(groups: dict[str, Any], group: str, including: tuple[str, ...]) -> list[Any]:
    """The entries of one group, each `{include-group = ...}` replaced by that group's entries (PEP 735)."""
    if group in including:
        raise BundleError(f"dependency group {group} includes itself: {' -> '.join((*including, group))}")
    if group not in groups:
        raise BundleError(f"pyproject.toml has no dependency group {group!r}")
    entries = []
    for entry in groups[group]:
        if isinstance(entry, dict) and set(entry) == {"include-group"}:
            entries += _group_entries(groups, entry["include-group"], (*including, group))
        else:
            entries.append(entry)
    return entries


def select_requirements(pins: Sequence[str], manifest: Manifest) -> list[str]:
    """The runtime pins this model needs: pandas and its helpers only for a DataFrame-fed scikit-learn model."""
    if needs_pandas(manifest.runtime, manifest.input_format):
        return list(pins)
    return [pin for pin in pins if project_name(pin) not in PANDAS_DISTRIBUTIONS]


def foreign_sklearn_version(pins: Sequence[str], manifest: Manifest) -> str | None:
    """The scikit-learn version a model served by scikit-learn was pickled with, when it is not the pinned one."""
    pinned = {project_name(pin): pin.split("==", 1)[1] for pin in pins}
    version = manifest.versions.get("scikit-learn")
    return version if manifest.runtime == "sklearn" and version not in (None, pinned.get("scikit-learn")) else None


def model_requirements(pins: Sequence[str], manifest: Manifest) -> list[str]:
    """The runtime pins, with scikit-learn and the libraries it pickled with at the manifest's versions when the
    model was pickled by another scikit-learn (packaged in an export environment) and scikit-learn serves it."""
    version = foreign_sklearn_version(pins, manifest)
    if version is None:
        return list(pins)
    recorded = {project_name(name): value for name, value in manifest.versions.items()}
    needed = [name for name in PICKLING_LIBRARIES
              if name != "pandas" or needs_pandas(manifest.runtime, manifest.input_format)]
    unrecorded = [name for name in needed if name not in recorded]
    if unrecorded:
        raise BundleError(f"the model was pickled by scikit-learn {version} and its manifest records no "
                          f"{', '.join(unrecorded)} version to install with it; package the model again")
    return [f"{project_name(pin)}=={recorded[project_name(pin)]}" if project_name(pin) in needed else pin
            for pin in pins]


def missing_wheels(requirements: Sequence[str], target: Target) -> str | None:
    """None when pip finds wheels for the target of every requirement and what they require, else pip's reason.

    pip resolves without installing (--dry-run), from the index's metadata: seconds, not the wheels' download."""
    with tempfile.TemporaryDirectory(prefix="wheel-check-") as scratch:
        try:
            done = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--ignore-installed",
                                   "--target", scratch, "--disable-pip-version-check", *target.pip_args,
                                   *requirements], capture_output=True, text=True, timeout=WHEEL_CHECK_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            return f"pip found no answer in {WHEEL_CHECK_TIMEOUT_SECONDS} s (is the package index reachable?)"
    if done.returncode == 0:
        return None
    errors = [line.removeprefix("ERROR: ").strip() for line in done.stderr.splitlines() if line.startswith("ERROR:")]
    return (errors or [line.strip() for line in done.stderr.splitlines() if line.strip()] or ["pip failed"])[-1]


def require_wheels(spec: BundleSpec) -> None:
    """A model pickled by another scikit-learn is bundled with that version, or a BundleError says what to do."""
    reason = missing_wheels(spec.requirements, spec.target)
    if reason is None:
        return
    version = spec.sklearn_version
    pinned = next(pin.split("==", 1)[1] for pin in runtime_pins(spec.project_root / "pyproject.toml",
                                                                  RUNTIMES["sklearn"].dependency_group)
                  if project_name(pin) == "scikit-learn")
    others = [] if spec.target.architecture is None else [
        f"python{python}" for python in (runtime.removeprefix("python") for runtime in PYTHON_RUNTIMES)
        if python != spec.target.python_version
        and missing_wheels(spec.requirements, lambda_target(spec.target.architecture, python)) is None]
    runtimes = (f"python_runtime in cdk.json to one with its wheels: {', '.join(others)}" if others
                else f"python_runtime in cdk.json to one with its wheels (none of {', '.join(PYTHON_RUNTIMES)} has)")
    raise BundleError(f"the model must be served by scikit-learn {version}, which pickled it (ONNX does not serve "
                      f"it), but pip finds no wheels of it and the libraries it pickled with for "
                      f"{spec.target.description} ({reason}); retrain and save the model in .venv "
                      f"(scikit-learn {pinned}) and package it again, or set {runtimes}")


def model_files(manifest: Manifest) -> tuple[str, ...]:
    """What the handler loads: the manifest, its runtime's artifact (an ONNX model leaves its joblib behind) and
    the training profile it pins (capture bins inputs by it, the drift check compares with it)."""
    return (MANIFEST_FILE, manifest.artifact, *((manifest.profile,) if manifest.profile is not None else ()))


def project_manifest(project_root: Path = PROJECT_ROOT) -> Manifest:
    """The packaged model's manifest, or a BundleError saying how to make one."""
    model_dir = project_root / MODEL_DIR
    try:
        return read_manifest(model_dir)
    except ManifestError as error:
        raise BundleError(f"{model_dir}: {error} (package a model first: make model)") from None


@dataclass(frozen=True)
class BundleSpec:
    """What goes into one bundle; its keys are hashes of exactly that."""

    target: Target
    runtime: str
    requirements: tuple[str, ...]
    model_files: tuple[str, ...]
    project_root: Path = PROJECT_ROOT
    # Set when scikit-learn serves a model pickled by another version than the pin: the version installed.
    sklearn_version: str | None = None

    @classmethod
    def for_project(cls, target: Target, project_root: Path = PROJECT_ROOT, *, ship_model: bool = True) -> BundleSpec:
        """The spec for the packaged model's runtime pins; without ship_model the model files stay out (S3 source)."""
        manifest = project_manifest(project_root)
        pins = runtime_pins(project_root / "pyproject.toml", runtime_group(manifest))
        shipped = model_files(manifest) if ship_model else ()
        missing = [name for name in shipped if not (project_root / MODEL_DIR / name).is_file()]
        if missing:
            raise BundleError(f"{project_root / MODEL_DIR}: the manifest names {', '.join(missing)}, which is "
                              "not there (package the model again: make model)")
        requirements = select_requirements(model_requirements(pins, manifest), manifest)
        return cls(target, manifest.runtime, tuple(requirements), shipped, project_root,
                   sklearn_version=foreign_sklearn_version(pins, manifest))

    @functools.cached_property
    def compiler(self) -> Compiler:
        """What compiles the bundle's bytecode for the target's CPython."""
        return find_compiler(self.target.python_version)

    @functools.cached_property
    def dependencies_key(self) -> str:
        digest = hashlib.sha256(b"".join(_BUNDLER_SOURCES))
        # The same compiler makes the same bytes: a bundle is reproducible for the same inputs and compiler.
        for part in (self.target.name, *self.target.pip_args, self.runtime, *self.requirements, self.compiler.description):
            digest.update(part.encode() + b"\0")
        return f"deps-{digest.hexdigest()[:20]}"

    @functools.cached_property
    def key(self) -> str:
        """Changes when the dependencies, the handler or the shipped model files change; nothing else."""
        digest = hashlib.sha256(self.dependencies_key.encode())
        for path in self.source_files():
            digest.update(path.relative_to(self.project_root).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
        return digest.hexdigest()[:20]

    def source_files(self) -> list[Path]:
        """The project files the bundle holds: handler/ and the model files."""
        return _source_files(self.project_root / HANDLER_DIR) + [
            self.project_root / MODEL_DIR / name for name in self.model_files]


@dataclass(frozen=True)
class Bundle:
    """A built bundle directory and what it weighs."""

    path: Path
    target: str
    unzipped_bytes: int
    zipped_bytes: int
    largest: tuple[tuple[str, int], ...]
    bytecode_compiler: str
    bytecode_modules: int

    def summary(self) -> str:
        share = 100 * self.unzipped_bytes / LAMBDA_UNZIPPED_LIMIT
        largest = ", ".join(f"{name} {megabytes(size)}" for name, size in self.largest)
        return (f"bundle {self.path} ({self.target})\n"
                f"  unzipped {megabytes(self.unzipped_bytes)} ({self.unzipped_bytes:,} bytes, {share:.0f}% of "
                f"Lambda's {LAMBDA_UNZIPPED_LIMIT:,}), zipped {megabytes(self.zipped_bytes)}\n"
                f"  largest: {largest}\n"
                f"  bytecode: {self.bytecode_modules} modules, compiled by {self.bytecode_compiler}")

    def model_bytes(self) -> tuple[int, int]:
        """The model's own files, unzipped and zipped: what grows with the model, not with the template."""
        models = self.path / MODEL_DIR
        return (tree_bytes(models), zipped_size(self.path, [models])) if models.is_dir() else (0, 0)


def build_bundle(spec: BundleSpec, log: Log = stderr_log) -> Bundle:
    """Return the cached bundle for spec, building what is missing (seconds when only code changed)."""
    dependencies, dependency_report = _cached(spec.dependencies_key, log,
                                              lambda staging: _fill_dependencies(spec, staging, log))
    path, report = _cached(spec.key, log, lambda staging: _fill_bundle(spec, dependencies,
                                                                        dependency_report, staging, log))
    return Bundle(path=path, target=spec.target.name, unzipped_bytes=report["unzipped_bytes"],
                  zipped_bytes=report["zipped_bytes"], largest=tuple(map(tuple, report["largest"])),
                  bytecode_compiler=report["bytecode"]["compiler"], bytecode_modules=report["bytecode"]["modules"])


def _cached(key: str, log: Log, fill: Callable[[Path], dict[str, Any]]) -> tuple[Path, dict[str, Any]]:
    """build/bundles/<key>/ and its report; on a miss, fill a temp dir and rename it into place."""
    final = BUNDLES_DIR / key
    report_file = BUNDLES_DIR / f"{key}.json"
    if final.is_dir() and report_file.is_file():
        report_file.touch()  # recently used: kept by prune_bundles
        return final, json.loads(report_file.read_text(encoding="utf-8"))
    BUNDLES_DIR.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=BUNDLES_DIR))
    try:
        started = time.monotonic()
        report = fill(staging)
        report_file.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        try:
            staging.rename(final)
        except OSError:  # another build finished first with the same inputs
            shutil.rmtree(staging)
        log(f"built {final.name} in {time.monotonic() - started:.0f} s")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    prune_bundles(log=log)
    return final, report


def prune_bundles(keep: int = KEEP_BUNDLES, log: Log = stderr_log) -> list[str]:
    """Delete all but the `keep` most recently used bundles and dependency trees; return what went."""
    reports = sorted(BUNDLES_DIR.glob("*.json"), key=lambda path: path.stat().st_mtime, reverse=True)
    pruned = []
    for report in reports[keep:]:
        shutil.rmtree(report.with_suffix(""), ignore_errors=True)
        report.unlink(missing_ok=True)
        pruned.append(report.stem)
    if pruned:
        log(f"pruned {len(pruned)} old bundle(s) from {BUNDLES_DIR}")
    return pruned


def _fill_dependencies(spec: BundleSpec, staging: Path, log: Log) -> dict[str, Any]:
    if spec.sklearn_version is not None:
        require_wheels(spec)
    log(f"installing {len(spec.requirements)} pinned packages for {spec.target.name} (pip, no Docker)...")
    command = [sys.executable, "-m", "pip", "install", "--target", str(staging), "--no-compile",
               "--disable-pip-version-check", "--progress-bar", "off", *spec.target.pip_args, *spec.requirements]
    output = []
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as pip:
        for line in pip.stdout:
            output.append(line)
            if line.lstrip().startswith(("Collecting", "Downloading", "Installing", "Successfully")):
                log(f"  {line.strip()}")
    if pip.returncode != 0:
        raise BundleError(f"pip failed for {spec.target.name}:\n{''.join(output[-40:])}")
    unpinned = sorted(set(_installed_distributions(staging)) - {project_name(pin) for pin in spec.requirements})
    if unpinned:
        log(f"  note: installed as dependencies without a pin in the runtime group: {', '.join(unpinned)}")
    slimmed = (_slim(staging) + _remove_unused(staging, UNUSED_AT_RUN_TIME.get(spec.runtime, Unused()))
               + _drop_records(staging))
    # Lambda's /var/task is read-only: without shipped bytecode every cold start compiles every module.
    # A scikit-learn bundle with bytecode for everything outgrows Lambda's limit (264.4 MB measured for arm64):
    # it gets bytecode for what a cold start imports, traced per model when the bundle is assembled.
    bytecode = compile_bundle(staging, spec.target.python_version, compiler=spec.compiler,
                              only=None if spec.runtime in FULL_BYTECODE_RUNTIMES else set())
    log(f"  {bytecode.summary()}")
    _make_world_readable(staging)
    unzipped = tree_bytes(staging)
    zipped = zipped_size(staging, [staging])
    log(f"  slimmed {megabytes(slimmed)}; dependencies {megabytes(unzipped)} unzipped, {megabytes(zipped)} zipped")
    return {"target": spec.target.name, "requirements": list(spec.requirements), "unpinned": unpinned,
            "slimmed_bytes": slimmed, "unzipped_bytes": unzipped, "zipped_bytes": zipped,
            "bytecode": {"compiler": bytecode.compiler, "modules": bytecode.compiled,
                         "skipped": [path for path, _ in bytecode.failures]}}


def _fill_bundle(spec: BundleSpec, dependencies: Path, dependency_report: dict[str, Any],
                 staging: Path, log: Log) -> dict[str, Any]:
    link_tree(dependencies, staging)
    shutil.copytree(spec.project_root / HANDLER_DIR, staging / HANDLER_DIR, ignore=_ignore_source_clutter)
    compiled_here = {path.relative_to(staging).as_posix() for path in (staging / HANDLER_DIR).rglob("*.py")}
    if spec.runtime not in FULL_BYTECODE_RUNTIMES:
        libraries = _trace_libraries(spec, dependencies, log)
        compiled_here |= {path for path in cold_start_modules(spec.project_root, libraries)
                          if (staging / path).is_file()}
    handler_bytecode = compile_bundle(staging, spec.target.python_version, compiler=spec.compiler,
                                      only=compiled_here)
    sources = [staging / HANDLER_DIR] + [staging / pyc_path(path, spec.target.python_version)
                                         for path in compiled_here if not path.startswith(f"{HANDLER_DIR}/")]
    if spec.model_files:
        (staging / MODEL_DIR).mkdir()
        for name in spec.model_files:
            shutil.copy2(spec.project_root / MODEL_DIR / name, staging / MODEL_DIR / name)
        sources.append(staging / MODEL_DIR)
    _make_world_readable(*sources)
    unzipped = tree_bytes(staging)
    sources_zipped = zipped_size(staging, sources)
    return {"target": spec.target.name, "dependencies": dependencies.name,
            "unzipped_bytes": unzipped, "zipped_bytes": dependency_report["zipped_bytes"] + sources_zipped,
            "largest": list(package_sizes(staging).items())[:5],
            # The handler is always compiled here, so its report names the compiler and its CPython in full.
            "bytecode": {**dependency_report["bytecode"], "compiler": handler_bytecode.compiler,
                         "modules": dependency_report["bytecode"]["modules"] + handler_bytecode.compiled}}


def _trace_libraries(spec: BundleSpec, dependencies: Path, log: Log) -> Path | None:
    """Where the cold-start trace imports libraries from: None for this interpreter's (the pins), else a
    dependency tree for this machine of the spec's requirements (a model pickled by another scikit-learn)."""
    if spec.sklearn_version is None:
        return None
    if spec.target.architecture is None:  # a host bundle's own dependencies run here
        return dependencies
    host = replace(spec, target=host_target())
    return _cached(host.dependencies_key, log, lambda staging: _fill_dependencies(host, staging, log))[0]


# How to trace a cold start: init on the project's model, then score the manifest's example.
# Library paths are relative to the directories given as arguments, else to this interpreter's site-packages.
_TRACE = """
import json, sys
import handler.app as app
from handler.scoring import score
assert app.MODEL is not None, "the model did not load"
score(app.MODEL, app.MODEL.manifest.example)
roots = sys.argv[1:] or [path for path in sys.path if path.endswith("-packages")]
files = {getattr(module, "__file__", None) or "" for module in list(sys.modules.values())}
print(json.dumps(sorted({file[len(root) + 1:] for file in files if file.endswith(".py")
                         for root in roots if file.startswith(root + "/")})))
"""


def cold_start_modules(project_root: Path, libraries: Path | None = None) -> list[str]:
    """Library modules (paths relative to site-packages) that init plus one prediction import on this machine.

    The build environment pins the same versions as the bundle (uv.lock), so the paths hold in the bundle too.
    With libraries (a dependency tree of other versions) the trace imports them from there first.
    """
    search_path = [str(path) for path in (libraries, project_root) if path is not None]
    completed = subprocess.run([sys.executable, "-c", _TRACE, *search_path[:-1]], cwd=project_root,
                               capture_output=True, text=True, timeout=300,
                               env={**os.environ, "MODEL_DIR": str(project_root / MODEL_DIR),
                                    "PYTHONPATH": os.pathsep.join(search_path),
                                    "PYTHONDONTWRITEBYTECODE": "1"})  # a cached tree stays as built
    if completed.returncode != 0:
        raise BundleError(f"cannot trace the cold start's imports:\n{completed.stderr[-2000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def pyc_path(source: str, python_version: str) -> str:
    """Where CPython looks for a source's bytecode: `a/b.py` -> `a/__pycache__/b.cpython-314.pyc`."""
    folder, _, name = source.rpartition("/")
    tag = "cpython-" + python_version.replace(".", "")
    return f"{folder + '/' if folder else ''}__pycache__/{name.removesuffix('.py')}.{tag}.pyc"


def link_tree(source: Path, destination: Path) -> None:
    """Copy a tree as hard links where the filesystem allows (instant, no extra space)."""
    shutil.copytree(source, destination, copy_function=_link_or_copy, dirs_exist_ok=True)


def _link_or_copy(source: str, destination: str) -> None:
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def _installed_distributions(root: Path) -> list[str]:
    return [project_name(path.name.split("-")[0]) for path in root.glob("*.dist-info")]


def _slim(root: Path) -> int:
    """Delete what only builds and tests need (but test modules the libraries import); return the bytes freed."""
    imported = _imported_test_modules(root)
    freed = -sum(map(len, imported.values()))
    # pip's console scripts: Lambda never runs them, and their shebangs name this machine's Python.
    if (root / SCRIPTS_DIR).is_dir():
        freed += tree_bytes(root / SCRIPTS_DIR)
        shutil.rmtree(root / SCRIPTS_DIR)
    for directory, subdirs, names in os.walk(root):
        for name in [name for name in subdirs if name in SLIMMED_DIRS]:
            subdirs.remove(name)
            freed += tree_bytes(Path(directory, name))
            shutil.rmtree(Path(directory, name))
        for name in names:
            path = Path(directory, name)
            if path.suffix in SLIMMED_SUFFIXES:
                freed += path.stat().st_size
                path.unlink()
    for relative, content in imported.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(content)
    return freed


def _imported_test_modules(root: Path) -> dict[str, bytes]:
    """The IMPORTED_TEST_MODULES whose importer names them in this tree, with their bytes."""
    return {module: (root / module).read_bytes() for module, (importer, name) in IMPORTED_TEST_MODULES.items()
            if (root / module).is_file() and (root / importer).is_file()
            and name in (root / importer).read_text(encoding="utf-8")}


def _remove_unused(root: Path, unused: Unused) -> int:
    """Delete a runtime's unused directories and distributions (each file in their RECORD); return the bytes freed."""
    freed = 0
    for directory in unused.directories:
        if (root / directory).is_dir():
            freed += tree_bytes(root / directory)
            shutil.rmtree(root / directory)
    for path in [path for pattern in unused.files for path in root.glob(pattern) if path.is_file()]:
        freed += path.stat().st_size
        path.unlink()
    for name in unused.distributions:
        for dist_info in [path for path in root.glob("*.dist-info") if project_name(path.name.split("-")[0]) == name]:
            with (dist_info / "RECORD").open(encoding="utf-8", newline="") as record:
                files = {(root / row[0]).resolve() for row in csv.reader(record) if row}
            for path in files:
                if path.is_file() and path.is_relative_to(root.resolve()):
                    freed += path.stat().st_size
                    path.unlink()
            shutil.rmtree(dist_info, ignore_errors=True)
    _remove_empty_directories(root)
    return freed


def _drop_records(root: Path) -> int:
    """Delete each distribution's RECORD (the file list pip uninstalls by); metadata needs only METADATA."""
    records = list(root.glob("*.dist-info/RECORD"))
    freed = sum(record.stat().st_size for record in records)
    for record in records:
        record.unlink()
    return freed


def _remove_empty_directories(root: Path) -> None:
    """Deepest first, so a package emptied of its files goes with its emptied subpackages."""
    for directory, _, _ in sorted(os.walk(root), key=lambda entry: entry[0].count(os.sep), reverse=True):
        if Path(directory) != root and not any(Path(directory).iterdir()):
            Path(directory).rmdir()


def _make_world_readable(*roots: Path) -> None:
    """Lambda runs the code as another user: every file must be readable, every dir searchable."""
    for root in roots:
        for path in [root, *root.rglob("*")]:
            mode = path.stat().st_mode
            extra = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
            if path.is_dir() or mode & stat.S_IXUSR:
                extra |= stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH
            path.chmod(mode | extra)


def _source_files(root: Path) -> list[Path]:
    return sorted(path for path in files(root) if not _is_source_clutter(path.name) and
                  "__pycache__" not in path.parts)


def _is_source_clutter(name: str) -> bool:
    return name == "__pycache__" or name.endswith((".pyc", ".pyo")) or name.startswith(".")


def _ignore_source_clutter(_: str, names: list[str]) -> list[str]:
    return [name for name in names if _is_source_clutter(name)]


def main(argv: Sequence[str] | None = None) -> None:
    """Build (or find) a bundle and print where it is and what it weighs."""
    parser = argparse.ArgumentParser(prog="python -m builder.bundler", description=__doc__.splitlines()[0])
    parser.add_argument("--target", choices=("lambda", "host"), default="lambda")
    parser.add_argument("--arch", choices=tuple(PIP_ARCHITECTURES), default=DEFAULT_ARCHITECTURE)
    parser.add_argument("--python", default=DEFAULT_PYTHON_RUNTIME.removeprefix("python"),
                        help="Lambda's Python, e.g. 3.14")
    parser.add_argument("--print-path", action="store_true", help="print only the bundle path on stdout")
    args = parser.parse_args(argv)
    target = lambda_target(args.arch, args.python) if args.target == "lambda" else host_target()
    try:
        bundle = build_bundle(BundleSpec.for_project(target))
    except BundleError as error:
        sys.exit(f"error: {error}")
    stderr_log(bundle.summary())
    if args.print_path:
        print(bundle.path)


if __name__ == "__main__":
    main()
