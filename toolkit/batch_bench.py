"""Batch throughput: the batch path (toolkit.score) against a naive pandas + scikit-learn job, same CSV, same run.

The file is the model's own: rows drawn from its training profile (profile.json: each number uniform within a
training quantile bin, each category at its training share, nulls at their rate), so the bench measures the
analyst's model on data shaped like its training data. A manifest without a profile gives its example rows, repeated.
Each job runs in a fresh interpreter so its peak RSS (VmHWM) is its own. The two jobs alternate on the same
file (batch, naive, batch, naive, ...) and each figure is the median of the repeats, so a noisy machine slows both.
The batch job scores byte ranges in `workers` processes (default every CPU), as `make score` does and as the
deployed batch gives each range its own Lambda; the naive job uses what pandas and scikit-learn use by default
(one thread for this pipeline). Both figures include starting the interpreter and loading the model.

    python -m toolkit.batch_bench [--model-dir model_artifacts] [--rows 100000 1000000] [--repeats 3] [--workers N]
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from handler.capture import read_profile
from handler.config import DEFAULT_MODEL_DIR
from handler.drift import Distribution
from handler.manifest import Feature, read_manifest

NAIVE_CHUNK_ROWS = 100_000
GENERATED_CHUNK_ROWS = 100_000  # rows drawn and written at a time: the generator's memory stays flat too
JOBS = ("batch", "naive")
# Runs in a fresh interpreter: the job, then its rows, wall time and peak RSS as JSON on the last line.
_JOB = """
import json, re, resource, sys, time
kind, model_dir, source, output, workers = sys.argv[1:6]
started = time.perf_counter()
if kind == "batch":
    from pathlib import Path
    from handler.config import Settings
    from handler.loading import load_model
    from toolkit.score import score_file
    model = load_model(Settings(model_dir=Path(model_dir)))
    rows = score_file(model, Path(source), Path(output), workers=int(workers)).rows_in
else:
    import joblib, pandas
    manifest = json.load(open(model_dir + "/manifest.json"))
    model = joblib.load(model_dir + "/" + (manifest.get("sklearn_artifact") or manifest["artifact"]))
    features = [feature["name"] for feature in manifest["features"]]
    rows = 0
    for chunk in pandas.read_csv(source, chunksize=%d):
        inputs = chunk[features] if manifest["input_format"] == "dataframe" else chunk[features].to_numpy()
        if manifest["task"] == "classification":
            scores = pandas.DataFrame(model.predict_proba(inputs), columns=[f"p_{c}" for c in model.classes_])
        else:
            scores = pandas.DataFrame({"value": model.predict(inputs)})
        scores.to_csv(output, mode="a", header=rows == 0, index=False)
        rows += len(chunk)
seconds = time.perf_counter() - started
try:  # VmHWM starts afresh at exec; ru_maxrss would keep the bench's own peak, inherited through fork
    peak_kb = int(re.search(r"VmHWM:\\s*(\\d+)", open("/proc/self/status").read()).group(1))
except OSError:
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
# the largest batch worker (0 if none ran); the naive job has none: a library's forked helper (lscpu) is no worker
worker_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss if kind == "batch" else 0
print(json.dumps({"rows": rows, "seconds": seconds, "peak_rss_mb": max(peak_kb, worker_kb) / 1024,
                  "total_rss_mb": (peak_kb + (int(workers) - 1) * worker_kb) / 1024}))
