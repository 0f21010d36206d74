"""The physical floor of a Powertools API handler: Logger, Metrics and the HTTP resolver, one answer.

argv: bundle directory, JSON file with {"event": ..., "context": {...}}. Imports only Powertools.
"""

import json
import os
import sys
import time
import types

sys.path.append(os.path.dirname(os.path.abspath(__file__)))  # -I leaves this directory off sys.path
from probe_start import clock, inputs, started  # noqa: E402

from aws_lambda_powertools import Logger, Metrics  # noqa: E402
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver  # noqa: E402

logger = Logger(service="hello-world")
metrics = Metrics(service="hello-world", namespace="HelloWorld")
app = APIGatewayHttpResolver()


@app.post("/predict")
def predict():
    metrics.add_metric(name="Hello", unit="Count", value=1)
    return {"predictions": []}


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event, context):
    return app.resolve(event, context)


imported = time.perf_counter()
context = types.SimpleNamespace(**inputs["context"], get_remaining_time_in_millis=lambda: 30_000)
result = lambda_handler(inputs["event"], context)
answered = time.perf_counter()
print(json.dumps({
    "started": started,
    "imports": imported - clock,
    "load": 0.0,
    "first_request": answered - imported,
    "total_in_process": answered - clock,
    "status": result["statusCode"],
}))
