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
from typing import TYPE_CHECKING, Any

import botocore.session
import pandas as pd
import pytest
from moto import mock_aws
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression, Ridge

# Before any handler import: the handler reads these at init, as in Lambda.
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "model-api-test")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "SklearnModelApiTest")

from builder.demo_model import NAME, VERSION  # noqa: E402
from handler.config import DEFAULT_MODEL_DIR, MODEL_DIR  # noqa: E402
from tests.helpers import BUCKET, EVENTS_DIR, REGION, SHIPPED_MODEL_DIR  # noqa: E402
from tests.models import (ARRAY_FEATURES, FEATURES, TRAIN_ROWS, Case, array_pipeline, demo,  # noqa: E402
                          fitted_case, frame_pipeline, make_members, packaged, save_case)
from toolkit.events import LambdaContext  # noqa: E402
from toolkit.publish import Publication, publish  # noqa: E402

if TYPE_CHECKING:  # the CDK starts a Node process on import: only the tests that need it pay
    from builder.bundler import Bundle
    from infra.config import StackConfig


@pytest.fixture
def aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and a region, as Lambda provides them; nothing from this machine's AWS setup."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)


@pytest.fixture
def s3_client(aws_environment: None) -> Iterator[Any]:
    """An S3 client on moto, with an empty versioned bucket as the stack creates it."""
    with mock_aws():
        client = botocore.session.get_session().create_client("s3", region_name=REGION)
        client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        yield client


# The demo model, packaged in a temporary directory: what tests of the machinery serve, tamper with and publish.
@pytest.fixture(scope="session")
def demo_dir() -> Path:
    return demo().model_dir


@pytest.fixture(scope="session")
def demo_case() -> Case:
    """The demo pipeline, with its training sample and hold-out."""
    return demo().case


@pytest.fixture
def demo_manifest(demo_dir: Path) -> dict[str, Any]:
    return json.loads((demo_dir / "manifest.json").read_text(encoding="utf-8"))


@pytest.fixture
def published(s3_client: Any, demo_dir: Path) -> Publication:
    """The demo model, published with toolkit.publish."""
    return publish(s3_client, demo_dir, bucket=BUCKET)


@pytest.fixture
def lambda_context() -> LambdaContext:
    return LambdaContext()


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


