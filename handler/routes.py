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
# The page's script and style sheet, served from the bundle (the OpenAPI document does not list them).
DOCS_SCRIPT = Route("GET", "/docs/swagger-ui.js", "docsScript", "Swagger UI's script")
DOCS_STYLE = Route("GET", "/docs/swagger-ui.css", "docsStyle", "Swagger UI's style sheet")

ROUTES = (PREDICT, HEALTH, MODEL, OPENAPI)
DOCS_ROUTES = (DOCS, DOCS_SCRIPT, DOCS_STYLE)


def served_routes(docs_enabled: bool) -> tuple[Route, ...]:
    """Every route the API answers, /docs and its assets included when enabled."""
    return (*ROUTES, *DOCS_ROUTES) if docs_enabled else ROUTES
