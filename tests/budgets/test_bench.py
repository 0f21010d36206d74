"""make bench's outputs: the table a person reads, the JSON figures and the chart, from known figures."""

from __future__ import annotations

import json
from pathlib import Path

from toolkit.bench import Results, Variant, table, write_outputs
from toolkit.budgets import Check
from toolkit.measure import ColdStart, Percentiles


def results() -> Results:
    """Figures shaped like a real run: the scikit-learn floor, then both runtimes."""
    sizes = (1, 100, 1000)
    floor = ColdStart(interpreter=0.02, imports=2.0, load=4.0, first_request=0.1)
    cold = {"sklearn": ColdStart(0.02, 0.4, 5.9, 0.08), "onnx": ColdStart(0.02, 0.34, 0.37, 0.01)}
    raw = {size: Percentiles(p50=6.5 + size / 1000, p99=9.5, max=12.0, count=1000) for size in sizes}
    warm = {"sklearn": {size: Percentiles(5.9 * size ** 0.3, 9.4 * size ** 0.3, 20.0, 1000) for size in sizes},
            "onnx": {size: Percentiles(0.62 * size ** 0.5, 0.86 * size ** 0.5, 40.0, 1000) for size in sizes}}
    variants = [Variant("sklearn", Path("host-sklearn"), 220_572_238, 59_364_540, {"scipy": 101_665_243}),
                Variant("onnx", Path("host-onnx"), 79_630_366, 26_187_189, {"numpy": 46_523_256})]
    checks = [Check("onnx cold start / naive floor", 0.12, 0.17, "ratio", "a sixth of scikit-learn's start")]
    return Results("arm64", "3.14", floor, raw, cold, warm, variants, checks)


def test_the_table_sets_each_runtime_beside_the_floor_and_lambdas_limits():
    # When
    lines = table(results()).splitlines()

    # Then: one column per runtime, the ratio to the floor, and the bundle sizes in MB
    assert lines[0].split() == ["floor", "sklearn", "onnx", "Lambda", "limit"]
    rows = {line[:34].strip(): line[34:].split() for line in lines[1:]}
    assert rows["cold start, median (s)"] == ["6.120", "6.400", "0.740", "init", "10", "s"]
    assert rows["ratio to floor"] == ["1.00", "1.05", "0.12"]
    assert rows["warm 1 row(s) p50 (ms)"] == ["6.50", "5.90", "0.62"]
    assert rows["bundle unzipped (MB)"] == ["220.6", "79.6", "262.1"]


def test_the_figures_are_written_as_json_and_drawn_as_one_png(tmp_path: Path):
    # When
    json_path, png_path = write_outputs(results(), tmp_path / "bench")

    # Then: totals are in the JSON beside each phase, and the chart is a PNG
    figures = json.loads(json_path.read_text(encoding="utf-8"))
    assert round(figures["floor"]["total"], 2) == 6.12 and round(figures["cold"]["onnx"]["total"], 2) == 0.74
    assert figures["warm"]["onnx"]["1"]["p99"] == 0.86 and figures["checks"][0]["limit"] == 0.17
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png_path.stat().st_size > 10_000
