"""toolkit.score with worker processes: the same bytes as one process, rows numbered across ranges, errors named."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import pytest

import toolkit.score
from handler.batch_scoring import MAX_LINE_BYTES, BatchInputError
from handler.config import Settings
from handler.loading import LoadedModel, load_model
from toolkit.score import rejects_path, score_file

FEATURES = "tenure_months,monthly_charges,total_charges,support_calls,contract,payment_method,internet_service"
GOOD = ["12,70.5,846.0,1,one-year,credit card,dsl", "3,20.0,,0,two-year,mailed check,",
        '7,"55.25",386.75,2,month-to-month,"bank transfer",fiber optic', "40,99.9,3996,5,two-year,credit card,dsl"]
BAD = ["x,70.5,846.0,1,one-year,credit card,dsl", "12,70.5", '"unterminated,1,2,3,one-year,credit card,dsl', "",
       "1,2,3,4,one-year,credit card,dsl,extra", "1.5,1,1,1,one-year,credit card,dsl"]


@pytest.fixture(scope="module")
def model(demo_dir: Path) -> LoadedModel:
    return load_model(Settings(model_dir=demo_dir))


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ranges of 4 KB, so a file of a few hundred rows is cut into dozens of them."""
    monkeypatch.setattr(toolkit.score, "MIN_PART_BYTES", 4096)


def mixed_csv(path: Path, rows: int, seed: int = 3) -> Path:
    rng = random.Random(seed)
    lines = [rng.choice(BAD) if rng.random() < 0.1 else rng.choice(GOOD) for _ in range(rows)]
    path.write_text(FEATURES + "\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_workers_write_the_same_bytes_as_one_process(model: LoadedModel, tmp_path: Path, small_parts: None) -> None:
    # Given a file of 2,000 rows, one in ten malformed, cut into many ranges
    source = mixed_csv(tmp_path / "in.csv", 2000)
    # When it is scored by one process and by two worker processes
    alone = score_file(model, source, tmp_path / "alone.csv", workers=1)
    progress = io.StringIO()
    together = score_file(model, source, tmp_path / "together.csv", workers=2, progress=progress)
    # Then outputs, rejects and counts are identical: rows numbered as in the file, in order, across ranges
    assert (tmp_path / "together.csv").read_bytes() == (tmp_path / "alone.csv").read_bytes()
    assert rejects_path(tmp_path / "together.csv").read_bytes() == rejects_path(tmp_path / "alone.csv").read_bytes()
    assert together == alone and together.rows_in == 2000 and together.rejected > 100
    numbers = [int(line.split(",", 1)[0]) for path in (tmp_path / "together.csv", rejects_path(tmp_path / "together.csv"))
               for line in path.read_text(encoding="utf-8").splitlines()[1:]]
    assert sorted(numbers) == list(range(1, 2001))
    # And progress was shown, and the parts were cleaned up
    assert "rows/s" in progress.getvalue() and "100%" in progress.getvalue()
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        ["in.csv", "alone.csv", "alone.rejects.csv", "together.csv", "together.rejects.csv"])


def test_json_lines_are_cut_into_ranges_too(model: LoadedModel, tmp_path: Path, small_parts: None) -> None:
    names = FEATURES.split(",")
    rows = [dict(zip(names, [12, 70.5, 846.0, 1, "one-year", "credit card", "dsl"])) for _ in range(300)]
    rows[150]["tenure_months"] = "many"
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    alone = score_file(model, source, tmp_path / "alone.csv", workers=1)
    together = score_file(model, source, tmp_path / "together.csv", workers=2)
    assert (tmp_path / "together.csv").read_bytes() == (tmp_path / "alone.csv").read_bytes()
    assert together == alone and (together.scored, together.rejected) == (299, 1)
    assert rejects_path(tmp_path / "together.csv").read_text(encoding="utf-8").splitlines()[1].startswith("151,")


def test_a_range_that_cannot_be_read_stops_the_run_by_name(model: LoadedModel, tmp_path: Path,
                                                           small_parts: None) -> None:
    # Given a file whose last range holds a line longer than any row may be
    source = mixed_csv(tmp_path / "in.csv", 500)
    with source.open("a", encoding="utf-8") as stream:
        stream.write("1," * (2 * MAX_LINE_BYTES) + "\n")
    # When it is scored by worker processes
    with pytest.raises(BatchInputError) as raised:
        score_file(model, source, tmp_path / "out.csv", workers=2)
    # Then the worker's error reaches the caller whole, and nothing is left behind
    assert raised.value.cause == "line_too_long"
    assert [path.name for path in tmp_path.iterdir()] == ["in.csv"]
