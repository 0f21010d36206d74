"""The shipped model, whatever model_artifacts/ holds: pinned, its parity recorded, its example and features served.

Driven by its manifest only, so these hold for any model the packager accepted. The bundle that ships it and
its budgets are checked in tests/builder/test_bundler.py and tests/budgets/.
"""

from __future__ import annotations

import json

import pytest

from handler.errors import MAX_DETAILS
from handler.manifest import read_manifest, sha256_file
from tests.helpers import SHIPPED_MODEL_DIR, is_prediction_for, problems_by_field, response_json

MANIFEST = read_manifest(SHIPPED_MODEL_DIR)
WRONG_TYPE = {"not": "a feature value"}  # no feature type accepts an object


def test_the_manifest_pins_every_file_the_handler_reads() -> None:
    pinned = [(MANIFEST.artifact, MANIFEST.sha256), (MANIFEST.sklearn_artifact, MANIFEST.sklearn_sha256),
              (MANIFEST.profile, MANIFEST.profile_sha256)]
    assert [(name, sha256_file(SHIPPED_MODEL_DIR / name)) for name, _ in pinned if name] == [
        (name, sha256) for name, sha256 in pinned if name]


def test_onnx_serves_only_with_its_parity_recorded_and_held() -> None:
    if MANIFEST.runtime != "onnx":
        pytest.skip(f"scikit-learn serves the shipped model ({MANIFEST.runtime_fallback or 'chosen at packaging'})")
    parity = MANIFEST.parity
    assert parity is not None and parity.rows > 0 and parity.passed
    assert parity.checked_difference <= parity.tolerance
    assert MANIFEST.task != "classification" or parity.labels_identical


def test_the_example_answers_200_with_one_prediction_per_instance(shipped_app, api_event, lambda_context,
                                                                  shipped_manifest):
    # When the example the manifest (and the OpenAPI document) offers is sent
    status, body = response_json(shipped_app.lambda_handler(api_event(body=shipped_manifest["example"]),
                                                            lambda_context))
    # Then one prediction per instance, each what the model's task promises, from the shipped model
    assert status == 200
    assert body["model"] == {"name": shipped_manifest["name"], "version": shipped_manifest["version"]}
    assert len(body["predictions"]) == len(shipped_manifest["example"]["instances"])
    assert all(is_prediction_for(shipped_manifest, prediction) for prediction in body["predictions"])


def test_every_declared_feature_is_validated(shipped_app, api_event, lambda_context):
    # Given the features in groups as large as an error body lists problems
    groups = [MANIFEST.feature_names[start:start + MAX_DETAILS]
              for start in range(0, len(MANIFEST.feature_names), MAX_DETAILS)]
    for names in groups:
        # When the example's first instance gives each of them a value of the wrong type
        instance = {**MANIFEST.example["instances"][0], **{name: WRONG_TYPE for name in names}}
        status, body = response_json(shipped_app.lambda_handler(api_event(body={"instances": [instance]}),
                                                                lambda_context))
        # Then each feature of the group is named, with the type it expects
        assert (status, body["error"]["code"]) == (422, "validation_error")
        problems = problems_by_field(body)
        assert sorted(problems) == sorted(f"instances[0].{name}" for name in names)
        assert all(problem.startswith("expected ") for problem in problems.values())


def test_required_features_must_be_sent_and_nullable_ones_may_be_left_out(shipped_app, api_event, lambda_context,
                                                                          shipped_manifest):
    required = [feature.name for feature in MANIFEST.features if not feature.nullable]
    only_required = {name: shipped_manifest["example"]["instances"][0][name] for name in required}
    # When an instance sends nothing, and one sends only the required features
    empty = response_json(shipped_app.lambda_handler(api_event(body={"instances": [{}]}), lambda_context))
    answered = response_json(shipped_app.lambda_handler(api_event(body={"instances": [only_required]}),
                                                        lambda_context))
    # Then the first is refused naming every required feature (answered if there is none); the second is answered
    missing = problems_by_field(empty[1]) if empty[0] == 422 else {}
    assert (empty[0], missing) == (422 if required else 200,
                                   {f"instances[0].{name}": "missing required field" for name in required})
    assert answered[0] == 200 and len(answered[1]["predictions"]) == 1


def test_health_and_model_describe_the_shipped_model(shipped_app, api_event, lambda_context, shipped_manifest):
    health = response_json(shipped_app.lambda_handler(api_event("health"), lambda_context))
    described = response_json(shipped_app.lambda_handler(api_event("health", path="/model"), lambda_context))
    assert health == (200, {"status": "ok", "model": {"name": shipped_manifest["name"],
                                                      "version": shipped_manifest["version"]}})
    assert described == (200, json.loads(json.dumps(MANIFEST.public_view())))
