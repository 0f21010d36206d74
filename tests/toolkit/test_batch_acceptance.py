"""Acceptance: a 1,000,000-row CSV with 1% malformed rows, scored by the local command's batch code.

Every row is in exactly one of the output and the rejects, the rejects are exactly the malformed rows, the counts
add up, and a sample of predictions equals the API's (handler.scoring.score) for the same rows.
"""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path
from typing import Any

import pytest

from builder.demo_model import split_customers
from handler.config import Settings
from handler.loading import LoadedModel, load_model
from handler.scoring import score
from toolkit.score import rejects_path, score_file

ROWS, MALFORMED_SHARE, SAMPLE = 1_000_000, 0.01, 1_000
ID_COLUMN = "customer_id"
# What an export gets wrong: a word for a number, a short row, an empty line, bytes that are not UTF-8,
# an unterminated quote, an overflowing number.
MALFORMED = [
    lambda cells: ",".join([cells[0], "twelve", *cells[2:]]).encode(),
    lambda cells: ",".join(cells[:3]).encode(),
    lambda cells: b"",
    lambda cells: ",".join(cells).encode().replace(b"-", b"\xff-", 1) + b"\xfe",
    lambda cells: ",".join([*cells[:5], '"' + cells[5], *cells[6:]]).encode(),
    lambda cells: ",".join([cells[0], cells[1], "1e400", *cells[3:]]).encode(),
]


def demo_lines(feature_names: list[str]) -> list[list[str]]:
    """The hold-out customers' feature cells, as pandas writes them (an empty cell for a missing value)."""
    _, holdout = split_customers()
    text = holdout[feature_names].to_csv(index=False, lineterminator="\n")
    return list(csv.reader(io.StringIO(text)))[1:]


@pytest.mark.slow
def test_a_million_rows_with_one_percent_malformed_lose_nothing(demo_dir: Path, tmp_path: Path) -> None:
    model = load_model(Settings(model_dir=demo_dir))
    features = model.manifest.feature_names
    # Given a 1,000,000-row CSV with an id column and 1% malformed lines at random places
    customers = demo_lines(features)
    malformed = set(random.Random(15).sample(range(1, ROWS + 1), int(ROWS * MALFORMED_SHARE)))
    source = tmp_path / "customers.csv"
    with source.open("wb") as stream:
        stream.write(",".join([ID_COLUMN, *features]).encode() + b"\n")
        for row in range(1, ROWS + 1):
            cells = [f"c{row}", *customers[row % len(customers)]]
            line = MALFORMED[row % len(MALFORMED)](cells) if row in malformed else ",".join(cells).encode()
            stream.write(line + b"\n")
    # When the local command's batch code scores it, as `make score` does: byte ranges in two worker processes
    output = tmp_path / "scored.csv"
    counts = score_file(model, source, output, id_column=ID_COLUMN, workers=2)
    # Then every row is in exactly one of the output and the rejects, and the rejects are the malformed rows
    with output.open(encoding="utf-8", newline="") as stream:
        scored = {int(record[0]): record for record in list(csv.reader(stream))[1:]}
    with rejects_path(output).open(encoding="utf-8", newline="") as stream:
        rejected = {int(record[0]): record[1] for record in list(csv.reader(stream))[1:]}
    assert len(scored) + len(rejected) == ROWS
    assert scored.keys() | rejected.keys() == set(range(1, ROWS + 1))
    assert rejected.keys() == malformed and all(rejected.values())
    # And the counts say so
    assert (counts.rows_in, counts.scored, counts.rejected) == (ROWS, ROWS - len(malformed), len(malformed))
    assert counts.balanced
    # And a sample of predictions equals the API's for the same rows
    sample = random.Random(16).sample(sorted(scored), SAMPLE)
    assert [scored[row][1] for row in sample] == [f"c{row}" for row in sample]
    expected = _api_predictions(model, [customers[row % len(customers)] for row in sample])
    for row, prediction in zip(sample, expected):
        label, *probabilities = scored[row][2:]
        assert label == prediction["label"]
        assert [float(p) for p in probabilities] == list(prediction["probabilities"].values())


def _api_predictions(model: LoadedModel, rows: list[list[str]]) -> list[dict[str, Any]]:
    """The scoring service's answer for these rows, sent as the API receives them (JSON numbers, null)."""
    types = {feature.name: feature.type for feature in model.manifest.features}
    instances = [{name: None if cell == "" else cell if types[name] == "string" else json.loads(cell)
                  for name, cell in zip(model.manifest.feature_names, cells)} for cells in rows]
    return score(model, {"instances": instances}).predictions
