"""Batch scoring core: lines of CSV and JSON Lines files scored with the API's model and validation rules, without AWS.

A file is split into byte ranges. Every physical line belongs to exactly one range: the one its first byte lies
in. A range's reader starts at the first line that begins at or after `start` and reads through the end of the last
line that begins before `end`. Ranges split at newline bytes only, so a split never falls inside a UTF-8
character (0x0A is never part of a multi-byte sequence) and needs no scan of earlier bytes.

One row is one physical line. A quoted field may not contain a line break: such a line is rejected as an
unterminated quoted field, and the lines that followed it are judged as rows of their own, wherever the ranges
fall. Nothing is lost: every data line is either scored or rejected with its problems named, and
rows_in = scored + rejected is checked per part and over the whole run.

handler.batch runs these functions on S3 ranges in Lambda; toolkit.score runs them on a local file.
"""

from __future__ import annotations

import csv
import gc
import itertools
import json
import operator
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from handler.columns import ColumnValidator
from handler.loading import LoadedModel
from handler.manifest import Manifest
from handler.predictors.base import ValidatedBatch
from handler.validation import NonFinite, parse_float

CHUNK_ROWS = 10_000  # rows validated and predicted together: bounded memory, numpy-sized work
MAX_LINE_BYTES = 1 << 20  # a longer line (or a file without newlines) is refused, so memory stays bounded
JSON_LINES_SUFFIXES = (".jsonl", ".ndjson")
UNSUPPORTED_SUFFIXES = (".gz", ".zip", ".bz2", ".zst", ".parquet")
REJECT_HEADER = ["row", "problems"]


class BatchInputError(ValueError):
    """Input the batch cannot score at all (not a row problem); `cause` is a stable code."""

    def __init__(self, cause: str, detail: str) -> None:
        super().__init__(f"{cause}: {detail}")
        self.cause = cause
        self.detail = detail


@dataclass
class Counts:
    """What happened to the rows of one part or of a whole run."""

    rows_in: int = 0
    scored: int = 0
    rejected: int = 0
    unknown_categories: int = 0
    unused_columns: list[str] = field(default_factory=list)

    def add(self, other: Counts) -> None:
        self.rows_in += other.rows_in
        self.scored += other.scored
        self.rejected += other.rejected
        self.unknown_categories += other.unknown_categories
        self.unused_columns = sorted(set(self.unused_columns) | set(other.unused_columns))

    @property
    def balanced(self) -> bool:
        return self.rows_in == self.scored + self.rejected


@dataclass(frozen=True)
class Layout:
    """Where each feature and the id are in a row: header positions for CSV, keys for JSON Lines (header None)."""

    header: list[str] | None
    positions: dict[str, int]
    id_column: str | None
    unused_columns: list[str]

    @classmethod
    def of(cls, manifest: Manifest, header: list[str] | None, id_column: str | None) -> Layout:
        """Check the header against the manifest: a missing feature or id column fails the whole input."""
        if header is None:
            return cls(None, {}, id_column, [])
        duplicated = sorted({name for name in header if header.count(name) > 1})
        if duplicated:
            raise BatchInputError("header_duplicate_columns", "the header repeats: " + ", ".join(duplicated))
        missing = [name for name in manifest.feature_names if name not in header]
        if missing:
            raise BatchInputError("header_missing_features", "the header has no column for: " + ", ".join(missing))
        if id_column is not None and id_column not in header:
            raise BatchInputError("id_column_missing", f"the header has no id column {id_column!r}")
        used = set(manifest.feature_names) | {id_column}
        return cls(header, {name: header.index(name) for name in header},
                   id_column, [name for name in header if name not in used])


def output_header(manifest: Manifest, id_column: str | None) -> list[str]:
    """row, [id], then label + p_<class> per class, or value."""
    prediction = (["label"] + [f"p_{label}" for label in manifest.classes] if manifest.classes is not None
                  else ["value"])
    return ["row"] + ([id_column] if id_column else []) + prediction


def parse_header(line: bytes) -> list[str]:
    """The column names of a CSV header line (a UTF-8 byte order mark is dropped)."""
    try:
        text = line.decode("utf-8-sig").removesuffix("\r")
    except UnicodeDecodeError:
        raise BatchInputError("header_invalid", "the header line is not UTF-8") from None
    try:
        return next(csv.reader([text], strict=True), [])
    except csv.Error as error:
        raise BatchInputError("header_invalid", f"the header line is not CSV ({error})") from None


def score_lines(model: LoadedModel, header: list[str] | None, lines: Iterable[bytes], *,
                first_row_number: int, id_column: str | None = None,
                ) -> tuple[list[list[Any]], list[list[Any]], Counts]:
    """Score data lines (bytes, no newline) of a CSV with `header`, or of JSON Lines when header is None.

    Returns output rows, reject rows and counts; rows are numbered from first_row_number. Callers stream a
    large file through `iter_scored`, which hands this function CHUNK_ROWS lines at a time.
    """
    with _garbage_collection_paused():
        return _score_lines(model, Layout.of(model.manifest, header, id_column), list(lines), first_row_number)


