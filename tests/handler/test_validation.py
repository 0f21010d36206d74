"""Request parsing and schema validation against a manifest, with no model involved."""

from __future__ import annotations

import base64
import json

import pytest

from handler.config import Settings
from handler.errors import ApiError
from handler.manifest import Feature, Manifest
from handler.validation import RequestValidator, parse_json_body

FEATURES = [
    Feature("tenure", "integer", "int64", nullable=False, minimum=0, maximum=72),
    Feature("charges", "number", "float64", nullable=True, minimum=18.0, maximum=120.0),
    Feature("contract", "string", "object", nullable=False,
            categories=["monthly", "yearly"], unknown_category="ignore"),
    Feature("region", "string", "object", nullable=False,
            categories=["north", "south"], unknown_category="reject"),
    Feature("paperless", "boolean", "bool", nullable=False),
]
VALID = {"tenure": 3, "charges": 50.5, "contract": "monthly", "region": "north", "paperless": True}


@pytest.fixture
def validator() -> RequestValidator:
    manifest = Manifest(name="m", version="1", created_at="2026-01-01T00:00:00Z", task="classification",
                        input_format="dataframe", features=FEATURES, example={"instances": [VALID]},
                        artifact="model.joblib", sha256="0" * 64, versions={}, classes=[0, 1])
    return RequestValidator(manifest, Settings(max_instances=3, max_string_length=10))


def rejection(validator: RequestValidator, payload: object) -> ApiError:
    with pytest.raises(ApiError) as caught:
        validator.validate(payload)
    return caught.value


def fields(error: ApiError) -> dict[str, str]:
    return {item.field: item.problem for item in error.details}


def test_valid_instances_become_columns_in_manifest_order(validator):
    # Given two valid instances, one with a null nullable field and an unseen category
    second = {**VALID, "tenure": 4, "charges": None, "contract": "weekly"}
    # When
    batch = validator.validate({"instances": [VALID, second]})
    # Then
    assert list(batch.columns) == ["tenure", "charges", "contract", "region", "paperless"]
    assert batch.columns["tenure"] == [3, 4]
    assert batch.columns["charges"] == [50.5, None]
    assert batch.count == 2
    assert batch.unknown_categories == 1


def test_integral_float_is_accepted_for_an_integer_and_ints_for_a_number(validator):
    batch = validator.validate({"instances": [{**VALID, "tenure": 7.0, "charges": 60}]})
    assert batch.columns["tenure"] == [7] and type(batch.columns["tenure"][0]) is int
    assert batch.columns["charges"] == [60.0] and type(batch.columns["charges"][0]) is float


def test_an_omitted_nullable_field_is_null_and_an_omitted_required_field_is_named(validator):
    # Given an instance without the nullable charges, and one without charges nor the required tenure
    without_charges = {name: value for name, value in VALID.items() if name != "charges"}
    without_tenure = {name: value for name, value in without_charges.items() if name != "tenure"}
    # When
    batch = validator.validate({"instances": [without_charges, VALID]})
    error = rejection(validator, {"instances": [without_tenure]})
    # Then
    assert batch.columns["charges"] == [None, 50.5]
    assert fields(error) == {"instances[0].tenure": "missing required field"}


def test_every_offending_field_is_named(validator):
    # Given one instance with a problem in every field, plus an unknown field
    bad = {"tenure": "3", "charges": True, "contract": None, "region": "east", "paperless": 1, "colour": "red"}
    # When
    error = rejection(validator, {"instances": [bad, {"tenure": 1}]})
    # Then
    assert error.status == 422 and error.code == "validation_error"
    assert fields(error) == {
        "instances[0].tenure": "expected an integer, got a string",
        "instances[0].charges": "expected a number, got a boolean",
        "instances[0].contract": "must not be null",
        "instances[0].region": "unknown category; expected one of: north, south",
        "instances[0].paperless": "expected true or false, got a number",
        "instances[0].colour": "unknown field",
        "instances[1].contract": "missing required field",
        "instances[1].region": "missing required field",
        "instances[1].paperless": "missing required field",
    }


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_are_rejected_by_field(validator, token):
    # Given a JSON text holding a non-finite number in a nullable number field
    text = json.dumps({"instances": [{**VALID, "charges": 0}]}).replace('"charges": 0', f'"charges": {token}')
    payload = parse_json_body(text, is_base64=False, content_type="application/json", max_bytes=10_000)
    # When
    error = rejection(validator, payload)
    # Then
    assert list(fields(error)) == ["instances[0].charges"]
    assert "not allowed" in fields(error)["instances[0].charges"]


@pytest.mark.parametrize(("payload", "field", "problem"), [
    ([VALID], "$", "expected an object with an 'instances' list"),
    ({}, "instances", "missing required field"),
    ({"instances": {}}, "instances", "expected a list of objects"),
    ({"instances": []}, "instances", "expected at least one instance"),
    ({"instances": [VALID], "extra": 1}, "extra", "unknown field"),
    ({"instances": ["x"]}, "instances[0]", "expected an object of feature values"),
])
def test_body_shape_problems_are_named(validator, payload, field, problem):
    assert fields(rejection(validator, payload)) == {field: problem}


def test_strings_over_the_cap_and_out_of_range_integers_are_rejected(validator):
    error = rejection(validator, {"instances": [{**VALID, "contract": "x" * 11, "tenure": 2**63}]})
    assert fields(error) == {"instances[0].contract": "string longer than 10 characters",
                             "instances[0].tenure": "integer out of range (at most 1e+15 in size)"}


def test_more_instances_than_the_cap_is_413(validator):
    error = rejection(validator, {"instances": [VALID] * 4})
    assert (error.status, error.code) == (413, "too_many_instances")
    assert "At most 3" in error.message


def test_long_unknown_field_names_are_shortened_in_the_answer(validator):
    error = rejection(validator, {"instances": [{**VALID, "k" * 5000: 1}]})
    (field,) = fields(error)
    assert len(field) < 100 and field.endswith("…")


@pytest.mark.parametrize(("body", "content_type", "status", "code"), [
    ('{"instances": []}', "text/plain", 415, "unsupported_media_type"),
    ('{"instances": []}', None, 415, "unsupported_media_type"),
    ("", "application/json", 400, "invalid_json"),
    ("{not json", "application/json", 400, "invalid_json"),
    ("[" * 100_000 + "]" * 100_000, "application/json", 413, "payload_too_large"),
    ("[" * 5_000 + "]" * 5_000, "application/json", 400, "invalid_json"),
    ("1" * 5_000, "application/json", 400, "invalid_json"),
    ('"x' + "y" * 200_000 + '"', "application/json", 413, "payload_too_large"),
])
def test_bodies_that_cannot_be_read_are_refused_before_validation(body, content_type, status, code):
    with pytest.raises(ApiError) as caught:
        parse_json_body(body, is_base64=False, content_type=content_type, max_bytes=100_000)
    assert (caught.value.status, caught.value.code) == (status, code)


def test_json_content_type_with_charset_and_base64_bodies_are_read():
    encoded = base64.b64encode(b'{"instances": [1]}').decode()
    assert parse_json_body(encoded, is_base64=True, content_type="application/json; charset=utf-8",
                           max_bytes=100) == {"instances": [1]}


def test_base64_body_that_is_not_utf8_is_invalid_json():
    with pytest.raises(ApiError) as caught:
        parse_json_body(base64.b64encode(b"\xff\xfe{}").decode(), is_base64=True,
                        content_type="application/json", max_bytes=100)
    assert caught.value.code == "invalid_json"
