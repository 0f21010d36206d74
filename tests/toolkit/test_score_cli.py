"""python -m toolkit.score: a local file scored by the batch code, rejects beside the output, exit 2 on bad input."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from toolkit.score import main, rejects_path

HEADER = "id,tenure_months,monthly_charges,total_charges,support_calls,contract,payment_method,internet_service\n"


def test_a_file_is_scored_with_rejects_beside_it(demo_dir: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "in.csv"
    source.write_text(HEADER + "a,12,70.5,846.0,1,one-year,credit card,dsl\n"
                               "b,x,70.5,,1,one-year,credit card,\n"
                               "c,3,20.0,,0,two-year,mailed check,\n", encoding="utf-8")
    output = tmp_path / "out.csv"
    assert main(["--input", str(source), "--output", str(output), "--id-column", "id",
                 "--model-dir", str(demo_dir)]) == 0
    scored = list(csv.reader(output.read_text(encoding="utf-8").splitlines()))
    assert scored[0] == ["row", "id", "label", "p_no", "p_yes"]
    assert [row[:2] for row in scored[1:]] == [["1", "a"], ["3", "c"]]
    assert rejects_path(output) == tmp_path / "out.rejects.csv"
    assert list(csv.reader(rejects_path(output).read_text(encoding="utf-8").splitlines()))[1:] == [
        ["2", "tenure_months: expected an integer, got a string"]]
    out, err = capsys.readouterr()
    assert "3 rows in: 2 scored" in out and "1 rejected" in out and "rows/s" in err


@pytest.mark.parametrize("content, message", [
    ("id,contract\nx,one-year\n", "error: header_missing_features: the header has no column for: tenure_months"),
    (HEADER.replace("id,", "id,id,"), "error: header_duplicate_columns: the header repeats: id"),
])
def test_bad_input_exits_2_with_one_error_line(demo_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               content: str, message: str) -> None:
    source = tmp_path / "in.csv"
    source.write_text(content, encoding="utf-8")
    assert main(["--input", str(source), "--output", str(tmp_path / "o.csv"),
                 "--model-dir", str(demo_dir)]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(message)
