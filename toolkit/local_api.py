"""Serve the Lambda handler on localhost as API Gateway would: `python -m toolkit.local_api`.

Each HTTP request becomes a real HTTP API v2 event; the handler's result becomes the HTTP
response. PORT (default 3000) and HOST (default 127.0.0.1) pick the address. Every capture line the
handler logs is also appended to drift/capture.jsonl, which `make drift` reports on.

As strict as an HTTP API: every method reaches the handler (which answers 404 or 405 in JSON); a malformed
Content-Length is a 400, a chunked body a 411 and a body over API Gateway's 10 MB payload limit a 413, each
answered without reading the body and with the connection closed (what follows is never read as a request).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shlex
import sys
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

from handler.capture import CAPTURE_TYPE, capture_text
from toolkit.events import LambdaContext, decode_response, http_api_event

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
MAX_LOCAL_BODY = 10 * 1024 * 1024  # API Gateway HTTP API's payload limit; the handler enforces its own, lower cap
LISTEN_BACKLOG = 128  # connections waiting to be accepted: 50 concurrent clients must never see a reset
CAPTURE_FILE = Path("drift") / "capture.jsonl"
EXIT_PORT_BUSY = 2


class CaptureFile(logging.Handler):
    """A logging handler appending each capture line the handler logs to a JSON-lines file (others are ignored)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def emit(self, record: logging.LogRecord) -> None:
        line = record.msg
        if isinstance(line, dict) and line.get("capture") == CAPTURE_TYPE:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as stream:  # handle() holds the lock: one writer at a time
                stream.write(capture_text(line) + "\n")


class LocalApiServer(ThreadingHTTPServer):
    """A threading HTTP server with a listen backlog for real concurrency (socketserver's default is 5)."""

    request_queue_size = LISTEN_BACKLOG
    daemon_threads = True


def make_server(host: str, port: int, lambda_handler: Handler, *, quiet: bool = False) -> LocalApiServer:
    """An HTTP server on host:port that forwards every request, whatever its method, to lambda_handler."""

    class ApiGatewayProxy(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def __getattr__(self, name: str) -> Any:
            # BaseHTTPRequestHandler looks up do_<METHOD>: every method, known or not, is forwarded.
            if name.startswith("do_"):
                return self._forward
            raise AttributeError(name)

        def _forward(self) -> None:
            length = self._body_length()
            if length is None:
                return
            body = self.rfile.read(length) if length else None
            url = urlsplit(self.path)
            event = http_api_event(self.command, url.path, body=body, headers=dict(self.headers.items()),
                                   query=url.query, source_ip=self.client_address[0])
            status, headers, payload = decode_response(lambda_handler(event, LambdaContext()))
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":  # a HEAD answer has the headers of the body it does not send
                self.wfile.write(payload)

        def _body_length(self) -> int | None:
            """The body's length, or None once a refusal is sent (the body is then never read)."""
            if self.headers.get("Transfer-Encoding"):
                return self._refuse(HTTPStatus.LENGTH_REQUIRED, "Length Required")
            declared = self.headers.get_all("Content-Length") or ["0"]
            if len(set(declared)) > 1 or not declared[0].strip().isdigit():
                return self._refuse(HTTPStatus.BAD_REQUEST, "Bad Request")
            length = int(declared[0])
            if length > MAX_LOCAL_BODY:
                return self._refuse(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "Request Entity Too Large")
            return length

        def _refuse(self, status: HTTPStatus, message: str) -> None:
            """Answer as API Gateway does before invoking the function, and close the connection."""
            payload = json.dumps({"message": message}).encode()
            self.close_connection = True
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(payload)
            return None

        def log_message(self, format: str, *args: Any) -> None:
            if not quiet:
                sys.stderr.write(f"{self.address_string()} {format % args}\n")

    return LocalApiServer((host, port), ApiGatewayProxy)


def curl_example(base_url: str, model_dir: Path) -> str:
    """A ready-to-paste curl posting the manifest's example to /predict."""
    example = json.loads((model_dir / "manifest.json").read_text(encoding="utf-8"))["example"]
    return (f"curl -s -X POST {base_url}/predict -H 'Content-Type: application/json' "
            f"-d {shlex.quote(json.dumps(example))}")


def main() -> int:
    os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "SklearnModelApi-local")
    os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "model-api-local")
    os.environ.setdefault("DOCS_ENABLED", "true")
    from handler.app import CAPTURE, MODEL, lambda_handler, logger  # init happens here, as in Lambda
    from handler.config import DEFAULT_MODEL_DIR

    host, port = os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "3000"))
    try:
        server = make_server(host, port, lambda_handler)
    except OSError as error:
        if error.errno != errno.EADDRINUSE:
            raise
        print(f"error: {host}:{port} is already in use (another `make run`?); "
              f"choose another port: make run PORT={port + 1}", file=sys.stderr)
        return EXIT_PORT_BUSY
    logger.addHandler(CaptureFile(CAPTURE_FILE))
    base_url = f"http://{host}:{server.server_address[1]}"
    if MODEL is None:
        print("The model failed to load (see the log line above); every route answers 503.", file=sys.stderr)
    print(f"Serving the model API on {base_url} (Ctrl-C stops it). Try:\n")
    print(f"  {curl_example(base_url, Path(os.environ.get('MODEL_DIR') or DEFAULT_MODEL_DIR))}\n")
    print(f"  curl -s {base_url}/model\n")
    if os.environ["DOCS_ENABLED"] == "true":
        print(f"Interactive docs: {base_url}/docs (the contract: {base_url}/openapi.json)\n")
    if CAPTURE is not None:
        print(f"Inputs are captured to {CAPTURE_FILE} (binned unless CAPTURE_MODE says otherwise): "
              "`make drift` compares them with the training profile.\n")
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("\nStopped.")
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
