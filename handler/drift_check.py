"""The scheduled drift check: count the window's capture lines, compare them with the training profile,
publish metrics and write a JSON and an HTML report to S3.

Runs as its own Lambda function (handler.drift_check.lambda_handler) from the same bundle, on an EventBridge
schedule. Any AWS error fails the run: one log line names the call and the error, and the invocation errors.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import botocore.session
from aws_lambda_powertools import Logger
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from handler.capture import CAPTURE_TYPE, count_line, parse_capture, read_profile
from handler.config import (
    DEFAULT_METRICS_NAMESPACE,
    DEFAULT_MODEL_DIR,
    DEFAULT_SERVICE_NAME,
    SERVICE_NAME,
    log_level,
)
from handler.drift import (
    DEFAULT_MIN_ROWS,
    Counts,
    DriftResult,
    Profile,
    compare,
    render_html,
    svg_figures,
)
from handler.errors import ModelLoadError
from handler.loading import manifest_in
from handler.manifest import Manifest

# Environment variables the DriftCheck construct sets.
CAPTURE_LOG_GROUP, REPORT_BUCKET, REPORT_PREFIX = "CAPTURE_LOG_GROUP", "REPORT_BUCKET", "REPORT_PREFIX"
WINDOW_HOURS, MIN_ROWS = "WINDOW_HOURS", "MIN_ROWS"
DEFAULT_WINDOW_HOURS = 24
FILTER_PATTERN = f'"{CAPTURE_TYPE}"'  # a plain term: the quotes make '-' part of it
# A bound on one run's reading: at ~100 rows per line this is ten million rows, and well inside 15 minutes.
MAX_CAPTURE_LINES = 100_000
METRIC_DIMENSION = "service"

logger = Logger(service=os.environ.get(SERVICE_NAME, DEFAULT_SERVICE_NAME), level=log_level(os.environ)[0])


class DriftCheckFailed(RuntimeError):
    """The check could not run to the end; the message says which step failed and why."""


@dataclass(frozen=True)
class CheckSettings:
    """Where the check reads, writes and publishes, from the environment."""

    log_group: str
    bucket: str
    prefix: str = ""
    window_hours: int = DEFAULT_WINDOW_HOURS
    min_rows: int = DEFAULT_MIN_ROWS
    namespace: str = DEFAULT_METRICS_NAMESPACE
    service: str = DEFAULT_SERVICE_NAME
    model_dir: Path = DEFAULT_MODEL_DIR


def check_settings(environ: Mapping[str, str]) -> CheckSettings:
    """Read the settings, naming every variable that is missing or wrong."""
    problems = [f"{name} must be set" for name in (CAPTURE_LOG_GROUP, REPORT_BUCKET) if not environ.get(name)]
    numbers = {}
    for name, default in ((WINDOW_HOURS, DEFAULT_WINDOW_HOURS), (MIN_ROWS, DEFAULT_MIN_ROWS)):
        raw = environ.get(name) or str(default)
        numbers[name] = int(raw) if raw.isdigit() and int(raw) >= 1 else None
        if numbers[name] is None:
            problems.append(f"{name} must be an integer >= 1, got {raw!r}")
    if problems:
        raise DriftCheckFailed("; ".join(problems))
    return CheckSettings(
        log_group=environ[CAPTURE_LOG_GROUP], bucket=environ[REPORT_BUCKET], prefix=environ.get(REPORT_PREFIX, ""),
        window_hours=numbers[WINDOW_HOURS], min_rows=numbers[MIN_ROWS],
        namespace=environ.get("POWERTOOLS_METRICS_NAMESPACE") or DEFAULT_METRICS_NAMESPACE,
        service=environ.get("POWERTOOLS_SERVICE_NAME") or DEFAULT_SERVICE_NAME,
        model_dir=Path(environ["MODEL_DIR"]) if environ.get("MODEL_DIR") else DEFAULT_MODEL_DIR)


@dataclass
class Collected:
    """The capture lines of a window, counted."""

    counts: Counts = field(default_factory=Counts)
    lines: int = 0
    skipped: int = 0  # capture lines of another profile, or not capture lines at all
    truncated: bool = False  # MAX_CAPTURE_LINES was reached: the counts cover the window's start only


def collect_counts(logs: Any, log_group: str, start: datetime, end: datetime, profile: Profile, *,
                   max_lines: int = MAX_CAPTURE_LINES, progress: Callable[[Collected], None] | None = None
                   ) -> Collected:
    """Read the window's capture lines from log_group (paginated, at most max_lines) and count their codes."""
    collected = Collected()
    request = {"logGroupName": log_group, "filterPattern": FILTER_PATTERN,
               "startTime": _milliseconds(start), "endTime": _milliseconds(end)}
    while True:
        page = logs.filter_log_events(**request)
        for event in page.get("events", []):
            if collected.lines >= max_lines:
                collected.truncated = True
                return collected
            line = parse_capture(event.get("message", ""))
            if line is not None and count_line(collected.counts, profile, line):
                collected.lines += 1
            else:
                collected.skipped += 1
        if progress is not None:
            progress(collected)
        token = page.get("nextToken")
        if not token:
            return collected
        request["nextToken"] = token


