"""Batch scoring core: CSV and JSON Lines files scored with the API's model and validation rules, without AWS.

A file is split into byte ranges. Every physical line belongs to exactly one range: the one its first byte lies
in. A range's reader starts at the first line that begins at or after `start` and reads through the end of the last
line that begins before `end`. Ranges split at newline bytes only, so a split never falls inside a UTF-8
character (0x0A is never part of a multi-byte sequence) and needs no scan of earlier bytes.

One row is one physical line. A quoted field may not contain a line break: such a line is rejected as an
unterminated quoted field, and the lines that followed it are judged as rows of their own, wherever the ranges
fall. Nothing is lost: every data line is either scored or rejected with its problems named, and
rows_in = scored + rejected is checked per part and over the whole run.

A range is read in blocks of whole lines. Each block is parsed a column at a time (numpy finds the lines that
are plain comma-separated records; only the others go through the csv module), validated by ColumnValidator,
predicted as arrays on a worker thread while the next block is parsed, and written as CSV text from the arrays.

handler.batch runs this on S3 ranges in Lambda; toolkit.score runs it on a local file.
"""

from __future__ import annotations

import csv
import gc
import itertools
import json
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TextIO

import numpy as np
import orjson

from handler.columns import PADDING, Cells, ColumnValidator
from handler.loading import LoadedModel
from handler.manifest import Manifest
from handler.predictors.base import PredictionArrays, UnscorableInput, ValidatedBatch
from handler.validation import NonFinite, parse_float

BLOCK_BYTES = 1 << 20  # bytes parsed and predicted together (~20,000 demo rows): numpy-sized work, bounded memory
MAX_LINE_BYTES = 1 << 20  # a longer line (or a file without newlines) is refused, so memory stays bounded
THREADS_VARIABLE = "BATCH_THREADS"  # blocks predicted at once, each on its own thread
JSON_LINES_SUFFIXES = (".jsonl", ".ndjson")
UNSUPPORTED_SUFFIXES = (".gz", ".zip", ".bz2", ".zst", ".parquet")
REJECT_HEADER = ["row", "problems"]
NEWLINE, COMMA, QUOTE, CARRIAGE_RETURN = b"\n"[0], b","[0], b'"'[0], b"\r"[0]
CSV_SPECIALS = ('"', ",", "\r", "\n")  # a cell holding one of these is quoted, as csv.writer does


class BatchInputError(ValueError):
    """Input the batch cannot score at all (not a row problem); `cause` is a stable code."""

    def __init__(self, cause: str, detail: str) -> None:
        super().__init__(f"{cause}: {detail}")
        self.cause = cause
        self.detail = detail

    def __reduce__(self) -> tuple[Any, ...]:  # raised in a worker process, re-raised in the caller
        return type(self), (self.cause, self.detail)


class CountMismatch(RuntimeError):
    """A part, or the whole run, does not account for every input row."""


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


def read_header(chunks: Iterable[bytes]) -> list[str]:
    """The column names on the first line of a CSV read as chunks; a line over MAX_LINE_BYTES is refused."""
    return parse_header(next(owned_lines(chunks, offset=0, start=0, end=1), b""))


def batch_threads(environ: Mapping[str, str]) -> int:
    """BATCH_THREADS, or every CPU this process may use: blocks predicted at once (the API predicts on one)."""
    value = environ.get(THREADS_VARIABLE) or str(os.cpu_count() or 1)
    if not value.isdigit() or int(value) < 1:
        raise BatchInputError("threads_invalid", f"{THREADS_VARIABLE} must be an integer >= 1, got {value!r}")
    return int(value)


def score_blocks(model: LoadedModel, header: list[str] | None, blocks: Iterable[bytes], output: TextIO,
                 rejects: TextIO, *, id_column: str | None = None, first_row_number: int = 1, threads: int = 1,
                 on_block: Callable[[Counts], None] | None = None) -> Counts:
    """Score blocks of whole data lines (see owned_blocks) of a CSV with `header`, or of JSON Lines (header None).

    Writes the output CSV (row, [id], prediction) and the rejects CSV (row, problems), headers included, rows
    numbered from first_row_number. `threads` blocks are predicted at once while the next one is parsed;
    memory is bounded by them, not by the input. on_block sees the running counts after each block.
    """
    layout = Layout.of(model.manifest, header, id_column)
    parser = _BlockParser(model, layout)
    writer = _BlockWriter(model.manifest, id_column, output, rejects)
    total = Counts(unused_columns=layout.unused_columns)
    with _garbage_collection_paused(), ThreadPoolExecutor(threads, thread_name_prefix="predict") as pool:
        in_flight: deque[tuple[_Block, Future[PredictionArrays | None]]] = deque()
        for data in blocks:
            block = parser.parse(data, first_row_number)
            first_row_number += block.lines
            in_flight.append((block, pool.submit(_predict, model, block)))
            if len(in_flight) > threads:
                total.add(writer.write(model, *in_flight.popleft()))
                if on_block:
                    on_block(total)
        while in_flight:
            total.add(writer.write(model, *in_flight.popleft()))
            if on_block:
                on_block(total)
    return total


