"""CodeDeploy pre-traffic hook: call the new version as API Gateway would, and fail the deployment on a wrong answer.

GET /health must answer 200, GET /model must pin EXPECTED_SHA256, and POST /predict with the model's
own example must answer one prediction per instance. Runs on the boto3 the Lambda runtime ships.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable
from typing import Any

import boto3
from botocore.config import Config

# The new version may cold-start (init, at most 10 s) before answering within its timeout (at most 29 s).
INVOKE_READ_TIMEOUT_SECONDS = 60

Call = Callable[[str, str, Any], tuple[int, Any]]


def lambda_handler(event: dict[str, Any], context: Any) -> None:
    """Check the version in TARGET_VERSION_ARN, then report Succeeded or Failed to CodeDeploy."""
    try:
        problems = check_version(invoker(os.environ["TARGET_VERSION_ARN"]), os.environ["EXPECTED_SHA256"])
    except Exception as error:  # a check that cannot run must fail the deployment, not leave it waiting
        problems = [f"the check could not run: {type(error).__name__}: {error}"]
    print(json.dumps({"deployment": event["DeploymentId"], "version": os.environ["TARGET_VERSION_ARN"],
                      "problems": problems}))
    boto3.client("codedeploy").put_lifecycle_event_hook_execution_status(
        deploymentId=event["DeploymentId"],
        lifecycleEventHookExecutionId=event["LifecycleEventHookExecutionId"],
        status="Failed" if problems else "Succeeded",
    )


def check_version(call: Call, expected_sha256: str) -> list[str]:
    """What is wrong with the version `call` reaches; empty when it serves the expected model correctly."""
    status, _ = call("GET", "/health", None)
    if status != 200:
        return [f"GET /health answered {status}"]
    status, model = call("GET", "/model", None)
    if status != 200 or model.get("sha256") != expected_sha256:
        return [f"GET /model answered {status} for sha256 {(model or {}).get('sha256')}, expected {expected_sha256}"]
    example = model["example"]
    status, answer = call("POST", "/predict", example)
    predictions = answer.get("predictions") if isinstance(answer, dict) else None
    if status != 200 or not isinstance(predictions, list) or len(predictions) != len(example["instances"]):
        return [f"POST /predict with the manifest's example answered {status}: {json.dumps(answer)[:300]}"]
    return []


def invoker(version_arn: str) -> Call:
    """A function that invokes version_arn with an HTTP API event and returns the status and parsed body."""
    client = boto3.client("lambda", config=Config(read_timeout=INVOKE_READ_TIMEOUT_SECONDS,
                                                  retries={"total_max_attempts": 1}))

    def call(method: str, path: str, body: Any) -> tuple[int, Any]:
        response = client.invoke(FunctionName=version_arn, Payload=json.dumps(http_event(method, path, body)))
        payload = json.loads(response["Payload"].read() or b"null")
        if "FunctionError" in response or not isinstance(payload, dict):
            return 0, payload  # the function raised or timed out: 0 is no HTTP status
        return payload.get("statusCode", 0), json.loads(payload.get("body") or "null")

    return call


def http_event(method: str, path: str, body: Any) -> dict[str, Any]:
    """An API Gateway HTTP API (payload format 2.0) event, as the model function receives in production."""
    now = time.time()
    route = f"{method} {path}"
    return {
        "version": "2.0",
        "routeKey": route,
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": "application/json", "user-agent": "pre-traffic-check"},
        "requestContext": {
            "accountId": "pre-traffic-check", "apiId": "pre-traffic-check", "domainName": "pre-traffic-check",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1",
                     "userAgent": "pre-traffic-check"},
            "requestId": str(uuid.uuid4()), "routeKey": route, "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)), "timeEpoch": int(now * 1000),
        },
        "body": None if body is None else json.dumps(body),
        "isBase64Encoded": False,
    }
