"""Fixtures for the packager tests: tiny fitted models saved with their CSV files, a CLI runner."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression, Ridge

from tests.packager.helpers import (ARRAY_FEATURES, FEATURES, TRAIN_ROWS, Case, CliResult, array_pipeline,
                                    frame_pipeline, make_members, packaged, save_case)
from toolkit.packager import main


@pytest.fixture(scope="session")
def members() -> pd.DataFrame:
    return make_members()


@pytest.fixture(scope="session")
def classifier_case(members: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Case:
    """A DataFrame classifier; its sample CSV lists the columns in reverse order."""
    train, holdout = members.iloc[:TRAIN_ROWS], members.iloc[TRAIN_ROWS:]
    model = frame_pipeline(LogisticRegression()).fit(train[FEATURES], train["churned"])
    columns = FEATURES + ["churned"]
    return save_case(tmp_path_factory.mktemp("classifier"), model, train[columns[::-1]], holdout[columns],
                     "churned")


@pytest.fixture(scope="session")
def regressor_case(members: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Case:
    train, holdout = members.iloc[:TRAIN_ROWS], members.iloc[TRAIN_ROWS:]
    model = frame_pipeline(Ridge()).fit(train[FEATURES], train["spend"])
    columns = FEATURES + ["spend"]
    return save_case(tmp_path_factory.mktemp("regressor"), model, train[columns], holdout[columns], "spend")


@pytest.fixture(scope="session")
def array_case(members: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Case:
    train, holdout = members.iloc[:TRAIN_ROWS], members.iloc[TRAIN_ROWS:]
    model = array_pipeline().fit(train[ARRAY_FEATURES].to_numpy(dtype=np.float64), train["churned"])
    columns = ARRAY_FEATURES + ["churned"]
    return save_case(tmp_path_factory.mktemp("array"), model, train[columns], holdout[columns], "churned")


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
