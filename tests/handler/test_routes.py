"""The handler driven with real API Gateway HTTP API events, on the demo model."""

from __future__ import annotations

import json
import math

import pytest

from handler.errors import MAX_DETAILS
from handler.predictors.base import UnscorableInput
from tests.helpers import problems_by_field, response_json


def feature_of_type(manifest: dict, *types: str) -> dict:
    return next(feature for feature in manifest["features"] if feature["type"] in types)


def emf_metrics(output: str) -> dict[str, list[float]]:
    """Metric name → values, from the EMF lines the handler printed."""
    found: dict[str, list[float]] = {}
    for line in output.splitlines():
        if '"_aws"' in line:
            record = json.loads(line)
            for metric in record["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
                found.setdefault(metric["Name"], []).extend(record[metric["Name"]])
    return found


def test_the_manifest_example_is_predicted(handler_app, api_event, lambda_context, demo_manifest):
    # Given the request body the manifest offers as an example
    example = demo_manifest["example"]
    # When
    status, body = response_json(handler_app.lambda_handler(api_event(body=example), lambda_context))
    # Then one prediction per instance, each a label with probabilities summing to 1
    assert status == 200
    assert body["model"] == {"name": demo_manifest["name"], "version": demo_manifest["version"]}
    assert len(body["predictions"]) == len(example["instances"])
    for prediction in body["predictions"]:
        assert prediction["label"] in demo_manifest["classes"]
        assert set(prediction["probabilities"]) == {str(label) for label in demo_manifest["classes"]}
        assert math.isclose(sum(prediction["probabilities"].values()), 1.0, abs_tol=1e-9)
        assert max(prediction["probabilities"], key=prediction["probabilities"].get) == str(prediction["label"])


def test_predictions_follow_input_order(handler_app, api_event, lambda_context, demo_manifest):
    # Given two different instances, sent in both orders
    first = demo_manifest["example"]["instances"][0]
    number = feature_of_type(demo_manifest, "number", "integer")
    second = {**first, number["name"]: number["maximum"]}
    # When
    forward = response_json(handler_app.lambda_handler(api_event(body={"instances": [first, second]}), lambda_context))[1]
    backward = response_json(handler_app.lambda_handler(api_event(body={"instances": [second, first]}), lambda_context))[1]
    # Then the answers swap places too
    assert forward["predictions"] == backward["predictions"][::-1]


def test_a_full_batch_is_answered(handler_app, api_event, lambda_context, demo_manifest):
    instances = demo_manifest["example"]["instances"][:1] * 1000
    status, body = response_json(handler_app.lambda_handler(api_event(body={"instances": instances}), lambda_context))
    assert status == 200 and len(body["predictions"]) == 1000


def test_health_names_the_model(handler_app, api_event, lambda_context, demo_manifest):
    status, body = response_json(handler_app.lambda_handler(api_event("health"), lambda_context))
    assert (status, body["status"]) == (200, "ok")
    assert body["model"] == {"name": demo_manifest["name"], "version": demo_manifest["version"]}


def test_model_shows_the_public_manifest(handler_app, api_event, lambda_context, demo_manifest):
    status, body = response_json(handler_app.lambda_handler(api_event("health", path="/model"), lambda_context))
    assert status == 200
    assert body["sha256"] == demo_manifest["sha256"] and body["versions"] == demo_manifest["versions"]
    assert body["features"] == demo_manifest["features"]
    assert "artifact" not in body


def test_wrong_type_unknown_field_and_nan_are_all_named(handler_app, api_event, lambda_context, demo_manifest):
    # Given an instance with a string where a number belongs, an extra field, and NaN in another number
    instance = dict(demo_manifest["example"]["instances"][0])
    numbers = [f["name"] for f in demo_manifest["features"] if f["type"] in ("number", "integer")]
    instance[numbers[0]] = "abc"
    instance["not_a_feature"] = 1
    raw = json.dumps({"instances": [instance]}).replace(
        f'"{numbers[1]}": {json.dumps(instance[numbers[1]])}', f'"{numbers[1]}": NaN')
    # When
    status, body = response_json(handler_app.lambda_handler(api_event(raw_body=raw), lambda_context))
    # Then
    assert (status, body["error"]["code"]) == (422, "validation_error")
    problems = problems_by_field(body)
    assert set(problems) == {f"instances[0].{numbers[0]}", f"instances[0].{numbers[1]}",
                             "instances[0].not_a_feature"}
    assert problems["instances[0].not_a_feature"] == "unknown field"


@pytest.mark.parametrize(("build", "status", "code"), [
    (lambda e, ex: e(body={"instances": ex["instances"][:1] * 5000}), 413, "too_many_instances"),
    (lambda e, ex: e(raw_body='{"instances": [}'), 400, "invalid_json"),
    (lambda e, ex: e(body=ex, headers={"content-type": "text/csv"}), 415, "unsupported_media_type"),
    (lambda e, ex: e(raw_body="x" * 2_000_000), 413, "payload_too_large"),
    (lambda e, ex: e("health", path="/score"), 404, "not_found"),
    (lambda e, ex: e(body=ex, method="PUT"), 405, "method_not_allowed"),
])
def test_bad_requests_get_a_json_4xx(handler_app, api_event, lambda_context, demo_manifest, build, status, code):
    result = handler_app.lambda_handler(build(api_event, demo_manifest["example"]), lambda_context)
    got_status, body = response_json(result)
    assert (got_status, body["error"]["code"]) == (status, code)
    assert result["headers"]["Content-Type"] == "application/json"
    assert body["error"]["message"]


def test_wrong_method_lists_the_allowed_one(handler_app, api_event, lambda_context):
    result = handler_app.lambda_handler(api_event("health", method="POST"), lambda_context)
    assert result["statusCode"] == 405 and result["headers"]["Allow"] == "GET"


def test_logs_carry_the_api_gateway_request_id_and_metrics_are_emitted(
        handler_app, api_event, lambda_context, demo_manifest, capsys, handler_logs):
    # Given an instance with a category the encoder never saw
    instance = dict(demo_manifest["example"]["instances"][0])
    categorical = next(f for f in demo_manifest["features"] if f.get("categories"))
    instance[categorical["name"]] = "never-seen-before"
    event = api_event(body={"instances": [instance, instance]})
    # When
    assert handler_app.lambda_handler(event, lambda_context)["statusCode"] == 200
    # Then metrics count the predictions and the unseen categories
    output = capsys.readouterr().out
    metrics = emf_metrics(output)
    assert metrics["PredictionsServed"] == [2.0]
    assert metrics["UnknownCategories"] == [2.0]
    assert metrics["PredictionLatency"][0] > 0
    # And a rejected request logs the API Gateway request id as correlation id
    handler_app.lambda_handler(api_event(raw_body="{"), lambda_context)
    rejected = [record for record in handler_logs() if record["message"] == "Request rejected"]
    assert rejected[-1]["correlation_id"] == event["requestContext"]["requestId"]


def test_an_unexpected_failure_is_a_500_without_internals(
        handler_app, api_event, lambda_context, demo_manifest, monkeypatch):
    # Given a predictor that fails with a message full of internals
    def explode(batch):
        raise RuntimeError("/var/task/handler/predictors/sklearn.py GradientBoostingClassifier")

    monkeypatch.setattr(handler_app.MODEL.predictor, "predict", explode)
    # When
    result = handler_app.lambda_handler(api_event(body=demo_manifest["example"]), lambda_context)
    # Then
    status, body = response_json(result)
    assert (status, body["error"]["code"]) == (500, "internal_error")
    for leak in ("/var/task", "Traceback", "GradientBoosting", "RuntimeError", ".py"):
        assert leak not in result["body"]


def test_values_the_model_cannot_score_are_a_422_naming_the_unusual_fields(
        handler_app, api_event, lambda_context, demo_manifest, monkeypatch):
    # Given a predictor that cannot score an extreme value, as float32 tree models cannot
    def overflow(batch):
        raise UnscorableInput("Input X contains infinity or a value too large for dtype('float32').")

    monkeypatch.setattr(handler_app.MODEL.predictor, "predict", overflow)
    number = feature_of_type(demo_manifest, "number")
    instance = {**demo_manifest["example"]["instances"][0], number["name"]: 9e14}
    # When
    status, body = response_json(handler_app.lambda_handler(api_event(body={"instances": [instance]}), lambda_context))
    # Then the answer names the field outside the training range, and nothing of the model
    assert (status, body["error"]["code"]) == (422, "unscorable_input")
    assert list(problems_by_field(body)) == [f"instances[0].{number['name']}"]
    assert "float32" not in json.dumps(body)


def test_the_worst_error_body_stays_bounded(handler_app, api_event, lambda_context, demo_manifest):
    # Given as many instances as fit under the byte cap, each with 155 short unknown fields
    instance = {**{f"{index:x}": 0 for index in range(155)}, **demo_manifest["example"]["instances"][0]}
    settings = handler_app.MODEL.settings
    count = min(settings.max_instances, settings.max_body_bytes // (len(json.dumps(instance, separators=(",", ":"))) + 1))
    event = api_event(raw_body=json.dumps({"instances": [instance] * count}, separators=(",", ":")))
    # When
    result = handler_app.lambda_handler(event, lambda_context)
    # Then a 422 that lists the first problems and counts them all, far below Lambda's 6 MB response limit
    status, answer = response_json(result)
    assert (status, answer["error"]["code"]) == (422, "validation_error")
    assert len(answer["error"]["details"]) == MAX_DETAILS
    assert answer["error"]["message"].startswith(f"{155 * count} problem(s)")
    assert len(result["body"]) < 64_000


def test_a_non_ascii_base64_body_is_invalid_json_not_a_crash(handler_app, api_event, lambda_context):
    event = {**api_event(raw_body="eyJpbnN0YW5jZXMiOltdfQ==é"), "isBase64Encoded": True}
    status, answer = response_json(handler_app.lambda_handler(event, lambda_context))
    assert (status, answer["error"]["code"]) == (400, "invalid_json")
