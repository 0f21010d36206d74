"""Fixtures for a model in S3: a moto bucket with the demo model published, and a fake S3 endpoint that misbehaves."""

from __future__ import annotations

import base64
import hashlib
import http.server
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import handler.model_source
from handler.config import S3ModelLocation
from tests.helpers import BUCKET
from tests.models import demo
from toolkit.publish import Publication

@pytest.fixture
def temp_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The temp dir the handler downloads into (/tmp on Lambda), empty, so tests can see what it leaves."""
    root = tmp_path / "lambda-tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


@pytest.fixture
def fast_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Timeouts of a fraction of a second, so a stalled S3 fails the test quickly; attempts stay as shipped."""
    monkeypatch.setattr(handler.model_source, "CONNECT_TIMEOUT_SECONDS", 0.2)
    monkeypatch.setattr(handler.model_source, "READ_TIMEOUT_SECONDS", 0.2)


def s3_environment(location: S3ModelLocation | Publication) -> dict[str, str]:
    """The variables the stack sets on the function for a published model."""
    bucket = location.bucket
    prefix = location.prefix if isinstance(location, S3ModelLocation) else location.key_prefix
    return {"MODEL_S3_BUCKET": bucket, "MODEL_S3_PREFIX": prefix, "MODEL_SHA256": location.sha256,
            "MODEL_MANIFEST_SHA256": location.manifest_sha256}


@dataclass
class FakeS3:
    """Answers path-style S3 GETs from `objects` ("bucket/key" -> bytes), as slowly or as badly as asked."""

    objects: dict[str, bytes] = field(default_factory=dict)
    delay_seconds: float = 0.0
    error: tuple[int, str] | None = None  # (status, code) for every request
    wrong_checksum: set[str] = field(default_factory=set)  # keys sent with another object's checksum
    cut_short: set[str] = field(default_factory=set)  # keys whose connection drops mid-body
    requests: list[str] = field(default_factory=list)
    url: str = ""

    def publish_demo(self, bucket: str = BUCKET, prefix: str = "models/demo/1/") -> S3ModelLocation:
        """Serve the demo model's manifest, artifact and profile under prefix; its location."""
        model_dir = demo().model_dir
        location = S3ModelLocation(bucket, prefix, hashlib.sha256((model_dir / "model.onnx").read_bytes()).hexdigest(),
                                   hashlib.sha256((model_dir / "manifest.json").read_bytes()).hexdigest())
        for name in ("manifest.json", "model.onnx", "profile.json"):
            self.objects[f"{bucket}/{location.key(name)}"] = (model_dir / name).read_bytes()
        return location


@pytest.fixture
def fake_s3(aws_environment: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeS3]:
    """A local HTTP endpoint on 127.0.0.1 that botocore uses as S3 (AWS_ENDPOINT_URL_S3)."""
    fake = FakeS3()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _fake_s3_handler(fake))
    server.daemon_threads = True
    server.handle_error = lambda *args: None  # a client that gave up closes the socket under a slow answer
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", fake.url)
    yield fake
    server.shutdown()
    server.server_close()


def _fake_s3_handler(fake: FakeS3) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            path = self.path.lstrip("/").split("?")[0]
            fake.requests.append(path)
            time.sleep(fake.delay_seconds)
            body = fake.objects.get(path)
            if fake.error or body is None:
                status, code = fake.error or (404, "NoSuchKey")
                return self._answer(status, f"<Error><Code>{code}</Code><Message>{code}</Message></Error>".encode(),
                                    {"Content-Type": "application/xml"})
            checksum = hashlib.sha256(b"other bytes" if path in fake.wrong_checksum else body).digest()
            headers = {"Content-Type": "application/octet-stream", "ETag": '"etag"',
                       "x-amz-checksum-sha256": base64.b64encode(checksum).decode()}
            self._answer(200, body, headers, send=body[:len(body) // 2] if path in fake.cut_short else body)

        def _answer(self, status: int, body: bytes, headers: dict[str, str], send: bytes | None = None) -> None:
            self.send_response(status)
            for name, value in {**headers, "Content-Length": str(len(body))}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body if send is None else send)

        def log_message(self, *args: Any) -> None:
            """Keep the test output quiet."""

    return Handler
