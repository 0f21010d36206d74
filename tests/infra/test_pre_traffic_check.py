"""The pre-traffic hook's code: its events reach the real handler, and a wrong answer fails the deployment."""

from __future__ import annotations

import io
import json
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from infra.pre_traffic_check import index as hook

VERSION_ARN = "arn:aws:lambda:eu-west-1:123456789012:function:model-api-dev-Model:7"
EVENT = {"DeploymentId": "d-ABC123", "LifecycleEventHookExecutionId": "execution-1"}


def in_process(app: Any, lambda_context: Any) -> hook.Call:
    """A `call` that runs the handler in this process, as the invoked version would."""
    def call(method: str, path: str, body: Any) -> tuple[int, Any]:
        result = app.lambda_handler(hook.http_event(method, path, body), lambda_context)
        return result["statusCode"], json.loads(result["body"])
    return call


def test_a_healthy_version_serving_the_expected_model_passes(handler_app, lambda_context, demo_manifest):
    # Given / When
    problems = hook.check_version(in_process(handler_app, lambda_context), demo_manifest["sha256"])

    # Then
    assert problems == []


def test_a_version_serving_another_model_fails(handler_app, lambda_context):
    # Given / When
    problems = hook.check_version(in_process(handler_app, lambda_context), "d" * 64)

    # Then
    assert len(problems) == 1 and "GET /model answered 200" in problems[0] and "d" * 64 in problems[0]


def test_a_version_whose_model_failed_to_load_fails_at_health(reinitialised_handler, lambda_context, tmp_path,
                                                              demo_manifest):
    # Given a version that initialised without its model
    app = reinitialised_handler(MODEL_DIR=str(tmp_path))

    # When
    problems = hook.check_version(in_process(app, lambda_context), demo_manifest["sha256"])

    # Then
    assert problems == ["GET /health answered 503"]


def test_a_version_that_cannot_predict_its_own_example_fails(demo_manifest):
    # Given a version whose /predict answers 500
    def call(method: str, path: str, body: Any) -> tuple[int, Any]:
        if path == "/predict":
            return 500, {"error": {"code": "internal_error"}}
        return 200, {"status": "ok", **demo_manifest}

    # When
    problems = hook.check_version(call, demo_manifest["sha256"])

    # Then
    assert len(problems) == 1 and problems[0].startswith("POST /predict with the manifest's example answered 500")


@pytest.fixture
def codedeploy(monkeypatch: pytest.MonkeyPatch, demo_manifest: dict[str, Any]) -> Stubber:
    """The hook's CodeDeploy client, stubbed; the test states the one report it expects."""
    client = boto3.client("codedeploy", region_name="eu-west-1", aws_access_key_id="a", aws_secret_access_key="b")
    stubber = Stubber(client)
    real_client = hook.boto3.client
    monkeypatch.setattr(hook.boto3, "client", lambda name, **kwargs: client if name == "codedeploy"
                        else real_client(name, **kwargs))
    monkeypatch.setenv("TARGET_VERSION_ARN", VERSION_ARN)
    monkeypatch.setenv("EXPECTED_SHA256", demo_manifest["sha256"])
    with stubber:
        yield stubber
    stubber.assert_no_pending_responses()


def expect_report(stubber: Stubber, status: str) -> None:
    stubber.add_response("put_lifecycle_event_hook_execution_status", {"lifecycleEventHookExecutionId": "execution-1"},
                         {"deploymentId": "d-ABC123", "lifecycleEventHookExecutionId": "execution-1", "status": status})


def cannot_invoke(version_arn: str) -> hook.Call:
    raise RuntimeError("Unable to locate credentials")


@pytest.mark.parametrize(("version", "status"), [("healthy", "Succeeded"), ("answers 502", "Failed"),
                                                 ("cannot be invoked", "Failed")])
def test_the_hook_reports_its_verdict_to_codedeploy(codedeploy, monkeypatch, handler_app, lambda_context, version,
                                                    status, capsys):
    # Given
    invokers = {"healthy": lambda arn: in_process(handler_app, lambda_context),
                "answers 502": lambda arn: lambda method, path, body: (502, None),
                "cannot be invoked": cannot_invoke}
    monkeypatch.setattr(hook, "invoker", invokers[version])
    expect_report(codedeploy, status)

    # When
    hook.lambda_handler(EVENT, None)

    # Then (the stub checks the report; the log line names the deployment and the version)
    logged = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (logged["deployment"], logged["version"]) == ("d-ABC123", VERSION_ARN)
    assert (logged["problems"] == []) == (status == "Succeeded")


def test_the_invoker_calls_the_version_with_an_http_api_event_and_reads_its_answer(monkeypatch):
    # Given a Lambda client that answers the way the model function does
    client = boto3.client("lambda", region_name="eu-west-1", aws_access_key_id="a", aws_secret_access_key="b")
    answer = json.dumps({"statusCode": 200, "body": json.dumps({"status": "ok"})}).encode()
    monkeypatch.setattr(hook.boto3, "client", lambda name, **kwargs: client)
    sent: list[dict[str, Any]] = []

    # When
    with Stubber(client) as stubber:
        stubber.add_response("invoke", {"StatusCode": 200, "Payload": StreamingBody(io.BytesIO(answer), len(answer))},
                             {"FunctionName": VERSION_ARN, "Payload": _capture(sent)})
        result = hook.invoker(VERSION_ARN)("GET", "/health", None)

    # Then
    assert result == (200, {"status": "ok"})
    assert (sent[0]["routeKey"], sent[0]["rawPath"], sent[0]["version"]) == ("GET /health", "/health", "2.0")


def _capture(sent: list[dict[str, Any]]) -> Any:
    """A Stubber parameter matcher that records the event sent and accepts it."""
    class Capture:
        def __eq__(self, payload: object) -> bool:
            sent.append(json.loads(payload))
            return True
    return Capture()