@contextmanager
def _garbage_collection_paused() -> Iterator[None]:
    """Millions of short-lived tuples hold no cycles; collecting them while they are built costs more than scoring."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@dataclass
class _Block:
    """One block's lines, parsed and validated: what the model scores and what is rejected."""

    first_row: int
    lines: int
    rows: np.ndarray  # indices (within the block) of the lines the model scores, ascending
    columns: dict[str, Any]  # validated feature columns of those lines
    ids: list[str] | None
    problems: dict[int, list[str]]  # line index -> problems
    unknown_categories: int
    unused_columns: list[str] = field(default_factory=list)  # JSON Lines keys that are no feature


class _BlockParser:
    """Bytes of whole lines -> validated columns, a column at a time."""

    def __init__(self, model: LoadedModel, layout: Layout) -> None:
        self._model, self._layout = model, layout
        self._validator = ColumnValidator(model.manifest.features, model.settings.max_string_length)

    def parse(self, data: bytes, first_row: int) -> _Block:
        if self._layout.header is None:
            return self._json_lines(data, first_row)
        layout, features = self._layout, self._model.manifest.feature_names
        wanted = [layout.positions[name] for name in features]
        id_position = layout.positions[layout.id_column] if layout.id_column else None
        rows, cells, problems, lines = _csv_cells(data, len(layout.header),
                                                  wanted if id_position is None else [*wanted, id_position])
        result = self._validator.validate({name: cells[position] for name, position in zip(features, wanted)},
                                          len(rows))
        for position, found in result.problems.items():
            problems[int(rows[position])] = found
        ids = (None if id_position is None
               else [cells[id_position].text(index) for index in np.flatnonzero(result.valid).tolist()])
        return _Block(first_row, lines, rows[result.valid], result.columns, ids, problems, result.unknown_categories)

    def _json_lines(self, data: bytes, first_row: int) -> _Block:
        texts, problems = _decode(data[:-1].split(b"\n"))
        columns, identity, unknown, unused = _json_columns(self._model, self._layout, texts, problems)
        rows = np.array([index for index in range(len(texts)) if index not in problems], dtype=np.intp)
        ids = None if self._layout.id_column is None else [identity(index) for index in rows.tolist()]
        return _Block(first_row, len(texts), rows, columns, ids, problems, unknown, unused)


def _csv_cells(data: bytes, width: int, positions: list[int],
               ) -> tuple[np.ndarray, dict[int, Cells], dict[int, list[str]], int]:
    """The cells at `positions` of every line that is a CSV record of `width` fields; the problems of the rest.

    Returns (indices of those lines, Cells per position, problems per line index, number of lines). A line
    without quotes or carriage returns holding width - 1 commas is cut at its commas, all such lines at once and
    without a Python object per cell; only the other lines go through the csv module, one at a time.
    """
    buffer = np.frombuffer(data + PADDING, dtype=np.uint8)
    bytes_ = buffer[:len(data)]
    separators = np.flatnonzero((bytes_ == COMMA) | (bytes_ == NEWLINE))
    ends_line = bytes_[separators] == NEWLINE
    newlines = separators[ends_line]
    line_of = np.cumsum(ends_line) - ends_line  # each separator's line (a newline belongs to the line it ends)
    line_starts = np.concatenate([[0], newlines[:-1] + 1]).astype(np.intp)
    plain = (np.bincount(line_of, minlength=len(newlines)) == width) & (newlines > line_starts)  # and not empty
    if b'"' in data or b"\r" in data:
        plain[np.searchsorted(newlines, np.flatnonzero((bytes_ == QUOTE) | (bytes_ == CARRIAGE_RETURN)))] = False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:  # judge line by line: only the lines that are not UTF-8 are rejected for it
        plain &= np.array([_utf8_or_none(data[start:end]) is not None
                           for start, end in zip(line_starts.tolist(), newlines.tolist())], dtype=bool)
    plain_rows = np.flatnonzero(plain)
    bounds = separators[plain[line_of]].reshape(-1, width)  # each plain line's commas and its newline
    starts = np.column_stack([line_starts[plain_rows], bounds[:, :-1] + 1])
    cells = {position: Cells(buffer, starts[:, position], bounds[:, position]) for position in positions}
    problems: dict[int, list[str]] = {}
    records: dict[int, list[str]] = {}
    for index in np.flatnonzero(~plain).tolist():
        verdict = _csv_line(_utf8_or_none(data[line_starts[index]:newlines[index]]), width)
        if isinstance(verdict, str):
            problems[index] = [verdict]
        else:
            records[index] = verdict
    if not records:
        return plain_rows, cells, problems, len(newlines)
    rows = np.concatenate([plain_rows, np.array(list(records), dtype=np.intp)])
    order = np.argsort(rows, kind="stable")
    for position in positions:  # the plain lines' cells and the csv module's records, merged in line order
        parsed = Cells.of([record[position] for record in records.values()])
        offset = len(buffer)
        cells[position] = Cells(np.concatenate([buffer, parsed.buffer]),
                                np.concatenate([cells[position].starts, parsed.starts + offset])[order],
                                np.concatenate([cells[position].ends, parsed.ends + offset])[order])
    return rows[order], cells, problems, len(newlines)