@contextmanager
def _garbage_collection_paused() -> Iterator[None]:
    """Millions of small lists hold no cycles; collecting them while they are built costs more than scoring."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _score_lines(model: LoadedModel, layout: Layout, lines: list[bytes], first_row_number: int,
                 ) -> tuple[list[list[Any]], list[list[Any]], Counts]:
    texts, problems = _decode(lines)
    if layout.header is None:
        columns, identities, counts = _json_columns(model, layout, texts, problems)
    else:
        columns, identities, counts = _csv_columns(model, layout, texts, problems)
    output = []
    valid_rows = [index for index in range(len(texts)) if index not in problems]
    for chunk_start in range(0, len(valid_rows), CHUNK_ROWS):
        rows = valid_rows[chunk_start:chunk_start + CHUNK_ROWS]
        chunk_columns = {name: values[chunk_start:chunk_start + CHUNK_ROWS] for name, values in columns.items()}
        predictions = _predict(model, chunk_columns, len(rows), rows, problems)
        output += [[first_row_number + index, *identities(index), *_prediction_cells(prediction)]
                   for index, prediction in zip(rows, predictions) if prediction is not None]
    rejects = [[first_row_number + index, "; ".join(found)] for index, found in sorted(problems.items())]
    counts.rows_in, counts.scored, counts.rejected = len(texts), len(output), len(rejects)
    return output, rejects, counts


def iter_scored(model: LoadedModel, header: list[str] | None, lines: Iterable[bytes], *,
                id_column: str | None = None, first_row_number: int = 1,
                chunk_rows: int = CHUNK_ROWS) -> Iterator[tuple[list[list[Any]], list[list[Any]], Counts]]:
    """score_lines over consecutive chunks of `lines`: memory bounded by the chunk, not the file."""
    Layout.of(model.manifest, header, id_column)  # a bad header fails before any row is read
    iterator = iter(lines)
    while chunk := list(itertools.islice(iterator, chunk_rows)):
        yield score_lines(model, header, chunk, first_row_number=first_row_number, id_column=id_column)
        first_row_number += len(chunk)


def owned_lines(chunks: Iterable[bytes], *, offset: int, start: int, end: int) -> Iterator[bytes]:
    """The lines (without their newline) that begin in [start, end), from bytes read from `offset` on.

    `offset` must be start - 1 when start > 0 (to see whether a line begins exactly at start), else 0.
    """
    position, pending = offset, b""
    skipping = start > 0  # the line that holds byte start - 1 belongs to the range before
    for chunk in chunks:
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            if not skipping:
                if position >= end:
                    return
                yield line
            skipping = False
            position += len(line) + 1
        if len(pending) > MAX_LINE_BYTES:
            raise BatchInputError("line_too_long", f"a line at byte {position} is longer than {MAX_LINE_BYTES} bytes")
    if pending and not skipping and position < end:
        yield pending


def ranges(size: int, part_bytes: int) -> list[tuple[int, int]]:
    """[start, end) byte ranges of part_bytes covering an object of `size` bytes (one empty range if 0)."""
    return [(start, min(start + part_bytes, size)) for start in range(0, size, part_bytes)] or [(0, 0)]


def input_format(key: str) -> str:
    """csv or jsonl, from the object's name; compressed and columnar files are refused by name."""
    lowered = key.lower()
    if lowered.endswith(UNSUPPORTED_SUFFIXES):
        raise BatchInputError("unsupported_format", f"{key}: compressed and Parquet files are not supported")
    return "jsonl" if lowered.endswith(JSON_LINES_SUFFIXES) else "csv"


def _decode(lines: list[bytes]) -> tuple[list[str], dict[int, list[str]]]:
    """UTF-8 text of each line without a trailing CR; undecodable lines become problems (and empty text)."""
    problems: dict[int, list[str]] = {}
    try:
        texts = b"\n".join(lines).decode("utf-8").split("\n")
    except UnicodeDecodeError:
        texts = []
        for index, line in enumerate(lines):
            try:
                texts.append(line.decode("utf-8"))
            except UnicodeDecodeError:
                texts.append("")
                problems[index] = ["row: not valid UTF-8"]
    texts = [text[:-1] if text.endswith("\r") else text for text in texts]
    for index, text in enumerate(texts):
        if not text and index not in problems:
            problems[index] = ["row: empty line"]
    return texts, problems


