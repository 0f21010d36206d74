"""Handler settings: environment variables validated into one frozen object."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from handler.manifest import SHA256_HEX

# The packager writes, the bundle ships and the handler reads the model from this directory, beside handler/.
MODEL_DIR_NAME = "model_artifacts"
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / MODEL_DIR_NAME
DEFAULT_SERVICE_NAME = "model-api"
DEFAULT_METRICS_NAMESPACE = "SklearnModelApi"

# The environment variables the handler reads; the stack builds them with function_environment().
MODEL_DIR = "MODEL_DIR"
MAX_INSTANCES, MAX_BODY_BYTES, MAX_STRING_LENGTH = "MAX_INSTANCES", "MAX_BODY_BYTES", "MAX_STRING_LENGTH"
DOCS_ENABLED = "DOCS_ENABLED"
# Drift capture: what each sampled request logs for the drift check (raw values are a privacy decision).
CAPTURE_MODE, CAPTURE_SAMPLE_RATE = "CAPTURE_MODE", "CAPTURE_SAMPLE_RATE"
CAPTURE_MODES = ("off", "binned", "raw")
# Set together (by the stack, with model_source s3): the model is fetched from S3 at init, not read from MODEL_DIR;
# the published manifest must hash to MODEL_MANIFEST_SHA256 and its artifact to MODEL_SHA256.
MODEL_S3_BUCKET, MODEL_S3_PREFIX, MODEL_SHA256 = "MODEL_S3_BUCKET", "MODEL_S3_PREFIX", "MODEL_SHA256"
MODEL_MANIFEST_SHA256 = "MODEL_MANIFEST_SHA256"
S3_VARIABLES = (MODEL_S3_BUCKET, MODEL_S3_PREFIX, MODEL_SHA256, MODEL_MANIFEST_SHA256)
# Powertools' own variables.
SERVICE_NAME, METRICS_NAMESPACE, LOG_LEVEL = ("POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE",
                                              "POWERTOOLS_LOG_LEVEL")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DEFAULT_LOG_LEVEL = "INFO"
# Lambda's synchronous payload limit: no body (nor any string in one) can be larger.
LAMBDA_PAYLOAD_BYTES = 6_291_456


class SettingsError(ValueError):
    """An environment variable holds a value the handler cannot use."""


@dataclass(frozen=True)
class S3ModelLocation:
    """A published model: its files under `prefix` in `bucket`, and the sha256 of the artifact and of the
    manifest the deployment pins (the manifest's None only while a location is being built)."""

    bucket: str
    prefix: str
    sha256: str
    manifest_sha256: str | None = None

    def key(self, file_name: str) -> str:
        return self.prefix + file_name


@dataclass(frozen=True)
class Settings:
    """Limits and locations the handler runs with."""

    model_dir: Path = DEFAULT_MODEL_DIR
    max_instances: int = 1000
    max_body_bytes: int = 1_048_576
    max_string_length: int = 256
    docs_enabled: bool = False
    model_s3: S3ModelLocation | None = None
    capture_mode: str = "binned"
    capture_sample_rate: float = 1.0


# The most instances a request may be allowed to hold (a value above is a typo, refused at init and at synth).
MAX_INSTANCES_LIMIT = 100_000
# variable name -> (field, smallest and largest allowed value): a value outside is a typo, refused at init.
_INTEGER_VARIABLES = {
    MAX_INSTANCES: ("max_instances", 1, MAX_INSTANCES_LIMIT),
    MAX_BODY_BYTES: ("max_body_bytes", 64, LAMBDA_PAYLOAD_BYTES),
    MAX_STRING_LENGTH: ("max_string_length", 1, LAMBDA_PAYLOAD_BYTES),
}


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Read MODEL_DIR and the request caps from environ, naming any variable that is wrong."""
    values: dict[str, object] = {}
    problems = []
    if environ.get(MODEL_DIR):
        values["model_dir"] = Path(environ[MODEL_DIR])
    for variable, (field, minimum, maximum) in _INTEGER_VARIABLES.items():
        raw = environ.get(variable)
        if raw is None or raw == "":
            continue
        number = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 9 else None
        if number is None or not minimum <= number <= maximum:
            problems.append(f"{variable} must be an integer from {minimum} to {maximum}, got {raw[:40]!r}")
        else:
            values[field] = number
    docs = environ.get(DOCS_ENABLED, "false").strip().lower()
    if docs not in ("true", "false"):
        problems.append(f"{DOCS_ENABLED} must be true or false, got {environ[DOCS_ENABLED]!r}")
    values["docs_enabled"] = docs == "true"
    _read_capture(environ, values, problems)
    if any(environ.get(variable) for variable in S3_VARIABLES):
        values["model_s3"] = _s3_location(environ, problems)
    if problems:
        raise SettingsError("; ".join(problems))
    return Settings(**values)


def _read_capture(environ: Mapping[str, str], values: dict[str, object], problems: list[str]) -> None:
    """CAPTURE_MODE (off, binned or raw) and CAPTURE_SAMPLE_RATE (a share from 0 to 1) into values."""
    mode = environ.get(CAPTURE_MODE, "").strip().lower()
    if mode:
        if mode in CAPTURE_MODES:
            values["capture_mode"] = mode
        else:
            problems.append(f"{CAPTURE_MODE} must be one of {', '.join(CAPTURE_MODES)}, got {environ[CAPTURE_MODE]!r}")
    raw = environ.get(CAPTURE_SAMPLE_RATE, "")
    if raw:
        try:
            rate = float(raw)
        except ValueError:
            rate = math.nan
        if 0.0 <= rate <= 1.0:  # NaN fails both comparisons
            values["capture_sample_rate"] = rate
        else:
            problems.append(f"{CAPTURE_SAMPLE_RATE} must be a number from 0 to 1, got {raw!r}")


def _s3_location(environ: Mapping[str, str], problems: list[str]) -> S3ModelLocation | None:
    """The four S3 variables as one location; each wrong one is added to problems."""
    bucket, prefix, sha256, manifest_sha256 = (environ.get(name, "") for name in S3_VARIABLES)
    found = len(problems)
    if not bucket:
        problems.append(f"{MODEL_S3_BUCKET} must be set with {MODEL_S3_PREFIX}, {MODEL_SHA256} "
                        f"and {MODEL_MANIFEST_SHA256}")
    if not prefix.endswith("/") or prefix.startswith("/"):
        problems.append(f"{MODEL_S3_PREFIX} must be a key prefix ending in '/', got {prefix!r}")
    for variable, digest in ((MODEL_SHA256, sha256), (MODEL_MANIFEST_SHA256, manifest_sha256)):
        if not SHA256_HEX.fullmatch(digest):
            problems.append(f"{variable} must be 64 lowercase hex characters, got {digest[:80]!r}")
    return S3ModelLocation(bucket, prefix, sha256, manifest_sha256) if len(problems) == found else None


def log_level(environ: Mapping[str, str]) -> tuple[str, str | None]:
    """POWERTOOLS_LOG_LEVEL as a level Powertools accepts, and why it was replaced by INFO (None when it was not).

    Powertools raises at Logger() creation on an unknown level: read here, a typo cannot crash init.
    """
    raw = environ.get(LOG_LEVEL, "")
    level = raw.strip().upper()
    if not level:
        return DEFAULT_LOG_LEVEL, None
    if level in LOG_LEVELS:
        return level, None
    return DEFAULT_LOG_LEVEL, (f"{LOG_LEVEL} must be one of {', '.join(LOG_LEVELS)}, got {raw[:40]!r}; "
                               f"logging at {DEFAULT_LOG_LEVEL}")


def observability_names(environ: Mapping[str, str]) -> tuple[str, str]:
    """Service name and metrics namespace, from Powertools' own variables or the defaults."""
    return (environ.get(SERVICE_NAME) or DEFAULT_SERVICE_NAME,
            environ.get(METRICS_NAMESPACE) or DEFAULT_METRICS_NAMESPACE)


def settings_environment(settings: Settings) -> dict[str, str]:
    """The inverse of load_settings: the variables that load back as settings (defaults left out)."""
    defaults = Settings()
    environment = {variable: str(getattr(settings, field)) for variable, (field, *_) in _INTEGER_VARIABLES.items()
                   if getattr(settings, field) != getattr(defaults, field)}
    if settings.model_dir != defaults.model_dir:
        environment[MODEL_DIR] = str(settings.model_dir)
    if settings.docs_enabled:
        environment[DOCS_ENABLED] = "true"
    if settings.capture_mode != defaults.capture_mode:
        environment[CAPTURE_MODE] = settings.capture_mode
    if settings.capture_sample_rate != defaults.capture_sample_rate:
        environment[CAPTURE_SAMPLE_RATE] = repr(settings.capture_sample_rate)
    if settings.model_s3 is not None:
        location = settings.model_s3
        environment |= dict(zip(S3_VARIABLES, (location.bucket, location.prefix, location.sha256,
                                               location.manifest_sha256 or "")))
    return environment


def function_environment(settings: Settings, *, service_name: str, metrics_namespace: str,
                         log_level: str) -> dict[str, str]:
    """Everything a deployed function's environment holds: Powertools' names and the handler's settings."""
    return {SERVICE_NAME: service_name, METRICS_NAMESPACE: metrics_namespace, LOG_LEVEL: log_level,
            **settings_environment(settings)}
