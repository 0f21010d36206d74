"""A fresh Lambda container's first request, timed by phase.

argv: bundle directory, JSON file with {"event": ..., "context": {...}}.
"""

import json
import os
import sys
import time
import types

sys.path.append(os.path.dirname(os.path.abspath(__file__)))  # -I leaves this directory off sys.path
from probe_start import clock, inputs, started  # noqa: E402

import handler.loading as loading  # noqa: E402

loaded = loading.load_model_from_environment
load_seconds = []


def timed_load(environ):
    """The handler's init, timed: read manifest, verify sha256, load the model."""
    begin = time.perf_counter()
    try:
        return loaded(environ)
    finally:
        load_seconds.append(time.perf_counter() - begin)


loading.load_model_from_environment = timed_load
import handler.app as app  # noqa: E402  (module scope is Lambda's init)

imported = time.perf_counter()
context = types.SimpleNamespace(**inputs["context"], get_remaining_time_in_millis=lambda: 30_000)
result = app.lambda_handler(inputs["event"], context)
answered = time.perf_counter()
print(json.dumps({
    "started": started,
    "imports": imported - clock - load_seconds[0],
    "load": load_seconds[0],
    "first_request": answered - imported,
    "total_in_process": answered - clock,
    "status": result["statusCode"],
}))