def _utf8_or_none(line: bytes) -> str | None:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _csv_line(line: str | None, width: int) -> list[str] | str:
    """The record of one line that is not a plain comma-separated one, or the problem that stops it."""
    if line is None:
        return "row: not valid UTF-8"
    line = line.removesuffix("\r")
    if not line:
        return "row: empty line"
    try:
        record = next(csv.reader([line], strict=True), [])
    except csv.Error as error:
        if "unexpected end of data" in str(error):
            return "row: unterminated quoted field (a quoted field may not contain a line break)"
        return f"row: not a CSV line ({error})"
    return record if len(record) == width else f"row: expected {width} fields, got {len(record)}"


def _predict(model: LoadedModel, block: _Block) -> PredictionArrays | None:
    """The block's predictions (on a worker thread); None if the model cannot score it as a whole."""
    if not len(block.rows):
        return None
    try:
        return model.predictor.predict_arrays(ValidatedBatch(columns=block.columns, count=len(block.rows),
                                                             unknown_categories=0))
    except (UnscorableInput, ValueError, FloatingPointError):  # e.g. a float32 overflow inside a tree model
        return None


def _predict_each(model: LoadedModel, block: _Block) -> PredictionArrays | None:
    """Each row alone, rejecting those the model cannot score; the block keeps only the rows it scored."""
    scored, kept = [], []
    for position, index in enumerate(block.rows.tolist()):
        single = {name: values[position:position + 1] for name, values in block.columns.items()}
        try:
            scored.append(model.predictor.predict_arrays(ValidatedBatch(columns=single, count=1,
                                                                        unknown_categories=0)))
            kept.append(position)
        except (UnscorableInput, ValueError, FloatingPointError):
            block.problems[index] = ["row: the model cannot score these values"]
    block.rows = block.rows[kept]
    block.ids = None if block.ids is None else [block.ids[position] for position in kept]
    if not scored:
        return None
    if scored[0].probabilities is not None:
        return PredictionArrays(probabilities=np.concatenate([arrays.probabilities for arrays in scored]))
    return PredictionArrays(values=np.concatenate([arrays.values for arrays in scored]))


class _BlockWriter:
    """Writes a block's predictions from the arrays (no per-row objects but the text) and its rejects."""

    def __init__(self, manifest: Manifest, id_column: str | None, output: TextIO, rejects: TextIO) -> None:
        self._classes = manifest.classes
        self._labels = None if manifest.classes is None else np.array(
            _csv_quoted([str(label) for label in manifest.classes]), dtype=object)
        self._output = output
        self._rejects = csv.writer(rejects, lineterminator="\n")
        output.write(",".join(_csv_quoted(output_header(manifest, id_column))) + "\n")
        self._rejects.writerow(REJECT_HEADER)

    def write(self, model: LoadedModel, block: _Block, future: Future[PredictionArrays | None]) -> Counts:
        arrays = future.result()
        if arrays is None and len(block.rows):
            arrays = _predict_each(model, block)
        if arrays is not None:
            columns: list[Iterable[str]] = [map(str, (block.rows + block.first_row).tolist())]
            if block.ids is not None:
                columns.append(_csv_quoted(block.ids))
            if arrays.probabilities is not None:
                columns.append(self._labels[arrays.best].tolist())
                columns += [float_texts(column) for column in arrays.probabilities.T]
            else:
                columns.append(float_texts(np.ravel(arrays.values)))
            self._output.write("\n".join(map(",".join, zip(*columns))) + "\n")
        self._rejects.writerows([block.first_row + index, "; ".join(found)]
                                for index, found in sorted(block.problems.items()))
        return Counts(rows_in=block.lines, scored=len(block.rows), rejected=len(block.problems),
                      unknown_categories=block.unknown_categories, unused_columns=block.unused_columns)


