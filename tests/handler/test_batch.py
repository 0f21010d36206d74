"""The batch entry on moto S3: ranges planned, scored and summed; nothing lost, whatever the input holds."""

from __future__ import annotations

import csv
import io
import json
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.session
import numpy as np
import pytest
from moto import mock_aws

import handler.batch as batch
from builder.demo_model import split_customers
from handler.batch_scoring import (
    BatchInputError,
    float_texts,
    owned_blocks,
    owned_lines,
    parse_header,
    ranges,
    score_blocks,
    split_first_line,
)
from handler.config import Settings
from handler.loading import LoadedModel, load_model
from tests.helpers import REGION
from toolkit.events import LambdaContext

IN_BUCKET, OUT_BUCKET = "batch-in", "batch-out"


@pytest.fixture(scope="module")
def model(demo_dir: Path) -> LoadedModel:
    return load_model(Settings(model_dir=demo_dir))


@pytest.fixture(scope="module")
def customers() -> list[dict[str, Any]]:
    """Hold-out demo customers, with an id."""
    _, holdout = split_customers()
    rows = holdout.drop(columns=["churn"]).to_dict("records")
    return [{"customer_id": f"c{index}", **row} for index, row in enumerate(rows)]


def csv_bytes(rows: list[dict[str, Any]], columns: list[str] | None = None) -> bytes:
    """Rows as pandas would write them: NaN as an empty cell."""
    columns = columns or list(rows[0])
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([["" if row[name] != row[name] or row[name] is None else row[name] for name in columns]
                      for row in rows])
    return text.getvalue().encode()


