"""Score a local CSV or JSON Lines file of any size with the packaged model, in bounded memory.

    python -m toolkit.score --input in.csv --output out.csv [--id-column id] [--model-dir model_artifacts]
                            [--workers N] [--threads N]

The same code as the deployed batch (handler.batch_scoring): the same validation, the same predictions.
As the deployed batch gives each byte range of the input to its own Lambda, this gives each range to its own
worker process (one per CPU by default): parsing and validating are Python work one process cannot spread
over cores. Writes OUTPUT (rows in input order), the rejected rows beside it (out.rejects.csv), and the counts.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from handler.batch_scoring import (
    BLOCK_BYTES,
    BatchInputError,
    CountMismatch,
    Counts,
    Layout,
    batch_threads,
    input_format,
    owned_blocks,
    ranges,
    read_header,
    score_blocks,
    split_first_line,
)
from handler.config import DEFAULT_MODEL_DIR, Settings
from handler.errors import ModelLoadError
from handler.loading import LoadedModel, load_model

PROGRESS_INTERVAL_SECONDS = 0.5
MIN_PART_BYTES = 2 << 20  # a file of one part is scored in this process alone
PARTS_PER_WORKER = 8  # small parts, claimed one at a time: a worker that starts late or runs slow takes fewer


def rejects_path(output: Path) -> Path:
    """out.csv → out.rejects.csv, beside it."""
    return output.with_name(f"{output.stem}.rejects{output.suffix or '.csv'}")


class Progress:
    """A one-line progress bar on a stream: rows, rows/s and the ETA from the bytes read so far."""

    def __init__(self, total_bytes: int, stream: TextIO) -> None:
        self._total, self._stream = max(total_bytes, 1), stream
        self._started = self._shown = time.monotonic()

    def update(self, rows: int, bytes_read: int, *, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self._shown < PROGRESS_INTERVAL_SECONDS:
            return
        self._shown = now
        elapsed = max(now - self._started, 1e-9)
        share = min(bytes_read / self._total, 1.0)
        eta = elapsed * (1 - share) / share if share else float("inf")
        bar = "#" * int(share * 30)
        self._stream.write(f"\r[{bar:<30}] {share:4.0%} {rows:>12,} rows {rows / elapsed:>10,.0f} rows/s "
                           f"ETA {eta:5.0f} s" + ("\n" if final else ""))
        self._stream.flush()


def score_file(model: LoadedModel, source: Path, output: Path, *, id_column: str | None = None,
               threads: int = 1, workers: int = 1, progress: TextIO | None = None) -> Counts:
    """Score `source` into `output` and its rejects file; a file-level problem raises BatchInputError.

    With workers > 1 and a file of several MIN_PART_BYTES, byte ranges are scored by that many processes into
    part files beside `output`, then joined in order; `threads` is each process's prediction threads.
    """
    size = source.stat().st_size
    header = _header(source) if input_format(source.name) == "csv" and size else None
    if header is not None:
        Layout.of(model.manifest, header, id_column)  # a header missing a feature stops the run before any work
    spans = ranges(size, max(MIN_PART_BYTES, -(-size // (workers * PARTS_PER_WORKER))))
    bar = Progress(size, progress) if progress else None
    if workers <= 1 or len(spans) == 1:
        with output.open("w", encoding="utf-8", newline="") as scored, \
                rejects_path(output).open("w", encoding="utf-8", newline="") as rejects:
            total = _score_span(model, source, (0, size, 1), header, id_column, threads, scored, rejects,
                                bar and (lambda counts, read: bar.update(counts.rows_in, read)))
    else:
        total = _score_in_workers(model, source, output, spans, header, id_column, threads, workers, bar)
    if bar:
        bar.update(total.rows_in, size, final=True)
    if not total.balanced:
        raise CountMismatch(f"{total.rows_in} rows in, {total.scored} scored, {total.rejected} rejected")
    return total


def _header(source: Path) -> list[str]:
    with source.open("rb") as stream:
        return read_header(_chunks(stream, [0]))


def _score_span(model: LoadedModel, source: Path, span: tuple[int, int, int], header: list[str] | None,
                id_column: str | None, threads: int, output: TextIO, rejects: TextIO,
                on_block: Callable[[Counts, int], None] | None) -> Counts:
    """Score the lines that begin in [start, end) of `source`, numbering rows from first_row; see owned_blocks."""
    start, end, first_row = span
    bytes_read = [0]
    with source.open("rb") as stream:
        stream.seek(max(start - 1, 0))
        blocks = owned_blocks(_chunks(stream, bytes_read), offset=max(start - 1, 0), start=start, end=end)
        if header is not None and start == 0:
            _, blocks = split_first_line(blocks)  # the header line is not a row
        return score_blocks(model, header, blocks, output, rejects, id_column=id_column, threads=threads,
                            first_row_number=first_row,
                            on_block=on_block and (lambda counts: on_block(counts, bytes_read[0])))


def _chunks(stream: BinaryIO, counter: list[int]) -> Iterator[bytes]:
    while chunk := stream.read(BLOCK_BYTES):
        counter[0] += len(chunk)
        yield chunk


def _first_rows(source: Path, spans: Sequence[tuple[int, int]], has_header: bool) -> list[tuple[int, int, int]]:
    """Each span with the row number of its first line, from the newlines before it (counted at C speed)."""
    numbered, newlines, counted_to = [], 0, 0  # newlines in source[0:counted_to]
    with source.open("rb") as stream:
        for start, end in spans:
            if start == 0:
                numbered.append((start, end, 1))
                continue
            stream.seek(counted_to)
            while counted_to < start - 1 and (chunk := stream.read(min(start - 1 - counted_to, BLOCK_BYTES))):
                newlines, counted_to = newlines + chunk.count(b"\n"), counted_to + len(chunk)
            # lines begun before `start`: 1 + the newlines in [0, start - 1); the header line is no row
            numbered.append((start, end, 2 + newlines - has_header))
    return numbered


@dataclass(frozen=True)
class _Job:
    """What every process scoring parts of one file needs to know, sent once to each worker."""

    source: Path
    part_dir: Path
    spans: list[tuple[int, int, int]]  # (start, end, first row number) per part
    header: list[str] | None
    id_column: str | None
    threads: int


_worker: dict[str, Any] = {}  # in a worker process: its model and the counters shared with the caller


def _start_worker(settings: Settings, progress: Any, next_part: Any) -> None:
    _worker.update(model=load_model(settings), progress=progress, next_part=next_part)


def _worker_drain(job: _Job) -> list[tuple[int, Counts]]:
    return _drain(_worker["model"], job, _worker["progress"], _worker["next_part"])


def _drain(model: LoadedModel, job: _Job, progress: Any, next_part: Any,
           on_block: Callable[[], None] | None = None) -> list[tuple[int, Counts]]:
    """Claim parts one at a time until none is left, each into its part files; rows and bytes done are published
    in `progress`. On failure no process claims another part."""
    done = []
    try:
        while (index := _claim(next_part, len(job.spans))) is not None:

            def publish(counts: Counts, bytes_read: int, index: int = index) -> None:
                progress[2 * index], progress[2 * index + 1] = counts.rows_in, bytes_read
                if on_block:
                    on_block()

            paths = _part_paths(job.part_dir, index)
            with paths[0].open("w", encoding="utf-8", newline="") as scored, \
                    paths[1].open("w", encoding="utf-8", newline="") as rejects:
                done.append((index, _score_span(model, job.source, job.spans[index], job.header, job.id_column,
                                                job.threads, scored, rejects, publish)))
    except BaseException:
        with next_part.get_lock():
            next_part.value = len(job.spans)
        raise
    return done


def _claim(next_part: Any, parts: int) -> int | None:
    with next_part.get_lock():
        index = next_part.value
        if index >= parts:
            return None
        next_part.value = index + 1
    return index


def _part_paths(part_dir: Path, index: int) -> tuple[Path, Path]:
    return part_dir / f"part-{index:05d}.csv", part_dir / f"part-{index:05d}.rejects.csv"


def _score_in_workers(model: LoadedModel, source: Path, output: Path, spans: list[tuple[int, int]],
                      header: list[str] | None, id_column: str | None, threads: int, workers: int,
                      bar: Progress | None) -> Counts:
    """Spans scored side by side by this process and workers - 1 others (this one starts at once, with the
    model it holds), then the parts joined in order into output and rejects."""
    context = multiprocessing.get_context("spawn")  # no fork of a process that holds onnxruntime's threads
    progress = context.Array("q", 2 * len(spans), lock=False)
    next_part = context.Value("i", 0)
    with tempfile.TemporaryDirectory(prefix=f".{output.name}.parts-", dir=output.parent) as part_dir, \
            ProcessPoolExecutor(workers - 1, mp_context=context, initializer=_start_worker,
                                initargs=(model.settings, progress, next_part)) as pool:
        job = _Job(source, Path(part_dir), _first_rows(source, spans, header is not None), header, id_column,
                   threads)
        show = bar and (lambda: bar.update(sum(progress[0::2]), sum(progress[1::2])))
        helpers = [pool.submit(_worker_drain, job) for _ in range(workers - 1)]
        done = _drain(model, job, progress, next_part, show)
        while not all(helper.done() for helper in helpers):  # the last parts, still scored by others
            wait(helpers, timeout=PROGRESS_INTERVAL_SECONDS)
            if show:
                show()
        for helper in helpers:
            done += helper.result()  # a worker's failure raises here
        total = Counts()
        for index, counts in sorted(done, key=lambda item: item[0]):
            if not counts.balanced:
                raise CountMismatch(f"part {index}: {counts.rows_in} rows in, {counts.scored} scored, "
                                    f"{counts.rejected} rejected")
            total.add(counts)
        with output.open("wb") as scored, rejects_path(output).open("wb") as rejects:
            for index in range(len(spans)):
                for part, target in zip(_part_paths(Path(part_dir), index), (scored, rejects)):
                    with part.open("rb") as stream:
                        if index:
                            stream.readline()  # each part repeats the header
                        shutil.copyfileobj(stream, target, BLOCK_BYTES)
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m toolkit.score", description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", required=True, type=Path, help="a CSV with a header row, or .jsonl/.ndjson")
    parser.add_argument("--output", required=True, type=Path, help="the predictions CSV (rejects go beside it)")
    parser.add_argument("--id-column", help="a column copied into the output beside the row number")
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--workers", type=positive, default=os.cpu_count() or 1,
                        help="processes scoring ranges side by side (default: every CPU)")
    parser.add_argument("--threads", type=positive,
                        help="blocks each process predicts at once (default: BATCH_THREADS, or 1 with workers)")
    args = parser.parse_args(argv)
    try:
        threads = args.threads or (batch_threads(os.environ) if args.workers == 1 else 1)
        model = load_model(Settings(model_dir=args.model_dir))
        counts = score_file(model, args.input, args.output, id_column=args.id_column, threads=threads,
                            workers=args.workers, progress=sys.stderr)
    except (BatchInputError, ModelLoadError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (CountMismatch, BrokenProcessPool) as error:
        print(f"error: scoring stopped: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"error: {error.filename or args.input}: {error.strerror}", file=sys.stderr)
        return 2
    print(f"{counts.rows_in:,} rows in: {counts.scored:,} scored → {args.output}, "
          f"{counts.rejected:,} rejected → {rejects_path(args.output)}")
    if counts.unused_columns:
        print("unused columns: " + ", ".join(counts.unused_columns))
    return 0


def positive(text: str) -> int:
    """An integer >= 1 (argparse type)."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return int(text)


if __name__ == "__main__":
    sys.exit(main())
