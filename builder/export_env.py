"""Export environments: virtual environments with the scikit-learn version that pickled a model.

A pickle only loads under the scikit-learn that wrote it, so a model from another version is loaded,
checked and exported to ONNX in an environment of its own version, made with this machine's Python
(no interpreter is downloaded) from the package index and cached under build/export-envs/. Its numpy,
scipy and pandas stay below the releases that scikit-learn minor was current with; its ONNX converter
and runtime are the project's own versions, so the exported graph is what the handler runs.
An environment is built in a temporary directory and renamed into place with a marker file that
records what it holds, so a half-built environment is never used.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata, util
from pathlib import Path

from packaging.version import InvalidVersion, Version

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CACHE_DIR = PROJECT_ROOT / "build" / "export-envs"
MARKER_FILE = "export-env.json"
OLDEST_SUPPORTED = Version("1.3.0")
FIRST_NUMPY2_RELEASE = Version("1.4.2")  # earlier releases are built against numpy 1 and fail to import on numpy 2
# Set in an export environment's processes: packaging there must not start another environment.
INSIDE_VARIABLE = "SKLEARN_EXPORT_ENV"
# The converter and runtime the project pins, installed at the project's own versions.
CONVERTER_DISTRIBUTIONS = ("skl2onnx", "onnx", "onnxruntime")
# protobuf >= 7.34 rejects the bool skl2onnx 1.20 writes for HistGradientBoosting (sklearn-onnx #1255).
# joblib loads the model; protobuf below 7.34 lets skl2onnx 1.20 convert HistGradientBoosting; matplotlib draws
# the model card's profile plots.
EXTRA_REQUIREMENTS = ("joblib", "protobuf<7.34", "matplotlib")
INSTALL_TIMEOUT_SECONDS = 1200
_CAUSE_PREFIXES = ("╰─▶", "cause:", "Caused by:")  # uv's cause line, on a terminal and off one
_LIST_DISTRIBUTIONS = ("import importlib.metadata as m, json; "
                       "print(json.dumps({d.metadata['Name'].lower(): d.version for d in m.distributions()}))")


@dataclass(frozen=True)
class Companions:
    """Upper bounds on numpy, scipy and pandas: the first releases after a scikit-learn minor's last one."""

    numpy: str
    scipy: str
    pandas: str


# scikit-learn minor -> companions; the resolver picks the newest release below each bound with a wheel here.
COMPANIONS = {
    (1, 3): Companions(numpy="<2", scipy="<1.12", pandas="<2.2"),
    (1, 4): Companions(numpy="<2.1", scipy="<1.14", pandas="<2.3"),
    (1, 5): Companions(numpy="<2.2", scipy="<1.15", pandas="<2.3"),
    (1, 6): Companions(numpy="<2.3", scipy="<1.16", pandas="<2.3"),
    (1, 7): Companions(numpy="<2.4", scipy="<1.17", pandas="<3"),
    (1, 8): Companions(numpy="<2.5", scipy="<1.18", pandas="<3"),
}
NO_BOUNDS = Companions(numpy="", scipy="", pandas="")


class ExportEnvError(Exception):
    """No export environment can serve this model; the message names the cause and the remedy."""


@dataclass(frozen=True)
class ExportEnv:
    """A ready export environment: its directory, interpreter and installed distributions."""

    path: Path
    sklearn_version: str
    installed: dict[str, str]

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"


def project_sklearn_version() -> str:
    """The scikit-learn this interpreter has: the project's pin."""
    return metadata.version("scikit-learn")


def supported_version(found: str, pinned: str | None = None) -> Version:
    """The pickle's scikit-learn version, if an export environment can be made for it."""
    pinned = pinned or project_sklearn_version()
    remedy = f"retrain and save the model in .venv (scikit-learn {pinned})"
    try:
        version = Version(found)
    except InvalidVersion:
        raise ExportEnvError(f"the model names scikit-learn version {found!r}, which is not a version; "
                             f"{remedy}") from None
    if version.is_prerelease or version.is_devrelease or version.local:
        raise ExportEnvError(f"the model was pickled by scikit-learn {found}, not a release on the package "
                             f"index; {remedy}, or save it with a release from {OLDEST_SUPPORTED} to {pinned}")
    if version < OLDEST_SUPPORTED:
        raise ExportEnvError(f"the model was pickled by scikit-learn {found}, older than the oldest supported "
                             f"({OLDEST_SUPPORTED}); {remedy}, or with any release from {OLDEST_SUPPORTED} to {pinned}")
    if version > Version(pinned):
        raise ExportEnvError(f"the model was pickled by scikit-learn {found}, newer than this project's {pinned}; "
                             f"raise the scikit-learn pin in pyproject.toml, or {remedy}")
    return version


