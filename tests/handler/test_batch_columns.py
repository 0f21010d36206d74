"""The column-at-a-time validator agrees with the API's RequestValidator on every cell of a fuzz-ish corpus."""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
from pathlib import Path
from typing import Any

import pytest

from handler.columns import ColumnValidator, decode_cell
from handler.config import Settings
from handler.errors import ApiError
from handler.manifest import Feature, read_manifest
from handler.validation import RequestValidator

MAX_STRING_LENGTH = 8
FEATURES = [
    Feature("count", "integer", "int64", nullable=False),
    Feature("maybe_count", "integer", "float64", nullable=True),
    Feature("amount", "number", "float64", nullable=False),
    Feature("maybe_amount", "number", "float64", nullable=True),
    Feature("flag", "boolean", "bool", nullable=False),
    Feature("maybe_flag", "boolean", "object", nullable=True),
    Feature("colour", "string", "object", nullable=False, categories=["red", "blue"], unknown_category="reject"),
    Feature("shape", "string", "object", nullable=True, categories=["round", "square"], unknown_category="ignore"),
    Feature("note", "string", "object", nullable=True),
]
# Cells an analyst's export (or a broken one) holds, for every feature type.
CELLS = ["", " ", "0", "1", "-7", "+3", "2.5", "1e3", "1E-2", "1_000", " 42 ", "١٢", "0x10", "nan", "NaN", "-inf",
         "Infinity", "1e400", "1e15", "1000000000000001", "-1e16", "3.0", "true", "False", " TRUE ", "yes", "red",
         "blue", "Red", "round", "square", "oval", "a" * MAX_STRING_LENGTH, "a" * (MAX_STRING_LENGTH + 1), "é",
         "\x00", "null", '"'] + ["red"] * 8 + ["12.5"] * 8


@pytest.fixture(scope="module")
def validators(demo_dir: Path) -> tuple[RequestValidator, ColumnValidator]:
    manifest = dataclasses.replace(read_manifest(demo_dir), features=FEATURES)
    settings = Settings(max_string_length=MAX_STRING_LENGTH)
    return RequestValidator(manifest, settings), ColumnValidator(FEATURES, MAX_STRING_LENGTH)


def api_verdict(validator: RequestValidator, row: dict[str, str]) -> tuple[dict[str, Any] | None, list[str]]:
    """What the API answers for the row's cells sent as one JSON instance: its values, or its problems."""
    instance = {feature.name: decode_cell(row[feature.name], feature.type) for feature in FEATURES}
    try:
        batch = validator.validate({"instances": [instance]})
    except ApiError as error:
        return None, [f"{item.field.removeprefix('instances[0].')}: {item.problem}" for item in error.details]
    return {name: values[0] for name, values in batch.columns.items()}, []


def _same(left: Any, right: Any) -> bool:
    if isinstance(left, float) and math.isnan(left):
        return right is None
    return left == right and type(left) is type(right) or (isinstance(left, float) and left == right)


def test_every_cell_gets_the_api_verdict(validators: tuple[RequestValidator, ColumnValidator]) -> None:
    # Given columns mixing every corpus cell with every other, across features of every type
    api, columns = validators
    rng = random.Random(15)
    rows = [{feature.name: rng.choice(CELLS) for feature in FEATURES} for _ in range(3000)]
    rows += [{feature.name: cell for feature in FEATURES} for cell in CELLS]
    # When the column validator checks them all at once
    result = columns.validate({f.name: [row[f.name] for row in rows] for f in FEATURES}, len(rows))
    # Then every row has the API's problems, word for word, or the API's values
    kept = itertools.count()
    unknown = 0
    for index, row in enumerate(rows):
        values, problems = api_verdict(api, row)
        assert result.problems.get(index, []) == problems, row
        assert result.valid[index] == (values is not None)
        if values is not None:
            position = next(kept)
            for name, value in values.items():
                assert _same(result.columns[name][position], value), (name, row)
            unknown += values["shape"] is not None and values["shape"] not in ("round", "square")
    assert result.unknown_categories == unknown


def test_a_column_of_clean_numbers_takes_the_vectorised_path(
        validators: tuple[RequestValidator, ColumnValidator]) -> None:
    _, columns = validators
    cells = {f.name: [{"integer": "3", "number": "2.5", "boolean": "true"}.get(f.type, "red")] * 5 for f in FEATURES}
    result = columns.validate(cells, 5)
    assert not result.problems
    assert result.columns["count"].tolist() == [3.0] * 5
