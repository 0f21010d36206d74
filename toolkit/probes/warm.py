"""Warm latency: lambda_handler and the raw scikit-learn model alternated, one container, many invocations.

argv: bundle directory, JSON file with {"events": {size: event}, "context": {...}, "iterations",
"sklearn_bundle", "sklearn_model_dir", "sklearn_artifact"}. The scikit-learn bundle comes after the
handler's bundle on sys.path (an ONNX bundle holds no scikit-learn); the raw model's input is what the
scikit-learn predictor builds from the batch the handler's validator returns, built before timing.
"""

import json
import os
import sys
import time
import types
from pathlib import Path

sys.path.append(os.path.dirname(os.path.abspath(__file__)))  # -I leaves this directory off sys.path
from probe_start import inputs  # noqa: E402

sys.path.append(inputs["sklearn_bundle"])
# Logs and metrics are written as in Lambda, to a sink instead of CloudWatch: their cost is measured.
# (Disabling metrics would not do: Powertools then keeps up to 100 values per metric between flushes.)
result_stream, sys.stdout = sys.stdout, open(os.devnull, "w")

import handler.app as app  # noqa: E402
import joblib  # noqa: E402
from handler.manifest import read_manifest  # noqa: E402
from handler.predictors.sklearn import SklearnPredictor  # noqa: E402

reference = read_manifest(Path(inputs["sklearn_model_dir"]))
raw_model = joblib.load(Path(inputs["sklearn_model_dir"], inputs["sklearn_artifact"]))
reference_predictor = SklearnPredictor(reference, raw_model)
raw_call = raw_model.predict_proba if reference.task == "classification" else raw_model.predict

context = types.SimpleNamespace(**inputs["context"], get_remaining_time_in_millis=lambda: 30_000)
handler_latencies, raw_latencies = {}, {}
for size, event in inputs["events"].items():
    batch = app.MODEL.validator.validate(json.loads(event["body"]))
    features = reference_predictor.model_input(batch)
    assert app.lambda_handler(event, context)["statusCode"] == 200
    raw_call(features)
    handler_times, raw_times = [], []
    for _ in range(inputs["iterations"]):
        begin = time.perf_counter()
        app.lambda_handler(event, context)
        between = time.perf_counter()
        raw_call(features)
        raw_times.append(time.perf_counter() - between)
        handler_times.append(between - begin)
    handler_latencies[size], raw_latencies[size] = handler_times, raw_times
print(json.dumps({"handler": handler_latencies, "raw": raw_latencies}), file=result_stream)
