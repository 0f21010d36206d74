"""Score a local CSV or JSON Lines file of any size with the packaged model, in bounded memory.

    python -m toolkit.score --input in.csv --output out.csv [--id-column id] [--model-dir model_artifacts] [--threads N]

The same code as the deployed batch (handler.batch_scoring): the same validation, the same predictions.
Writes OUTPUT, the rejected rows beside it (out.rejects.csv), and prints the counts.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, TextIO

from handler.batch_scoring import (
    BLOCK_BYTES,
    BatchInputError,
    Counts,
    batch_threads,
    input_format,
    owned_blocks,
    parse_header,
    score_blocks,
    split_first_line,
)
from handler.config import DEFAULT_MODEL_DIR, Settings
from handler.errors import ModelLoadError
from handler.loading import LoadedModel, load_model

PROGRESS_INTERVAL_SECONDS = 0.5


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


def _chunks(stream: BinaryIO, counter: list[int]) -> Iterator[bytes]:
    while chunk := stream.read(BLOCK_BYTES):
        counter[0] += len(chunk)
        yield chunk


def score_file(model: LoadedModel, source: Path, output: Path, *, id_column: str | None = None,
               threads: int = 1, progress: TextIO | None = None) -> Counts:
    """Score `source` into `output` and its rejects file; a file-level problem raises BatchInputError."""
    size = source.stat().st_size
    file_format = input_format(source.name)
    bytes_read = [0]
    bar = Progress(size, progress) if progress else None
    with source.open("rb") as stream, output.open("w", encoding="utf-8", newline="") as scored_file, \
            rejects_path(output).open("w", encoding="utf-8", newline="") as rejects_file:
        blocks = owned_blocks(_chunks(stream, bytes_read), offset=0, start=0, end=size)
        header = None
        if file_format == "csv" and size:
            first, blocks = split_first_line(blocks)
            header = parse_header(first or b"")
        total = score_blocks(model, header, blocks, scored_file, rejects_file, id_column=id_column, threads=threads,
                             on_block=bar and (lambda counts: bar.update(counts.rows_in, bytes_read[0])))
    if bar:
        bar.update(total.rows_in, size, final=True)
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m toolkit.score", description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", required=True, type=Path, help="a CSV with a header row, or .jsonl/.ndjson")
    parser.add_argument("--output", required=True, type=Path, help="the predictions CSV (rejects go beside it)")
    parser.add_argument("--id-column", help="a column copied into the output beside the row number")
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--threads", type=int, help="blocks predicted at once (default: BATCH_THREADS, or every CPU)")
    args = parser.parse_args(argv)
    try:
        threads = args.threads or batch_threads(os.environ)
        model = load_model(Settings(model_dir=args.model_dir))
        counts = score_file(model, args.input, args.output, id_column=args.id_column, threads=threads,
                            progress=sys.stderr)
    except (BatchInputError, ModelLoadError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"error: {error.filename or args.input}: {error.strerror}", file=sys.stderr)
        return 2
    print(f"{counts.rows_in:,} rows in: {counts.scored:,} scored → {args.output}, "
          f"{counts.rejected:,} rejected → {rejects_path(args.output)}")
    if counts.unused_columns:
        print("unused columns: " + ", ".join(counts.unused_columns))
    return 0


if __name__ == "__main__":
    sys.exit(main())
