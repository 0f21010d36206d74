"""Measurements on a built bundle: cold start, the floors it is compared with, warm latency, size.

Each run is a fresh interpreter (`python -I -S -B`) whose only import path is the bundle, so what
is measured is what Lambda would load: the bundle's shipped bytecode is used, a module without
bytecode is compiled at every start (-B: nothing is written, /var/task is read-only on Lambda).
Every figure is taken on a view of the bundle (a tree of hard links) with exactly the bytecode it
should have: as shipped, none (what a naive template deploys) or complete. Medians over repeated
interleaved runs, percentiles over many alternated invocations: this machine is noisy, single runs are not.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from builder.bytecode import PYC_HEADER_BYTES, UNCHECKED_HASH_FLAGS, compile_bundle
from handler.manifest import Manifest, read_manifest
from toolkit.events import LambdaContext, predict_event

PROBES = Path(__file__).resolve().parent / "probes"
# Isolated, no site-packages, no bytecode written: as Lambda runs the bundle.
INTERPRETER = (sys.executable, "-I", "-S", "-B")
HOST_PYTHON = f"{sys.version_info[0]}.{sys.version_info[1]}"
VIEWS_DIR = Path(__file__).resolve().parent.parent / "build" / "bench-views"
Bytecode = Literal["shipped", "none", "full"]


@dataclass(frozen=True)
class ColdStart:
    """One fresh process, from spawn to the first answer, split by phase (seconds)."""

    interpreter: float
    imports: float
    load: float
    first_request: float

    @property
    def total(self) -> float:
        return self.interpreter + self.imports + self.load + self.first_request


@dataclass(frozen=True)
class ColdStarts:
    """Every fresh-process run of one start-up, in the order they ran."""

    runs: tuple[ColdStart, ...]

    @property
    def total(self) -> float:
        """The median total: what budgets compare."""
        return statistics.median(run.total for run in self.runs)

    @property
    def minimum(self) -> float:
        return min(run.total for run in self.runs)

    @property
    def maximum(self) -> float:
        return max(run.total for run in self.runs)

    def phase(self, name: str) -> float:
        """The median of one phase (phase medians add up to about, not exactly, the median total)."""
        return statistics.median(getattr(run, name) for run in self.runs)


@dataclass(frozen=True)
class Percentiles:
    """Latency summary in milliseconds."""

    p50: float
    p99: float
    max: float
    count: int


@dataclass(frozen=True)
class WarmLatency:
    """The handler and the raw scikit-learn model, alternated in one process, per batch size."""

    handler: dict[int, Percentiles]
    raw: dict[int, Percentiles]


def percentiles(seconds: list[float]) -> Percentiles:
    """p50/p99/max in ms of a list of durations in seconds."""
    ordered = sorted(seconds)
    pick = lambda share: ordered[min(len(ordered) - 1, int(share * len(ordered)))]  # noqa: E731
    return Percentiles(p50=pick(0.50) * 1000, p99=pick(0.99) * 1000, max=ordered[-1] * 1000, count=len(ordered))


def _probe(script: str, bundle: Path, inputs: dict[str, Any], *, timeout: float = 120) -> tuple[float, dict]:
    """Run a probe in a fresh isolated interpreter; return its spawn time and its JSON line."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as stream:
        json.dump(inputs, stream)
    try:
        spawned = time.time()
        completed = subprocess.run([*INTERPRETER, str(PROBES / script), str(bundle), stream.name],
                                   capture_output=True, text=True, timeout=timeout, cwd=bundle)
    finally:
        Path(stream.name).unlink()
    if completed.returncode != 0:
        raise RuntimeError(f"probe {script} failed in {bundle}:\n{completed.stderr[-3000:]}")
    return spawned, json.loads(completed.stdout.strip().splitlines()[-1])


def is_shipped_pyc(path: Path) -> bool:
    """Whether a pyc is one the bundler wrote (unchecked hash-based), not one an interpreter left behind."""
    with path.open("rb") as stream:
        header = stream.read(PYC_HEADER_BYTES)
    return len(header) == PYC_HEADER_BYTES and int.from_bytes(header[4:8], "little") == UNCHECKED_HASH_FLAGS


def make_view(bundle: Path, destination: Path, bytecode: Bytecode) -> Path:
    """destination: the bundle as hard links, with its shipped pycs, none, or pycs for every module.

    Pycs an interpreter wrote into the bundle after it was built (timestamp-based) never enter a view.
    """
    for directory, subdirs, names in os.walk(bundle):
        target = destination / Path(directory).relative_to(bundle)
        target.mkdir(parents=True, exist_ok=True)
        if bytecode == "none" and "__pycache__" in subdirs:
            subdirs.remove("__pycache__")
        for name in names:
            source = Path(directory, name)
            if name.endswith(".pyc") and not is_shipped_pyc(source):
                continue
            try:
                os.link(source, target / name)
            except OSError:  # another filesystem: copy
                shutil.copy2(source, target / name)
    if bytecode == "full":
        missing = {path.relative_to(destination).as_posix() for path in destination.rglob("*.py")
                   if "__pycache__" not in path.parts and not _has_pyc(path)}
        compile_bundle(destination, HOST_PYTHON, only=missing)  # named /var/task/..., as shipped
    return destination


