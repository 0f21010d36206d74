"""Deployment settings: cdk.json context (or `-c key=value`) validated into one frozen object.

Each context key is declared once, as a field of StackConfig: its default, the rule it must meet (the text
an error quotes), what it does, and its parser. The README's settings table is generated from them
(`python -m infra.config`).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from builder.bundler import DEFAULT_ARCHITECTURE, DEFAULT_PYTHON_RUNTIME, PIP_ARCHITECTURES, PYTHON_RUNTIMES
from handler.config import (CAPTURE_MODES, DEFAULT_METRICS_NAMESPACE, DEFAULT_SERVICE_NAME, MAX_INSTANCES_LIMIT,
                            S3ModelLocation, Settings)
from handler.manifest import SHA256_HEX

ARCHITECTURES = tuple(PIP_ARCHITECTURES)
AUTH_MODES = ("iam", "none")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# The only retention periods CloudWatch Logs accepts.
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
                      1096, 1827, 2192, 2557, 2922, 3288, 3653)
# API Gateway HTTP APIs give up on an integration after 30 s.
MAX_TIMEOUT_SECONDS = 29
# Lambda's synchronous payload limit: no request body, and so no instance count or string in it, is larger.
MAX_REQUEST_BYTES = 6_291_456
# Ten times Lambda's default account quota of 1,000 concurrent executions: room for a raised quota, while a
# typo such as 100000 (which no account is likely to have) stops synth instead of failing the deploy.
MAX_RESERVED_CONCURRENCY = 10_000
MODEL_SOURCES = ("bundled", "s3")
# How CodeDeploy shifts the `live` alias to a new version (names of its predefined Lambda configurations).
DEPLOYMENTS = ("canary_10_percent_5_minutes", "linear_10_percent_every_1_minute", "all_at_once")
# Keys the CDK CLI itself keeps in cdk.context.json (`cdk acknowledge`, `cdk cli-telemetry`) and passes on.
CDK_CLI_KEYS = ("acknowledged-issue-numbers", "cli-telemetry")

_NAME = r"[a-z][a-z0-9-]*"
_ORIGIN = r"(https://[a-z0-9.-]+|http://(localhost|127\.0\.0\.1))(:[0-9]{1,5})?"
_EMAIL = r"[^@\s]+@[^@\s]+\.[^@\s]+"
_PRINCIPAL_ARN = r"arn:aws(-cn|-us-gov)?:iam::[0-9]{12}:(role|user)/[\w+=,.@/-]+"
_NAMESPACE = r"(?!AWS/)[A-Za-z0-9._/#:-]{1,255}"
# S3's general purpose bucket naming rules: 3-63 of a-z 0-9 . -, a letter or digit at each end, no '..',
# not an IP address, none of the reserved prefixes and suffixes.
_BUCKET = (r"(?!xn--|sthree-|amzn-s3-demo-)(?!.*\.\.)(?![0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$)"
           r"(?!.*(-s3alias|--ol-s3|\.mrap|--x-s3|--table-s3)$)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
# S3 keys safe in an IAM ARN (no '*' or '?' wildcards) and a URL: no leading '/', no empty or '..' segment.
KEY_PREFIX_PATTERN = r"(?!/)(?!.*//)(?!(.*/)?\.\./)[A-Za-z0-9_.=+/-]+/"


class ConfigError(ValueError):
    """One or more context values are wrong; the message names each key and what it allows."""


def _integer(low: int, high: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value.strip()):
            value = int(value)
        # bool is an int subclass: `true` must not pass as 1.
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError
        return value
    return parse


def _number(low: float, high: float) -> Callable[[Any], float]:
    def parse(value: Any) -> float:
        if isinstance(value, str):
            value = float(value)  # a non-number string raises ValueError itself
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
            raise ValueError
        return float(value)
    return parse


def _one_of(choices: tuple[Any, ...]) -> Callable[[Any], Any]:
    """Exactly one of choices, or its spelling as a `-c key=value` string (so `true` is not the number 1)."""
    def parse(value: Any) -> Any:
        for choice in choices:
            if (type(value) is type(choice) and value == choice) or (isinstance(value, str) and value == str(choice)):
                return choice
        raise ValueError
    return parse


def _matching(pattern: str, max_length: int = 255) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if not isinstance(value, str) or len(value) > max_length or not re.fullmatch(pattern, value):
            raise ValueError
        return value
    return parse


def _boolean(value: Any) -> bool:
    """true or false; from `-c key=...` also the strings "true" and "false"."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError


