"""Measurements on a built bundle: cold start, the naive floor, warm latency, size.

Each run is a fresh interpreter (`python -I -S -B`) whose only import path is the bundle, so
what is measured is what Lambda would load. Lambda's /var/task is read-only and the bundle
ships no bytecode, so every module is compiled at each cold start: so it is here. Medians over repeated runs, percentiles over
many invocations: this machine is noisy, single runs are not.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from handler.manifest import Manifest, read_manifest
from toolkit.events import LambdaContext, predict_event

PROBES = Path(__file__).resolve().parent / "probes"
# Isolated, no site-packages, no bytecode written: as Lambda runs the bundle.
INTERPRETER = (sys.executable, "-I", "-S", "-B")


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
class Percentiles:
    """Latency summary in milliseconds."""

    p50: float
    p99: float
    max: float
    count: int


def percentiles(seconds: list[float]) -> Percentiles:
    """p50/p99/max in ms of a list of durations in seconds."""
    ordered = sorted(seconds)
    pick = lambda share: ordered[min(len(ordered) - 1, int(share * len(ordered)))]  # noqa: E731
    return Percentiles(p50=pick(0.50) * 1000, p99=pick(0.99) * 1000, max=ordered[-1] * 1000, count=len(ordered))


def median_cold_start(runs: list[ColdStart]) -> ColdStart:
    """Phase-wise medians (their sum is close to, not exactly, the median total)."""
    return ColdStart(**{name: statistics.median(getattr(run, name) for run in runs)
                        for name in ColdStart.__dataclass_fields__})


def _probe(script: str, bundle: Path, inputs: dict[str, Any], *, timeout: float = 120) -> tuple[float, dict]:
    """Run a probe in a fresh isolated interpreter; return its spawn time and its JSON line."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as stream:
        json.dump(inputs, stream)
    remove_bytecode(bundle)
    try:
        spawned = time.time()
        completed = subprocess.run([*INTERPRETER, str(PROBES / script), str(bundle), stream.name],
                                   capture_output=True, text=True, timeout=timeout, cwd=bundle)
    finally:
        Path(stream.name).unlink()
    if completed.returncode != 0:
        raise RuntimeError(f"probe {script} failed in {bundle}:\n{completed.stderr[-3000:]}")
    return spawned, json.loads(completed.stdout.strip().splitlines()[-1])


def remove_bytecode(bundle: Path) -> None:
    """Delete `__pycache__` left in the bundle by an earlier import, which Lambda would not have."""
    for cache in list(bundle.rglob("__pycache__")):
        shutil.rmtree(cache, ignore_errors=True)


def _context() -> dict[str, Any]:
    return {name: value for name, value in asdict(LambdaContext()).items()}


def example_records(manifest: Manifest, size: int) -> list[dict[str, Any]]:
    """`size` instances, cycling through the manifest's example."""
    examples = manifest.example["instances"]
    return [examples[index % len(examples)] for index in range(size)]


def handler_cold_start(bundle: Path) -> ColdStart:
    """Process start to the first `/predict` answer through lambda_handler."""
    manifest = read_manifest(bundle / "model_artifacts")
    spawned, result = _probe("cold_start.py", bundle, {
        "event": predict_event({"instances": example_records(manifest, 1)}), "context": _context()})
    if result["status"] != 200:
        raise RuntimeError(f"the bundle in {bundle} answered {result['status']} to the example")
    return ColdStart(interpreter=result["started"] - spawned, imports=result["imports"],
                     load=result["load"], first_request=result["first_request"])


def _floor_inputs(artifact: Path, sizes: tuple[int, ...], iterations: int) -> dict[str, Any]:
    manifest = read_manifest(artifact.parent)
    return {"artifact": str(artifact), "task": manifest.task, "input_format": manifest.input_format,
            "features": manifest.feature_names, "records": example_records(manifest, 1000),
            "sizes": list(sizes), "iterations": iterations}


def floor_cold_start(bundle: Path, artifact: Path) -> ColdStart:
    """The naive template: a fresh interpreter doing joblib.load + one predict, nothing else."""
    spawned, result = _probe("floor.py", bundle, _floor_inputs(artifact, (), 0))
    return ColdStart(interpreter=result["started"] - spawned, imports=result["imports"],
                     load=result["load"], first_request=result["first_request"])


def raw_model_latency(bundle: Path, artifact: Path, sizes: tuple[int, ...],
                      iterations: int) -> dict[int, Percentiles]:
    """The scikit-learn model's own predict_proba (or predict) on prebuilt inputs, per batch size."""
    _, result = _probe("floor.py", bundle, _floor_inputs(artifact, sizes, iterations), timeout=1800)
    return {int(size): percentiles(values) for size, values in result["raw"].items()}


def handler_warm_latency(bundle: Path, sizes: tuple[int, ...], iterations: int) -> dict[int, Percentiles]:
    """lambda_handler latency per batch size, in one warm container."""
    manifest = read_manifest(bundle / "model_artifacts")
    events = {str(size): predict_event({"instances": example_records(manifest, size)}) for size in sizes}
    _, result = _probe("warm.py", bundle, {"events": events, "context": _context(), "iterations": iterations},
                       timeout=1800)
    return {int(size): percentiles(values) for size, values in result["latencies"].items()}


def slowest_imports(bundle: Path, count: int = 5) -> list[tuple[str, float]]:
    """The top-level packages whose import takes longest in the bundle (`-X importtime`), in ms."""
    remove_bytecode(bundle)
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