def _has_pyc(source: Path) -> bool:
    return (source.parent / "__pycache__" / f"{source.stem}.{sys.implementation.cache_tag}.pyc").is_file()


def cached_view(bundle: Path, bytecode: Bytecode, views_dir: Path = VIEWS_DIR) -> Path:
    """A view of a (cached, content-addressed) bundle, made once and kept under build/bench-views/."""
    view = views_dir / f"{bundle.name}-{bytecode}"
    if view.is_dir():
        return view
    views_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{view.name}-", dir=views_dir))
    try:
        make_view(bundle, staging, bytecode)
        staging.rename(view)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _prune_views(views_dir, bundle.parent)
    return view


def _prune_views(views_dir: Path, bundles_dir: Path) -> None:
    """Views of bundles the bundle cache has pruned go too."""
    for view in views_dir.iterdir():
        if not view.name.startswith(".") and not (bundles_dir / view.name.rsplit("-", 1)[0]).is_dir():
            shutil.rmtree(view, ignore_errors=True)


def _context() -> dict[str, Any]:
    return {name: value for name, value in asdict(LambdaContext()).items()}


def example_records(manifest: Manifest, size: int) -> list[dict[str, Any]]:
    """`size` instances, cycling through the manifest's example."""
    examples = manifest.example["instances"]
    return [examples[index % len(examples)] for index in range(size)]


def _cold_start(spawned: float, result: dict[str, Any]) -> ColdStart:
    return ColdStart(interpreter=result["started"] - spawned, imports=result["imports"],
                     load=result["load"], first_request=result["first_request"])


def handler_cold_start(bundle: Path) -> ColdStart:
    """Process start to the first `/predict` answer through lambda_handler."""
    manifest = read_manifest(bundle / "model_artifacts")
    spawned, result = _probe("cold_start.py", bundle, {
        "event": predict_event({"instances": example_records(manifest, 1)}), "context": _context()})
    if result["status"] != 200:
        raise RuntimeError(f"the bundle in {bundle} answered {result['status']} to the example")
    return _cold_start(spawned, result)


def floor_cold_start(bundle: Path) -> ColdStart:
    """The naive template: a fresh interpreter doing joblib.load + one predict on the bundle's model, nothing else."""
    manifest = read_manifest(bundle / "model_artifacts")
    spawned, result = _probe("floor.py", bundle, {
        "artifact": str(bundle / "model_artifacts" / manifest.artifact), "task": manifest.task,
        "input_format": manifest.input_format, "features": manifest.feature_names,
        "records": example_records(manifest, 1)})
    return _cold_start(spawned, result)


def hello_world_cold_start(bundle: Path) -> ColdStart:
    """The physical floor of any Powertools handler: Logger, Metrics and the HTTP resolver answering one event."""
    spawned, result = _probe("hello_world.py", bundle, {"event": predict_event({"instances": []}),
                                                        "context": _context()})
    if result["status"] != 200:
        raise RuntimeError(f"the hello-world handler answered {result['status']}")
    return _cold_start(spawned, result)


def handler_warm_latency(bundle: Path, sklearn_bundle: Path, sizes: tuple[int, ...],
                         iterations: int) -> WarmLatency:
    """lambda_handler and the raw scikit-learn model, alternated per iteration in one warm process.

    The raw model gets the input the scikit-learn predictor builds from the same validated batch,
    prebuilt, so its figure is the model's own predict_proba (or predict) and nothing else.
    """
    manifest = read_manifest(bundle / "model_artifacts")
    reference = read_manifest(sklearn_bundle / "model_artifacts")
    _, result = _probe("warm.py", bundle, {
        "events": {str(size): predict_event({"instances": example_records(manifest, size)}) for size in sizes},
        "context": _context(), "iterations": iterations, "sklearn_bundle": str(sklearn_bundle),
        "sklearn_model_dir": str(sklearn_bundle / "model_artifacts"), "sklearn_artifact": reference.artifact},
        timeout=1800)
    return WarmLatency(
        handler={int(size): percentiles(values) for size, values in result["handler"].items()},
        raw={int(size): percentiles(values) for size, values in result["raw"].items()})


def slowest_imports(bundle: Path, count: int = 5) -> list[tuple[str, float]]:
    """The top-level packages whose import takes longest in the bundle as run (`-X importtime`), in ms."""
    completed = subprocess.run([*INTERPRETER, "-X", "importtime", "-c",
                                f"import sys; sys.path.insert(0, {str(bundle)!r}); import handler.app"],
                               capture_output=True, text=True, timeout=120, cwd=bundle)
    cumulative: dict[str, float] = {}
    for line in completed.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            name = parts[2].strip()
            if "." not in name:  # top-level packages only: their figure includes their children
                cumulative[name] = max(cumulative.get(name, 0.0), int(parts[1]) / 1000)
    return sorted(cumulative.items(), key=lambda item: item[1], reverse=True)[:count]