def _optional(parse: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """null, "" or "null" (as `-c key=null` arrives) mean: not set."""
    return lambda value: None if value in (None, "", "null") else parse(value)


def _list_of(parse: Callable[[Any], Any]) -> Callable[[Any], tuple[Any, ...]]:
    """A JSON list; from `-c key=...` also a JSON-list string or comma-separated values."""
    def parse_list(value: Any) -> tuple[Any, ...]:
        if isinstance(value, str):
            stripped = value.strip()
            value = json.loads(stripped) if stripped.startswith("[") else [
                item.strip() for item in stripped.split(",") if item.strip()]
        if not isinstance(value, list | tuple):
            raise ValueError
        return tuple(parse(item) for item in value)
    return parse_list


def setting(default: Any, parse: Callable[[Any], Any], allowed: str, description: str) -> Any:
    """A StackConfig field for one context key: its default, how to parse it, its rule and what it does."""
    return field(default=default, metadata={"parse": parse, "allowed": allowed, "description": description})


def _choices(values: tuple[Any, ...]) -> str:
    return "one of " + ", ".join(map(str, values))


_HANDLER_DEFAULTS = Settings()


@dataclass(frozen=True)
class StackConfig:
    """Everything the stack is built from. Field names are the cdk.json context keys."""

    stage: str = setting(
        "dev", _matching(_NAME, 16),
        "lowercase letters, digits and '-', starting with a letter, at most 16 characters",
        "Names the deployment: the stack is <service_name>-<stage>, and its resources are tagged with it.")
    service_name: str = setting(
        DEFAULT_SERVICE_NAME, _matching(_NAME, 40),
        "lowercase letters, digits and '-', starting with a letter, at most 40 characters",
        "Names the API: the stack, the service of the handler's logs and metrics, the alarm e-mails.")
    metrics_namespace: str = setting(
        DEFAULT_METRICS_NAMESPACE, _matching(_NAMESPACE),
        "1-255 of A-Z a-z 0-9 . _ / # : -, not starting with AWS/",
        "CloudWatch namespace of the handler's metrics and of the alarms and dashboard on them.")
    log_level: str = setting(
        "INFO", _one_of(LOG_LEVELS), _choices(LOG_LEVELS),
        "The handler's log level.")
    architecture: str = setting(
        DEFAULT_ARCHITECTURE, _one_of(ARCHITECTURES), _choices(ARCHITECTURES),
        "The function's CPU; the bundle's wheels are downloaded for it.")
    python_runtime: str = setting(
        DEFAULT_PYTHON_RUNTIME, _one_of(PYTHON_RUNTIMES), _choices(PYTHON_RUNTIMES),
        "The function's Lambda runtime; the bundle's wheels are downloaded for its Python version.")
    memory_mb: int = setting(
        1769, _integer(128, 10240), "an integer from 128 to 10240",
        "The function's memory. 1769 MB is one full vCPU: importing scikit-learn and loading the model takes "
        "about 6 s of CPU at first start (the ONNX runtime under 1 s, see Budgets), and init must fit Lambda's "
        "10 s limit. Less memory means proportionally less CPU.")
    timeout_seconds: int = setting(
        10, _integer(1, MAX_TIMEOUT_SECONDS), f"an integer from 1 to {MAX_TIMEOUT_SECONDS}",
        "Longest one request may run (API Gateway gives up after 30 s); the p99 duration alarm fires at 80 % of it.")
    reserved_concurrency: int | None = setting(
        None, _optional(_integer(1, MAX_RESERVED_CONCURRENCY)),
        f"null or an integer from 1 to {MAX_RESERVED_CONCURRENCY}",
        "Concurrent executions reserved for, and the most allowed to, the function; null shares the account's "
        "pool. The ceiling is ten times Lambda's default account quota of 1,000.")
    log_retention_days: int = setting(
        30, _one_of(LOG_RETENTION_DAYS), _choices(LOG_RETENTION_DAYS),
        "Days the function's, the API's and the pre-traffic check's logs, and the model bucket's access logs, "
        "are kept (CloudWatch's own choices).")
    auth: str = setting(
        "iam", _one_of(AUTH_MODES), _choices(AUTH_MODES),
        "iam: every route needs a SigV4 signature of a principal allowed execute-api:Invoke; none: anyone with "
        "the URL may call the API (synth warns).")
    throttle_rate_limit: float = setting(
        50, _number(1, 10000), "a number of requests per second from 1 to 10000",
        "Steady requests per second the API lets through before answering 429.")
    throttle_burst_limit: int = setting(
        100, _integer(1, 5000), "an integer from 1 to 5000",
        "Requests the API lets through at once above the steady rate.")
    cors_allowed_origins: tuple[str, ...] = setting(
        (), _list_of(_matching(_ORIGIN)),
        "a list of origins such as https://app.example.com (http:// only for localhost; no '*')",
        "Browser origins allowed to call the API (see Calling the API from a browser); empty sends no CORS headers.")
    alarm_email: str | None = setting(
        None, _optional(_matching(_EMAIL)), "null or an e-mail address",
        "Gets every alarm and its recovery by e-mail (the address must confirm the subscription first).")
    invoke_principals: tuple[str, ...] = setting(
        (), _list_of(_matching(_PRINCIPAL_ARN, 2048)),
        "a list of IAM role or user ARNs (arn:aws:iam::<account>:role/<name>) in the deploying account",
        "Roles and users granted execute-api:Invoke on the API's routes.")
    max_instances: int | None = setting(
        None, _optional(_integer(1, MAX_INSTANCES_LIMIT)), f"null or an integer from 1 to {MAX_INSTANCES_LIMIT}",
        f"Most instances one request may hold; null keeps the handler's default ({_HANDLER_DEFAULTS.max_instances}).")
    max_body_bytes: int | None = setting(
        None, _optional(_integer(64, MAX_REQUEST_BYTES)), f"null or an integer from 64 to {MAX_REQUEST_BYTES}",
        f"Largest request body in bytes; null keeps the handler's default ({_HANDLER_DEFAULTS.max_body_bytes}).")
    max_string_length: int | None = setting(
        None, _optional(_integer(1, MAX_REQUEST_BYTES)), f"null or an integer from 1 to {MAX_REQUEST_BYTES}",
        "Longest string value of a categorical feature; null keeps the handler's default "
        f"({_HANDLER_DEFAULTS.max_string_length}).")
    docs_enabled: bool = setting(
        False, _boolean, "true or false",
        "Serve GET /docs, an interactive page over /openapi.json (a browser cannot sign requests under iam auth).")
    model_source: str = setting(
        "bundled", _one_of(MODEL_SOURCES), _choices(MODEL_SOURCES),
        "bundled: the model ships in the function's bundle; s3: the function reads a published model from S3 "
        "(see Models in S3).")
    model_bucket_name: str | None = setting(
        None, _optional(_matching(_BUCKET, 63)),
        "null or an S3 bucket name: 3-63 of a-z 0-9 . -, a letter or digit at each end, no '..', "
        "not an IP address",
        "With model_source s3: an existing bucket holding the published models; null has the stack create one.")
    model_s3_key_prefix: str | None = setting(
        None, _optional(_matching(KEY_PREFIX_PATTERN, 900)),
        "null or the key prefix publish printed, e.g. models/churn/1.0.0/",
        "The published model's key prefix, as make publish prints it; set together with model_sha256 and "
        "model_manifest_sha256.")
    model_sha256: str | None = setting(
        None, _optional(_matching(SHA256_HEX.pattern)),
        "null or the artifact's sha256 publish printed (64 lowercase hex characters)",
        "The published artifact's sha256, as make publish prints it; it must be the sha256 in "
        "model_artifacts/manifest.json, whose runtime the bundle's libraries are chosen for.")
    model_manifest_sha256: str | None = setting(
        None, _optional(_matching(SHA256_HEX.pattern)),
        "null or the manifest's sha256 publish printed (64 lowercase hex characters)",
        "The published manifest.json's own sha256, as make publish prints it: the function refuses any other "
        "manifest bytes (a manifest rewritten in the bucket), as it refuses another artifact.")
    deployment: str = setting(
        "canary_10_percent_5_minutes", _one_of(DEPLOYMENTS), _choices(DEPLOYMENTS),
        "How CodeDeploy shifts the live alias to a new version, rolling back on an alarm (see Safe rollout).")
    pre_traffic_check: bool = setting(
        False, _boolean, "true or false",
        "Call the new version (/health, /model, /predict) before any traffic reaches it; a wrong answer fails "
        "the deployment.")
    snap_start: bool = setting(
        False, _boolean, "true or false",
        "SnapStart on published versions, for shorter cold starts; not together with provisioned_concurrency.")
    provisioned_concurrency: int | None = setting(
        None, _optional(_integer(1, 1000)), "null or an integer from 1 to 1000",
        "Execution environments kept initialised for the live alias; at most reserved_concurrency when that is "
        "set, and not together with snap_start.")
    batch: bool = setting(
        False, _boolean, "true or false",
        "Adds batch scoring: a Step Functions Distributed Map scoring files from S3 with the same model "
        "(see Batch scoring).")
    batch_max_concurrency: int = setting(
        10, _integer(1, 1000), "an integer from 1 to 1000",
        "Parts of a file scored at once; each is one invocation of the batch function.")
    batch_reserved_concurrency: int | None = setting(
        None, _optional(_integer(1, 1000)), "null or an integer from 1 to 1000",
        "Concurrent executions reserved for (and capping) the batch scoring function, so a big file never takes "
        "the API's share; null shares the account's pool, capped by batch_max_concurrency alone.")
    batch_memory_mb: int = setting(
        1769, _integer(128, 10240), "an integer from 128 to 10240",
        "Memory of the batch functions; 1769 MB is one vCPU.")
    batch_part_mb: int = setting(
        64, _integer(1, 1024), "an integer from 1 to 1024",
        "Megabytes of input each part (one child of the map) reads and scores.")
    batch_input_bucket_name: str | None = setting(
        None, _optional(_matching(_BUCKET, 63)), "null (the stack creates one) or an existing S3 bucket's name",
        "Where input files are read from, under batch_input_prefix.")
    batch_input_prefix: str = setting(
        "input/", _matching(KEY_PREFIX_PATTERN, 900), "a key prefix ending in '/'",
        "The only prefix the batch functions may read.")
    batch_output_bucket_name: str | None = setting(
        None, _optional(_matching(_BUCKET, 63)), "null (the stack creates one) or an existing S3 bucket's name",
        "Where scores, rejects and the summary are written, under batch_output_prefix.")
    batch_output_prefix: str = setting(
        "output/", _matching(KEY_PREFIX_PATTERN, 900), "a key prefix ending in '/'",
        "The only prefix the batch functions may write.")
    capture: str = setting(
        "binned", _one_of(CAPTURE_MODES), _choices(CAPTURE_MODES),
        "What the function logs of each request for drift monitoring: binned (each feature's training bin or "
        "category code, never a raw value), raw (the validated values: a privacy decision) or off.")
    capture_sample_rate: float = setting(
        1.0, _number(0.0, 1.0), "a number from 0 to 1",
        "Share of requests captured; 1.0 suits the low, bursty traffic the template is for.")
    drift_check: bool = setting(
        False, _boolean, "true or false",
        "Adds the scheduled drift check: reads the function's capture lines, compares them with the training "
        "profile, publishes drift metrics with an alarm and writes reports to S3 (see Drift monitoring).")
    drift_schedule: str = setting(
        "rate(1 day)", _matching(r"(rate|cron)\([^()]{1,200}\)"), "an EventBridge rate(...) or cron(...) expression",
        "When the drift check runs.")
    drift_min_rows: int = setting(
        200, _integer(1, 1_000_000), "an integer from 1 to 1000000",
        "Captured instances a window needs before the check gives a verdict; fewer says 'not enough data'.")

    @property
    def model_is_published(self) -> bool:
        """The function reads its model from S3 (model_source s3, with the keys publish printed)."""
        return self.model_source == "s3" and self.model_s3_key_prefix is not None

    @property
    def stack_name(self) -> str:
        return f"{self.service_name}-{self.stage}"

    @property
    def python_version(self) -> str:
        """`python3.14` -> `3.14`, as pip's --python-version wants it."""
        return self.python_runtime.removeprefix("python")

    def handler_settings(self, model_s3: S3ModelLocation | None = None) -> Settings:
        """The handler's settings this config asks for: the limits that are set, docs, where the model is."""
        limits = {name: getattr(self, name) for name in ("max_instances", "max_body_bytes", "max_string_length")
                  if getattr(self, name) is not None}
        return Settings(**limits, docs_enabled=self.docs_enabled, model_s3=model_s3, capture_mode=self.capture,
                        capture_sample_rate=self.capture_sample_rate)


@dataclass(frozen=True)
class Setting:
    """One context key as StackConfig declares it."""

    key: str
    default: Any
    allowed: str
    description: str
    parse: Callable[[Any], Any]


SETTINGS = tuple(Setting(key=declared.name, default=declared.default, **declared.metadata)
                 for declared in dataclasses.fields(StackConfig))


def settings_table() -> str:
    """The README's settings table: one row per context key, from the declarations above."""
    rows = ["| key | default | allowed | what it does |", "| --- | --- | --- | --- |"]
    rows += [f"| `{setting.key}` | `{json.dumps(setting.default)}` | {_cell(setting.allowed)} "
             f"| {_cell(setting.description)} |" for setting in SETTINGS]
    return "\n".join(rows)


def _cell(text: str) -> str:
    """text inside a Markdown table cell: no column break, emphasis or HTML tag (`<name>` stays visible)."""
    return text.replace("|", r"\|").replace("*", r"\*").replace("<", r"\<")


CDK_JSON = Path(__file__).resolve().parent.parent / "cdk.json"


def project_context(cdk_json: Path = CDK_JSON) -> dict[str, Any]:
    """The context block of the project's cdk.json, as the CDK CLI passes it."""
    return json.loads(cdk_json.read_text(encoding="utf-8"))["context"]


def project_config(cdk_json: Path = CDK_JSON) -> StackConfig:
    """The settings the project's cdk.json gives, validated."""
    return load_config(project_context(cdk_json))


def load_config(context: Mapping[str, Any]) -> StackConfig:
    """Validate context into a StackConfig; raise ConfigError naming every wrong key."""
    values: dict[str, Any] = {}
    problems = _unknown_keys(context)
    for setting in SETTINGS:
        if setting.key not in context:
            continue
        raw = context[setting.key]
        try:
            values[setting.key] = setting.parse(raw)
        except (ValueError, TypeError):
            problems.append(f"{setting.key}: got {raw!r}; allowed: {setting.allowed}")
    if not problems:
        config = StackConfig(**values)
        problems = _conflicts(config)
    if problems:
        raise ConfigError("invalid cdk.json context:\n  " + "\n  ".join(problems))
    return config


def _conflicts(config: StackConfig) -> list[str]:
    """Values that are valid alone but not together."""
    problems = []
    if config.snap_start and config.provisioned_concurrency is not None:
        problems.append("snap_start and provisioned_concurrency: choose one; AWS Lambda does not support SnapStart "
                        "with provisioned concurrency (set snap_start to false or provisioned_concurrency to null)")
    reserved, provisioned = config.reserved_concurrency, config.provisioned_concurrency
    if reserved is not None and provisioned is not None and provisioned > reserved:
        problems.append(f"provisioned_concurrency: got {provisioned}; "
                        f"allowed: at most reserved_concurrency ({reserved})")
    pins = (config.model_s3_key_prefix, config.model_sha256, config.model_manifest_sha256)
    if len({pin is None for pin in pins}) > 1:
        problems.append("model_s3_key_prefix, model_sha256 and model_manifest_sha256: set all three "
                        "(as publish prints them) or none")
    if config.drift_check and config.capture == "off":
        problems.append("drift_check and capture: the drift check reads the capture lines; set capture to binned "
                        "(or raw) or drift_check to false")
    if config.drift_check and config.model_source != "bundled":
        problems.append("drift_check and model_source: the drift check reads the training profile from the bundle; "
                        "with model_source s3 set drift_check to false")
    if config.capture != "off" and config.log_level not in ("DEBUG", "INFO"):
        problems.append(f"capture and log_level: capture lines are logged at INFO, which log_level "
                        f"{config.log_level} drops; set log_level to INFO or capture to off")
    return problems


def _unknown_keys(context: Mapping[str, Any]) -> list[str]:
    """Every key that is not ours, with the one meant when it is a near miss (`Stage`, `memory-mb`, `memroy_mb`).

    CDK's own keys carry '@' or ':' (feature flags, lookups, CLI options) and are left alone, as are the few
    plain keys the CDK CLI keeps in cdk.context.json.
    """
    known = [setting.key for setting in SETTINGS]
    problems = []
    for key in context:
        if key in known or key in CDK_CLI_KEYS or "@" in key or ":" in key:
            continue
        spelled = key.strip().lower().replace("-", "_")
        close = [spelled] if spelled in known else difflib.get_close_matches(spelled, known, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        problems.append(f"{key}: unknown context key{hint}; known keys: {', '.join(known)}")
    return problems


if __name__ == "__main__":
    print(settings_table())
