"""The OpenAPI document and the validator come from one source, so they cannot disagree."""

from __future__ import annotations

import json
from dataclasses import replace

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handler.config import Settings
from handler.errors import ApiError
from handler.manifest import read_manifest
from handler.openapi import openapi_document
from handler.validation import OMITTED_FIELDS_RULE, RequestValidator, parse_json_body, request_schema
from tests.models import demo

MANIFEST = read_manifest(demo().model_dir)
SETTINGS = Settings(max_instances=5, max_string_length=40)
SCHEMA = request_schema(MANIFEST, SETTINGS)
SCHEMA_CHECK = jsonschema.Draft202012Validator(SCHEMA)
VALIDATOR = RequestValidator(MANIFEST, SETTINGS)

near_valid_values = (st.none() | st.booleans() | st.integers(-10**16, 10**16) | st.floats(allow_nan=False)
                     | st.text(max_size=45)
                     | st.sampled_from([c for f in MANIFEST.features for c in (f.categories or [])]))
near_valid_instances = st.dictionaries(st.sampled_from(MANIFEST.feature_names) | st.just("extra"),
                                       near_valid_values, min_size=len(MANIFEST.features) - 3)
near_valid_bodies = st.fixed_dictionaries({"instances": st.lists(near_valid_instances, min_size=0, max_size=6)})


def validator_accepts(body: dict) -> bool:
    try:
        # Through the JSON parser, as a request would go (it also turns huge ints into floats' peers).
        VALIDATOR.validate(parse_json_body(json.dumps(body), is_base64=False,
                                           content_type="application/json", max_bytes=1 << 20))
    except ApiError:
        return False
    return True


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=near_valid_bodies)
def test_schema_and_validator_agree_on_every_body(body):
    assert SCHEMA_CHECK.is_valid(body) == validator_accepts(body)


def test_the_document_is_openapi_3_1_with_valid_json_schemas():
    document = openapi_document(MANIFEST, SETTINGS)
    assert document["openapi"] == "3.1.0"
    assert set(document["paths"]) == {"/predict", "/health", "/model", "/openapi.json"}
    for schema in document["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)
    SCHEMA_CHECK.validate(document["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["example"])


def test_features_carry_types_enums_nullability_and_observed_ranges():
    properties = SCHEMA["properties"]["instances"]["items"]["properties"]
    assert properties["tenure_months"]["type"] == "integer"
    assert properties["total_charges"]["type"] == ["number", "null"]
    assert "observed in training: 0 to 72" in properties["tenure_months"]["description"]
    assert properties["contract"]["examples"] == ["month-to-month", "one-year", "two-year"]
    assert properties["contract"]["maxLength"] == 40
    assert SCHEMA["properties"]["instances"]["maxItems"] == 5


def test_only_non_nullable_features_are_required_and_the_document_says_why():
    # Given a manifest whose first feature is made nullable
    features = [replace(MANIFEST.features[0], nullable=True), *MANIFEST.features[1:]]
    manifest = replace(MANIFEST, features=features)
    # When
    document = openapi_document(manifest, SETTINGS)
    instance = document["components"]["schemas"]["PredictRequest"]["properties"]["instances"]["items"]
    # Then
    assert instance["required"] == [feature.name for feature in features if not feature.nullable]
    assert features[0].name not in instance["required"]
    assert OMITTED_FIELDS_RULE in instance["description"] and OMITTED_FIELDS_RULE in document["info"]["description"]


def test_a_body_omitting_a_nullable_field_is_valid_for_both_and_one_omitting_a_required_field_for_neither():
    # Given the example instance without a nullable and without a required feature
    example = MANIFEST.example["instances"][0]
    nullable = next(feature.name for feature in MANIFEST.features if feature.nullable)
    required = next(feature.name for feature in MANIFEST.features if not feature.nullable)
    # When / Then
    for omitted, accepted in ((nullable, True), (required, False)):
        body = {"instances": [{name: value for name, value in example.items() if name != omitted}]}
        assert SCHEMA_CHECK.is_valid(body) is accepted
        assert validator_accepts(body) is accepted


def test_a_rejecting_encoder_becomes_an_enum():
    feature = replace(MANIFEST.features[4], unknown_category="reject", nullable=True)
    manifest = replace(MANIFEST, features=[feature])
    schema = request_schema(manifest, SETTINGS)["properties"]["instances"]["items"]["properties"][feature.name]
    assert schema["enum"] == [*feature.categories, None]


@pytest.mark.parametrize("path", ["/openapi.json"])
def test_the_api_serves_the_document(handler_app, api_event, lambda_context, path):
    result = handler_app.lambda_handler(api_event("health", path=path), lambda_context)
    assert result["statusCode"] == 200
    assert json.loads(result["body"]) == json.loads(json.dumps(openapi_document(MANIFEST, Settings())))


def test_docs_page_only_when_enabled(reinitialised_handler, api_event, lambda_context):
    app = reinitialised_handler()
    assert app.lambda_handler(api_event("health", path="/docs"), lambda_context)["statusCode"] == 404
    app = reinitialised_handler(DOCS_ENABLED="true")
    result = app.lambda_handler(api_event("health", path="/docs"), lambda_context)
    assert result["statusCode"] == 200 and "openapi.json" in result["body"]
