"""Fixtures for the infrastructure tests: bare stacks, tiny code assets, one synthesized app."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Duration, Stack
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from builder.bundler import Bundle
from handler.config import MAX_INSTANCES, SERVICE_NAME
from infra.app import build
from infra.constructs.api import ModelApi
from infra.constructs.function import ModelFunction
from tests.helpers import PROJECT_ROOT

# cdk.json's feature flags, as every real synth has them (e.g. S3 access logs by bucket policy, not ACL).
FEATURE_FLAGS = {key: value for key, value in
                 json.loads((PROJECT_ROOT / "cdk.json").read_text(encoding="utf-8"))["context"].items()
                 if key.startswith("@")}
# Two of the variables handler.config names, so a test can tell the environment given from any other.
FUNCTION_ENVIRONMENT = {SERVICE_NAME: "churn-api", MAX_INSTANCES: "50"}


@pytest.fixture
def stack() -> Stack:
    """A bare stack to build one construct in."""
    return Stack()


@pytest.fixture
def flagged_stack() -> Stack:
    """A stack in an app with cdk.json's feature flags."""
    return Stack(App(context=FEATURE_FLAGS), "Flagged")


@pytest.fixture
def tiny_code(tmp_path: Path) -> lambda_.Code:
    """A one-file code asset, so construct tests never build the real bundle."""
    code = tmp_path / "tiny_code"
    code.mkdir()
    (code / "index.py").write_text("def lambda_handler(event, context):\n    return {}\n", encoding="utf-8")
    return lambda_.Code.from_asset(str(code))


@pytest.fixture(scope="session")
def synthesized_app(cdk_context: dict[str, Any], lambda_bundle: Bundle,
                    tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The full app (real bundle, cdk-nag) synthesized once; the cloud assembly directory."""
    outdir = tmp_path_factory.mktemp("cdk.out")
    app = App(context=cdk_context, outdir=str(outdir))
    build(app)
    try:
        app.synth()
    except RuntimeError as error:
        report = outdir / "validation-report.json"
        pytest.fail(f"synth failed: {error}\n{report.read_text() if report.exists() else ''}")
    return outdir


def logical_id(construct: Construct) -> str:
    """The CloudFormation logical ID of an L2 construct's resource."""
    return Stack.of(construct).resolve(construct.node.default_child.logical_id)


def make_function(stack: Stack, code: lambda_.Code, **overrides: Any) -> ModelFunction:
    """A model function as the stack makes one, with `overrides` changed."""
    arguments: dict[str, Any] = {
        "code": code,
        "runtime": "python3.14",
        "architecture": "arm64",
        "memory_mb": 1769,
        "timeout": Duration.seconds(10),
        "log_retention_days": 30,
        "environment": FUNCTION_ENVIRONMENT,
        "description": "Serves the model behind the churn-api API",
    }
    return ModelFunction(stack, "Model", **{**arguments, **overrides})


def make_api(stack: Stack, handler: lambda_.IFunction, **overrides: Any) -> ModelApi:
    """A model API in front of handler, with `overrides` changed."""
    arguments: dict[str, Any] = {"handler": handler, "require_iam_auth": True, "throttling_rate_limit": 25,
                                 "throttling_burst_limit": 40, "log_retention_days": 90}
    return ModelApi(stack, "Api", **{**arguments, **overrides})