def float_texts(values: np.ndarray) -> list[str]:
    """Each float64 as repr() writes it, as the API's JSON and csv.writer do: the shortest text that reads back
    as the same float."""
    if not len(values):
        return []
    values = np.ascontiguousarray(values, dtype=np.float64)
    texts = orjson.dumps(values, option=orjson.OPT_SERIALIZE_NUMPY).decode("ascii")[1:-1].split(",")
    # orjson writes 0 < |x| < 1e-4 without an exponent (0.00001) where repr() writes 1e-05 (the digits agree),
    # and NaN and infinities as null
    for index in np.flatnonzero(((np.abs(values) < 1e-4) & (values != 0)) | ~np.isfinite(values)).tolist():
        texts[index] = repr(float(values[index]))
    return texts


def _csv_quoted(cells: list[str]) -> list[str]:
    """Cells as csv.writer writes them: quoted (quotes doubled) when they hold a quote, comma or line break."""
    joined = "".join(cells)
    if not any(special in joined for special in CSV_SPECIALS):
        return cells
    return ['"' + cell.replace('"', '""') + '"' if any(special in cell for special in CSV_SPECIALS) else cell
            for cell in cells]


def owned_blocks(chunks: Iterable[bytes], *, offset: int, start: int, end: int) -> Iterator[bytes]:
    """Runs of the whole lines that begin in [start, end), each line ending with a newline (one is added to a
    last line without), from bytes read from `offset` on. Blocks are never empty.

    `offset` must be start - 1 when start > 0 (to see whether a line begins exactly at start), else 0.
    """
    position, pending = offset, b""
    skipping = start > 0  # the line that holds byte start - 1 belongs to the range before
    for chunk in chunks:
        data = pending + chunk
        cut = data.rfind(b"\n") + 1
        complete, pending = data[:cut], data[cut:]
        if skipping and complete:
            skipped = complete.index(b"\n") + 1
            complete, position, skipping = complete[skipped:], position + skipped, False
        if complete and not skipping:
            if position >= end:
                return
            if position + len(complete) > end:  # the last owned line is the one that holds byte end - 1
                yield complete[:complete.index(b"\n", end - position - 1) + 1]
                return
            yield complete
            position += len(complete)
        if len(pending) > MAX_LINE_BYTES:
            raise BatchInputError("line_too_long", f"a line at byte {position} is longer than {MAX_LINE_BYTES} bytes")
    if pending and not skipping and position < end:
        yield pending + b"\n"


def owned_lines(chunks: Iterable[bytes], *, offset: int, start: int, end: int) -> Iterator[bytes]:
    """The lines (without their newline) that begin in [start, end); see owned_blocks."""
    for block in owned_blocks(chunks, offset=offset, start=start, end=end):
        yield from block[:-1].split(b"\n")


def split_first_line(blocks: Iterable[bytes]) -> tuple[bytes | None, Iterator[bytes]]:
    """The first line of owned blocks (a CSV header), and the blocks of the lines after it."""
    iterator = iter(blocks)
    for block in iterator:
        line, _, rest = block.partition(b"\n")
        return line, itertools.chain([rest] if rest else [], iterator)
    return None, iterator


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
    texts = [text.removesuffix("\r") for text in texts]
    for index, text in enumerate(texts):
        if not text and index not in problems:
            problems[index] = ["row: empty line"]
    return texts, problems


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
            if feature.name not in instance and not feature.nullable:  # an omitted nullable field is null, as in the API
                found.append(f"{feature.name}: missing required field")
                continue
            values[feature.name], problem = checkers[feature.name](instance.get(feature.name))
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

    def identity(index: int) -> str:
        value = objects[index].get(layout.id_column)
        return "" if value is None else value if isinstance(value, str) else json.dumps(value)

    return columns, identity, unknown, sorted(unused)