def handler_on(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """handler.app initialised on model_dir (a container whose MODEL_DIR names it); reloaded if it is on another."""
    monkeypatch.setenv(MODEL_DIR, str(model_dir))
    module = importlib.import_module("handler.app")
    if module.MODEL is None or module.MODEL.settings.model_dir != model_dir:
        importlib.reload(module)
    return module


@pytest.fixture
def handler_app(demo_dir: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """handler.app, initialised on the demo model."""
    return handler_on(demo_dir, monkeypatch)


@pytest.fixture
def model_copy(demo_dir: Path, tmp_path: Path) -> Path:
    """A writable copy of the demo model directory, for tampering with."""
    return Path(shutil.copytree(demo_dir, tmp_path / "model_artifacts"))


@pytest.fixture(scope="session")
def sklearn_demo_dir(demo_case: Case, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo pipeline packaged with --runtime sklearn, as when ONNX is refused."""
    out_dir = tmp_path_factory.mktemp("sklearn-demo") / "model_artifacts"
    packaged(demo_case, out_dir, name=NAME, version=VERSION, runtime="sklearn")
    return out_dir


@pytest.fixture
def sklearn_model_copy(sklearn_demo_dir: Path, tmp_path: Path) -> Path:
    """A writable copy of the demo model directory packaged for the sklearn runtime."""
    return Path(shutil.copytree(sklearn_demo_dir, tmp_path / "sklearn" / "model_artifacts"))


@pytest.fixture
def reinitialised_handler(monkeypatch: pytest.MonkeyPatch, demo_dir: Path) -> Iterator[Callable[..., ModuleType]]:
    """Re-run handler.app's init (a new Lambda container) with other environment variables, on the demo model
    unless they name another MODEL_DIR."""
    module = importlib.import_module("handler.app")
    monkeypatch.setenv(MODEL_DIR, str(demo_dir))

    def reinitialise(**environ: str) -> ModuleType:
        for name, value in environ.items():
            monkeypatch.setenv(name, value)
        return importlib.reload(module)

    yield reinitialise
    monkeypatch.undo()
    importlib.reload(module)


# The shipped model: whatever model_artifacts/ holds. Its tests rely on nothing but its manifest.
@pytest.fixture
def shipped_manifest() -> dict[str, Any]:
    return json.loads((SHIPPED_MODEL_DIR / "manifest.json").read_text(encoding="utf-8"))


@pytest.fixture
def shipped_app(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """handler.app, initialised on model_artifacts/ as the bundle ships it."""
    return handler_on(DEFAULT_MODEL_DIR, monkeypatch)


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
    return fitted_case(tmp_path_factory.mktemp("regressor"), members, frame_pipeline(Ridge()), FEATURES, "spend")


@pytest.fixture(scope="session")
def array_case(members: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Case:
    return fitted_case(tmp_path_factory.mktemp("array"), members, array_pipeline(), ARRAY_FEATURES, "churned",
                       as_array=True)


@pytest.fixture(scope="session")
def multiclass_case(members: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Case:
    """A DataFrame gradient-boosting classifier with three string classes."""
    banded = members.assign(band=pd.cut(members["visits"], [-1, 4, 7, 100], labels=["low", "mid", "high"]).astype(str))
    model = frame_pipeline(GradientBoostingClassifier(n_estimators=20, random_state=0))
    return fitted_case(tmp_path_factory.mktemp("multiclass"), banded, model, FEATURES, "band")


# The project's configuration and its bundles (cached under build/bundles).
@pytest.fixture(scope="session")
def cdk_context() -> dict[str, Any]:
    """The context block of the repository's cdk.json, as the CDK CLI passes it."""
    from infra.config import project_context

    return project_context()


@pytest.fixture(scope="session")
def default_config(cdk_context: dict[str, Any]) -> StackConfig:
    from infra.config import load_config

    return load_config(cdk_context)


@pytest.fixture(scope="session")
def lambda_bundle(default_config: StackConfig) -> Bundle:
    """The Lambda bundle cdk.json describes (cached under build/bundles; the first build downloads wheels)."""
    from builder.bundler import BundleSpec, build_bundle, lambda_target

    return build_bundle(BundleSpec.for_project(lambda_target(default_config.architecture,
                                                             default_config.python_version)))


@pytest.fixture(scope="session")
def host_bundle() -> Bundle:
    """The same contents built for this machine, to run the handler from it."""
    from builder.bundler import BundleSpec, build_bundle, host_target

    return build_bundle(BundleSpec.for_project(host_target()))


@pytest.fixture(scope="session")
def served_runtime(host_bundle: Bundle) -> str:
    """The model runtime the bundle serves with (the manifest's `runtime`)."""
    return json.loads((host_bundle.path / "model_artifacts" / "manifest.json").read_text(encoding="utf-8"))["runtime"]


@pytest.fixture(scope="session")
def sklearn_host_bundle() -> Bundle:
    """The demo model served with scikit-learn, bundled for this machine: the naive floor and raw model run on it."""
    from builder.bundler import BundleSpec, build_bundle, host_target
    from toolkit.reference import sklearn_twin_project

    return build_bundle(BundleSpec.for_project(host_target(), sklearn_twin_project()))


@pytest.fixture(scope="session")
def sklearn_reference(sklearn_host_bundle: Bundle) -> tuple[Path, Path]:
    """The scikit-learn host bundle and its joblib artifact."""
    models = sklearn_host_bundle.path / "model_artifacts"
    manifest = json.loads((models / "manifest.json").read_text(encoding="utf-8"))
    return sklearn_host_bundle.path, models / manifest["artifact"]
