"""The OpenAPI 3.1 document of this API, generated from the manifest and the request limits.

Request schemas come from handler.validation, the module that enforces them.
"""

from __future__ import annotations

from typing import Any

from handler import routes
from handler.config import Settings
from handler.errors import ERRORS
from handler.manifest import Manifest
from handler.validation import OMITTED_FIELDS_RULE, request_schema

# The client errors /predict can answer; the other codes concern routing (404, 405) or the server (500, 503).
PREDICT_ERROR_STATUSES = (400, 413, 415, 422)


def error_descriptions(statuses: tuple[int, ...]) -> dict[str, str]:
    """Status -> what each code answering with it means, from the error catalogue."""
    return {str(status): "; ".join(f"{code}: {kind.meaning}" for code, kind in ERRORS.items() if kind.status == status)
            for status in statuses}


def _json(schema_ref: str, description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_ref}"}}}}


def _operation(route: routes.Route) -> dict[str, str]:
    return {"operationId": route.operation_id, "summary": route.summary}


def _prediction_schema(manifest: Manifest) -> dict[str, Any]:
    if manifest.task == "regression":
        return {"type": "object", "properties": {"value": {"type": "number"}},
                "required": ["value"], "additionalProperties": False}
    keys = [str(label) for label in manifest.classes or []]
    return {
        "type": "object",
        "properties": {
            "label": {"enum": list(manifest.classes or [])},
            "probabilities": {"type": "object",
                              "properties": {key: {"type": "number", "minimum": 0, "maximum": 1} for key in keys},
                              "required": keys, "additionalProperties": False},
        },
        "required": ["label", "probabilities"],
        "additionalProperties": False,
    }


def openapi_document(manifest: Manifest, settings: Settings) -> dict[str, Any]:
    """The whole OpenAPI 3.1 document for the loaded model."""
    identity = {"type": "object", "properties": {"name": {"const": manifest.name},
                                                 "version": {"const": manifest.version}},
                "required": ["name", "version"], "additionalProperties": False}
    errors = {status: _json("Error", text) for status, text in error_descriptions(PREDICT_ERROR_STATUSES).items()}
    unavailable = {"503": _json("Error", error_descriptions((503,))["503"])}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"{manifest.name} prediction API",
            "version": manifest.version,
            "description": f"Predictions from the scikit-learn model {manifest.name} {manifest.version} "
                           f"({manifest.task}). {OMITTED_FIELDS_RULE} Deployed behind API Gateway, every "
                           "route requires requests signed with AWS Signature Version 4 unless the stack opts out.",
        },
        "paths": {
            routes.PREDICT.path: {routes.PREDICT.method.lower(): {
                **_operation(routes.PREDICT),
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/PredictRequest"},
                    "example": manifest.example}}},
                "responses": {"200": _json("PredictResponse", "One prediction per instance, in order."),
                              **errors, **unavailable},
            }},
            routes.HEALTH.path: {routes.HEALTH.method.lower(): {
                **_operation(routes.HEALTH),
                "responses": {"200": _json("Health", "The model is ready."), **unavailable}}},
            routes.MODEL.path: {routes.MODEL.method.lower(): {
                **_operation(routes.MODEL),
                "responses": {"200": _json("Model", "Features, classes, versions, metrics."), **unavailable}}},
            routes.OPENAPI.path: {routes.OPENAPI.method.lower(): {
                **_operation(routes.OPENAPI),
                "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}},
                              **unavailable}}},
        },
        "components": {"schemas": {
            "PredictRequest": request_schema(manifest, settings),
            "PredictResponse": {"type": "object",
                                "properties": {"predictions": {"type": "array", "items": _prediction_schema(manifest)},
                                               "model": identity},
                                "required": ["predictions", "model"], "additionalProperties": False},
            "Health": {"type": "object", "properties": {"status": {"const": "ok"}, "model": identity},
                       "required": ["status", "model"], "additionalProperties": False},
            "Model": {"type": "object", "required": ["name", "version", "features", "sha256", "versions"]},
            "Error": {"type": "object", "required": ["error"], "additionalProperties": False, "properties": {
                "error": {"type": "object", "required": ["code", "message", "details"], "additionalProperties": False,
                          "properties": {
                              "code": {"type": "string"},
                              "message": {"type": "string"},
                              "details": {"type": "array", "items": {
                                  "type": "object", "required": ["field", "problem"], "additionalProperties": False,
                                  "properties": {"field": {"type": "string"}, "problem": {"type": "string"}}}},
                          }},
            }},
        }},
    }
