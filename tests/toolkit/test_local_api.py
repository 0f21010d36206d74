"""The local API: HTTP in, a real v2 event to the handler, HTTP out."""

from __future__ import annotations

import json
import shlex
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from handler.capture import parse_capture, read_profile
from handler.manifest import read_manifest
from toolkit.drift import counts_from_capture_file
from toolkit import local_api
from toolkit.fuzz import run_all_checks
from toolkit.local_api import CaptureFile, curl_example, make_server


@pytest.fixture
def base_url(reinitialised_handler) -> Iterator[str]:
    app = reinitialised_handler(DOCS_ENABLED="true")  # as make run serves it
    server = make_server("127.0.0.1", 0, app.lambda_handler)
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


def raw_exchange(base_url: str, request: bytes) -> bytes:
    """Send raw bytes on one connection and read until the server closes it (or 5 s pass)."""
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as connection:
        connection.sendall(request)
        received = b""
        try:
            while chunk := connection.recv(65536):
                received += chunk
        except TimeoutError:
            pass
    return received


@pytest.mark.parametrize("method", ["HEAD", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT", "BREW"])
def test_every_method_reaches_the_handler(base_url, method):
    # Given / When a method the API does not serve on /health
    answer = raw_exchange(base_url, f"{method} /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    head, _, body = answer.partition(b"\r\n\r\n")
    # Then the handler's 405 comes back, in JSON (headers only for HEAD), never Python's 501 page
    assert head.startswith(b"HTTP/1.1 405") and b"Content-Type: application/json" in head
    assert body == b"" if method == "HEAD" else json.loads(body)["error"]["code"] == "method_not_allowed"


def test_an_unknown_verb_on_an_unknown_path_is_the_handlers_404(base_url):
    answer = raw_exchange(base_url, b"PROPFIND /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 404") and b'"not_found"' in answer


@pytest.mark.parametrize(("length", "status"), [("abc", b"400"), ("-1", b"400"), ("1, 2", b"400"),
                                                 (str(11 * 1024 * 1024), b"413")])
def test_a_bad_or_oversized_content_length_is_refused_and_the_connection_closed(base_url, length, status):
    # Given a request whose declared length is malformed or over the cap, followed by a smuggled request
    smuggled = b"GET /model HTTP/1.1\r\nHost: x\r\n\r\n"
    request = (f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               f"Content-Length: {length}\r\n\r\n").encode() + smuggled
    # When
    answer = raw_exchange(base_url, request)
    # Then one refusal, and the connection closed before the smuggled request was read
    assert answer.startswith(b"HTTP/1.1 " + status) and b"Connection: close" in answer
    assert answer.count(b"HTTP/1.1 ") == 1 and b"sha256" not in answer


def test_a_chunked_body_is_refused_and_never_read_as_a_request(base_url):
    request = (b"POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"0\r\n\r\nGET /model HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = raw_exchange(base_url, request)
    assert answer.startswith(b"HTTP/1.1 411") and answer.count(b"HTTP/1.1 ") == 1


def test_fifty_concurrent_clients_see_no_reset(base_url):
    # Given 1,000 connections from 50 threads at once
    def health(_: int) -> int:
        with urllib.request.urlopen(f"{base_url}/health", timeout=30) as response:
            return response.status

    with ThreadPoolExecutor(max_workers=50) as pool:
        statuses = list(pool.map(health, range(1000)))
    # Then every one was answered
    assert statuses == [200] * 1000


def test_a_busy_port_is_one_line_and_exit_status_2(capsys, monkeypatch):
    # Given a port something already listens on
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        for name, value in {"PORT": str(taken.getsockname()[1]), "DOCS_ENABLED": "false",
                            "POWERTOOLS_SERVICE_NAME": "model-api-test",
                            "POWERTOOLS_METRICS_NAMESPACE": "SklearnModelApiTest"}.items():
            monkeypatch.setenv(name, value)  # main() sets defaults: these keep them from outliving the test
        # When
        status = local_api.main()
    # Then
    [line] = capsys.readouterr().err.splitlines()
    assert status == 2 and line.startswith("error: 127.0.0.1:") and "already in use" in line


def test_docs_and_their_assets_are_served_with_no_external_url(base_url):
    # Given the docs page (DOCS_ENABLED, as make run sets it)
    with urllib.request.urlopen(f"{base_url}/docs", timeout=30) as response:
        page = response.read().decode()
    # Then it names no other host, and the assets it references are served
    assert "http" not in page and "//" not in page
    for asset, content_type in (("docs/swagger-ui.js", "text/javascript"), ("docs/swagger-ui.css", "text/css")):
        assert f'"{asset}"' in page
        with urllib.request.urlopen(f"{base_url}/{asset}", timeout=30) as response:
            assert response.headers["Content-Type"].startswith(content_type) and len(response.read()) > 10_000


def test_schemathesis_with_every_check_passes_against_the_local_api(base_url):
    report = run_all_checks(base_url, max_examples=10)
    assert report.passed, report.output[-3000:]
    assert report.generated > 0
