"""The OpenAPI 3.1 document of this API, generated from the manifest and the request limits.

Request schemas come from handler.validation, the module that enforces them.
"""

from __future__ import annotations

from typing import Any

from handler.config import Settings
from handler.manifest import Manifest
from handler.validation import request_schema

ERROR_STATUSES = {
    "400": "The body is empty, not UTF-8, not JSON, or nested too deeply (invalid_json).",
    "413": "The body is over the byte cap (payload_too_large) or holds too many instances (too_many_instances).",
    "415": "The Content-Type is not application/json (unsupported_media_type).",
    "422": "An instance breaks the schema (validation_error) or cannot be scored (unscorable_input); "
           "details name every offending field.",
}
UNAVAILABLE = "The model failed to load at start (model_unavailable)."


def _json(schema_ref: str, description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_ref}"}}}}


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
    errors = {status: _json("Error", text) for status, text in ERROR_STATUSES.items()}
    unavailable = {"503": _json("Error", UNAVAILABLE)}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"{manifest.name} prediction API",
            "version": manifest.version,
            "description": f"Predictions from the scikit-learn model {manifest.name} {manifest.version} "
                           f"({manifest.task}). Deployed behind API Gateway, every route requires "
                           "requests signed with AWS Signature Version 4 unless the stack opts out.",
        },
        "paths": {
            "/predict": {"post": {
                "operationId": "predict",
                "summary": "Predict one or more instances",
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/PredictRequest"},
                    "example": manifest.example}}},
                "responses": {"200": _json("PredictResponse", "One prediction per instance, in order."),
                              **errors, **unavailable},
            }},
            "/health": {"get": {"operationId": "health", "summary": "Is the model loaded and verified?",
                                "responses": {"200": _json("Health", "The model is ready."), **unavailable}}},
            "/model": {"get": {"operationId": "describeModel", "summary": "The model's public manifest",
                               "responses": {"200": _json("Model", "Features, classes, versions, metrics."),
                                             **unavailable}}},
            "/openapi.json": {"get": {"operationId": "openapi", "summary": "This document",
                                      "responses": {"200": {"description": "OpenAPI 3.1",
                                                            "content": {"application/json": {}}},
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
