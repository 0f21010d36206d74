"""Column-at-a-time validation of text cells (CSV), with exactly the API's rules and problem texts.

A cell becomes the JSON value the API would have received (`decode_cell`), then the API's own per-feature
checker judges it. `ColumnValidator` reaches the same answers a column at a time: numpy converts and range-checks
whole columns, and the checker runs only on the cells the vectorised checks flag, to name their problem.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from handler.manifest import Feature
from handler.validation import NUMBER_LIMIT, Checker, checker_for, NonFinite

BOOLEAN_CELLS = {"true": True, "false": False}
NUMERIC_TYPES = ("number", "integer")
EMPTY_CELL = np.array("", dtype=object)  # compared as a Python string, not a numpy one


def decode_cell(text: str, feature_type: str) -> Any:
    """The JSON value a CSV cell stands for: an empty cell is null; numbers are what Python's float() reads
    (NaN and infinities stay tokens the checker names); booleans are true/false in any case; anything
    unreadable stays the string it is, so the checker reports its type."""
    if text == "":
        return None
    if feature_type in NUMERIC_TYPES:
        try:
            number = float(text)
        except ValueError:
            return text
        return number if math.isfinite(number) else NonFinite(text.strip())
    if feature_type == "boolean":
        return BOOLEAN_CELLS.get(text.strip().lower(), text)
    return text


@dataclass(frozen=True)
class ValidatedColumns:
    """The rows that passed as columns (numbers as float64 arrays, NaN for null), and the problems of the rest."""

    columns: dict[str, Any]
    valid: np.ndarray  # bool per input row
    problems: dict[int, list[str]]  # input row index -> ["feature: problem", ...] in feature order
    unknown_categories: int


class ColumnValidator:
    """Validates columns of CSV cells against the manifest's features; built once at init."""

    def __init__(self, features: list[Feature], max_string_length: int) -> None:
        self._features = features
        self._max_string_length = max_string_length
        self.checkers: dict[str, Checker] = {f.name: checker_for(f, max_string_length) for f in features}

    def validate(self, cells: dict[str, list[str]], count: int) -> ValidatedColumns:
        """Check `count` rows given one list of cell texts per feature."""
        problems: dict[int, list[str]] = {}
        values: dict[str, Any] = {}
        for feature in self._features:
            column = cells[feature.name]
            if feature.type in NUMERIC_TYPES:
                values[feature.name], flagged = self._numbers(feature, column)
            else:
                values[feature.name], flagged = self._texts(feature, column)
            for index in flagged:
                _, problem = self.checkers[feature.name](decode_cell(column[index], feature.type))
                problems.setdefault(index, []).append(f"{feature.name}: {problem}")
        valid = np.ones(count, dtype=bool)
        valid[list(problems)] = False
        columns = {name: column[valid] if isinstance(column, np.ndarray) else _kept(column, valid)
                   for name, column in values.items()}
        return ValidatedColumns(columns, valid, problems, self._unknown(columns))

    def _numbers(self, feature: Feature, column: list[str]) -> tuple[np.ndarray, list[int]]:
        """float64 values (NaN for null) and the indices of flagged cells."""
        empty = (np.equal(np.array(column, dtype=object), EMPTY_CELL) if "" in column
                 else np.zeros(len(column), dtype=bool))
        filled = [text or "nan" for text in column] if empty.any() else column
        try:
            numbers = np.fromiter(map(float, filled), dtype=np.float64, count=len(column))  # float() in C
        except ValueError:  # some cell is not a number: convert one at a time to find which
            parsed = [_float_or_none(text) for text in filled]
            unreadable = np.array([number is None for number in parsed], dtype=bool)
            numbers = np.array([math.nan if number is None else number for number in parsed], dtype=np.float64)
        else:
            unreadable = np.zeros(len(column), dtype=bool)
        numbers[empty] = np.nan
        with np.errstate(invalid="ignore"):
            flagged = unreadable | (~empty & ~(np.abs(numbers) <= NUMBER_LIMIT))  # NaN and inf fail <=
            if feature.type == "integer":
                flagged |= ~empty & ~unreadable & (numbers != np.floor(numbers)) & np.isfinite(numbers)
        if not feature.nullable:
            flagged |= empty
        return numbers, np.flatnonzero(flagged).tolist()

    def _texts(self, feature: Feature, column: list[str]) -> tuple[list[Any], list[int]]:
        """Strings or booleans (None for null) and the indices of flagged cells."""
        if feature.type == "boolean":
            converted = [None if text == "" else BOOLEAN_CELLS.get(text.strip().lower()) for text in column]
            bad = [text != "" and value is None for text, value in zip(column, converted)]
        else:
            converted = [text or None for text in column] if "" in column else column
            limit = self._max_string_length
            # Whole-column tests first: most columns have no long string and no unknown category to reject.
            bad = [len(text) > limit for text in column] if column and max(map(len, column)) > limit else None
            if feature.categories and feature.unknown_category == "reject":
                allowed = frozenset(feature.categories) | {""}
                if not allowed.issuperset(column):
                    outside = [text not in allowed for text in column]
                    bad = outside if bad is None else [a or b for a, b in zip(bad, outside)]
        if not feature.nullable and "" in column:
            bad = [text == "" or (bad is not None and bad[index]) for index, text in enumerate(column)]
        return converted, [] if bad is None else [index for index, flag in enumerate(bad) if flag]

    def _unknown(self, columns: dict[str, Any]) -> int:
        """Values outside the known categories of features that accept unknown ones (the API's count)."""
        unknown = 0
        for feature in self._features:
            if feature.categories and feature.unknown_category != "reject":
                known = frozenset(feature.categories) | {None}
                values = columns[feature.name]
                if isinstance(values, np.ndarray):  # a numeric feature with categories: NaN is null
                    values = values[~np.isnan(values)].tolist()
                if not known.issuperset(values):  # a set test first: most columns hold known categories only
                    unknown += sum(count for value, count in Counter(values).items() if value not in known)
        return unknown


def _float_or_none(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _kept(values: list[Any], valid: np.ndarray) -> list[Any]:
    if valid.all():
        return values
    return list(itertools.compress(values, valid.tolist()))
