"""Writing a model directory: staged in scratch beside it, then swapped into place with signals held off.

The packager replaces only a directory it wrote itself (it holds MARKER_FILE) or an empty one: pointed at a
folder of the user's files, it refuses instead of deleting them.
"""

from __future__ import annotations

import json
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from builder.errors import PackagingError
from handler.config import Settings
from handler.manifest import Manifest
from handler.openapi import openapi_document

OPENAPI_FILE = "openapi.json"
# Written into every output (and every scratch directory): what the packager may replace or clean up.
MARKER_FILE = ".packaged-by-sklearn-lambda-template"
MARKER_TEXT = "Written by builder.packager: the next packaging run into this directory replaces it as a whole.\n"
# Held off during the two renames of the swap, so no Ctrl-C or kill leaves the directory missing.
SWAP_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
OLD, NEW = "old", "new"


def write_openapi(manifest: Manifest, out_dir: Path) -> Path:
    """openapi.json for the default request limits; the API serves its own at /openapi.json."""
    path = out_dir / OPENAPI_FILE
    path.write_text(json.dumps(openapi_document(manifest, Settings()), indent=2) + "\n", encoding="utf-8")
    return path


def write_marker(directory: Path) -> None:
    """Mark directory as the packager's: a later run may replace it."""
    (directory / MARKER_FILE).write_text(MARKER_TEXT, encoding="utf-8")


def check_replaceable(out_dir: Path) -> None:
    """Refuse an out_dir the packager may not replace: a file, a link, or a directory of someone else's files."""
    if out_dir.is_symlink():
        raise PackagingError(f"{out_dir} is a symbolic link; give the directory itself as --out")
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise PackagingError(f"{out_dir} exists and is not a directory")
    if any(out_dir.iterdir()) and not (out_dir / MARKER_FILE).is_file():
        raise PackagingError(f"{out_dir} holds files the packager did not write and would replace them all; "
                             "choose a new or empty --out directory")


@contextmanager
def workspace(out_dir: Path) -> Iterator[Path]:
    """A scratch directory next to out_dir (same filesystem, so renames are atomic), removed afterwards.

    A swap cut short by SIGKILL or a power cut left out_dir missing and its old copy in a scratch directory:
    that copy is put back first.
    """
    check_replaceable(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    recover_interrupted_swap(out_dir)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=scratch_prefix(out_dir)) as scratch:
        write_marker(Path(scratch))
        yield Path(scratch)


def scratch_prefix(out_dir: Path) -> str:
    return f".{out_dir.name}-"


def recover_interrupted_swap(out_dir: Path) -> None:
    """Put back the old output a killed swap left in scratch, and remove the packager's stale scratch directories."""
    for scratch in sorted(out_dir.parent.glob(f"{scratch_prefix(out_dir)}*")):
        if not (scratch.is_dir() and not scratch.is_symlink() and (scratch / MARKER_FILE).is_file()):
            continue  # not the packager's
        if not out_dir.exists() and (scratch / OLD).is_dir():
            (scratch / OLD).rename(out_dir)
        shutil.rmtree(scratch, ignore_errors=True)


@contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP off until the block ends, then deliver them as they would have been.

    They are blocked in this thread with pthread_sigmask; another thread (a BLAS or onnxruntime worker) may
    still receive one, so in the main thread a Python handler also records them, and each is raised again
    once the original handlers are back.
    """
    received: list[int] = []
    recorded = {number: signal.signal(number, lambda number, _: received.append(number)) for number in SWAP_SIGNALS
                } if threading.current_thread() is threading.main_thread() else {}
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, SWAP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        for number, handler in recorded.items():
            signal.signal(number, handler)
        for number in dict.fromkeys(received):
            signal.raise_signal(number)


def swap_into_place(staged: Path, out_dir: Path, scratch: Path) -> None:
    """Move the old out_dir into scratch (deleted with it), then move staged in its place.

    Both renames run with signals held: a Ctrl-C or SIGTERM sent meanwhile takes effect after the second
    one, so out_dir always holds a complete output (the old one or the new one).
    """
    check_replaceable(out_dir)
    write_marker(staged)
    old = scratch / OLD
    with signals_held():
        if out_dir.exists():
            out_dir.rename(old)
        try:
            staged.rename(out_dir)
        except OSError:
            if old.exists():
                old.rename(out_dir)
            raise
