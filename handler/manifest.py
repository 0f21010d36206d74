"""The model manifest: what the artifact is, what input it takes, and how to verify it.

Written by the packager at build time, read by the handler at init. Stdlib only, so
reading it costs nothing at cold start.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from handler.runtimes import RUNTIMES

MANIFEST_FILE = "manifest.json"
SHA256_HEX = re.compile(r"[0-9a-f]{64}")  # how manifests, settings and cdk.json write a sha256
SCHEMA_VERSION = 1
TASKS = ("classification", "regression")
INPUT_FORMATS = ("dataframe", "array")
FEATURE_TYPES = ("number", "integer", "string", "boolean")
UNKNOWN_CATEGORY_POLICIES = ("ignore", "reject")
# Why the packager served a model with scikit-learn rather than ONNX: `runtime_fallback` starts with one.
FALLBACK_REASONS = ("conversion_error", "unsupported_estimator", "parity_miss")


class ManifestError(ValueError):
    """The manifest is unreadable or inconsistent."""


class ManifestMissing(ManifestError):
    """There is no manifest.json where one was expected."""


@dataclass(frozen=True)
class Feature:
    """One input column: its JSON type, pandas dtype and what the training data showed."""

    name: str
    type: str
    dtype: str
    nullable: bool
    categories: list[Any] | None = None
    unknown_category: str | None = None
    minimum: float | int | None = None
    maximum: float | int | None = None


@dataclass(frozen=True)
class Parity:
    """How closely the ONNX model reproduced scikit-learn on the sample and edge cases, at package time."""

    tolerance: float
    max_abs_difference: float
    rows: int
    labels_identical: bool | None = None  # classifiers only

    @property
    def passed(self) -> bool:
        return self.max_abs_difference <= self.tolerance and self.labels_identical is not False


@dataclass(frozen=True)
class Manifest:
    """Everything the handler needs to know about an artifact before loading it.

    `artifact` and `sha256` name the file the runtime loads. With the onnx runtime,
    `sklearn_artifact` and `sklearn_sha256` pin the joblib pipeline it was exported from.
    `profile` and `profile_sha256` pin the training profile the drift check compares served inputs with.
    """

    name: str
    version: str
    created_at: str
    task: str
    input_format: str
    features: list[Feature]
    example: dict[str, Any]
    artifact: str
    sha256: str
    versions: dict[str, str]
    runtime: str = "sklearn"
    sklearn_artifact: str | None = None
    sklearn_sha256: str | None = None
    profile: str | None = None
    profile_sha256: str | None = None
    parity: Parity | None = None
    runtime_fallback: str | None = None  # why onnx was not chosen, e.g. "parity_miss: ..."
    classes: list[Any] | None = None
    metrics: dict[str, Any] | None = None
    schema_version: int = SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def feature_names(self) -> list[str]:
        return [feature.name for feature in self.features]

    def to_dict(self) -> dict[str, Any]:
        """The manifest as written to manifest.json (no `extra` wrapper)."""
        data = asdict(self)
        extra = data.pop("extra")
        data["features"] = [_drop_none(feature) for feature in data["features"]]
        if data["parity"] is not None:
            data["parity"] = _drop_none(data["parity"])
        return {**_drop_none(data), **extra}

    def public_view(self) -> dict[str, Any]:
        """What `GET /model` shows: no file names nor build diagnostics, nothing about where the artifact lives."""
        data = self.to_dict()
        for private in ("artifact", "sklearn_artifact", "profile", "runtime_fallback"):
            data.pop(private, None)
        return data


def _drop_none(data: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in data.items() if value is not None}


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def manifest_from_dict(data: Any) -> Manifest:
    """Build a Manifest from parsed JSON, naming every missing or invalid key."""
    if not isinstance(data, dict):
        raise ManifestError("manifest is not a JSON object")
    required = ("name", "version", "created_at", "task", "input_format", "features",
                "example", "artifact", "sha256", "versions")
    missing = [key for key in required if key not in data]
    if missing:
        raise ManifestError(f"manifest is missing keys: {', '.join(missing)}")
    problems = []
    if data["task"] not in TASKS:
        problems.append(f"task must be one of {TASKS}")
    if data["input_format"] not in INPUT_FORMATS:
        problems.append(f"input_format must be one of {INPUT_FORMATS}")
    if data.get("runtime", "sklearn") not in RUNTIMES:
        problems.append(f"runtime must be one of {tuple(RUNTIMES)}")
    if data.get("schema_version", SCHEMA_VERSION) != SCHEMA_VERSION:
        problems.append(f"schema_version must be {SCHEMA_VERSION}")
    for file_key, sha_key in (("artifact", "sha256"), ("sklearn_artifact", "sklearn_sha256"),
                              ("profile", "profile_sha256")):
        if file_key in data or sha_key in data:
            problems.extend(_pin_problems(data, file_key, sha_key))
    fallback = data.get("runtime_fallback")
    if fallback is not None and not (isinstance(fallback, str) and fallback.startswith(FALLBACK_REASONS)):
        problems.append(f"runtime_fallback must start with one of {FALLBACK_REASONS}")
    parity = None
    if data.get("parity") is not None:
        try:
            parity = _parity_from_dict(data["parity"])
        except (TypeError, ValueError) as error:
            problems.append(f"parity: {error}")
    if data["task"] == "classification" and not data.get("classes"):
        problems.append("a classification manifest needs classes")
    features = []
    if not isinstance(data["features"], list) or not data["features"]:
        problems.append("features must be a non-empty list")
    else:
        for index, raw in enumerate(data["features"]):
            try:
                features.append(_feature_from_dict(raw))
            except (TypeError, ValueError) as error:
                problems.append(f"features[{index}]: {error}")
    if problems:
        raise ManifestError("; ".join(problems))
    known = {f for f in Manifest.__dataclass_fields__ if f != "extra"}
    return Manifest(
        **{key: value for key, value in data.items() if key in known and key not in ("features", "parity")},
        features=features,
        parity=parity,
        extra={key: value for key, value in data.items() if key not in known},
    )


def _pin_problems(data: dict[str, Any], file_key: str, sha_key: str) -> list[str]:
    """A file name and its sha256, as a pair: a plain file name and 64 lowercase hex characters."""
    problems = []
    sha = data.get(sha_key)
    if not (isinstance(sha, str) and SHA256_HEX.fullmatch(sha)):
        problems.append(f"{sha_key} must be 64 lowercase hex characters")
    name = data.get(file_key)
    if not isinstance(name, str) or "/" in name or name.startswith("."):
        problems.append(f"{file_key} must be a plain file name")
    return problems


def _parity_from_dict(raw: Any) -> Parity:
    if not isinstance(raw, dict):
        raise TypeError("not an object")
    parity = Parity(**raw)
    numbers = (parity.tolerance, parity.max_abs_difference)
    if not all(type(number) in (int, float) and number >= 0 for number in numbers):
        raise ValueError("tolerance and max_abs_difference must be numbers >= 0")
    if type(parity.rows) is not int or parity.rows < 1:
        raise ValueError("rows must be a positive integer")
    if parity.labels_identical is not None and type(parity.labels_identical) is not bool:
        raise ValueError("labels_identical must be true or false")
    return parity


def _feature_from_dict(raw: Any) -> Feature:
    if not isinstance(raw, dict):
        raise TypeError("not an object")
    feature = Feature(**raw)
    if feature.type not in FEATURE_TYPES:
        raise ValueError(f"type must be one of {FEATURE_TYPES}")
    if feature.unknown_category not in (None, *UNKNOWN_CATEGORY_POLICIES):
        raise ValueError(f"unknown_category must be one of {UNKNOWN_CATEGORY_POLICIES}")
    return feature


def read_manifest(model_dir: Path) -> Manifest:
    """Read and check `manifest.json` in model_dir."""
    path = model_dir / MANIFEST_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestMissing(f"{MANIFEST_FILE} not found") from None
    except OSError as error:
        raise ManifestError(f"manifest.json unreadable ({error.strerror})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ManifestError(f"manifest.json is not valid JSON (line {error.lineno})") from None
    return manifest_from_dict(data)


def write_manifest(manifest: Manifest, model_dir: Path) -> Path:
    """Write manifest.json into model_dir (the caller makes the directory swap atomic)."""
    path = model_dir / MANIFEST_FILE
    path.write_text(json.dumps(manifest.to_dict(), indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return path
