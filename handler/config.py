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
# Set together (by the stack, with model_source s3): the model is fetched from S3 at init, not read from MODEL_DIR.
MODEL_S3_BUCKET, MODEL_S3_PREFIX, MODEL_SHA256 = "MODEL_S3_BUCKET", "MODEL_S3_PREFIX", "MODEL_SHA256"
# Powertools' own variables.
SERVICE_NAME, METRICS_NAMESPACE, LOG_LEVEL = ("POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE",
                                              "POWERTOOLS_LOG_LEVEL")


class SettingsError(ValueError):
    """An environment variable holds a value the handler cannot use."""


@dataclass(frozen=True)
class S3ModelLocation:
    """A published model: its files under `prefix` in `bucket`, and the artifact sha256 the deployment pins."""

    bucket: str
    prefix: str
    sha256: str

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


# variable name -> (field, smallest allowed value)
_INTEGER_VARIABLES = {
    MAX_INSTANCES: ("max_instances", 1),
    MAX_BODY_BYTES: ("max_body_bytes", 64),
    MAX_STRING_LENGTH: ("max_string_length", 1),
}


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Read MODEL_DIR and the request caps from environ, naming any variable that is wrong."""
    values: dict[str, object] = {}
    problems = []
    if environ.get(MODEL_DIR):
        values["model_dir"] = Path(environ[MODEL_DIR])
    for variable, (field, minimum) in _INTEGER_VARIABLES.items():
        raw = environ.get(variable)
        if raw is None or raw == "":
            continue
        try:
            number = int(raw)
        except ValueError:
            number = None
        if number is None or number < minimum:
            problems.append(f"{variable} must be an integer >= {minimum}, got {raw!r}")
        else:
            values[field] = number
    docs = environ.get(DOCS_ENABLED, "false").strip().lower()
    if docs not in ("true", "false"):
        problems.append(f"{DOCS_ENABLED} must be true or false, got {environ[DOCS_ENABLED]!r}")
    values["docs_enabled"] = docs == "true"
    _read_capture(environ, values, problems)
    if any(environ.get(variable) for variable in (MODEL_S3_BUCKET, MODEL_S3_PREFIX, MODEL_SHA256)):
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
    """The three MODEL_S3_* variables as one location; each wrong one is added to problems."""
    bucket, prefix, sha256 = (environ.get(name, "") for name in (MODEL_S3_BUCKET, MODEL_S3_PREFIX, MODEL_SHA256))
    found = len(problems)
    if not bucket:
        problems.append(f"{MODEL_S3_BUCKET} must be set with {MODEL_S3_PREFIX} and {MODEL_SHA256}")
    if not prefix.endswith("/") or prefix.startswith("/"):
        problems.append(f"{MODEL_S3_PREFIX} must be a key prefix ending in '/', got {prefix!r}")
    if not SHA256_HEX.fullmatch(sha256):
        problems.append(f"{MODEL_SHA256} must be 64 lowercase hex characters, got {sha256!r}")
    return S3ModelLocation(bucket, prefix, sha256) if len(problems) == found else None


def observability_names(environ: Mapping[str, str]) -> tuple[str, str]:
    """Service name and metrics namespace, from Powertools' own variables or the defaults."""
    return (environ.get(SERVICE_NAME) or DEFAULT_SERVICE_NAME,
            environ.get(METRICS_NAMESPACE) or DEFAULT_METRICS_NAMESPACE)


def settings_environment(settings: Settings) -> dict[str, str]:
    """The inverse of load_settings: the variables that load back as settings (defaults left out)."""
    defaults = Settings()
    environment = {variable: str(getattr(settings, field)) for variable, (field, _) in _INTEGER_VARIABLES.items()
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
        environment |= {MODEL_S3_BUCKET: settings.model_s3.bucket, MODEL_S3_PREFIX: settings.model_s3.prefix,
                        MODEL_SHA256: settings.model_s3.sha256}
    return environment


def function_environment(settings: Settings, *, service_name: str, metrics_namespace: str,
                         log_level: str) -> dict[str, str]:
    """Everything a deployed function's environment holds: Powertools' names and the handler's settings."""
    return {SERVICE_NAME: service_name, METRICS_NAMESPACE: metrics_namespace, LOG_LEVEL: log_level,
            **settings_environment(settings)}