@pytest.fixture
def s3(aws_environment: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Moto S3 with an input and an output bucket, and the batch entry's environment pointing at them."""
    for name, value in {batch.INPUT_BUCKET: IN_BUCKET, batch.INPUT_PREFIX: "in/",
                        batch.OUTPUT_BUCKET: OUT_BUCKET, batch.OUTPUT_PREFIX: "out/"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        client = botocore.session.get_session().create_client("s3", region_name=REGION)
        for bucket in (IN_BUCKET, OUT_BUCKET):
            client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        yield client


def run_batch(s3: Any, model: LoadedModel, key: str, body: bytes, *, part_bytes: int = 4096,
              id_column: str | None = "customer_id") -> dict[str, Any]:
    """Plan, score every range, summarize, as the state machine does; the summary.json written."""
    s3.put_object(Bucket=IN_BUCKET, Key=key, Body=body)
    event = {"input": f"s3://{IN_BUCKET}/{key}", "output": f"s3://{OUT_BUCKET}/out/run/", "id_column": id_column}
    planned = batch.plan(s3, model, event, part_bytes=part_bytes)
    items = json.loads(s3.get_object(Bucket=OUT_BUCKET, Key=planned["plan_key"])["Body"].read())
    for item in items:
        batch.score_range(s3, model, item)
    batch.summarize(s3, model, planned)
    return json.loads(s3.get_object(Bucket=OUT_BUCKET, Key="out/run/summary.json")["Body"].read())


def read_parts(s3: Any, kind: str, summary: dict[str, Any]) -> list[list[str]]:
    """Every part's rows of one kind (output or rejects), with the part's row number made the object's."""
    rows = []
    for part in summary["parts"]:
        key = batch.part_keys("out/run/", part["part"])[kind]
        records = list(csv.reader(io.StringIO(s3.get_object(Bucket=OUT_BUCKET, Key=key)["Body"].read().decode())))
        rows += [[str(int(record[0]) + part["first_row"] - 1), *record[1:]] for record in records[1:]]
    return rows


def test_a_multi_part_csv_is_scored_as_the_api_scores_it(s3: Any, model: LoadedModel,
                                                          customers: list[dict[str, Any]]) -> None:
    # Given 1,000 customers in a CSV cut into ~4 KiB ranges
    body = csv_bytes(customers)
    # When the batch runs
    summary = run_batch(s3, model, "in/customers.csv", body)
    # Then every row is scored once, in order, with the API's predictions
    assert len(summary["parts"]) == len(ranges(len(body), 4096)) > 10
    assert (summary["rows_in"], summary["scored"], summary["rejected"]) == (1000, 1000, 0)
    assert summary["model"] == {"name": "customer-churn", "version": model.manifest.version,
                                "sha256": model.manifest.sha256, "runtime": model.manifest.runtime}
    output = read_parts(s3, "output", summary)
    assert [row[:2] for row in output] == [[str(index + 1), f"c{index}"] for index in range(1000)]
    sample = list(range(0, 1000, 37))
    instances = [{name: None if customers[i][name] != customers[i][name] else customers[i][name]
                  for name in model.manifest.feature_names} for i in sample]
    expected = model.predictor.predict(model.validator.validate({"instances": instances}))
    for index, prediction in zip(sample, expected):
        assert output[index][2] == prediction["label"]
        assert [float(p) for p in output[index][3:]] == list(prediction["probabilities"].values())


def test_bad_rows_are_rejected_with_their_problems_and_counted(s3: Any, model: LoadedModel,
                                                               customers: list[dict[str, Any]]) -> None:
    # Given good rows with bad lines among them
    lines = csv_bytes(customers[:50]).split(b"\n")
    lines.insert(3, b"c-x,abc,10.0,,1,one-year,credit card,dsl")
    lines.insert(7, b"c-y,1,2")
    lines.insert(9, b"")
    lines.insert(12, b'c-z,1,1e400,"unterminated,0,one-year,credit card,dsl')
    lines.insert(15, b"c-w,3,\xff\xfe,,1,one-year,credit card,dsl")
    # When the batch runs in small ranges
    summary = run_batch(s3, model, "in/bad.csv", b"\n".join(lines), part_bytes=700)
    # Then the five are rejected, named, and the rest scored
    assert (summary["rows_in"], summary["scored"], summary["rejected"]) == (55, 50, 5)
    rejects = dict(read_parts(s3, "rejects", summary))
    assert rejects == {
        "3": "tenure_months: expected an integer, got a string",
        "7": "row: expected 8 fields, got 3",
        "9": "row: empty line",
        "12": "row: unterminated quoted field (a quoted field may not contain a line break)",
        "15": "row: not valid UTF-8",
    }


def test_a_header_missing_a_feature_fails_the_plan_by_name(s3: Any, model: LoadedModel,
                                                           customers: list[dict[str, Any]]) -> None:
    body = csv_bytes(customers[:5], ["customer_id", "tenure_months", "contract"])
    with pytest.raises(BatchInputError, match="header_missing_features: .*monthly_charges, total_charges"):
        run_batch(s3, model, "in/narrow.csv", body)


def test_extra_columns_are_ignored_and_named_in_the_summary(s3: Any, model: LoadedModel,
                                                            customers: list[dict[str, Any]]) -> None:
    rows = [{**row, "region": "north", "churn_score_old": 0.5} for row in customers[:20]]
    summary = run_batch(s3, model, "in/wide.csv", csv_bytes(rows))
    assert summary["scored"] == 20
    assert summary["unused_columns"] == ["churn_score_old", "region"]


@pytest.mark.parametrize("part_bytes", [1, 2, 3, 5, 8, 13, 21, 34, 55, 1000])
def test_ranges_own_every_line_once_wherever_they_split(part_bytes: int) -> None:
    # Given lines with quoted commas, a quoted field holding a line break and multi-byte characters
    data = ('id,name\n1,"Zoë, the ""best"""\n2,"line\nbreak"\n3,日本語テキスト\n4,é\r\n\n5,last').encode()
    whole = list(owned_lines([data], offset=0, start=0, end=len(data)))
    # When ranges of every size split it, inside characters and quoted fields alike
    pieces = []
    for start, end in ranges(len(data), part_bytes):
        offset = max(start - 1, 0)
        chunks = [data[i:i + 3] for i in range(offset, len(data), 3)]  # the reader sees small chunks too
        pieces += owned_lines(chunks, offset=offset, start=start, end=end)
    # Then the union is every line, once, in order, and every line decodes
    assert pieces == whole == data.split(b"\n")
    assert [line.decode() for line in pieces]


def test_a_quoted_line_break_is_rejected_the_same_wherever_the_ranges_fall(s3: Any, model: LoadedModel,
                                                                           customers: list[dict[str, Any]]) -> None:
    lines = csv_bytes(customers[:30]).split(b"\n")
    lines.insert(5, b'c-q,1,20.0,,1,"one-\nyear",credit card,dsl')
    body = b"\n".join(lines)
    verdicts = []
    for part_bytes in (64, 97, 500, 10_000):
        summary = run_batch(s3, model, "in/quoted.csv", body, part_bytes=part_bytes)
        verdicts.append((summary["rows_in"], summary["scored"], read_parts(s3, "rejects", summary)))
    assert all(verdict == verdicts[0] for verdict in verdicts)
    assert verdicts[0][0] == 31 + 1  # the quoted line break made two physical lines, each a row


def test_empty_inputs_have_zero_rows(s3: Any, model: LoadedModel, customers: list[dict[str, Any]]) -> None:
    assert run_batch(s3, model, "in/empty.csv", b"")["rows_in"] == 0
    header_only = run_batch(s3, model, "in/header.csv", csv_bytes(customers[:1]).split(b"\n")[0] + b"\n")
    assert (header_only["rows_in"], header_only["scored"], len(header_only["parts"])) == (0, 0, 1)


def test_json_lines_are_scored_with_the_api_checkers(s3: Any, model: LoadedModel,
                                                     customers: list[dict[str, Any]]) -> None:
    records = [{name: None if value != value else value for name, value in row.items()} for row in customers[:40]]
    records[4]["support_calls"] = "two"
    del records[6]["contract"]
    body = "\n".join(json.dumps(record) for record in records).encode() + b"\n[1]\n"
    summary = run_batch(s3, model, "in/customers.jsonl", body, part_bytes=900)
    assert (summary["rows_in"], summary["scored"], summary["rejected"]) == (41, 38, 3)
    assert dict(read_parts(s3, "rejects", summary)) == {
        "5": "support_calls: expected an integer, got a string",
        "7": "contract: missing required field",
        "41": "row: expected an object of feature values"}


def test_a_missing_part_fails_the_summary(s3: Any, model: LoadedModel, customers: list[dict[str, Any]]) -> None:
    s3.put_object(Bucket=IN_BUCKET, Key="in/c.csv", Body=csv_bytes(customers[:100]))
    planned = batch.plan(s3, model, {"input": f"s3://{IN_BUCKET}/in/c.csv", "output": f"s3://{OUT_BUCKET}/out/m/"},
                         part_bytes=2000)
    items = json.loads(s3.get_object(Bucket=OUT_BUCKET, Key=planned["plan_key"])["Body"].read())
    for item in items[1:]:
        batch.score_range(s3, model, item)
    with pytest.raises(batch.CountMismatch, match="part 0 .* wrote no counts"):
        batch.summarize(s3, model, planned)
    summary = json.loads(s3.get_object(Bucket=OUT_BUCKET, Key="out/m/summary.json")["Body"].read())
    assert summary["status"] == "failed"


def test_locations_outside_the_deployment_are_refused(s3: Any, model: LoadedModel) -> None:
    with pytest.raises(BatchInputError, match="location_not_allowed"):
        batch.plan(s3, model, {"input": f"s3://{IN_BUCKET}/elsewhere/x.csv", "output": f"s3://{OUT_BUCKET}/out/"})


def test_every_entry_fails_closed_without_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batch, "MODEL", None)
    monkeypatch.setattr(batch, "LOAD_ERROR", batch.ModelLoadError("sha256_mismatch", "model.onnx differs"))
    for entry in (batch.plan_handler, batch.score_range_handler, batch.summarize_handler):
        with pytest.raises(batch.ModelUnavailable, match="sha256_mismatch"):
            entry({}, LambdaContext())


def _demo_file(path: Path, customers: list[dict[str, Any]], rows: int) -> Path:
    body = csv_bytes(customers)
    header, data = body.split(b"\n", 1)
    with path.open("wb") as stream:
        stream.write(header + b"\n")
        for _ in range(rows // 1000):
            stream.write(data)
    return path


def _peak_scoring_memory(model: LoadedModel, path: Path) -> tuple[int, int]:
    """Rows scored and the peak traced memory of streaming the file through the batch code."""
    tracemalloc.start()
    with path.open("rb") as stream:
        # Blocks of 256 KiB: even the smaller file fills the pipeline of blocks in flight
        blocks = owned_blocks(iter(lambda: stream.read(1 << 18), b""), offset=0, start=0, end=path.stat().st_size)
        header, blocks = split_first_line(blocks)
        counts = score_blocks(model, parse_header(header), blocks, io.StringIO(), io.StringIO(),
                              id_column="customer_id", threads=2)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return counts.scored, peak


class _Discard(io.StringIO):
    """An output that keeps nothing, so only the scoring's own memory is traced."""

    def write(self, text: str) -> int:
        return len(text)


@pytest.mark.parametrize("rows", [pytest.param(200_000, id="200k"),
                                  pytest.param(2_000_000, id="2M", marks=pytest.mark.slow)])
def test_a_large_file_streams_in_bounded_memory(tmp_path: Path, model: LoadedModel,
                                                customers: list[dict[str, Any]], rows: int,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a file many times the size of a block, and one a tenth of it (still several blocks)
    small = _demo_file(tmp_path / "small.csv", customers, rows // 10)
    large = _demo_file(tmp_path / "large.csv", customers, rows)
    monkeypatch.setattr(io, "StringIO", _Discard)
    # When each is streamed through the batch code
    small_rows, small_peak = _peak_scoring_memory(model, small)
    large_rows, large_peak = _peak_scoring_memory(model, large)
    # Then peak memory does not grow with the file
    assert (small_rows, large_rows) == (rows // 10, rows)
    assert large_peak < 1.25 * small_peak
    assert large_peak < 40 << 20  # the blocks in flight as Python objects, whatever the file's size


def test_blocks_are_numbered_from_the_first_row_number(model: LoadedModel, customers: list[dict[str, Any]]) -> None:
    header, body = csv_bytes(customers[:3]).split(b"\n", 1)
    output, rejects = io.StringIO(), io.StringIO()
    counts = score_blocks(model, parse_header(header), [body], output, rejects, first_row_number=101,
                          id_column="customer_id")
    assert [row[:2] for row in csv.reader(output.getvalue().splitlines())] == [
        ["row", "customer_id"], ["101", "c0"], ["102", "c1"], ["103", "c2"]]
    assert (rejects.getvalue(), counts.rows_in, counts.scored) == ("row,problems\n", 3, 3)


def test_floats_are_written_as_repr_writes_them() -> None:
    # Given floats of every magnitude and sign, with the edges where repr switches to an exponent
    rng = np.random.default_rng(3)
    every_bit_pattern = rng.integers(0, 2**63, size=200_000, dtype=np.int64).view(np.float64)
    edges = [0.0, -0.0, 1e-4, 9.999999999999999e-05, 1e-5, 1.234e-7, 5e-324, 2.2250738585072014e-308, 1e15,
             1e16, 9999999999999998.0, 1.7976931348623157e308, 0.1, 1 / 3, 250.00001]
    values = np.concatenate([every_bit_pattern[np.isfinite(every_bit_pattern)], rng.random(100_000), edges])
    values = np.concatenate([values, -values])
    # Then each text is repr()'s, the one the API's JSON holds, and reads back as the same float
    assert float_texts(values) == [repr(value) for value in values.tolist()]
    assert float_texts(np.array([0.25, 1e-6], dtype=np.float32)) == ["0.25", repr(float(np.float32(1e-6)))]
    assert float_texts(np.array([np.nan, np.inf, -np.inf])) == ["nan", "inf", "-inf"]
    assert float_texts(np.array([])) == []
