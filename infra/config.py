"""Deployment settings: cdk.json context (or `-c key=value`) validated into one frozen object.

Pure Python, so the settings table doubles as the README's context-key reference.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder.bundler import DEFAULT_ARCHITECTURE, DEFAULT_PYTHON_RUNTIME, PIP_ARCHITECTURES, PYTHON_RUNTIMES
from handler.config import S3ModelLocation, Settings
from handler.manifest import SHA256_HEX

ARCHITECTURES = tuple(PIP_ARCHITECTURES)
AUTH_MODES = ("iam", "none")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# The only retention periods CloudWatch Logs accepts.
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
                      1096, 1827, 2192, 2557, 2922, 3288, 3653)
# API Gateway HTTP APIs give up on an integration after 30 s.
MAX_TIMEOUT_SECONDS = 29
MODEL_SOURCES = ("bundled", "s3")
# How CodeDeploy shifts the `live` alias to a new version (names of its predefined Lambda configurations).
DEPLOYMENTS = ("canary_10_percent_5_minutes", "linear_10_percent_every_1_minute", "all_at_once")

_NAME = r"[a-z][a-z0-9-]*"
_ORIGIN = r"(https://[a-z0-9.-]+|http://(localhost|127\.0\.0\.1))(:[0-9]{1,5})?"
_EMAIL = r"[^@\s]+@[^@\s]+\.[^@\s]+"
_PRINCIPAL_ARN = r"arn:aws(-cn|-us-gov)?:iam::[0-9]{12}:(role|user)/[\w+=,.@/-]+"
_NAMESPACE = r"(?!AWS/)[A-Za-z0-9._/#:-]{1,255}"
_BUCKET = r"(?!xn--)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]"
# S3 keys safe in an IAM ARN (no '*' or '?' wildcards) and a URL: no leading '/', no empty or '..' segment.
KEY_PREFIX_PATTERN = r"(?!/)(?!.*//)(?!(.*/)?\.\./)[A-Za-z0-9_.=+/-]+/"


class ConfigError(ValueError):
    """One or more context values are wrong; the message names each key and what it allows."""


@dataclass(frozen=True)
class StackConfig:
    """Everything the stack is built from. Field names are the cdk.json context keys."""

    stage: str
    service_name: str
    metrics_namespace: str
    log_level: str
    architecture: str
    python_runtime: str
    memory_mb: int
    timeout_seconds: int
    reserved_concurrency: int | None
    log_retention_days: int
    auth: str
    throttle_rate_limit: float
    throttle_burst_limit: int
    cors_allowed_origins: tuple[str, ...]
    alarm_email: str | None
    invoke_principals: tuple[str, ...]
    max_instances: int | None
    max_body_bytes: int | None
    max_string_length: int | None
    docs_enabled: bool
    model_source: str
    model_bucket_name: str | None
    model_s3_key_prefix: str | None
    model_sha256: str | None
    deployment: str
    pre_traffic_check: bool
    snap_start: bool
    provisioned_concurrency: int | None

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
        return Settings(**limits, docs_enabled=self.docs_enabled, model_s3=model_s3)


def _integer(low: int, high: int | None = None) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value.strip()):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
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
    def parse(value: Any) -> Any:
        for choice in choices:
            if value == choice or str(value) == str(choice):
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
        if not isinstance(value, list):
            raise ValueError
        return tuple(parse(item) for item in value)
    return parse_list


@dataclass(frozen=True)
class Setting:
    """One context key: its default, what it allows (in words) and how to parse it."""

    key: str
    default: Any
    allowed: str
    parse: Callable[[Any], Any]


SETTINGS = (
    Setting("stage", "dev", "lowercase letters, digits and '-', starting with a letter, at most 16 characters",
            _matching(_NAME, 16)),
    Setting("service_name", "model-api",
            "lowercase letters, digits and '-', starting with a letter, at most 40 characters",
            _matching(_NAME, 40)),
    Setting("metrics_namespace", "SklearnModelApi",
            "1-255 of A-Z a-z 0-9 . _ / # : -, not starting with AWS/", _matching(_NAMESPACE)),
    Setting("log_level", "INFO", f"one of {', '.join(LOG_LEVELS)}", _one_of(LOG_LEVELS)),
    Setting("architecture", DEFAULT_ARCHITECTURE, f"one of {', '.join(ARCHITECTURES)}", _one_of(ARCHITECTURES)),
    Setting("python_runtime", DEFAULT_PYTHON_RUNTIME, f"one of {', '.join(PYTHON_RUNTIMES)}", _one_of(PYTHON_RUNTIMES)),
    Setting("memory_mb", 1769, "an integer from 128 to 10240", _integer(128, 10240)),
    Setting("timeout_seconds", 10, f"an integer from 1 to {MAX_TIMEOUT_SECONDS}", _integer(1, MAX_TIMEOUT_SECONDS)),
    Setting("reserved_concurrency", None, "null or an integer >= 1", _optional(_integer(1))),
    Setting("log_retention_days", 30, f"one of {', '.join(map(str, LOG_RETENTION_DAYS))}",
            _one_of(LOG_RETENTION_DAYS)),
    Setting("auth", "iam", f"one of {', '.join(AUTH_MODES)}", _one_of(AUTH_MODES)),
    Setting("throttle_rate_limit", 50, "a number of requests per second from 1 to 10000", _number(1, 10000)),
    Setting("throttle_burst_limit", 100, "an integer from 1 to 5000", _integer(1, 5000)),
    Setting("cors_allowed_origins", [], "a list of origins such as https://app.example.com "
            "(http:// only for localhost; no '*')", _list_of(_matching(_ORIGIN))),
    Setting("alarm_email", None, "null or an e-mail address", _optional(_matching(_EMAIL))),
    Setting("invoke_principals", [], "a list of IAM role or user ARNs (arn:aws:iam::<account>:role/<name>) "
            "in the deploying account", _list_of(_matching(_PRINCIPAL_ARN, 2048))),
    Setting("max_instances", None, "null (the handler's default) or an integer >= 1", _optional(_integer(1))),
    Setting("max_body_bytes", None, "null (the handler's default) or an integer from 64 to 6291456",
            _optional(_integer(64, 6_291_456))),
    Setting("max_string_length", None, "null (the handler's default) or an integer >= 1", _optional(_integer(1))),
    Setting("docs_enabled", False, "true or false", _boolean),
    Setting("model_source", "bundled", f"one of {', '.join(MODEL_SOURCES)}", _one_of(MODEL_SOURCES)),
    Setting("model_bucket_name", None, "null (the stack creates the bucket) or an existing S3 bucket's name",
            _optional(_matching(_BUCKET, 63))),
    Setting("model_s3_key_prefix", None, "null or the key prefix publish printed, e.g. models/churn/1.0.0/",
            _optional(_matching(KEY_PREFIX_PATTERN, 900))),
    Setting("model_sha256", None, "null or the artifact's sha256 publish printed (64 lowercase hex characters)",
            _optional(_matching(SHA256_HEX.pattern))),
    Setting("deployment", "canary_10_percent_5_minutes", f"one of {', '.join(DEPLOYMENTS)}", _one_of(DEPLOYMENTS)),
    Setting("pre_traffic_check", False, "true or false", _boolean),
    Setting("snap_start", False, "true or false", _boolean),
    Setting("provisioned_concurrency", None, "null or an integer from 1 to 1000", _optional(_integer(1, 1000))),
)


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
        raw = context.get(setting.key, setting.default)
        try:
            values[setting.key] = setting.parse(raw)
        except (ValueError, TypeError):
            problems.append(f"{setting.key}: got {raw!r}; allowed: {setting.allowed}")
    if not problems:
        problems = _conflicts(values)
    if problems:
        raise ConfigError("invalid cdk.json context:\n  " + "\n  ".join(problems))
    return StackConfig(**values)


def _conflicts(values: Mapping[str, Any]) -> list[str]:
    """Values that are valid alone but not together."""
    problems = []
    if values["snap_start"] and values["provisioned_concurrency"] is not None:
        problems.append("snap_start and provisioned_concurrency: choose one; AWS Lambda does not support SnapStart "
                        "with provisioned concurrency (set snap_start to false or provisioned_concurrency to null)")
    reserved, provisioned = values["reserved_concurrency"], values["provisioned_concurrency"]
    if reserved is not None and provisioned is not None and provisioned > reserved:
        problems.append(f"provisioned_concurrency: got {provisioned}; "
                        f"allowed: at most reserved_concurrency ({reserved})")
    if (values["model_s3_key_prefix"] is None) != (values["model_sha256"] is None):
        problems.append("model_s3_key_prefix and model_sha256: set both (as publish prints them) or neither")
    return problems


def _unknown_keys(context: Mapping[str, Any]) -> list[str]:
    """Catch typos in our keys; CDK's own keys carry '@' or ':' and are left alone."""
    known = [setting.key for setting in SETTINGS]
    problems = []
    for key in context:
        if re.fullmatch(r"[a-z][a-z0-9_]*", key) and key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            problems.append(f"{key}: unknown context key{hint}; known keys: {', '.join(known)}")
    return problems

