"""Properties over generated input for the shipped model, from its manifest: 200 or a JSON 4xx, never a 5xx."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import SHIPPED_MODEL_DIR, is_prediction_for, same_predictions

MANIFEST = json.loads((SHIPPED_MODEL_DIR / "manifest.json").read_text(encoding="utf-8"))
FEATURE_NAMES = [feature["name"] for feature in MANIFEST["features"]]

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=300)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=12)
# Instances whose keys are mostly real feature names, so validation goes deep.
instances = st.dictionaries(st.sampled_from(FEATURE_NAMES) | st.text(max_size=8), json_values, max_size=12)
bodies = (json_values
          | st.fixed_dictionaries({"instances": st.lists(instances, max_size=5)})
          | st.fixed_dictionaries({"instances": st.lists(instances, max_size=3)}, optional={"extra": json_values}))

PROPERTY_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def answer(shipped_app, api_event, lambda_context, raw_body: str) -> tuple[int, dict]:
    result = shipped_app.lambda_handler(api_event(raw_body=raw_body), lambda_context)
    return result["statusCode"], json.loads(result["body"])


@PROPERTY_SETTINGS
@given(body=bodies)
def test_any_json_body_gets_200_or_a_4xx(shipped_app, api_event, lambda_context, body):
    status, answer_body = answer(shipped_app, api_event, lambda_context, json.dumps(body))
    assert status == 200 or 400 <= status < 500
    if status == 200:
        assert len(answer_body["predictions"]) == len(body["instances"])
    else:
        assert set(answer_body["error"]) == {"code", "message", "details"}


@PROPERTY_SETTINGS
@given(text=st.text(max_size=200))
def test_any_text_body_gets_a_4xx_never_a_traceback(shipped_app, api_event, lambda_context, text):
    result = shipped_app.lambda_handler(api_event(raw_body=text or " "), lambda_context)
    assert result["statusCode"] in (200, 400, 413, 422)
    assert "Traceback" not in result["body"] and "/handler/" not in result["body"]


def valid_value(feature: dict) -> st.SearchStrategy:
    """Any value the manifest allows for one feature, reaching well past the training range."""
    if feature["type"] in ("number", "integer"):
        span = (feature["maximum"] - feature["minimum"]) or 1
        low, high = feature["minimum"] - 2 * span, feature["maximum"] + 2 * span
        values = (st.integers(int(low), int(high)) if feature["type"] == "integer"
                  else st.floats(low, high, allow_nan=False))
    elif feature["type"] == "boolean":
        values = st.booleans()
    else:
        values = st.sampled_from(feature["categories"]) | st.text(max_size=20) if feature.get("categories") \
            else st.text(max_size=20)
    return values | st.none() if feature["nullable"] else values


valid_instances = st.fixed_dictionaries({f["name"]: valid_value(f) for f in MANIFEST["features"]})
LEAKS = ("Traceback", "/handler/", "/var/task", "site-packages", "sklearn", "joblib", "numpy", ".py")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(instances=st.lists(valid_instances, min_size=1, max_size=5))
def test_valid_instances_get_one_prediction_each_in_order(shipped_app, api_event, lambda_context, instances):
    # When the batch is sent, and each instance alone
    status, body = answer(shipped_app, api_event, lambda_context, json.dumps({"instances": instances}))
    alone = [answer(shipped_app, api_event, lambda_context, json.dumps({"instances": [instance]}))[1]
             for instance in instances]
    # Then one prediction per instance, in input order, each what the model's task promises
    assert status == 200
    assert same_predictions(body["predictions"], [single["predictions"][0] for single in alone])
    assert all(is_prediction_for(MANIFEST, prediction) for prediction in body["predictions"])


@PROPERTY_SETTINGS
@given(body=bodies)
def test_no_answer_leaks_internals(shipped_app, api_event, lambda_context, body):
    status, answer_body = answer(shipped_app, api_event, lambda_context, json.dumps(body))
    if status != 200:
        error = answer_body["error"]
        # Field names echo the caller's own keys; everything else is the API's own words.
        ours = " ".join([error["code"], error["message"], *(item["problem"] for item in error["details"])])
        assert not any(leak in ours for leak in LEAKS), ours
