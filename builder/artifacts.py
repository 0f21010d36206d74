"""Writing a model directory: staged in scratch beside it, then swapped into place in one rename."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from builder.errors import PackagingError
from handler.config import Settings
from handler.manifest import Manifest
from handler.openapi import openapi_document

OPENAPI_FILE = "openapi.json"


def write_openapi(manifest: Manifest, out_dir: Path) -> Path:
    """openapi.json for the default request limits; the API serves its own at /openapi.json."""
    path = out_dir / OPENAPI_FILE
    path.write_text(json.dumps(openapi_document(manifest, Settings()), indent=2) + "\n", encoding="utf-8")
    return path


@contextmanager
def workspace(out_dir: Path) -> Iterator[Path]:
    """A scratch directory next to out_dir (same filesystem, so renames are atomic), removed afterwards."""
    if out_dir.exists() and not out_dir.is_dir():
        raise PackagingError(f"{out_dir} exists and is not a directory")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=f".{out_dir.name}-") as scratch:
        yield Path(scratch)


def swap_into_place(staged: Path, out_dir: Path, scratch: Path) -> None:
    """Move the old out_dir into scratch (deleted with it), then move staged in its place."""
    old = scratch / "old"
    if out_dir.exists():
        out_dir.rename(old)
    try:
        staged.rename(out_dir)
    except OSError:
        if old.exists():
            old.rename(out_dir)
        raise
