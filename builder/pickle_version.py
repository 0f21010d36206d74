"""Which scikit-learn (and numpy) pickled a model file, read from its bytes without unpickling anything.

scikit-learn estimators pickle their state with a `_sklearn_version` entry. Its first occurrence in
the stream is a literal string opcode followed by the version string, so the scan finds that opcode
in the (decompressed) bytes and decodes the opcodes after it with `pickletools.genops`, which only
parses: nothing is imported or called. Searching the bytes, rather than walking the stream from its
start, also steps over the raw array data joblib writes between pickle opcodes.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import pickletools
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

VERSION_KEY = "_sklearn_version"
_KEY_OPCODES = (
    b"\x8c" + bytes([len(VERSION_KEY)]) + VERSION_KEY.encode(),  # SHORT_BINUNICODE (protocol 4+)
    b"X" + len(VERSION_KEY).to_bytes(4, "little") + VERSION_KEY.encode(),  # BINUNICODE (protocol 1-3)
    b"V" + VERSION_KEY.encode() + b"\n",  # UNICODE (protocol 0)
)
_STRING_OPCODES = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE",
                   "SHORT_BINSTRING", "BINSTRING", "STRING"}
_BOOKKEEPING_OPCODES = {"MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT", "FRAME"}  # between a key and its value
_VERSION_TEXT = re.compile(r"\d+\.\d+[0-9A-Za-z.+-]*")
_FIRST_OPCODES = {"PROTO", "MARK", "GLOBAL"}
_STOP = b"."
_NUMPY_MODULES = {b"numpy._core": 2, b"numpy.core": 1}  # numpy 2 renamed numpy.core; pickles name the module
_LZ4_MAGIC = b"\x04\x22\x4d\x18"
_ZFILE_MAGIC = b"ZF"  # joblib < 0.9.3's own zlib container
# The magic bytes joblib itself checks, in its order.
_DECOMPRESSORS: tuple[tuple[str, bytes, Callable[[bytes], bytes]], ...] = (
    ("zlib", b"\x78", zlib.decompress),
    ("gzip", b"\x1f\x8b", gzip.decompress),
    ("bz2", b"BZ", bz2.decompress),
    ("xz", b"\xfd7zXZ", lzma.decompress),
    ("lzma", b"\x5d\x00", lzma.decompress),
)
_SAVE_AGAIN = "save it again with joblib.dump(model, path) in the environment that trained it"


class PickleVersionError(Exception):
    """The file's pickling versions cannot be read; the message names the file, the cause and what to do."""


@dataclass(frozen=True)
class PickleFacts:
    """What a pickle's bytes say about the libraries that wrote it."""

    sklearn_version: str | None  # None: no scikit-learn estimator in the file
    numpy_major: int | None  # None: the file names no numpy module
    compression: str | None


def pickled_sklearn_version(path: Path) -> str | None:
    """The scikit-learn version that pickled path, or None when the pickle holds no scikit-learn object."""
    return read_pickle_facts(path).sklearn_version


def read_pickle_facts(path: Path) -> PickleFacts:
    """Read the versions from a joblib or pickle file (plain or compressed) without executing it."""
    def refuse(cause: str) -> PickleVersionError:
        return PickleVersionError(f"cannot read which scikit-learn version pickled {path.name}: {cause}")

    try:
        raw = path.read_bytes()
    except OSError as error:
        raise refuse(f"{error.strerror or error} ({path})") from None
    compression, data = _decompressed(raw, refuse)
    if not data:
        raise refuse(f"the file is empty; {_SAVE_AGAIN}")
    _check_pickle_start(data, compression, refuse)
    version = _version_after_key(data, refuse)
    if version is None and not data.endswith(_STOP):
        raise refuse(f"the pickle is truncated (no STOP opcode at its end); copy the file again or {_SAVE_AGAIN}")
    numpy_majors = {major for module, major in _NUMPY_MODULES.items() if module in data}
    return PickleFacts(version, numpy_majors.pop() if len(numpy_majors) == 1 else None, compression)


def _decompressed(raw: bytes, refuse: Callable[[str], PickleVersionError]) -> tuple[str | None, bytes]:
    """The pickle bytes and the compression joblib wrote them with, told by the magic bytes joblib checks."""
    if raw.startswith(_ZFILE_MAGIC):
        raise refuse(f"it is in the format of joblib < 0.9.3; {_SAVE_AGAIN}")
    if raw.startswith(_LZ4_MAGIC):
        return "lz4", _lz4_decompressed(raw, refuse)
    for name, magic, decompress in _DECOMPRESSORS:
        if raw.startswith(magic):
            try:
                return name, decompress(raw)
            except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError) as error:
                raise refuse(f"its {name} data is truncated or corrupt ({error}); "
                             f"copy the file again or {_SAVE_AGAIN}") from None
    return None, raw


def _lz4_decompressed(raw: bytes, refuse: Callable[[str], PickleVersionError]) -> bytes:
    try:
        import lz4.frame  # optional: joblib needs it too to write lz4 files
    except ImportError:
        raise refuse("it is compressed with lz4, which is not installed; "
                     "pip install lz4, or save it again with joblib.dump(model, path, compress=3)") from None
    try:
        return lz4.frame.decompress(raw)
    except RuntimeError as error:
        raise refuse(f"its lz4 data is truncated or corrupt ({error}); copy the file again or {_SAVE_AGAIN}") from None


def _check_pickle_start(data: bytes, compression: str | None, refuse: Callable[[str], PickleVersionError]) -> None:
    """The first opcode must be PROTO (joblib writes protocol 2 or later), or MARK or GLOBAL for protocols 0-1."""
    try:
        first = next(pickletools.genops(BytesIO(data[:64])))[0].name
    except (ValueError, StopIteration):
        first = None
    if first not in _FIRST_OPCODES:
        container = f"its {compression}-compressed data" if compression else "the file"
        raise refuse(f"{container} is not a pickle (it starts with {data[:8].hex(' ')}); {_SAVE_AGAIN}")


def _version_after_key(data: bytes, refuse: Callable[[str], PickleVersionError]) -> str | None:
    """The string pushed right after the first literal `_sklearn_version` key, or None without a key."""
    found = [offset for offset in (data.find(opcode) for opcode in _KEY_OPCODES) if offset >= 0]
    if not found:
        return None
    start = min(found)
    try:
        for opcode, argument, _ in pickletools.genops(BytesIO(data[start:start + 512])):
            if opcode.name == "STOP":
                break
            if opcode.name in _BOOKKEEPING_OPCODES or argument == VERSION_KEY:
                continue
            if opcode.name in _STRING_OPCODES and isinstance(argument, str) and _VERSION_TEXT.fullmatch(argument):
                return argument
            break
    except ValueError as error:
        raise refuse(f"the pickle is truncated or corrupt after its {VERSION_KEY} key ({error}); "
                     f"copy the file again or {_SAVE_AGAIN}") from None
    raise refuse(f"its {VERSION_KEY} entry holds no version string; {_SAVE_AGAIN}")
