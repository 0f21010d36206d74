"""The column-at-a-time validator agrees with the API's RequestValidator on every cell of a fuzz-ish corpus."""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
from pathlib import Path
from typing import Any

import pytest

from handler.columns import Cells, ColumnValidator, decode_cell
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
         "\x00", "null", '"', "red\x00", "\x00red",
         # the plain-decimal reader's edges: what it reads must equal float(), the rest goes to float() itself
         "-0", "007", "5.", ".5", "-.5", "0.1", "0.3", "999999999999999", "99999999999999.9", "0.000000000000001",
         "12345678.9012345", "-", ".", "-.", "1.2.3", "--1", "1-", "2.-5", "9007199254740993"] + ["red"] * 8 + ["12.5"] * 8


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
    result = columns.validate({f.name: Cells.of([row[f.name] for row in rows]) for f in FEATURES}, len(rows))
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
    cells = {f.name: Cells.of([{"integer": "3", "number": "2.5", "boolean": "true"}.get(f.type, "red")] * 5)
             for f in FEATURES}
    result = columns.validate(cells, 5)
    assert not result.problems
    assert result.columns["count"].tolist() == [3.0] * 5


def test_plain_decimals_read_as_float_reads_them_bit_for_bit(
        validators: tuple[RequestValidator, ColumnValidator]) -> None:
    # Given 20,000 decimals of every length the vectorised reader takes: up to 15 digits, signs, points anywhere
    _, columns = validators
    rng = random.Random(7)
    texts = []
    for _ in range(20_000):
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 15)))
        point = rng.randint(0, len(digits))
        texts.append(rng.choice(["", "-"]) + digits[:point] + rng.choice([".", ""]) + digits[point:])
    # When they are validated as one column
    cells = {f.name: Cells.of(texts if f.name == "maybe_amount" else ["1"] * len(texts)) for f in FEATURES
             if f.type in ("integer", "number")}
    cells |= {f.name: Cells.of(["red"] * len(texts)) for f in FEATURES if f.name not in cells}
    cells |= {"flag": Cells.of(["true"] * len(texts)), "maybe_flag": Cells.of([""] * len(texts))}
    result = columns.validate(cells, len(texts))
    # Then each value is the float Python's float() gives, to the last bit (and the sign of zero)
    assert not result.problems
    got = result.columns["maybe_amount"].tolist()
    assert got == [float(text) for text in texts]
    assert [math.copysign(1, value) for value in got] == [math.copysign(1, float(text)) for text in texts]
