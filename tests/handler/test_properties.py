"""Properties over generated input: the handler answers 200 or a JSON 4xx, never a 5xx."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import DEMO_MODEL_DIR

MANIFEST = json.loads((DEMO_MODEL_DIR / "manifest.json").read_text(encoding="utf-8"))
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


def answer(handler_app, api_event, lambda_context, raw_body: str) -> tuple[int, dict]:
    result = handler_app.lambda_handler(api_event(raw_body=raw_body), lambda_context)
    return result["statusCode"], json.loads(result["body"])


@PROPERTY_SETTINGS
@given(body=bodies)
def test_any_json_body_gets_200_or_a_4xx(handler_app, api_event, lambda_context, body):
    status, answer_body = answer(handler_app, api_event, lambda_context, json.dumps(body))
    assert status == 200 or 400 <= status < 500
    if status == 200:
        assert len(answer_body["predictions"]) == len(body["instances"])
    else:
        assert set(answer_body["error"]) == {"code", "message", "details"}


@PROPERTY_SETTINGS
@given(text=st.text(max_size=200))
def test_any_text_body_gets_a_4xx_never_a_traceback(handler_app, api_event, lambda_context, text):
    result = handler_app.lambda_handler(api_event(raw_body=text or " "), lambda_context)
    assert result["statusCode"] in (200, 400, 413, 422)
    assert "Traceback" not in result["body"] and "/handler/" not in result["body"]
