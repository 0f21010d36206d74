"""The API's routes: read by the handler, the OpenAPI document and the API Gateway construct."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Route:
    """One method + path of the API, and the OpenAPI operation it is."""

    method: str
    path: str
    operation_id: str
    summary: str


PREDICT = Route("POST", "/predict", "predict", "Predict one or more instances")
HEALTH = Route("GET", "/health", "health", "Is the model loaded and verified?")
MODEL = Route("GET", "/model", "describeModel", "The model's public manifest")
OPENAPI = Route("GET", "/openapi.json", "openapi", "This document")
# Only with docs_enabled: under IAM auth a browser cannot open it unsigned.
DOCS = Route("GET", "/docs", "docs", "An interactive page over /openapi.json")

ROUTES = (PREDICT, HEALTH, MODEL, OPENAPI)


def served_routes(docs_enabled: bool) -> tuple[Route, ...]:
    """Every route the API answers, /docs included when enabled."""
    return (*ROUTES, DOCS) if docs_enabled else ROUTES
