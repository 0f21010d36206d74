"""What the packager raises: one error type whose message is the whole story, and a guard around library code."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager


class PackagingError(Exception):
    """The inputs cannot make a trustworthy artifact; the message says why."""


@contextmanager
def foreign(action: str) -> Iterator[None]:
    """Run library code on the user's files: any exception or warning becomes one PackagingError."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            yield
        except PackagingError:
            raise
        except Exception as error:
            raise PackagingError(f"{action}: {type(error).__name__}: {error}") from error
