"""Lambda entry point. Module scope is Lambda's init phase: the model is loaded and verified once."""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import aws_lambda_powertools
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from handler import routes
from handler.capture import Capture, read_profile
from handler.config import log_level, observability_names
from handler.drift import ProfileError
from handler.errors import ApiError, ModelLoadError, internal_error, model_unavailable
from handler.loading import LoadedModel, load_model_from_environment
from handler.scoring import model_identity, score
from handler.snapstart import register_snapstart_hooks
from handler.validation import parse_json_body

# /health, /model and 404s publish no metric by design; Powertools would warn on each.
warnings.filterwarnings("ignore", message="No application metrics to publish")

SERVICE_NAME, METRICS_NAMESPACE = observability_names(os.environ)
LOG_LEVEL, LOG_LEVEL_PROBLEM = log_level(os.environ)  # Powertools would raise on an unknown level
logger = Logger(service=SERVICE_NAME, level=LOG_LEVEL)
metrics = Metrics(service=SERVICE_NAME, namespace=METRICS_NAMESPACE)
app = APIGatewayHttpResolver()


def initialise() -> LoadedModel | None:
    """Load the model, or log the cause and emit ModelLoadFailure so an alarm fires (whatever was raised)."""
    if LOG_LEVEL_PROBLEM is not None:
        logger.warning(LOG_LEVEL_PROBLEM, extra={"cause": "log_level_invalid"})
    try:
        model = load_model_from_environment(os.environ)
    except ModelLoadError as error:
        logger.error(f"Model load failed ({error.cause}): {error.detail}", extra={"cause": error.cause})
        metrics.add_metric(name="ModelLoadFailure", unit=MetricUnit.Count, value=1)
        metrics.flush_metrics()  # now: a failed init may never see a request
        return None
    manifest = model.manifest
    logger.info("Model loaded", extra={"model_name": manifest.name, "model_version": manifest.version,
                                       "sha256": manifest.sha256, "runtime": manifest.runtime})
    return model


def start_capture(model: LoadedModel | None) -> Capture | None:
    """The capture of served inputs for the drift check, or None when it is off.

    Monitoring fails open: without a usable profile the model still serves, one warning names the cause
    and CaptureDisabled is emitted (so an alarm or the dashboard can show that drift goes unwatched).
    """
    if model is None or model.settings.capture_mode == "off":
        return None
    settings, manifest = model.settings, model.manifest
    if model.profile_problem is not None:
        return capture_disabled("profile_unavailable", model.profile_problem)
    try:
        profile = read_profile(settings.model_dir, manifest)
    except ProfileError as error:
        return capture_disabled("profile_missing" if manifest.profile is None else "profile_invalid", str(error))
    except Exception as error:  # monitoring fails open, whatever a malformed profile raises
        return capture_disabled("profile_invalid", f"{type(error).__name__}: {str(error)[:300]}")
    if profile.feature_names != manifest.feature_names:
        return capture_disabled("profile_invalid", "the profile describes other features than the manifest")
    if logger.log_level > logging.INFO:
        return capture_disabled("log_level", "capture lines are logged at INFO, which the log level drops")
    return Capture(profile, manifest, mode=settings.capture_mode, sample_rate=settings.capture_sample_rate)


def capture_disabled(cause: str, detail: str) -> None:
    """Log why capture is off and emit CaptureDisabled; None, the capture there is."""
    logger.warning(f"Capture disabled ({cause}): {detail}; the model serves without drift monitoring",
                   extra={"cause": cause})
    metrics.add_metric(name="CaptureDisabled", unit=MetricUnit.Count, value=1)
    metrics.flush_metrics()  # now, like ModelLoadFailure: the first request may be long in coming
    return None


MODEL = initialise()
CAPTURE = start_capture(MODEL)
register_snapstart_hooks()


def require_model(router: APIGatewayHttpResolver, next_middleware: Callable[..., Response]) -> Response:
    """Every route answers 503 while the model is unavailable, /health included."""
    if MODEL is None:
        raise model_unavailable()
    return next_middleware(router)


def predict() -> dict[str, Any]:
    """POST /predict: validate every instance, predict them in one call, log a capture line when sampled."""
    event = app.current_event
    payload = parse_json_body(event.body, is_base64=event.is_base64_encoded,
                              content_type=event.headers.get("content-type"),
                              max_bytes=MODEL.settings.max_body_bytes)
    scored = score(MODEL, payload)
    metrics.add_metric(name="PredictionsServed", unit=MetricUnit.Count, value=scored.count)
    metrics.add_metric(name="PredictionLatency", unit=MetricUnit.Milliseconds, value=scored.latency_ms)
    if scored.unknown_categories:
        metrics.add_metric(name="UnknownCategories", unit=MetricUnit.Count, value=scored.unknown_categories)
    metrics.add_metadata(key="model_version", value=MODEL.manifest.version)
    line = None if CAPTURE is None else CAPTURE.line(scored.batch.columns, scored.predictions)
    if line is not None:
        logger.info(line)  # the drift check finds it by its plain term "model-input"
    return {"predictions": scored.predictions, "model": model_identity(MODEL.manifest)}