""" % NAIVE_CHUNK_ROWS


@dataclass(frozen=True)
class JobFigures:
    """One job on one file: the median rows/s of its runs, the highest peak RSS of any of its processes, and of
    all of them together (every worker counted at the largest worker's peak)."""

    rows_per_second: float
    peak_rss_mb: float
    total_rss_mb: float


@dataclass(frozen=True)
class BatchThroughput:
    """Both jobs per file size (rows), measured alternately in one run."""

    workers: int
    repeats: int
    batch: dict[int, JobFigures]
    naive: dict[int, JobFigures]

    def ratio(self, rows: int) -> float:
        """Batch rows/s over naive rows/s."""
        return self.batch[rows].rows_per_second / self.naive[rows].rows_per_second

    def table(self) -> list[str]:
        """Lines of a table: rows, job, rows/s, peak RSS, and the ratio on each batch line."""
        lines = [f"{'rows':>10} {'job':>6} {'rows/s':>10} {'peak RSS MB':>12} {'all processes':>14} {'x naive':>8}"]
        for rows in self.batch:
            for kind, figures in (("batch", self.batch[rows]), ("naive", self.naive[rows])):
                ratio = f"{self.ratio(rows):>8.2f}" if kind == "batch" else ""
                lines.append(f"{rows:>10,} {kind:>6} {figures.rows_per_second:>10,.0f} "
                             f"{figures.peak_rss_mb:>12,.0f} {figures.total_rss_mb:>14,.0f} {ratio}")
        lines.append(f"batch: {self.workers} worker process(es); medians of {self.repeats} alternating runs")
        return lines


def model_csv(path: Path, rows: int, model_dir: Path, seed: int = 0) -> Path:
    """`rows` rows of the model's features: drawn from its training profile, else its example rows repeated."""
    manifest = read_manifest(model_dir)
    with path.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(manifest.feature_names)
        if manifest.profile is None:
            example = [[_cell(instance.get(name)) for name in manifest.feature_names]
                       for instance in manifest.example["instances"]]
            writer.writerows(itertools.islice(itertools.cycle(example), rows))
            return path
        profile = read_profile(model_dir, manifest)
        rng = np.random.default_rng(seed)
        for start in range(0, rows, GENERATED_CHUNK_ROWS):
            count = min(GENERATED_CHUNK_ROWS, rows - start)
            columns = [_drawn(distribution, feature, count, rng)
                       for distribution, feature in zip(profile.features, manifest.features)]
            writer.writerows(zip(*columns))
    return path


def _drawn(distribution: Distribution, feature: Feature, count: int, rng: np.random.Generator) -> list[str]:
    """`count` cells of one feature, at its training distribution's shares (empty if it held only nulls)."""
    if not sum(distribution.fractions):
        return [""] * count
    if distribution.kind == "numeric":
        bounds = np.array([distribution.minimum, *distribution.edges, distribution.maximum], dtype=np.float64)
        bins = rng.choice(len(distribution.fractions), size=count, p=_shares(distribution.fractions))
        values = rng.uniform(bounds[bins], bounds[bins + 1])
        if feature.type == "integer":
            cells = [str(value) for value in np.floor(values).astype(np.int64).tolist()]
        else:  # six significant digits, as an export of measured values holds
            magnitude = max(abs(distribution.minimum), abs(distribution.maximum), 1e-12)
            decimals = int(np.clip(5 - np.floor(np.log10(magnitude)), 0, 12))
            cells = [str(value) for value in np.round(values, decimals).tolist()]
    else:
        # "other" (values beyond the profile's top ones) takes the model's remaining known categories, if any
        others = [c for c in feature.categories or [] if c not in distribution.categories]
        choices = [_cell(category) for category in distribution.categories] + [_cell(c) for c in others]
        shares = distribution.fractions[:-1] + [distribution.fractions[-1] / max(len(others), 1)] * len(others)
        cells = np.array(choices, dtype=object)[rng.choice(len(choices), size=count, p=_shares(shares))].tolist()
    if feature.nullable and distribution.null_rate:
        for index in np.flatnonzero(rng.random(count) < distribution.null_rate).tolist():
            cells[index] = ""
    return cells


def _shares(fractions: list[float]) -> np.ndarray:
    shares = np.asarray(fractions, dtype=np.float64)
    return shares / shares.sum()


def _cell(value: Any) -> str:
    """A JSON value as a CSV cell: empty for null (str of a float is its shortest round-trip text)."""
    return "" if value is None else str(value)


def run_job(kind: str, model_dir: Path, source: Path, output: Path, workers: int) -> dict[str, float]:
    """One job in a fresh interpreter: rows, seconds, rows/s and peak RSS in MB."""
    output.unlink(missing_ok=True)
    finished = subprocess.run([sys.executable, "-c", _JOB, kind, str(model_dir), str(source), str(output),
                               str(workers)], check=True, capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parent.parent)
    result = json.loads(finished.stdout.strip().splitlines()[-1])
    return {**result, "rows_per_second": result["rows"] / result["seconds"]}


def batch_throughput(model_dir: Path = DEFAULT_MODEL_DIR, sizes: tuple[int, ...] = (100_000, 1_000_000),
                     repeats: int = 3, workers: int | None = None) -> BatchThroughput:
    """Both jobs on the same generated CSV of the model's features per size, alternating, `repeats` times each."""
    workers = workers or os.cpu_count() or 1
    figures: dict[str, dict[int, JobFigures]] = {kind: {} for kind in JOBS}
    with tempfile.TemporaryDirectory() as work:
        for rows in sizes:
            source = model_csv(Path(work) / f"rows-{rows}.csv", rows, model_dir)
            runs: dict[str, list[dict[str, float]]] = {kind: [] for kind in JOBS}
            for _ in range(repeats):
                for kind in JOBS:
                    runs[kind].append(run_job(kind, model_dir, source, Path(work) / f"{kind}.csv", workers))
            for kind in JOBS:
                figures[kind][rows] = JobFigures(
                    rows_per_second=statistics.median(run["rows_per_second"] for run in runs[kind]),
                    peak_rss_mb=max(run["peak_rss_mb"] for run in runs[kind]),
                    total_rss_mb=max(run["total_rss_mb"] for run in runs[kind]))
            source.unlink()
    return BatchThroughput(workers=workers, repeats=repeats, batch=figures["batch"], naive=figures["naive"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m toolkit.batch_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, help="batch worker processes (default: every CPU)")
    args = parser.parse_args(argv)
    result = batch_throughput(args.model_dir, tuple(args.rows), args.repeats, args.workers)
    print("\n".join(result.table()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
