"""Request body → validated feature columns, or an ApiError naming every problem.

Pure functions over the manifest: nothing here touches the model.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable
from typing import Any

from handler.config import Settings
from handler.errors import ApiError, FieldProblem, problem_count_message
from handler.manifest import Feature, Manifest
from handler.predictors.base import ValidatedBatch

# No tabular feature needs more, and models compute in float32 (max ~3.4e38) after scaling.
NUMBER_LIMIT = 10**15
FIELD_NAME_SHOWN = 64  # echo at most this much of an unknown field's name back


class NonFinite:
    """Stands in for a NaN/Infinity token so validation can name the field that held it."""

    def __init__(self, token: str) -> None:
        self.token = token


def parse_float(text: str) -> float | NonFinite:
    number = float(text)
    return number if math.isfinite(number) else NonFinite(text)


def parse_json_body(body: str | None, *, is_base64: bool, content_type: str | None,
                    max_bytes: int) -> Any:
    """Decode an API Gateway body into JSON, enforcing content type and byte cap first."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise ApiError("unsupported_media_type",
                       "Send the body as JSON with the header 'Content-Type: application/json'.")
    if not body:
        raise ApiError("invalid_json", "The request body is empty.")
    # A character is at least one byte, so a long text is over the cap before encoding it.
    if len(body) > (max_bytes * 4 // 3 + 4 if is_base64 else max_bytes):
        raise _too_large(max_bytes)
    try:
        raw = base64.b64decode(body, validate=True) if is_base64 else body.encode("utf-8")
    except ValueError:  # bad base64 (binascii.Error), non-ASCII in base64, or a lone surrogate (UnicodeEncodeError)
        raise ApiError("invalid_json", "The request body is not valid UTF-8 JSON.") from None
    if len(raw) > max_bytes:
        raise _too_large(max_bytes)
    try:
        return json.loads(raw, parse_constant=NonFinite, parse_float=parse_float)
    except json.JSONDecodeError as error:
        raise ApiError("invalid_json",
                       f"The request body is not valid JSON (line {error.lineno}, column {error.colno}).") from None
    except UnicodeDecodeError:
        raise ApiError("invalid_json", "The request body is not valid UTF-8 JSON.") from None
    except ValueError:  # e.g. an integer literal with more digits than Python converts
        raise ApiError("invalid_json", "The request body holds a number that cannot be read.") from None
    except RecursionError:
        raise ApiError("invalid_json", "The request body is nested too deeply.") from None


def _too_large(max_bytes: int) -> ApiError:
    return ApiError("payload_too_large", f"The request body is larger than {max_bytes} bytes.")


# A checker turns one raw value into the model's value, or returns a problem string.
Checker = Callable[[Any], tuple[Any, str | None]]


class RequestValidator:
    """Validates `{"instances": [...]}` against a manifest; built once at init."""

    def __init__(self, manifest: Manifest, settings: Settings) -> None:
        self._features = manifest.features
        self._names = frozenset(manifest.feature_names)
        self._required = frozenset(required_features(manifest))
        self._max_instances = settings.max_instances
        self._checkers = {f.name: checker_for(f, settings.max_string_length) for f in manifest.features}
        self._categories = {f.name: frozenset(f.categories) for f in manifest.features
                            if f.categories and f.unknown_category != "reject"}

    def validate(self, payload: Any) -> ValidatedBatch:
        """Return the instances as columns, or raise ApiError listing every offending field."""
        instances = self._instances(payload)
        columns: dict[str, list[Any]] = {f.name: [] for f in self._features}
        problems: list[FieldProblem] = []
        unknown = 0
        for index, instance in enumerate(instances):
            where = f"instances[{index}]"
            if not isinstance(instance, dict):
                problems.append(FieldProblem(where, "expected an object of feature values"))
                continue
            for name, column in columns.items():
                if name not in instance and name in self._required:
                    problems.append(FieldProblem(f"{where}.{name}", "missing required field"))
                    continue
                value, problem = self._checkers[name](instance.get(name))  # an omitted nullable field is null
                if problem:
                    problems.append(FieldProblem(f"{where}.{name}", problem))
                    continue
                column.append(value)
                known = self._categories.get(name)
                if known is not None and value is not None and value not in known:
                    unknown += 1
            problems.extend(FieldProblem(f"{where}.{_shown(key)}", "unknown field")
                            for key in instance if key not in self._names)
        if problems:
            raise ApiError("validation_error", problem_count_message(len(problems)), problems)
        return ValidatedBatch(columns=columns, count=len(instances), unknown_categories=unknown)

    def _instances(self, payload: Any) -> list[Any]:
        if not isinstance(payload, dict):
            raise _shape_error([FieldProblem("$", "expected an object with an 'instances' list")])
        problems = [FieldProblem(_shown(key), "unknown field") for key in payload if key != "instances"]
        instances = payload.get("instances")
        if "instances" not in payload:
            problems.insert(0, FieldProblem("instances", "missing required field"))
        elif not isinstance(instances, list):
            problems.insert(0, FieldProblem("instances", "expected a list of objects"))
        elif not instances:
            problems.insert(0, FieldProblem("instances", "expected at least one instance"))
        if problems:
            raise _shape_error(problems)
        if len(instances) > self._max_instances:
            raise ApiError("too_many_instances",
                           f"At most {self._max_instances} instances per request; got {len(instances)}.")
        return instances


def outside_training_range(batch: ValidatedBatch, manifest: Manifest) -> list[FieldProblem]:
    """Numbers beyond what the training data showed: the likely cause when a model cannot score."""
    problems = []
    for feature in manifest.features:
        if feature.minimum is None:
            continue
        for index, value in enumerate(batch.columns[feature.name]):
            if value is not None and not feature.minimum <= value <= feature.maximum:
                problems.append(FieldProblem(f"instances[{index}].{feature.name}",
                                             f"outside the training range {feature.minimum} to {feature.maximum}"))
    return problems


def _shape_error(problems: list[FieldProblem]) -> ApiError:
    return ApiError("validation_error", 'The body must be {"instances": [{...}, ...]}.', problems)


def _shown(key: str) -> str:
    return key if len(key) <= FIELD_NAME_SHOWN else key[:FIELD_NAME_SHOWN] + "…"


def checker_for(feature: Feature, max_string_length: int) -> Checker:
    """Build the value check for one feature: type, nullability, range of the dtype, categories."""
    convert = _CONVERTERS[feature.type]
    rejected = (frozenset(feature.categories)
                if feature.categories and feature.unknown_category == "reject" else None)
    allowed = ", ".join(map(str, feature.categories or []))

    def check(value: Any) -> tuple[Any, str | None]:
        if value is None:
            return None, None if feature.nullable else "must not be null"
        if isinstance(value, NonFinite):
            return None, f"{value.token} is not allowed; send a finite number" + (
                " or null" if feature.nullable else "")
        converted, problem = convert(value, max_string_length)
        if problem is None and rejected is not None and converted not in rejected:
            return None, f"unknown category; expected one of: {allowed}"
        return converted, problem

    return check


def _to_number(value: Any, _: int) -> tuple[Any, str | None]:
    if type(value) not in (int, float):
        return None, f"expected a number, got {_json_type(value)}"
    if not -NUMBER_LIMIT <= value <= NUMBER_LIMIT:
        return None, f"number out of range (at most {NUMBER_LIMIT:.0e} in size)"
    return float(value), None


def _to_integer(value: Any, _: int) -> tuple[Any, str | None]:
    if type(value) is float and value.is_integer():
        value = int(value)
    if type(value) is not int:
        return None, f"expected an integer, got {_json_type(value)}"
    if not -NUMBER_LIMIT <= value <= NUMBER_LIMIT:
        return None, f"integer out of range (at most {NUMBER_LIMIT:.0e} in size)"
    return value, None


def _to_string(value: Any, max_length: int) -> tuple[Any, str | None]:
    if type(value) is not str:
        return None, f"expected a string, got {_json_type(value)}"
    if len(value) > max_length:
        return None, f"string longer than {max_length} characters"
    return value, None


def _to_boolean(value: Any, _: int) -> tuple[Any, str | None]:
    if type(value) is not bool:
        return None, f"expected true or false, got {_json_type(value)}"
    return value, None


_CONVERTERS: dict[str, Callable[[Any, int], tuple[Any, str | None]]] = {
    "number": _to_number,
    "integer": _to_integer,
    "string": _to_string,
    "boolean": _to_boolean,
}
# The same rules as JSON Schema, for the OpenAPI document: the two cannot disagree.
_TYPE_SCHEMAS: dict[str, dict[str, Any]] = {
    "number": {"type": "number", "minimum": -NUMBER_LIMIT, "maximum": NUMBER_LIMIT},
    "integer": {"type": "integer", "minimum": -NUMBER_LIMIT, "maximum": NUMBER_LIMIT},
    "string": {"type": "string"},
    "boolean": {"type": "boolean"},
}


def feature_schema(feature: Feature, max_string_length: int) -> dict[str, Any]:
    """The JSON Schema of one feature's value, exactly as RequestValidator checks it."""
    schema: dict[str, Any] = dict(_TYPE_SCHEMAS[feature.type])
    if feature.type == "string":
        schema["maxLength"] = max_string_length
    notes = []
    if feature.minimum is not None:
        notes.append(f"observed in training: {feature.minimum} to {feature.maximum}")
    if feature.categories and feature.unknown_category == "reject":
        schema["enum"] = list(feature.categories) + ([None] if feature.nullable else [])
    elif feature.categories:
        notes.append("known categories: " + ", ".join(map(str, feature.categories))
                     + "; others are accepted and counted as unknown")
        schema["examples"] = list(feature.categories)
    if feature.nullable:
        schema["type"] = [schema["type"], "null"]
    if notes:
        schema["description"] = "; ".join(notes)
    return schema


OMITTED_FIELDS_RULE = ("Every feature that is not nullable is required; a nullable feature left out of an instance "
                       "is treated as null.")


def required_features(manifest: Manifest) -> list[str]:
    """The fields an instance must hold: the non-nullable features (an omitted nullable one is null)."""
    return [feature.name for feature in manifest.features if not feature.nullable]


def request_schema(manifest: Manifest, settings: Settings) -> dict[str, Any]:
    """The JSON Schema of a `POST /predict` body."""
    instance = {
        "type": "object",
        "properties": {f.name: feature_schema(f, settings.max_string_length) for f in manifest.features},
        "required": required_features(manifest),
        "description": OMITTED_FIELDS_RULE,
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {"instances": {"type": "array", "items": instance, "minItems": 1,
                                     "maxItems": settings.max_instances}},
        "required": ["instances"],
        "additionalProperties": False,
    }


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return "null"
