"""Warm latency through lambda_handler, one container, many invocations.

argv: bundle directory, JSON file with {"events": {size: event}, "context": {...}, "iterations"}.
"""

import json
import os
import sys
import time
import types

sys.path.append(os.path.dirname(os.path.abspath(__file__)))  # -I leaves this directory off sys.path
from probe_start import inputs  # noqa: E402

# Logs and metrics are written as in Lambda, to a sink instead of CloudWatch: their cost is measured.
# (Disabling metrics would not do: Powertools then keeps up to 100 values per metric between flushes.)
result_stream, sys.stdout = sys.stdout, open(os.devnull, "w")

import handler.app as app  # noqa: E402

context = types.SimpleNamespace(**inputs["context"], get_remaining_time_in_millis=lambda: 30_000)
latencies = {}
for size, event in inputs["events"].items():
    assert app.lambda_handler(event, context)["statusCode"] == 200
    measured = []
    for _ in range(inputs["iterations"]):
        begin = time.perf_counter()
        app.lambda_handler(event, context)
        measured.append(time.perf_counter() - begin)
    latencies[size] = measured
print(json.dumps({"latencies": latencies}), file=result_stream)