def _milliseconds(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def report_document(result: DriftResult, manifest: Manifest, **context: Any) -> dict[str, Any]:
    """report.json: the model, the context (window, source, lines read) and the result."""
    return {"model": {"name": manifest.name, "version": manifest.version}, **context, **result.to_dict()}


def report_title(manifest: Manifest) -> str:
    return f"Drift report: {manifest.name} {manifest.version}"


def metric_data(result: DriftResult, service: str) -> list[dict[str, Any]]:
    """CapturedRows always; the drift metrics only with a verdict, so the alarm sees no data below min rows."""
    values = {"CapturedRows": (result.rows, "Count")}
    if result.verdict != "not_enough_data":
        values |= {"MaxPSI": (result.max_psi, "None"), "DriftedFeatures": (len(result.drifted_features), "Count"),
                   "PredictionDrift": (int(bool(result.prediction and result.prediction.drifted)), "Count")}
    dimensions = [{"Name": METRIC_DIMENSION, "Value": service}]
    return [{"MetricName": name, "Value": float(value), "Unit": unit, "Dimensions": dimensions}
            for name, (value, unit) in values.items()]


def report_keys(prefix: str, end: datetime) -> tuple[str, str]:
    """Where one run's report.json and report.html go: one folder per run under the prefix."""
    folder = f"{prefix}{end:%Y-%m-%d/%H%M%S}/"
    return folder + "report.json", folder + "report.html"


def client(service: str) -> Any:
    """A botocore client with bounded retries (boto3 adds nothing needed here)."""
    config = Config(connect_timeout=5, read_timeout=30, retries={"total_max_attempts": 5, "mode": "standard"})
    return botocore.session.get_session().create_client(service, config=config)


def window_end(event: Mapping[str, Any]) -> datetime:
    """The scheduled time of an EventBridge event (so a retried run covers the same window), else now."""
    scheduled = event.get("time") if isinstance(event, Mapping) else None
    if isinstance(scheduled, str):
        try:
            return datetime.fromisoformat(scheduled).astimezone(UTC)
        except ValueError:
            pass
    return datetime.now(UTC)


def run_check(settings: CheckSettings, end: datetime) -> dict[str, Any]:
    """Collect, compare, publish and report; returns the run's summary. Raises DriftCheckFailed."""
    try:
        manifest = manifest_in(settings.model_dir)
        profile = read_profile(settings.model_dir, manifest)
    except (ModelLoadError, ValueError) as error:
        raise DriftCheckFailed(f"cannot read the model's profile: {error}") from None
    start = end - timedelta(hours=settings.window_hours)
    step = "reading capture lines"
    try:
        collected = collect_counts(client("logs"), settings.log_group, start, end, profile)
        result = compare(profile, collected.counts, settings.min_rows)
        step = "publishing metrics"
        client("cloudwatch").put_metric_data(Namespace=settings.namespace,
                                             MetricData=metric_data(result, settings.service))
        step = "writing the report"
        document = report_document(result, manifest, window={"start": start.isoformat(), "end": end.isoformat()},
                                   source={"log_group": settings.log_group}, lines=collected.lines,
                                   skipped_lines=collected.skipped, truncated=collected.truncated)
        page = render_html(result, title=report_title(manifest), figures=svg_figures(result),
                           context={"window": f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC",
                                    "log group": settings.log_group, "truncated": collected.truncated})
        json_key, html_key = report_keys(settings.prefix, end)
        s3 = client("s3")
        s3.put_object(Bucket=settings.bucket, Key=json_key, Body=json.dumps(document, indent=1).encode(),
                      ContentType="application/json")
        s3.put_object(Bucket=settings.bucket, Key=html_key, Body=page.encode(), ContentType="text/html; charset=utf-8")
    except (BotoCoreError, ClientError) as error:
        raise DriftCheckFailed(f"{step} failed: {error}") from None
    return {"verdict": result.verdict, "rows": result.rows, "drifted_features": result.drifted_features,
            "max_psi": result.max_psi, "report": f"s3://{settings.bucket}/{html_key}"}


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """EventBridge schedule in; the run's summary out (and logged)."""
    try:
        summary = run_check(check_settings(os.environ), window_end(event))
    except DriftCheckFailed as error:
        logger.error(f"Drift check failed: {error}")
        raise
    logger.info("Drift check done", extra=summary)
    return summary
