"""Fixtures for the packager tests: tiny fitted models saved with their CSV files, a CLI runner."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.models import Case, CliResult, packaged
from builder.packager import main


@pytest.fixture
def published(classifier_case: Case, tmp_path: Path) -> Path:
    """model_artifacts/ as a successful earlier run left it, alone in its parent directory."""
    out_dir = tmp_path / "site" / "model_artifacts"
    packaged(classifier_case, out_dir)
    return out_dir


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[[list[str]], CliResult]:
    """Run the packager's main(argv) and collect its exit code and output lines."""

    def run(argv: list[str]) -> CliResult:
        code = main(argv)
        captured = capsys.readouterr()
        return CliResult(code, captured.out.splitlines(), captured.err.splitlines())

    return run
