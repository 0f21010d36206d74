"""The SigV4 client: signatures from fake credentials, and a real HTTP round trip to a local server."""

from __future__ import annotations

import datetime
import http.server
import json
import re
import threading
from collections.abc import Iterator
from typing import Any

import botocore.auth
import pytest
from botocore.credentials import Credentials
from botocore.stub import Stubber

from toolkit import invoke

FAKE = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
SIGNED_AT = datetime.datetime(2026, 11, 26, 12, 0, 0, tzinfo=datetime.timezone.utc)


@pytest.fixture
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: SIGNED_AT)


def test_a_post_is_signed_for_execute_api_in_the_region_with_the_body_hashed(fixed_clock):
    # Given / When
    request = invoke.signed_request("https://abc123.execute-api.eu-west-1.amazonaws.com/predict",
                                     body=b'{"instances": []}', credentials=FAKE, region="eu-west-1")

    # Then
    authorization = request.headers["Authorization"]
    assert re.fullmatch(
        r"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261126/eu-west-1/execute-api/aws4_request, "
        r"SignedHeaders=content-type;host;x-amz-date, Signature=[0-9a-f]{64}", authorization)
    assert request.method == "POST"
    assert request.headers["X-Amz-Date"] == "20261126T120000Z"


def test_the_signature_covers_the_body_and_is_deterministic(fixed_clock):
    # Given
    def signature(body: bytes) -> str:
        request = invoke.signed_request("https://abc123.execute-api.eu-west-1.amazonaws.com/predict",
                                        body=body, credentials=FAKE, region="eu-west-1")
        return request.headers["Authorization"].rsplit("Signature=", 1)[1]

    # When / Then
    assert signature(b"{}") == signature(b"{}")
    assert signature(b"{}") != signature(b'{"instances": []}')


def test_temporary_credentials_send_and_sign_their_session_token(fixed_clock):
    # Given / When
    request = invoke.signed_request("https://abc123.execute-api.eu-west-1.amazonaws.com/health", body=None,
                                    credentials=Credentials("ASIAEXAMPLE", "secret", "session-token"),
                                    region="eu-west-1")

    # Then
    assert request.method == "GET"
    assert request.headers["X-Amz-Security-Token"] == "session-token"
    assert "SignedHeaders=host;x-amz-date;x-amz-security-token," in request.headers["Authorization"]


@pytest.mark.parametrize(("url", "region"), [
    ("https://abc123.execute-api.eu-west-1.amazonaws.com/", "eu-west-1"),
    ("https://abc123.execute-api.us-gov-west-1.amazonaws.com", "us-gov-west-1"),
    ("http://127.0.0.1:3000", None),
])
def test_region_comes_from_the_api_url(url: str, region: str | None):
    assert invoke.region_from_url(url) == region


def test_stack_output_reads_the_api_url_output():
    # Given
    session = invoke.botocore.session.Session()
    client = session.create_client("cloudformation", region_name="eu-west-1", aws_access_key_id="a",
                                   aws_secret_access_key="b")
    outputs = [{"OutputKey": "ApiUrl", "OutputValue": "https://abc123.execute-api.eu-west-1.amazonaws.com/"}]
    stack = {"StackName": "model-api-dev", "CreationTime": SIGNED_AT, "StackStatus": "CREATE_COMPLETE",
             "Outputs": outputs}

    # When
    with Stubber(client) as stubber:
        stubber.add_response("describe_stacks", {"Stacks": [stack]}, {"StackName": "model-api-dev"})
        session.create_client = lambda *args, **kwargs: client
        url = invoke.stack_output(session, "eu-west-1", "model-api-dev")

    # Then
    assert url == "https://abc123.execute-api.eu-west-1.amazonaws.com/"


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Answers like the model API and remembers what it was sent."""

    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append({"path": self.path, "headers": dict(self.headers), "body": body})
        reply = json.dumps({"predictions": [{"label": "no"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: Any) -> None:
        """Keep the test output quiet."""


@pytest.fixture
def local_api() -> Iterator[str]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    _Recorder.received = []
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture
def fake_environment_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def test_main_posts_the_signed_file_and_prints_status_and_body(local_api, tmp_path, fake_environment_credentials,
                                                               capsys):
    # Given
    request_file = tmp_path / "request.json"
    request_file.write_text('{"instances": [{"tenure_months": 3}]}', encoding="utf-8")

    # When
    status = invoke.main(["--url", local_api, "--path", "/predict", "--file", str(request_file),
                          "--region", "eu-west-1"])

    # Then
    assert status == 0
    [received] = _Recorder.received
    assert received["path"] == "/predict"
    assert received["body"] == request_file.read_bytes()
    assert received["headers"]["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert capsys.readouterr().out.splitlines() == ["200", '{"predictions": [{"label": "no"}]}']


def test_predict_without_a_file_sends_the_manifest_example(local_api, fake_environment_credentials, shipped_manifest):
    # Given: no --file

    # When
    invoke.main(["--url", local_api, "--region", "eu-west-1"])

    # Then
    assert json.loads(_Recorder.received[0]["body"]) == shipped_manifest["example"]


def test_default_stack_name_follows_cdk_json():
    assert invoke.default_stack_name() == "model-api-dev"
