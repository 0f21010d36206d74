"""What a bundle weighs: bytes on disk, bytes zipped as CDK zips an asset, and per package."""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

# Lambda's limit on a function's unzipped code, layers included.
LAMBDA_UNZIPPED_LIMIT = 262_144_000


def zipped_size(root: Path, parts: Sequence[Path]) -> int:
    """The size of parts zipped as CDK zips an asset (deflate), measured without writing the zip."""
    counter = _ByteCounter()
    with zipfile.ZipFile(counter, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for part in parts:
            for path in files(part):
                archive.write(path, path.relative_to(root).as_posix())
    return counter.written


class _ByteCounter(io.RawIOBase):
    """A write-only stream that keeps only the count: the zip is measured, never stored."""

    written = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.written += len(data)
        return len(data)


def tree_bytes(path: Path) -> int:
    return sum(file.stat().st_size for file in files(path))


def files(path: Path) -> Iterator[Path]:
    if path.is_file():
        yield path
        return
    for directory, _, names in os.walk(path):
        yield from (Path(directory, name) for name in names)


def package_sizes(bundle: Path) -> dict[str, int]:
    """Bytes per top-level entry of the bundle (packages, their .libs and dist-info together)."""
    sizes: dict[str, int] = {}
    for entry in bundle.iterdir():
        name = entry.name.split("-", 1)[0].removesuffix(".libs").removesuffix(".py")
        files = [entry] if entry.is_file() else [path for path in entry.rglob("*") if path.is_file()]
        sizes[name] = sizes.get(name, 0) + sum(path.stat().st_size for path in files)
    return dict(sorted(sizes.items(), key=lambda item: item[1], reverse=True))


def megabytes(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB"
