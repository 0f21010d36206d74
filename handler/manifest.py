"""The model manifest: what the artifact is, what input it takes, and how to verify it.

Written by the packager at build time, read by the handler at init. Stdlib only, so
reading it costs nothing at cold start.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import stat
from collections.abc import Callable
from dataclasses import asdict, dataclass
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
# The dtypes a feature may be built in at predict time: numpy's names for booleans, numbers and objects.
DTYPES = ("bool", "object", "float16", "float32", "float64", "int8", "int16", "int32", "int64",
          "uint8", "uint16", "uint32", "uint64")
MAX_LABEL_LENGTH = 256
# Caps on what init reads: a manifest is kilobytes; no artifact can exceed Lambda's 250 MB of unzipped code.
MAX_MANIFEST_BYTES = 1_048_576
MAX_ARTIFACT_BYTES = 262_144_000


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
    max_scaled_difference: float | None = None  # regressors only: max |difference| / max(1, |value|)

    @property
    def checked_difference(self) -> float:
        """The figure held to the tolerance: scaled for regression values (a float32 sum near 250 is off by
        ~1e-5 however exact the conversion), absolute for probabilities."""
        return self.max_abs_difference if self.max_scaled_difference is None else self.max_scaled_difference

    @property
    def passed(self) -> bool:
        return self.checked_difference <= self.tolerance and self.labels_identical is not False


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

    @property
    def feature_names(self) -> list[str]:
        return [feature.name for feature in self.features]

    def to_dict(self) -> dict[str, Any]:
        """The manifest as written to manifest.json."""
        data = asdict(self)
        data["features"] = [_drop_none(feature) for feature in data["features"]]
        if data["parity"] is not None:
            data["parity"] = _drop_none(data["parity"])
        return _drop_none(data)

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
    """Build a Manifest from parsed JSON, naming every missing, unknown or invalid key."""
    if not isinstance(data, dict):
        raise ManifestError("manifest is not a JSON object")
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise ManifestError(f"manifest is missing keys: {', '.join(missing)}")
    problems = _unknown_keys(data, MANIFEST_KEYS, "manifest")
    problems += [f"{key} must be {rule}" for key, (valid, rule) in _KEY_RULES.items()
                 if key in data and not (data[key] is None and key in OPTIONAL_KEYS) and not valid(data[key])]
    for file_key, sha_key in (("artifact", "sha256"), ("sklearn_artifact", "sklearn_sha256"),
                              ("profile", "profile_sha256")):
        if data.get(file_key) is not None or data.get(sha_key) is not None:
            problems.extend(_pin_problems(data, file_key, sha_key))
    parity = None
    if data.get("parity") is not None:
        try:
            parity = _parity_from_dict(data["parity"])
        except (TypeError, ValueError) as error:
            problems.append(f"parity: {error}")
    if data["task"] == "classification" and not data.get("classes"):
        problems.append("a classification manifest needs classes")
    features = _features(data["features"], problems)
    if problems:
        raise ManifestError("; ".join(problems))
    return Manifest(**{key: value for key, value in data.items() if key not in ("features", "parity")},
                    features=features, parity=parity)


def _is_label(value: Any) -> bool:
    """A name, version or timestamp: a short non-empty string without NUL."""
    return isinstance(value, str) and 0 < len(value) <= MAX_LABEL_LENGTH and "\x00" not in value


def _is_number(value: Any) -> bool:
    """A JSON number (not a boolean) that is finite."""
    return type(value) is int or (type(value) is float and math.isfinite(value))


def _is_scalar(value: Any) -> bool:
    """A category or class label: a string without NUL, a boolean or a finite number."""
    return (isinstance(value, str) and "\x00" not in value) or type(value) is bool or _is_number(value)


def _is_example(value: Any) -> bool:
    """{"instances": [...]} of flat objects, as the packager writes it."""
    instances = value.get("instances") if isinstance(value, dict) and list(value) == ["instances"] else None
    return isinstance(instances, list) and all(
        isinstance(instance, dict) and all(item is None or _is_scalar(item) for item in instance.values())
        for instance in instances)


def _is_classes(value: Any) -> bool:
    return (isinstance(value, list) and len(value) > 0 and all(_is_scalar(label) for label in value)
            and len({json.dumps(label) for label in value}) == len(value))


# key -> (check, the rule an error quotes); file pins and parity are checked on their own.
_KEY_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "name": (_is_label, f"a non-empty string of at most {MAX_LABEL_LENGTH} characters without NUL"),
    "version": (_is_label, f"a non-empty string of at most {MAX_LABEL_LENGTH} characters without NUL"),
    "created_at": (_is_label, "a timestamp string"),
    "task": (lambda value: value in TASKS, f"one of {TASKS}"),
    "input_format": (lambda value: value in INPUT_FORMATS, f"one of {INPUT_FORMATS}"),
    "features": (lambda value: isinstance(value, list) and len(value) > 0, "a non-empty list"),
    "example": (_is_example, 'an object {"instances": [objects of JSON scalars or null]}'),
    "versions": (lambda value: isinstance(value, dict) and all(_is_label(item) for item in value.values()),
                 "an object of version strings"),
    "runtime": (lambda value: value in RUNTIMES, f"one of {tuple(RUNTIMES)}"),
    "runtime_fallback": (lambda value: isinstance(value, str) and value.startswith(FALLBACK_REASONS),
                         f"a string that starts with one of {FALLBACK_REASONS}"),
    "classes": (_is_classes, "a non-empty list of distinct strings, numbers or booleans"),
    "metrics": (lambda value: isinstance(value, dict) and all(item is None or _is_number(item)
                                                              for item in value.values()),
                "an object of numbers"),
    "schema_version": (lambda value: type(value) is int and value == SCHEMA_VERSION, f"{SCHEMA_VERSION}"),
}
MANIFEST_KEYS = tuple(Manifest.__dataclass_fields__)  # the keys a manifest may hold, and no other
REQUIRED_KEYS = ("name", "version", "created_at", "task", "input_format", "features",
                 "example", "artifact", "sha256", "versions")
OPTIONAL_KEYS = frozenset(MANIFEST_KEYS) - frozenset(REQUIRED_KEYS) - {"runtime", "schema_version"}
FEATURE_KEYS = tuple(Feature.__dataclass_fields__)


def _unknown_keys(data: dict[str, Any], known: tuple[str, ...], where: str) -> list[str]:
    unknown = [str(key)[:MAX_LABEL_LENGTH] for key in data if key not in known]
    return [f"{where} has unknown keys: {', '.join(unknown)} (allowed: {', '.join(known)})"] if unknown else []


def _pin_problems(data: dict[str, Any], file_key: str, sha_key: str) -> list[str]:
    """A file name and its sha256, as a pair: a plain file name and 64 lowercase hex characters."""
    problems = []
    sha = data.get(sha_key)
    if not (isinstance(sha, str) and SHA256_HEX.fullmatch(sha)):
        problems.append(f"{sha_key} must be 64 lowercase hex characters")
    name = data.get(file_key)
    if not (_is_label(name) and not name.startswith(".") and not {"/", "\\"} & set(name)):
        problems.append(f"{file_key} must be a plain file name")
    return problems


def _features(raw: Any, problems: list[str]) -> list[Feature]:
    """Each feature checked; problems named by index; names unique."""
    if not isinstance(raw, list) or not raw:
        return []  # named by the features rule
    features = []
    for index, item in enumerate(raw):
        try:
            features.append(_feature_from_dict(item))
        except (TypeError, ValueError) as error:
            problems.append(f"features[{index}]: {error}")
    names = [feature.name for feature in features]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        problems.append(f"features: names must be unique, repeated: {', '.join(duplicates)}")
    return features


def _parity_from_dict(raw: Any) -> Parity:
    if not isinstance(raw, dict):
        raise TypeError("not an object")
    unknown = _unknown_keys(raw, tuple(Parity.__dataclass_fields__), "parity")
    if unknown:
        raise ValueError(unknown[0].removeprefix("parity "))
    parity = Parity(**raw)
    numbers = (parity.tolerance, parity.max_abs_difference, parity.checked_difference)
    if not all(_is_number(number) and number >= 0 for number in numbers):
        raise ValueError("tolerance, max_abs_difference and max_scaled_difference must be numbers >= 0")
    if type(parity.rows) is not int or parity.rows < 1:
        raise ValueError("rows must be a positive integer")
    if parity.labels_identical is not None and type(parity.labels_identical) is not bool:
        raise ValueError("labels_identical must be true or false")
    return parity


def _feature_from_dict(raw: Any) -> Feature:
    """One feature, every key checked by type and range; the first wrong one raises."""
    if not isinstance(raw, dict):
        raise TypeError("not an object")
    unknown = _unknown_keys(raw, FEATURE_KEYS, "feature")
    if unknown:
        raise ValueError(unknown[0].removeprefix("feature "))
    missing = [key for key in ("name", "type", "dtype", "nullable") if key not in raw]
    if missing:
        raise ValueError(f"missing keys: {', '.join(missing)}")
    feature = Feature(**raw)
    checks = (
        (_is_label(feature.name), "name must be a non-empty string without NUL"),
        (feature.type in FEATURE_TYPES, f"type must be one of {FEATURE_TYPES}"),
        (feature.dtype in DTYPES, f"dtype must be one of {DTYPES}"),
        (type(feature.nullable) is bool, "nullable must be true or false"),
        (feature.categories is None or (isinstance(feature.categories, list)
                                        and all(_is_scalar(value) for value in feature.categories)),
         "categories must be a list of strings, numbers or booleans"),
        (feature.unknown_category in (None, *UNKNOWN_CATEGORY_POLICIES),
         f"unknown_category must be one of {UNKNOWN_CATEGORY_POLICIES}"),
        (feature.minimum is None or _is_number(feature.minimum), "minimum must be a number"),
        (feature.maximum is None or _is_number(feature.maximum), "maximum must be a number"),
    )
    for passed, rule in checks:
        if not passed:
            raise ValueError(rule)
    if feature.minimum is not None and feature.maximum is not None and feature.minimum > feature.maximum:
        raise ValueError("minimum must not exceed maximum")
    return feature


class UnsafeFile(ValueError):
    """A path that is not a regular file, or a file over its size cap."""


def read_regular_file(path: Path, max_bytes: int) -> bytes:
    """The bytes of the regular file at path, at most max_bytes; UnsafeFile for anything else.

    Opened without blocking and checked with fstat before any read: a FIFO cannot hang init, and a link
    to a device (say /dev/zero) is refused instead of read until memory runs out.
    """
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(descriptor, "rb") as stream:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise UnsafeFile(f"{path.name} is not a regular file")
        if status.st_size > max_bytes:
            raise UnsafeFile(f"{path.name} holds {status.st_size} bytes, over the cap of {max_bytes}")
        data = stream.read(max_bytes + 1)
    if len(data) > max_bytes:  # it grew while being read
        raise UnsafeFile(f"{path.name} holds over {max_bytes} bytes, the cap")
    return data


def read_manifest(model_dir: Path) -> Manifest:
    """Read and check `manifest.json` in model_dir: a regular UTF-8 JSON file of at most MAX_MANIFEST_BYTES."""
    path = model_dir / MANIFEST_FILE
    try:
        raw = read_regular_file(path, MAX_MANIFEST_BYTES)
    except FileNotFoundError:
        raise ManifestMissing(f"{MANIFEST_FILE} not found") from None
    except OSError as error:
        raise ManifestError(f"{MANIFEST_FILE} unreadable ({error.strerror})") from None
    except UnsafeFile as error:
        raise ManifestError(str(error)) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ManifestError(f"{MANIFEST_FILE} is not UTF-8 (byte {error.start})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ManifestError(f"{MANIFEST_FILE} is not valid JSON (line {error.lineno})") from None
    except ValueError as error:  # an integer of more digits than Python converts
        raise ManifestError(f"{MANIFEST_FILE} is not usable JSON ({error})") from None
    except RecursionError:
        raise ManifestError(f"{MANIFEST_FILE} is nested too deeply") from None
    return manifest_from_dict(data)


def write_manifest(manifest: Manifest, model_dir: Path) -> Path:
    """Write manifest.json into model_dir (the caller makes the directory swap atomic)."""
    path = model_dir / MANIFEST_FILE
    path.write_text(json.dumps(manifest.to_dict(), indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return path
