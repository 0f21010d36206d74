"""Fixtures shared by every test layer."""

from __future__ import annotations

import copy
import importlib
import io
import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression, Ridge

# Before any handler import: the handler reads these at init, as in Lambda.
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "model-api-test")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "SklearnModelApiTest")

from tests.helpers import DEMO_MODEL_DIR, EVENTS_DIR  # noqa: E402
from tests.packager.helpers import (ARRAY_FEATURES, FEATURES, TRAIN_ROWS, Case,  # noqa: E402
                                    array_pipeline, frame_pipeline, make_members, save_case)
from toolkit.events import LambdaContext  # noqa: E402


@pytest.fixture
def lambda_context() -> LambdaContext:
    return LambdaContext()


@pytest.fixture
def demo_manifest() -> dict[str, Any]:
    return json.loads((DEMO_MODEL_DIR / "manifest.json").read_text(encoding="utf-8"))


@pytest.fixture
def api_event() -> Callable[..., dict[str, Any]]:
    """A real HTTP API v2 event from tests/events/, with its body or route replaced."""

    def build(name: str = "predict", *, body: Any = None, raw_body: str | None = None,
              method: str | None = None, path: str | None = None,
              headers: dict[str, str] | None = None) -> dict[str, Any]:
        event = copy.deepcopy(json.loads((EVENTS_DIR / f"{name}.json").read_text(encoding="utf-8")))
        if body is not None:
            event["body"] = json.dumps(body)
        if raw_body is not None:
            event["body"] = raw_body
        if method or path:
            http = event["requestContext"]["http"]
            http["method"] = method or http["method"]
            http["path"] = event["rawPath"] = path or http["path"]
            event["routeKey"] = event["requestContext"]["routeKey"] = f"{http['method']} {http['path']}"
        event["headers"].update(headers or {})
        return event

    return build


@pytest.fixture
def handler_app() -> ModuleType:
    """handler.app, initialised on the committed demo model."""
    return importlib.import_module("handler.app")


@pytest.fixture
def model_copy(tmp_path: Path) -> Path:
    """A writable copy of the demo model directory, for tampering with."""
    return Path(shutil.copytree(DEMO_MODEL_DIR, tmp_path / "model_artifacts"))


@pytest.fixture
def reinitialised_handler(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., ModuleType]]:
    """Re-run handler.app's init (a new Lambda container) with other environment variables."""
    module = importlib.import_module("handler.app")

    def reinitialise(**environ: str) -> ModuleType:
        for name, value in environ.items():
            monkeypatch.setenv(name, value)
        return importlib.reload(module)

    yield reinitialise
    monkeypatch.undo()
    importlib.reload(module)


@pytest.fixture
def handler_logs(handler_app: ModuleType) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The structured log records the handler writes during the test (init included)."""
    stream = io.StringIO()
    previous = handler_app.logger.registered_handler.setStream(stream)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    handler_app.logger.registered_handler.setStream(previous)


# Tiny fitted models of each kind, saved with their CSV sample and hold-out.
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
