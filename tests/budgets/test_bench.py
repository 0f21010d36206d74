"""make bench's outputs: the table a person reads, the JSON figures and the chart, from known figures."""

from __future__ import annotations

import json
from pathlib import Path

from toolkit.bench import Results, Variant, table, write_outputs
from toolkit.budgets import Check
from toolkit.measure import ColdStart, ColdStarts, Percentiles, WarmLatency


def starts(*totals: float, imports: float = 0.1) -> ColdStarts:
    """Runs whose phases are known: interpreter 0.02 s, the given imports, the rest in load."""
    return ColdStarts(tuple(ColdStart(0.02, imports, total - 0.02 - imports - 0.01, 0.01) for total in totals))


def results() -> Results:
    """Figures shaped like a real run: the three floors, then both runtimes."""
    sizes = (1, 100, 1000)
    floors = {"naive": starts(6.1, 6.12, 6.9), "bytecode": starts(2.4, 2.5, 2.6), "hello_world": starts(0.2, 0.22, 0.3)}
    cold = {"sklearn": starts(2.5, 2.6, 2.7), "onnx": starts(0.3, 0.33, 0.34)}
    raw = {size: Percentiles(p50=6.5 + size / 1000, p99=9.5, max=12.0, count=1000) for size in sizes}
    warm = {"sklearn": WarmLatency({size: Percentiles(5.9 * size ** 0.3, 9.4 * size ** 0.3, 20.0, 1000)
                                    for size in sizes}, raw),
            "onnx": WarmLatency({size: Percentiles(0.62 * size ** 0.5, 0.86 * size ** 0.5, 40.0, 1000)
                                 for size in sizes}, raw)}
    variants = [Variant("sklearn", Path("host-sklearn"), 251_881_586, 74_000_000, 180_000, 60_000, {"scipy": 101_665_243},
                        "1264 modules by pyodide 314.0.8"),
                Variant("onnx", Path("host-onnx"), 86_700_000, 30_000_000, 1_250_000, 400_000, {"numpy": 46_523_256},
                        "548 modules by pyodide 314.0.8")]
    checks = [Check("onnx cold start / naive floor", 0.054, 0.06, "×", "a small fraction of a naive start")]
    return Results("arm64", "3.14", floors, cold, warm, variants, checks)


def test_the_table_sets_each_runtime_beside_the_three_floors_and_lambdas_limits():
    # When
    lines = table(results()).splitlines()

    # Then: one column per floor and per runtime, medians with their spread, ratios to both floors, sizes in MB
    assert lines[0].split() == ["naive", "floor", "floor", "+", "pyc", "hello", "world", "sklearn", "onnx",
                                "Lambda", "limit"]
    rows = {line[:34].strip(): line[34:].split() for line in lines[1:]}
    assert rows["cold start, median (s)"] == ["6.120", "2.500", "0.220", "2.600", "0.330", "init", "10", "s"]
    assert rows["min-max (s)"] == ["6.10-6.90", "2.40-2.60", "0.20-0.30", "2.50-2.70", "0.30-0.34"]
    assert rows["ratio to naive floor"][3:] == ["0.425", "0.054"]
    assert rows["ratio to hello world"][3:] == ["11.82", "1.50"]
    assert rows["warm 1 row(s) p50 (ms)"] == ["5.90", "0.62"]
    assert rows["bundle unzipped (MB)"] == ["251.9", "86.7", "262.1"]
    assert rows["of which the model's files"] == ["0.2", "1.2"]
    assert "bytecode shipped (onnx): 548 modules by pyodide 314.0.8" in lines


def test_the_figures_are_written_as_json_and_drawn_as_one_png(tmp_path: Path):
    # When
    json_path, png_path = write_outputs(results(), tmp_path / "bench")

    # Then: every run is in the JSON beside the median total and the spread, and the chart is a PNG
    figures = json.loads(json_path.read_text(encoding="utf-8"))
    assert round(figures["floors"]["naive"]["total"], 2) == 6.12 and len(figures["floors"]["naive"]["runs"]) == 3
    assert (figures["cold"]["onnx"]["minimum"], figures["cold"]["onnx"]["maximum"]) == (0.3, 0.34)
    assert figures["warm"]["onnx"]["handler"]["1"]["p99"] == 0.86 and figures["checks"][0]["limit"] == 0.06
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png_path.stat().st_size > 10_000
