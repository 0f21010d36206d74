"""A model published to S3: verified before it loads, and every S3 fault fails closed with its cause named.

Faults S3 answers itself run on moto (missing bucket, missing key, corrupted object, a manifest pinning
another sha256). An access denial is a stubbed 403 ClientError: moto does not enforce IAM by default, and
what matters here is what botocore raises for S3's 403, which the stub reproduces exactly. Faults of the
network (slow, unreachable, 5xx, a dropped connection, a wrong S3 checksum) run against a local HTTP endpoint.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import botocore.session
import pytest
from botocore.stub import Stubber

import handler.model_source
from handler.config import S3ModelLocation
from handler.errors import ModelLoadError
from handler.loading import fetch_published_model
from tests.handler.conftest import FakeS3, s3_environment
from tests.helpers import BUCKET, REGION
from tests.models import demo
from tests.helpers import PROJECT_ROOT, response_json


def stubbed_client_error(monkeypatch: pytest.MonkeyPatch, code: str, status: int) -> None:
    """Make the handler's S3 client answer every GetObject with S3's error `code` and HTTP `status`."""
    client = botocore.session.get_session().create_client("s3", region_name=REGION)
    stubber = Stubber(client)
    stubber.add_client_error("get_object", service_error_code=code, http_status_code=status)
    stubber.activate()
    monkeypatch.setattr(handler.model_source, "s3_client", lambda: client)


def corrupt_the_published_artifact(s3_client: Any, location: Any) -> None:
    key = location.key_prefix + "model.onnx"
    data = bytearray(s3_client.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    data[len(data) // 2] ^= 0x01
    s3_client.put_object(Bucket=BUCKET, Key=key, Body=bytes(data))


def delete_the_published_profile(s3_client: Any, location: Any) -> None:
    s3_client.delete_object(Bucket=BUCKET, Key=location.key_prefix + "profile.json")


def replace_the_published_manifest(s3_client: Any, location: Any, body: bytes) -> None:
    s3_client.put_object(Bucket=BUCKET, Key=location.key_prefix + "manifest.json", Body=body)


def reordered_manifest() -> bytes:
    """The demo manifest with its features reordered: the same artifact sha256, other predictions."""
    manifest = json.loads((demo().model_dir / "manifest.json").read_text())
    return json.dumps({**manifest, "features": manifest["features"][::-1]}).encode()


# fault -> (what breaks S3 for the published demo model, environment overrides, the cause logged)
MOTO_FAULTS: dict[str, tuple[Callable[..., Any], Callable[[Any], dict[str, str]], str]] = {
    "bucket missing": (lambda s3, p, m: None, lambda p: {"MODEL_S3_BUCKET": "no-such-bucket"}, "s3_bucket_missing"),
    "key missing": (lambda s3, p, m: None, lambda p: {"MODEL_S3_PREFIX": "models/customer-churn/9.9.9/"},
                    "s3_object_missing"),
    "access denied": (lambda s3, p, m: stubbed_client_error(m, "AccessDenied", 403), lambda p: {}, "s3_access_denied"),
    "request refused": (lambda s3, p, m: stubbed_client_error(m, "InvalidRequest", 400), lambda p: {},
                        "s3_request_failed"),
    "object corrupted": (lambda s3, p, m: corrupt_the_published_artifact(s3, p), lambda p: {}, "sha256_mismatch"),
    "deployment pins another sha256": (lambda s3, p, m: None, lambda p: {"MODEL_SHA256": "a" * 64},
                                       "sha256_mismatch"),
    "manifest not JSON, pinned so": (lambda s3, p, m: replace_the_published_manifest(s3, p, b"{"),
                                     lambda p: {"MODEL_MANIFEST_SHA256": hashlib.sha256(b"{").hexdigest()},
                                     "manifest_invalid"),
    "manifest rewritten in the bucket": (lambda s3, p, m: replace_the_published_manifest(s3, p, reordered_manifest()),
                                         lambda p: {}, "sha256_mismatch"),
    "deployment pins another manifest": (lambda s3, p, m: None, lambda p: {"MODEL_MANIFEST_SHA256": "b" * 64},
                                         "sha256_mismatch"),
}
NETWORK_FAULTS: dict[str, tuple[Callable[[FakeS3], None], str]] = {
    "S3 slow (read timeout)": (lambda fake: setattr(fake, "delay_seconds", 1.0), "s3_unreachable"),
    "S3 overloaded (503)": (lambda fake: setattr(fake, "error", (503, "SlowDown")), "s3_unreachable"),
    "connection dropped mid-download": (lambda fake: fake.cut_short.add(f"{BUCKET}/models/demo/1/model.onnx"),
                                        "s3_unreachable"),
    "bytes fail S3's checksum": (lambda fake: fake.wrong_checksum.add(f"{BUCKET}/models/demo/1/model.onnx"),
                                 "sha256_mismatch"),
}


def assert_fails_closed(app: Any, cause: str, logs: list[dict[str, Any]], output: str, api_event: Any,
                        lambda_context: Any, demo_manifest: dict[str, Any]) -> None:
    """One error line naming the cause, the failure metric, and a 503 from every route that says nothing more."""
    errors = [record for record in logs if record["level"] == "ERROR"]
    assert [record["cause"] for record in errors] == [cause]
    assert errors[0]["message"].startswith(f"Model load failed ({cause})")
    assert '"ModelLoadFailure":[1.0]' in output
    for event in (api_event(body=demo_manifest["example"]), api_event("health"), api_event("health", path="/model")):
        result = app.lambda_handler(event, lambda_context)
        assert response_json(result)[0] == 503
        assert json.loads(result["body"])["error"]["code"] == "model_unavailable"
        assert cause not in result["body"] and "s3" not in result["body"].lower()


def test_a_published_model_is_fetched_verified_and_served(published, temp_root, reinitialised_handler, api_event,
                                                          lambda_context, demo_manifest, handler_logs):
    # Given the demo model published with toolkit.publish
    # When a new container initialises with the location the stack sets
    app = reinitialised_handler(**s3_environment(published))
    # Then it answers from the downloaded copy, which holds the three pinned files and nothing half-written
    status, body = response_json(app.lambda_handler(api_event(body=demo_manifest["example"]), lambda_context))
    assert status == 200 and len(body["predictions"]) == len(demo_manifest["example"]["instances"])
    [model_dir] = temp_root.iterdir()
    assert sorted(path.name for path in model_dir.iterdir()) == ["manifest.json", "model.onnx", "profile.json"]
    # And it captures against the published profile
    assert app.CAPTURE is not None and any('"model-input"' in json.dumps(record) for record in handler_logs())
    loaded = [record for record in handler_logs() if record["message"] == "Model loaded"]
    assert [record["sha256"] for record in loaded] == [published.sha256]


@pytest.mark.parametrize("fault", MOTO_FAULTS)
def test_an_s3_fault_fails_closed_with_its_cause(fault, published, s3_client, temp_root, reinitialised_handler,
                                                 monkeypatch, api_event, lambda_context, demo_manifest, handler_logs,
                                                 capsys):
    # Given the published demo model, with one fault injected
    inject, overrides, cause = MOTO_FAULTS[fault]
    inject(s3_client, published, monkeypatch)
    # When a new container initialises on it
    app = reinitialised_handler(**{**s3_environment(published), **overrides(published)})
    # Then it fails closed, naming the cause, and leaves nothing in the temp dir
    assert_fails_closed(app, cause, handler_logs(), capsys.readouterr().out, api_event, lambda_context, demo_manifest)
    assert list(temp_root.iterdir()) == []


def test_a_profile_s3_cannot_give_disables_capture_but_the_model_serves(
        published, s3_client, temp_root, reinitialised_handler, api_event, lambda_context, demo_manifest,
        handler_logs, capsys):
    # Given a publication whose pinned profile is gone (or that the function's role may not read)
    delete_the_published_profile(s3_client, published)
    # When a new container initialises on it
    app = reinitialised_handler(**s3_environment(published))
    # Then capture is off, the warning carries S3's cause, and the model answers
    (warning,) = [record for record in handler_logs() if record["level"] == "WARNING"]
    assert warning["cause"] == "profile_unavailable" and "s3_object_missing: s3://" in warning["message"]
    assert '"CaptureDisabled":[1.0]' in capsys.readouterr().out
    assert response_json(app.lambda_handler(api_event(body=demo_manifest["example"]), lambda_context))[0] == 200


def test_an_altered_published_profile_disables_capture_but_the_model_serves(
        published, s3_client, temp_root, reinitialised_handler, api_event, lambda_context, demo_manifest,
        handler_logs):
    # Given a published profile overwritten with other bytes
    s3_client.put_object(Bucket=BUCKET, Key=published.key_prefix + "profile.json", Body=b"{}")
    # When a new container initialises on it
    app = reinitialised_handler(**s3_environment(published))
    # Then the profile fails its pin, capture is off with the cause named, and the model answers
    (warning,) = [record for record in handler_logs() if record["level"] == "WARNING"]
    assert warning["cause"] == "profile_invalid" and "the manifest pins" in warning["message"]
    assert response_json(app.lambda_handler(api_event(body=demo_manifest["example"]), lambda_context))[0] == 200


@pytest.mark.parametrize("fault", NETWORK_FAULTS)
def test_a_network_fault_fails_closed_within_the_timeouts(fault, fake_s3, fast_timeouts, temp_root,
                                                          reinitialised_handler, api_event, lambda_context,
                                                          demo_manifest, handler_logs, capsys):
    # Given an S3 endpoint serving the demo model, with one fault injected
    location = fake_s3.publish_demo()
    inject, cause = NETWORK_FAULTS[fault]
    inject(fake_s3)
    # When a new container initialises on it
    started = time.monotonic()
    app = reinitialised_handler(**s3_environment(location))
    elapsed = time.monotonic() - started
    # Then it fails closed with the cause, within the bounded attempts, leaving nothing behind
    assert_fails_closed(app, cause, handler_logs(), capsys.readouterr().out, api_event, lambda_context, demo_manifest)
    assert list(temp_root.iterdir()) == []
    assert len(fake_s3.requests) <= 2 * handler.model_source.MAX_ATTEMPTS  # manifest + artifact, each bounded
    assert elapsed < 5


def test_a_slow_s3_is_retried_exactly_max_attempts_times(fake_s3, fast_timeouts, temp_root):
    # Given an S3 endpoint that answers later than the read timeout
    location = fake_s3.publish_demo()
    fake_s3.delay_seconds = 1.0
    # When
    with pytest.raises(ModelLoadError) as raised:
        fetch_published_model(location)
    # Then the manifest was asked for MAX_ATTEMPTS times and the artifact never
    assert raised.value.cause == "s3_unreachable"
    assert fake_s3.requests == [f"{BUCKET}/models/demo/1/manifest.json"] * handler.model_source.MAX_ATTEMPTS


def test_an_unreachable_endpoint_fails_closed_as_unreachable(aws_environment, fast_timeouts, temp_root, monkeypatch):
    # Given an endpoint where nothing listens
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")
    # When
    with pytest.raises(ModelLoadError) as raised:
        fetch_published_model(S3ModelLocation(BUCKET, "models/demo/1/", "a" * 64, "b" * 64))
    # Then
    assert raised.value.cause == "s3_unreachable"
    assert list(temp_root.iterdir()) == []


@pytest.mark.slow
def test_a_bundled_model_never_imports_the_aws_sdk():
    # Given a fresh interpreter loading the handler on the bundled demo model (Powertools imports bare botocore)
    probe = ("import sys, handler.app; assert handler.app.MODEL is not None; "
             "print(sorted(m for m in sys.modules if m == 'boto3' or m.startswith(('boto3.', 'botocore.'))))")
    # When
    completed = subprocess.run([sys.executable, "-c", probe], cwd=PROJECT_ROOT, capture_output=True, text=True,
                               timeout=60, check=True)
    # Then neither boto3 nor any botocore client machinery was imported
    assert completed.stdout.splitlines()[-1] == "[]"