def numpy_major_for(version: Version, pickled_numpy_major: int | None) -> int:
    """The numpy major the environment needs: the pickle's when it names one (numpy 2 renamed numpy.core)."""
    if version < FIRST_NUMPY2_RELEASE:
        if pickled_numpy_major == 2:
            raise ExportEnvError(f"the pickle names numpy 2 modules, but scikit-learn {version} only runs on "
                                 "numpy 1: the file was not written by that scikit-learn; save it again with "
                                 "joblib.dump(model, path) in the environment that trained it")
        return 1
    return pickled_numpy_major or 2


def export_requirements(version: Version, numpy_major: int) -> list[str]:
    """What an export environment for this scikit-learn version and numpy major installs."""
    bounds = COMPANIONS.get((version.major, version.minor), NO_BOUNDS)
    numpy = "numpy<2" if numpy_major == 1 else f"numpy>=2{',' + bounds.numpy if bounds.numpy else ''}"
    return [f"scikit-learn=={version}", numpy, f"scipy{bounds.scipy}", f"pandas{bounds.pandas}",
            *(f"{name}=={_project_version(name)}" for name in CONVERTER_DISTRIBUTIONS), *EXTRA_REQUIREMENTS]


def _project_version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        raise ExportEnvError(f"{distribution} is not installed in this interpreter, so the export environment "
                             "cannot match its version; run the packager from .venv (make install)") from None


def env_name(version: Version, numpy_major: int, python: tuple[int, int]) -> str:
    return f"sklearn-{version}-numpy{numpy_major}-py{python[0]}{python[1]}"


def ensure_export_env(sklearn_version: str, pickled_numpy_major: int | None = None, *,
                      cache_dir: Path = DEFAULT_CACHE_DIR, base_python: Path | None = None) -> ExportEnv:
    """The cached export environment for this scikit-learn version, built first if needed."""
    inside = os.environ.get(INSIDE_VARIABLE)
    if inside:
        raise ExportEnvError(f"already in the export environment for scikit-learn {inside}, but the model was "
                             f"pickled by scikit-learn {sklearn_version}; delete {cache_dir} and package again")
    version = supported_version(sklearn_version)
    numpy_major = numpy_major_for(version, pickled_numpy_major)
    requirements = export_requirements(version, numpy_major)
    base_python = base_python or Path(sys.executable)
    python_tag = _python_version(base_python)
    path = cache_dir / env_name(version, numpy_major, python_tag)
    ready = _ready(path, requirements)
    if ready is not None:
        return ready
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".building-") as scratch:
        staged = Path(scratch) / "env"
        started = time.perf_counter()
        installer = _build(staged, base_python, requirements, version, python_tag)
        installed = _installed(staged)
        marker = {"requirements": requirements, "installed": installed, "installer": installer,
                  "python": ".".join(map(str, python_tag)), "build_seconds": round(time.perf_counter() - started, 1)}
        (staged / MARKER_FILE).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
        _move_into_place(staged, path, Path(scratch), requirements)
    return ExportEnv(path, installed["scikit-learn"], installed)