def health() -> dict[str, Any]:
    """GET /health: the model is loaded and verified."""
    return {"status": "ok", "model": model_identity(MODEL.manifest)}


def describe_model() -> dict[str, Any]:
    """GET /model: the manifest's public part."""
    return MODEL.manifest.public_view()


@cache
def openapi() -> dict[str, Any]:
    """GET /openapi.json: the API's contract, built on first request rather than at init."""
    from handler.openapi import openapi_document

    return openapi_document(MODEL.manifest, MODEL.settings)


def docs() -> Response:
    """GET /docs: an interactive page over /openapi.json (enabled by DOCS_ENABLED=true), with no external request."""
    return Response(status_code=200, content_type="text/html; charset=utf-8", body=SWAGGER_PAGE)


# Swagger UI's script and style sheet as Powertools ships them in every bundle: /docs works without internet.
SWAGGER_UI_DIR = Path(aws_lambda_powertools.__file__).parent / "event_handler" / "openapi" / "swagger_ui"
SWAGGER_ASSETS = {routes.DOCS_SCRIPT: ("swagger-ui-bundle.min.js", "text/javascript; charset=utf-8"),
                  routes.DOCS_STYLE: ("swagger-ui.min.css", "text/css; charset=utf-8")}


@cache
def swagger_asset(route: routes.Route) -> Response:
    """One of Swagger UI's files, read on first request."""
    file_name, content_type = SWAGGER_ASSETS[route]
    return Response(status_code=200, content_type=content_type,
                    body=(SWAGGER_UI_DIR / file_name).read_text(encoding="utf-8"),
                    headers={"Cache-Control": "max-age=86400"})


# Relative URLs: the page works under any stage path, and asks nothing of any other host.
SWAGGER_PAGE = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Model API</title>
<link rel="stylesheet" href="{routes.DOCS_STYLE.path.removeprefix('/')}"></head>
<body><div id="docs"></div>
<script src="{routes.DOCS_SCRIPT.path.removeprefix('/')}"></script>
<script>SwaggerUIBundle({{url: "openapi.json", dom_id: "#docs"}});</script>
</body></html>
"""


VIEWS: dict[routes.Route, Callable[[], Any]] = {routes.PREDICT: predict, routes.HEALTH: health,
                                                 routes.MODEL: describe_model, routes.OPENAPI: openapi,
                                                 routes.DOCS: docs,
                                                 routes.DOCS_SCRIPT: lambda: swagger_asset(routes.DOCS_SCRIPT),
                                                 routes.DOCS_STYLE: lambda: swagger_asset(routes.DOCS_STYLE)}
ROUTES = {route.path: route for route in routes.served_routes(MODEL is not None and MODEL.settings.docs_enabled)}
for _route in ROUTES.values():
    app.route(_route.path, _route.method, middlewares=[require_model])(VIEWS[_route])


def error_response(error: ApiError) -> Response:
    """Render an ApiError as the documented JSON body."""
    return Response(status_code=error.status, content_type=content_types.APPLICATION_JSON,
                    body=json.dumps(error.body(), separators=(",", ":")), headers=error.headers)


@app.exception_handler(ApiError)
def handle_api_error(error: ApiError) -> Response:
    if error.code == "unscorable_input":
        logger.warning("Model could not score the request", exc_info=error.__cause__)
    if error.status < 500:
        metrics.add_metric(name="RequestsRejected", unit=MetricUnit.Count, value=1)
        logger.info("Request rejected", extra={"status": error.status, "code": error.code,
                                               "problems": len(error.details)})
    return error_response(error)


@app.not_found
def handle_not_found(_: NotFoundError) -> Response:
    route = ROUTES.get(app.current_event.path)
    if route is None:
        served = ", ".join(f"{known.method} {known.path}" for known in ROUTES.values())
        return error_response(ApiError("not_found", f"No such route. Routes: {served}."))
    return error_response(ApiError("method_not_allowed", f"This route accepts {route.method} only.",
                                   headers={"Allow": route.method}))


@app.exception_handler(Exception)
def handle_unexpected(_: Exception) -> Response:
    logger.exception("Unhandled error")  # the traceback goes to the log, never to the caller
    return error_response(internal_error())


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Lambda entry point: API Gateway HTTP API (payload 2.0) in, HTTP response out."""
    return app.resolve(event, context)
