"""Batch throughput: the batch path (toolkit.score) against a naive pandas + scikit-learn job, same CSV, same run.

Each job runs in a fresh interpreter so its peak RSS (getrusage) is its own.

    python -m toolkit.batch_bench [--model-dir model_artifacts] [--rows 100000 1000000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from handler.config import DEFAULT_MODEL_DIR
from handler.manifest import read_manifest

NAIVE_CHUNK_ROWS = 100_000
# Runs in a fresh interpreter: the job, then its wall time and peak RSS as JSON on the last line.
_JOB = """
import json, resource, sys, time
kind, model_dir, source, output = sys.argv[1:5]
started = time.perf_counter()
if kind == "batch":
    from pathlib import Path
    from handler.config import Settings
    from handler.loading import load_model
    from toolkit.score import score_file
    rows = score_file(load_model(Settings(model_dir=Path(model_dir))), Path(source), Path(output)).rows_in
else:
    import joblib, pandas
    manifest = json.load(open(model_dir + "/manifest.json"))
    model = joblib.load(model_dir + "/" + (manifest.get("sklearn_artifact") or manifest["artifact"]))
    rows, first = 0, True
    with open(output, "w") as sink:
        for chunk in pandas.read_csv(source, chunksize=%d):
            probabilities = model.predict_proba(chunk)
            pandas.DataFrame(probabilities, columns=[f"p_{c}" for c in model.classes_]).to_csv(
                sink, header=first, index=False)
            rows, first = rows + len(chunk), False
seconds = time.perf_counter() - started
print(json.dumps({"rows": rows, "seconds": seconds,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
""" % NAIVE_CHUNK_ROWS


def demo_csv(path: Path, rows: int, feature_names: list[str]) -> Path:
    """`rows` rows of the demo's hold-out customers, repeated, as pandas writes them."""
    from builder.demo_model import split_customers

    _, holdout = split_customers()
    block = holdout[feature_names].to_csv(index=False).split("\n", 1)[1]
    with path.open("w", encoding="utf-8") as stream:
        stream.write(",".join(feature_names) + "\n")
        block_rows = len(holdout)
        for _ in range(rows // block_rows):
            stream.write(block)
        stream.write("".join(block.splitlines(keepends=True)[:rows % block_rows]))
    return path


def run_job(kind: str, model_dir: Path, source: Path, output: Path) -> dict[str, Any]:
    """One job in a fresh interpreter: rows, seconds, rows/s and peak RSS in MB."""
    finished = subprocess.run([sys.executable, "-c", _JOB, kind, str(model_dir), str(source), str(output)],
                              check=True, capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent)
    result = json.loads(finished.stdout.strip().splitlines()[-1])
    return {**result, "rows_per_second": result["rows"] / result["seconds"]}


def batch_throughput(model_dir: Path = DEFAULT_MODEL_DIR, rows: int = 1_000_000) -> dict[str, dict[str, Any]]:
    """Both jobs on the same generated CSV of `rows` demo rows: {"batch": ..., "naive": ...}."""
    manifest = read_manifest(model_dir)
    with tempfile.TemporaryDirectory() as work:
        source = demo_csv(Path(work) / "customers.csv", rows, manifest.feature_names)
        return {kind: run_job(kind, model_dir, source, Path(work) / f"{kind}.csv") for kind in ("batch", "naive")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m toolkit.batch_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    args = parser.parse_args(argv)
    print(f"{'rows':>10} {'job':>6} {'rows/s':>10} {'peak RSS MB':>12}")
    for rows in args.rows:
        for kind, result in batch_throughput(args.model_dir, rows).items():
            print(f"{rows:>10,} {kind:>6} {result['rows_per_second']:>10,.0f} {result['peak_rss_mb']:>12,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