def _ready(path: Path, requirements: list[str]) -> ExportEnv | None:
    """The environment at path, if it was completed for exactly these requirements."""
    try:
        marker = json.loads((path / MARKER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if marker.get("requirements") != requirements or not (path / "bin" / "python").exists():
        return None
    return ExportEnv(path, marker["installed"]["scikit-learn"], marker["installed"])


def _python_version(python: Path) -> tuple[int, int]:
    if python.resolve() == Path(sys.executable).resolve():
        return sys.version_info[:2]
    answer = _run([str(python), "-c", "import sys; print(*sys.version_info[:2])"], "cannot run the base Python",
                  timeout=60)
    major, minor = answer.split()
    return int(major), int(minor)


def _build(staged: Path, base_python: Path, requirements: list[str], version: Version,
           python_tag: tuple[int, int]) -> str:
    """Create the venv at staged and install the requirements: with uv when this interpreter has it, else pip."""
    uv = _uv()
    failure = (f"cannot build the export environment for scikit-learn {version} on Python "
               f"{python_tag[0]}.{python_tag[1]}")
    remedy = (f"retrain and save the model in .venv (scikit-learn {project_sklearn_version()}), or package "
              "on a Python for which that scikit-learn has wheels, with the package index reachable")
    wheels_only = ["--only-binary", ":all:"]  # never compile: an old release without a wheel here is a refusal
    if uv is not None:
        # uv never fetches an interpreter with an explicit --python path and downloads off
        _run([uv, "venv", "--quiet", "--python", str(base_python), str(staged)], failure, remedy,
             extra_env={"UV_PYTHON_DOWNLOADS": "never"})
        # bytecode now, as pip does: each packaging run would otherwise recompile scikit-learn and scipy
        _run([uv, "pip", "install", "--quiet", "--compile-bytecode", "--python", str(staged / "bin" / "python"),
              *wheels_only, *requirements], failure, remedy)
        return "uv " + _run([uv, "--version"], failure, remedy).split()[1]
    _run([str(base_python), "-m", "venv", str(staged)], failure, remedy)
    _run([str(staged / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-input",
          "--disable-pip-version-check", *wheels_only, *requirements], failure, remedy)
    return "pip"


def _uv() -> str | None:
    """The uv executable: the one installed in this interpreter's environment, else one on PATH."""
    if util.find_spec("uv") is not None:
        from uv import find_uv_bin

        return find_uv_bin()
    return shutil.which("uv")


def _run(command: list[str], failure: str, remedy: str = "", timeout: int = INSTALL_TIMEOUT_SECONDS,
         extra_env: dict[str, str] | None = None) -> str:
    """Run a build step; a failure becomes one line with the tool's last words and the remedy."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False,
                              env={**os.environ, **(extra_env or {})})
    except (OSError, subprocess.TimeoutExpired) as error:
        raise ExportEnvError(f"{failure}: {error}{'; ' + remedy if remedy else ''}") from None
    if done.returncode != 0:
        raise ExportEnvError(f"{failure}: {last_words(done.stderr or done.stdout)}{'; ' + remedy if remedy else ''}")
    return done.stdout


def last_words(output: str) -> str:
    """The line of an installer's output that says why it failed: uv's cause line, else the last line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    causes = [line for line in lines if line.startswith(_CAUSE_PREFIXES)]
    chosen = (causes or [line for line in lines if not line.startswith("hint:")] or ["no output"])[-1]
    for prefix in _CAUSE_PREFIXES:
        chosen = chosen.removeprefix(prefix)
    return chosen.strip().rstrip(".")


def _installed(env: Path) -> dict[str, str]:
    """Distribution name -> version, as the environment's own interpreter sees them."""
    listing = _run([str(env / "bin" / "python"), "-c", _LIST_DISTRIBUTIONS],
                   "cannot list the export environment's distributions")
    return dict(sorted(json.loads(listing).items()))


def _move_into_place(staged: Path, path: Path, scratch: Path, requirements: list[str]) -> None:
    """Rename staged to path, replacing an outdated environment; one another packager finished first is kept."""
    if _ready(path, requirements) is not None:
        return
    if path.exists():
        path.rename(scratch / "outdated")  # removed with scratch
    staged.rename(path)


def run_in_export_env(env: ExportEnv, module: str, args: list[str]) -> subprocess.CompletedProcess[str]:
    """Run `python -m module args` in the export environment, importing this project's code, output captured."""
    environment = {name: value for name, value in os.environ.items()
                   if name not in ("PYTHONHOME", "PYTHONPATH", "VIRTUAL_ENV")}
    environment.update(PYTHONPATH=str(PROJECT_ROOT), PYTHONNOUSERSITE="1", VIRTUAL_ENV=str(env.path),
                       **{INSIDE_VARIABLE: env.sklearn_version})
    return subprocess.run([str(env.python), "-m", module, *args], capture_output=True, text=True,
                          env=environment, check=False)
