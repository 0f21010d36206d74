"""The local API: HTTP in, a real v2 event to the handler, HTTP out."""

from __future__ import annotations

import json
import shlex
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from handler.capture import parse_capture, read_profile
from handler.manifest import read_manifest
from toolkit.drift import counts_from_capture_file
from toolkit.local_api import CaptureFile, curl_example, make_server


@pytest.fixture
def base_url(handler_app) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, handler_app.lambda_handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def call(url: str, *, data: bytes | None = None, headers: dict | None = None, method: str = "GET"):
    request = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


def test_the_printed_curl_example_is_answered(base_url, demo_dir, demo_manifest):
    # Given the curl the server prints at start
    words = shlex.split(curl_example(base_url, demo_dir))
    body = words[words.index("-d") + 1]
    assert words[words.index("-X") + 1] == "POST" and words[words.index("-X") + 2] == f"{base_url}/predict"
    # When that body is posted
    status, headers, answer = call(f"{base_url}/predict", data=body.encode(),
                                   headers={"Content-Type": "application/json"}, method="POST")
    # Then
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert len(answer["predictions"]) == len(demo_manifest["example"]["instances"])


def test_model_and_errors_come_through_unchanged(base_url, demo_manifest):
    assert call(f"{base_url}/model")[2]["sha256"] == demo_manifest["sha256"]
    status, headers, answer = call(f"{base_url}/health", method="DELETE")
    assert (status, headers["Allow"], answer["error"]["code"]) == (405, "GET", "method_not_allowed")
    status, _, answer = call(f"{base_url}/predict", data=b"{oops", method="POST",
                             headers={"Content-Type": "application/json"})
    assert (status, answer["error"]["code"]) == (400, "invalid_json")


def test_capture_lines_are_appended_to_a_file_for_make_drift(base_url, handler_app, demo_dir, demo_manifest,
                                                             tmp_path):
    # Given the capture file the local API tees the handler's capture lines into
    path = tmp_path / "drift" / "capture.jsonl"
    tee = CaptureFile(path)
    handler_app.logger.addHandler(tee)
    try:
        # When two requests are predicted and one is rejected
        for body in (demo_manifest["example"], demo_manifest["example"], {"instances": [{}]}):
            call(f"{base_url}/predict", data=json.dumps(body).encode(), method="POST",
                 headers={"Content-Type": "application/json"})
    finally:
        handler_app.logger.removeHandler(tee)

    # Then the file holds one capture line per predicted request, which the drift report reads back
    lines = [parse_capture(text) for text in path.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 2 and all(line["mode"] == "binned" for line in lines)
    manifest = read_manifest(demo_dir)
    collected = counts_from_capture_file(path, read_profile(demo_dir, manifest))
    assert (collected.lines, collected.skipped) == (2, 0)
    assert collected.counts.rows == 2 * len(demo_manifest["example"]["instances"])