def _csv_records(texts: list[str], skip: dict[int, list[str]]) -> list[list[str] | str]:
    """Each line parsed on its own as one CSV record, or the problem that stops it."""
    records: list[list[str] | str] = []
    reader = csv.reader(texts, strict=True)
    try:  # fast path: one reader over every line, as long as no record spans two lines
        for index, record in enumerate(reader):
            if reader.line_num != index + 1:
                break
            records.append(record)
        else:
            return records
    except csv.Error:
        pass
    return [_csv_record(text) if index not in skip else [] for index, text in enumerate(texts)]


def _csv_record(text: str) -> list[str] | str:
    try:
        return next(csv.reader([text], strict=True), [])
    except csv.Error as error:
        if "unexpected end of data" in str(error):
            return "row: unterminated quoted field (a quoted field may not contain a line break)"
        return f"row: not a CSV line ({error})"


def _csv_columns(model: LoadedModel, layout: Layout, texts: list[str], problems: dict[int, list[str]]):
    """Feature columns of the rows that parse, validated a column at a time; problems gains the rest."""
    width = len(layout.header)
    records = _csv_records(texts, problems)
    rows = []
    for index, record in enumerate(records):
        if index in problems:
            continue
        if isinstance(record, str):
            problems[index] = [record]
        elif len(record) != width:
            problems[index] = [f"row: expected {width} fields, got {len(record)}"]
        else:
            rows.append(index)
    cells = {name: list(map(operator.itemgetter(layout.positions[name]), map(records.__getitem__, rows)))
             for name in model.manifest.feature_names}
    validator = ColumnValidator(model.manifest.features, model.settings.max_string_length)
    result = validator.validate(cells, len(rows))
    for position, found in result.problems.items():
        problems[rows[position]] = found
    id_position = layout.positions.get(layout.id_column) if layout.id_column else None

    def identities(index: int) -> tuple[str, ...]:
        return () if id_position is None else (records[index][id_position],)

    counts = Counts(unknown_categories=result.unknown_categories, unused_columns=layout.unused_columns)
    return result.columns, identities, counts


def _json_columns(model: LoadedModel, layout: Layout, texts: list[str], problems: dict[int, list[str]]):
    """JSON Lines: each line an object, every value judged by the API's own checkers; unknown keys are unused."""
    features = model.manifest.features
    checkers = ColumnValidator(features, model.settings.max_string_length).checkers
    known_categories = {f.name: frozenset(f.categories) for f in features
                        if f.categories and f.unknown_category != "reject"}
    columns: dict[str, list[Any]] = {f.name: [] for f in features}
    objects: dict[int, dict[str, Any]] = {}
    unknown, unused = 0, set()
    for index, text in enumerate(texts):
        if index in problems:
            continue
        try:
            instance = json.loads(text, parse_constant=NonFinite, parse_float=parse_float)
        except (ValueError, RecursionError):
            problems[index] = ["row: not valid JSON"]
            continue
        if not isinstance(instance, dict):
            problems[index] = ["row: expected an object of feature values"]
            continue
        found, values = [], {}
        for feature in features:
            if feature.name not in instance:
                found.append(f"{feature.name}: missing required field")
                continue
            values[feature.name], problem = checkers[feature.name](instance[feature.name])
            if problem:
                found.append(f"{feature.name}: {problem}")
        if found:
            problems[index] = found
            continue
        objects[index] = instance
        unused.update(key for key in instance if key not in columns and key != layout.id_column)
        for name, value in values.items():
            columns[name].append(value)
            known = known_categories.get(name)
            unknown += known is not None and value is not None and value not in known

    def identities(index: int) -> tuple[Any, ...]:
        if layout.id_column is None:
            return ()
        value = objects[index].get(layout.id_column)
        return ("" if value is None else value if isinstance(value, str) else json.dumps(value),)

    return columns, identities, Counts(unknown_categories=unknown, unused_columns=sorted(unused))


def _predict(model: LoadedModel, columns: dict[str, Any], count: int, rows: list[int],
             problems: dict[int, list[str]]) -> list[dict[str, Any] | None]:
    """Predictions for one chunk; if the model cannot score it, each row alone, rejecting those it cannot."""
    batch = ValidatedBatch(columns=columns, count=count, unknown_categories=0)
    try:
        return model.predictor.predict(batch)
    except (ValueError, FloatingPointError):  # e.g. a float32 overflow inside a tree model, as the API's 422
        pass
    predictions: list[dict[str, Any] | None] = []
    for position, index in enumerate(rows):
        single = ValidatedBatch(columns={name: values[position:position + 1] for name, values in columns.items()},
                                count=1, unknown_categories=0)
        try:
            predictions.extend(model.predictor.predict(single))
        except (ValueError, FloatingPointError):
            problems[index] = ["row: the model cannot score these values"]
            predictions.append(None)
    return predictions


def _prediction_cells(prediction: dict[str, Any]) -> list[Any]:
    if "probabilities" in prediction:
        return [prediction["label"], *prediction["probabilities"].values()]
    return [prediction["value"]]
