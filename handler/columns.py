"""Column-at-a-time validation of text cells (CSV), with exactly the API's rules and problem texts.

A cell becomes the JSON value the API would have received (`decode_cell`), then the API's own per-feature
checker judges it. `ColumnValidator` reaches the same answers a column at a time, on cells that are spans of
UTF-8 bytes (`Cells`), without a Python object per cell:

- numbers written as plain decimals (an optional minus, at most 15 digits, at most one point) are read by numpy
  as mantissa / 10**decimals, which IEEE division rounds exactly as float() does; any other cell goes through
  float() itself, so "1e3", " 42 " or "1_000" read as the API reads them;
- a text column is reduced to its distinct values first, and every check runs once per distinct value.

The checker runs only on the cells these checks flag, to name their problem.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from handler.manifest import Feature
from handler.validation import NUMBER_LIMIT, Checker, NonFinite, checker_for

BOOLEAN_CELLS = {"true": True, "false": False}
NUMERIC_TYPES = ("number", "integer")
MAX_EXACT_DIGITS = 15  # a mantissa under 2**53: exact as a float64, so one division rounds correctly
DIGIT_0, DIGIT_9, POINT, MINUS = b"0"[0], b"9"[0], b"."[0], b"-"[0]
POWERS_OF_TEN = 10.0 ** np.arange(MAX_EXACT_DIGITS + 1)  # exact float64 values
MATRIX_WIDTH = 64  # a wider text column is decoded cell by cell rather than as a bytes matrix
PADDING = bytes(MATRIX_WIDTH + 8)  # after a buffer, so a matrix of its last cells needs no bounds check
SCAN_DISTINCT = 16  # up to this many distinct texts in a column are found by comparisons, more by sorting


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
class Cells:
    """One column's cells: cell i is the UTF-8 text buffer[starts[i]:ends[i]]."""

    buffer: np.ndarray  # uint8
    starts: np.ndarray  # intp
    ends: np.ndarray

    @classmethod
    def of(cls, texts: Sequence[str]) -> Cells:
        """Cells holding these texts (for rows the csv module parsed, and for tests)."""
        encoded = [text.encode("utf-8", "surrogatepass") for text in texts]
        lengths = np.array([len(data) for data in encoded], dtype=np.intp)
        ends = np.cumsum(lengths)
        return cls(np.frombuffer(b"".join(encoded) + PADDING, dtype=np.uint8), ends - lengths, ends)

    def __len__(self) -> int:
        return len(self.starts)

    @cached_property
    def widths(self) -> np.ndarray:
        return self.ends - self.starts

    def text(self, index: int) -> str:
        return self.buffer[self.starts[index]:self.ends[index]].tobytes().decode("utf-8", "surrogatepass")

    def texts(self) -> list[str]:
        return [self.text(index) for index in range(len(self))]

    def matrix(self, rows: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
        """The bytes of the cells at `rows` by position: chars[j] holds byte j of each cell (NUL past its end);
        and where each cell's bytes are. Position-major, so every step is a contiguous array over the rows."""
        starts = self.starts[rows]
        inside = np.arange(width)[:, None] < (self.ends[rows] - starts)
        offsets = starts + np.arange(width)[:, None]
        if len(starts) and int(starts.max()) + width > len(self.buffer):  # past the end: see PADDING
            if not len(self.buffer):
                return np.zeros(inside.shape, dtype=np.uint8), inside
            np.minimum(offsets, len(self.buffer) - 1, out=offsets)
        chars = self.buffer[offsets]
        chars[~inside] = 0
        return chars, inside

    def distinct(self) -> tuple[list[str], np.ndarray]:
        """The distinct texts, and each cell's index into them."""
        widths = self.widths
        width = int(widths.max()) if len(widths) else 0
        if width > MATRIX_WIDTH:
            texts = self.texts()
            index = {text: position for position, text in enumerate(dict.fromkeys(texts))}
            return list(index), np.fromiter(map(index.__getitem__, texts), dtype=np.intp, count=len(texts))
        padded = -(-max(width, 1) // 8) * 8
        chars, inside = self.matrix(np.arange(len(self)), padded)
        rows = np.ascontiguousarray(chars.T)
        # up to 8 bytes a cell is one integer, sorted faster than bytes strings
        keys = rows.view(np.uint64).ravel() if padded == 8 else rows.view(f"S{padded}").ravel()
        codes, some_cell = _codes(keys)
        if padded > 8 and (inside & (chars == 0)).any():  # bytes strings drop trailing NULs: "a" vs "a\0"
            codes, some_cell = _codes(codes * (width + 1) + widths)
        return [self.text(index) for index in some_cell.tolist()], codes


def _codes(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each key's index among the distinct keys, and a position holding each distinct key."""
    codes = np.full(len(keys), -1, dtype=np.intp)
    found: list[int] = []
    while len(found) < SCAN_DISTINCT:  # a few distinct keys (categories): a comparison each beats a sort
        first = int(np.argmax(codes < 0)) if len(keys) else 0
        if not len(keys) or codes[first] >= 0:
            return codes, np.array(found, dtype=np.intp)
        codes[keys == keys[first]] = len(found)
        found.append(first)
    _, codes = np.unique(keys, return_inverse=True)
    codes = codes.ravel()
    some_cell = np.empty(int(codes.max()) + 1, dtype=np.intp)
    some_cell[codes] = np.arange(len(codes))
    return codes, some_cell


@dataclass(frozen=True)
class ValidatedColumns:
    """The rows that passed as columns (numbers as float64 arrays, NaN for null; texts and booleans as object
    arrays, None for null), and the problems of the rest."""

    columns: dict[str, np.ndarray]
    valid: np.ndarray  # bool per input row
    problems: dict[int, list[str]]  # input row index -> ["feature: problem", ...] in feature order
    unknown_categories: int


class ColumnValidator:
    """Validates columns of CSV cells against the manifest's features; built once at init."""

    def __init__(self, features: list[Feature], max_string_length: int) -> None:
        self._features = features
        self._max_string_length = max_string_length
        self.checkers: dict[str, Checker] = {f.name: checker_for(f, max_string_length) for f in features}

    def validate(self, cells: dict[str, Cells], count: int) -> ValidatedColumns:
        """Check `count` rows given one Cells per feature."""
        problems: dict[int, list[str]] = {}
        values: dict[str, np.ndarray] = {}
        unknown: dict[str, np.ndarray] = {}  # per text feature: which rows hold an unknown (accepted) category
        for feature in self._features:
            column = cells[feature.name]
            if feature.type in NUMERIC_TYPES:
                values[feature.name], flagged = self._numbers(feature, column)
            else:
                values[feature.name], flagged, unknown[feature.name] = self._texts(feature, column)
            for index in flagged.tolist():
                _, problem = self.checkers[feature.name](decode_cell(column.text(index), feature.type))
                problems.setdefault(index, []).append(f"{feature.name}: {problem}")
        valid = np.ones(count, dtype=bool)
        valid[list(problems)] = False
        columns = {name: column[valid] for name, column in values.items()}
        return ValidatedColumns(columns, valid, problems,
                                sum(int(np.count_nonzero(rows[valid])) for rows in unknown.values()) +
                                self._unknown_numbers(columns))

    def _numbers(self, feature: Feature, cells: Cells) -> tuple[np.ndarray, np.ndarray]:
        """float64 values (NaN for null) and the indices of flagged cells."""
        widths = cells.widths
        empty = widths == 0
        numbers = np.full(len(cells), np.nan)
        read = _plain_decimals(cells, np.flatnonzero(~empty & (widths <= MAX_EXACT_DIGITS + 2)), numbers)
        unreadable = np.zeros(len(cells), dtype=bool)
        for index in np.flatnonzero(~empty & ~read).tolist():  # anything else is read by float() itself
            try:
                numbers[index] = float(cells.text(index))
            except ValueError:
                unreadable[index] = True
        with np.errstate(invalid="ignore"):
            flagged = unreadable | (~empty & ~(np.abs(numbers) <= NUMBER_LIMIT))  # NaN and inf fail <=
            if feature.type == "integer":
                flagged |= ~empty & ~unreadable & (numbers != np.floor(numbers)) & np.isfinite(numbers)
        if not feature.nullable:
            flagged |= empty
        return numbers, np.flatnonzero(flagged)

    def _texts(self, feature: Feature, cells: Cells) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Strings or booleans (None for null), the indices of flagged cells, and which rows hold an accepted
        unknown category; every check runs once per distinct text."""
        texts, codes = cells.distinct()
        if feature.type == "boolean":
            converted = [None if text == "" else BOOLEAN_CELLS.get(text.strip().lower()) for text in texts]
            bad = [text != "" and value is None for text, value in zip(texts, converted)]
        else:
            converted = [text or None for text in texts]
            bad = [len(text) > self._max_string_length for text in texts]
            if feature.categories and feature.unknown_category == "reject":
                allowed = frozenset(feature.categories) | {""}
                bad = [flag or text not in allowed for flag, text in zip(bad, texts)]
        if not feature.nullable:
            bad = [flag or text == "" for flag, text in zip(bad, texts)]
        outside = [False] * len(texts)
        if feature.categories and feature.unknown_category != "reject":
            known = frozenset(feature.categories)
            outside = [text != "" and text not in known for text in texts]
        values = np.empty(len(texts), dtype=object)
        values[:] = converted
        return (values[codes], np.flatnonzero(np.array(bad, dtype=bool)[codes]),
                np.array(outside, dtype=bool)[codes])

    def _unknown_numbers(self, columns: dict[str, np.ndarray]) -> int:
        """Values outside the known categories of numeric features that accept unknown ones (the API's count)."""
        unknown = 0
        for feature in self._features:
            if feature.type in NUMERIC_TYPES and feature.categories and feature.unknown_category != "reject":
                values = columns[feature.name]
                values = values[~np.isnan(values)]
                unknown += int(np.count_nonzero(~np.isin(values, np.array(feature.categories, dtype=np.float64))))
        return unknown


def _plain_decimals(cells: Cells, rows: np.ndarray, numbers: np.ndarray) -> np.ndarray:
    """Read the cells at `rows` written as [-]digits[.digits] (at most MAX_EXACT_DIGITS digits) into numbers;
    True per cell read. mantissa / 10**decimals is exact over exact: IEEE rounds it as float() rounds the text."""
    read = np.zeros(len(cells), dtype=bool)
    if not len(rows):
        return read
    chars, inside = cells.matrix(rows, int(cells.widths[rows].max()))
    digit = inside & (chars >= DIGIT_0) & (chars <= DIGIT_9)
    point = chars == POINT
    minus = chars[0] == MINUS
    digits = digit.sum(axis=0)
    accepted = digit | point
    accepted[0] |= minus
    plain = (accepted == inside).all(axis=0) & (point.sum(axis=0) <= 1) & (digits >= 1) & (digits <= MAX_EXACT_DIGITS)
    mantissa = np.zeros(len(rows), dtype=np.int64)
    decimals = np.zeros(len(rows), dtype=np.int64)
    after_point = np.zeros(len(rows), dtype=bool)
    for position in range(len(chars)):
        mantissa = np.where(digit[position], mantissa * 10 + (chars[position] - DIGIT_0), mantissa)
        after_point |= point[position]
        decimals += digit[position] & after_point
    values = mantissa / POWERS_OF_TEN[np.minimum(decimals, MAX_EXACT_DIGITS)]
    values[minus] *= -1.0
    numbers[rows[plain]] = values[plain]
    read[rows[plain]] = True
    return read
