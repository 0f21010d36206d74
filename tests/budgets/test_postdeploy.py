"""The post-deploy check: REPORT lines from CloudWatch Logs (moto) against the budgets."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
from moto import mock_aws

from toolkit.budgets import load_budgets
from toolkit.postdeploy import checks, fetch_reports, main, parse_reports, summarise

LOG_GROUP = "/aws/lambda/model-api-dev"
COLD = ("REPORT RequestId: 8f5a1b2c-0000-4000-8000-000000000001\tDuration: 31.52 ms\tBilled Duration: 1932 ms\t"
        "Memory Size: 1769 MB\tMax Memory Used: 241 MB\tInit Duration: 1899.87 ms\t\n"
        "XRAY TraceId: 1-6745b2c0-0123456789abcdef01234567\tSegmentId: 0123456789abcdef\tSampled: true")
WARM = ("REPORT RequestId: 8f5a1b2c-0000-4000-8000-00000000000{n}\tDuration: {ms} ms\tBilled Duration: 7 ms\t"
        "Memory Size: 1769 MB\tMax Memory Used: 243 MB\t")


def test_report_lines_are_parsed_and_other_lines_ignored():
    invocations = parse_reports([COLD, "START RequestId: x Version: 3", WARM.format(n=2, ms="6.10")])
    assert [(i.cold, i.duration_ms, i.init_ms, i.max_memory_mb) for i in invocations] == [
        (True, 31.52, 1899.87, 241), (False, 6.10, None, 243)]


def test_a_snapstart_restore_counts_as_a_cold_start():
    restored = ("REPORT RequestId: 8f5a1b2c-0000-4000-8000-000000000009\tDuration: 40.20 ms\tBilled Duration: 41 ms\t"
                "Memory Size: 1769 MB\tMax Memory Used: 250 MB\tRestore Duration: 412.34 ms\t"
                "Billed Restore Duration: 180 ms\t")
    [invocation] = parse_reports([restored])
    assert (invocation.cold, invocation.init_ms, invocation.duration_ms) == (True, 412.34, 40.20)


def test_summary_splits_cold_from_warm_and_checks_budgets():
    summary = summarise(parse_reports([COLD] + [WARM.format(n=n, ms=f"{5 + n}.0") for n in range(2, 9)]))
    assert summary.cold_total.count == 1 and summary.cold_total.p50 == pytest.approx(1931.39)
    assert summary.warm.count == 7 and summary.warm.max == 13.0
    assert (summary.max_memory_mb, summary.memory_size_mb) == (243, 1769)
    assert all(check.ok for check in checks(summary, load_budgets()))


@pytest.fixture
def aws(monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "eu-west-1"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        logs = boto3.client("logs", region_name="eu-west-1")
        logs.create_log_group(logGroupName=LOG_GROUP)
        logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName="2026/11/26/[$LATEST]abc")
        yield logs


def put(logs, *messages):
    now = int(time.time() * 1000)
    logs.put_log_events(logGroupName=LOG_GROUP, logStreamName="2026/11/26/[$LATEST]abc",
                        logEvents=[{"timestamp": now + i, "message": m} for i, m in enumerate(messages)])


def test_report_lines_are_read_back_from_the_log_group(aws):
    put(aws, '{"level":"INFO","message":"Model loaded"}', COLD, WARM.format(n=2, ms="7.25"))
    invocations = fetch_reports(aws, LOG_GROUP, int(time.time() * 1000) - 60_000, expected=2, wait_s=0)
    assert [i.cold for i in invocations] == [True, False]


@pytest.fixture
def fake_api():
    """A local stand-in for the deployed API that answers every /predict with 200."""
    calls = []

    class Api(BaseHTTPRequestHandler):
        def do_POST(self):
            sent = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            calls.append((self.path, self.headers.get("Authorization", ""), sent))
            body = json.dumps({"predictions": []}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Api)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", calls
    server.shutdown()
    server.server_close()


def test_the_command_calls_signed_then_reports_against_budgets(aws, fake_api, capsys):
    # Given a deployed API (stand-in) whose function already logged a cold and a warm invocation
    url, calls = fake_api
    put(aws, COLD, WARM.format(n=2, ms="6.5"), WARM.format(n=3, ms="7.5"))
    # When
    code = main(["--calls", "3", "--url", url, "--region", "eu-west-1", "--log-group", LOG_GROUP])
    # Then every call was SigV4-signed, and the figures were checked
    output = capsys.readouterr().out
    assert code == 0
    assert len(calls) == 3 and all(auth.startswith("AWS4-HMAC-SHA256 Credential=")
                                and "/eu-west-1/execute-api/aws4_request" in auth for _, auth, _ in calls)
    # with one instance each, as the 1-row budgets it is checked against assume
    assert all(path == "/predict" and len(sent["instances"]) == 1 for path, _, sent in calls)
    assert "cold starts: 1, Init Duration + Duration p50 1.931 s" in output
    assert "ok   deployed warm 1-row p99 (Duration)" in output
