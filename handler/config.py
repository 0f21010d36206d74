"""Handler settings: environment variables validated into one frozen object."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# The bundle lays model_artifacts/ beside the handler package, in Lambda and locally alike.
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "model_artifacts"
DEFAULT_SERVICE_NAME = "model-api"
DEFAULT_METRICS_NAMESPACE = "SklearnModelApi"


class SettingsError(ValueError):
    """An environment variable holds a value the handler cannot use."""


@dataclass(frozen=True)
class Settings:
    """Limits and locations the handler runs with."""

    model_dir: Path = DEFAULT_MODEL_DIR
    max_instances: int = 1000
    max_body_bytes: int = 1_048_576
    max_string_length: int = 256
    docs_enabled: bool = False


# variable name -> (field, smallest allowed value)
_INTEGER_VARIABLES = {
    "MAX_INSTANCES": ("max_instances", 1),
    "MAX_BODY_BYTES": ("max_body_bytes", 64),
    "MAX_STRING_LENGTH": ("max_string_length", 1),
}


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Read MODEL_DIR and the request caps from environ, naming any variable that is wrong."""
    values: dict[str, object] = {}
    problems = []
    if environ.get("MODEL_DIR"):
        values["model_dir"] = Path(environ["MODEL_DIR"])
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
    docs = environ.get("DOCS_ENABLED", "false").strip().lower()
    if docs not in ("true", "false"):
        problems.append(f"DOCS_ENABLED must be true or false, got {environ['DOCS_ENABLED']!r}")
    values["docs_enabled"] = docs == "true"
    if problems:
        raise SettingsError("; ".join(problems))
    return Settings(**values)


def observability_names(environ: Mapping[str, str]) -> tuple[str, str]:
    """Service name and metrics namespace, from Powertools' own variables or the defaults."""
    return (environ.get("POWERTOOLS_SERVICE_NAME") or DEFAULT_SERVICE_NAME,
            environ.get("POWERTOOLS_METRICS_NAMESPACE") or DEFAULT_METRICS_NAMESPACE)
