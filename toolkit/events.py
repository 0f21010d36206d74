"""API Gateway HTTP API (payload format 2.0) events, shaped as API Gateway sends them.

Build-time only: the local API, the tests and the benchmark use it to drive the handler
exactly as Lambda would.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

LOCAL_ACCOUNT = "123456789012"


def http_api_event(method: str, path: str, *, body: str | bytes | None = None,
                   headers: dict[str, str] | None = None, query: str = "",
                   source_ip: str = "127.0.0.1", stage: str = "$default") -> dict[str, Any]:
    """One v2 event; binary or non-UTF-8 bodies are base64-encoded as API Gateway does."""
    lowered = {name.lower(): value for name, value in (headers or {}).items()}
    is_base64 = isinstance(body, bytes)
    if is_base64:
        try:
            body, is_base64 = body.decode("utf-8"), False
        except UnicodeDecodeError:
            body = base64.b64encode(body).decode("ascii")
    now = time.time()
    raw_path = path if stage == "$default" else f"/{stage}{path}"
    return {
        "version": "2.0",
        "routeKey": f"{method} {path}",
        "rawPath": raw_path,
        "rawQueryString": query,
        "headers": lowered,
        "requestContext": {
            "accountId": LOCAL_ACCOUNT,
            "apiId": "local",
            "domainName": "localhost",
            "domainPrefix": "localhost",
            "http": {"method": method, "path": raw_path, "protocol": "HTTP/1.1",
                     "sourceIp": source_ip, "userAgent": lowered.get("user-agent", "")},
            "requestId": str(uuid.uuid4()),
            "routeKey": f"{method} {path}",
            "stage": stage,
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "body": body,
        "isBase64Encoded": is_base64,
    }


def predict_event(payload: Any) -> dict[str, Any]:
    """A `POST /predict` event carrying payload as JSON."""
    return http_api_event("POST", "/predict", body=json.dumps(payload),
                          headers={"Content-Type": "application/json"})


@dataclass(frozen=True)
class LambdaContext:
    """The parts of Lambda's context object the handler and Powertools read."""

    function_name: str = "model-api-local"
    memory_limit_in_mb: int = 1769
    invoked_function_arn: str = f"arn:aws:lambda:us-east-1:{LOCAL_ACCOUNT}:function:model-api-local"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"
    function_version: str = "$LATEST"
    log_group_name: str = "/aws/lambda/model-api-local"
    log_stream_name: str = "local"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def decode_response(result: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    """A handler result → (status, headers, body bytes), undoing base64 where flagged."""
    body = result.get("body") or ""
    raw = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode("utf-8")
    return int(result["statusCode"]), dict(result.get("headers") or {}), raw
