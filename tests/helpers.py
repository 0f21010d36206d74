"""Plain helpers the test layers import (fixtures live in conftest.py)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The model the project ships: any model the packager accepted. Only tests of the shipped model read it.
SHIPPED_MODEL_DIR = PROJECT_ROOT / "model_artifacts"
EVENTS_DIR = Path(__file__).resolve().parent / "events"
# The moto region and model bucket of the S3 tests.
REGION = "eu-west-1"
BUCKET = "model-bucket"


def response_json(result: dict[str, Any]) -> tuple[int, Any]:
    """Status and parsed JSON body of a handler result."""
    return result["statusCode"], json.loads(result["body"])


def problems_by_field(body: dict[str, Any]) -> dict[str, str]:
    """An error body's details as {field: problem}."""
    return {item["field"]: item["problem"] for item in body["error"]["details"]}


def project_with_model(root: Path, model_dir: Path) -> Path:
    """A project root in root: the repository's pyproject.toml and handler/, with model_dir as its model_artifacts/."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(PROJECT_ROOT / "pyproject.toml", root)
    shutil.copytree(PROJECT_ROOT / "handler", root / "handler", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(model_dir, root / "model_artifacts")
    return root


def same_predictions(first: list[dict[str, Any]], second: list[dict[str, Any]], tolerance: float = 1e-9) -> bool:
    """Whether two answers agree: the same labels, numbers within tolerance (a batch of rows may round its last
    bits otherwise than each row alone)."""
    def parts(prediction: dict[str, Any]) -> tuple[Any, dict[str, float]]:
        return prediction.get("label"), prediction.get("probabilities") or {"value": prediction["value"]}

    pairs = [(parts(one), parts(other)) for one, other in zip(first, second)]
    return len(first) == len(second) and all(
        label == other_label and numbers.keys() == others.keys()
        and all(math.isclose(numbers[key], others[key], rel_tol=tolerance, abs_tol=tolerance) for key in numbers)
        for (label, numbers), (other_label, others) in pairs)


def is_prediction_for(manifest: dict[str, Any], prediction: dict[str, Any]) -> bool:
    """Whether a prediction is what the manifest's task promises: a label among its classes with probabilities
    summing to 1 and the label most probable, or a finite value."""
    if manifest["task"] != "classification":
        return set(prediction) == {"value"} and math.isfinite(prediction["value"])
    probabilities = prediction["probabilities"]
    return (prediction["label"] in manifest["classes"]
            and set(probabilities) == {str(label) for label in manifest["classes"]}
            and math.isclose(sum(probabilities.values()), 1.0, abs_tol=1e-9)
            and max(probabilities, key=probabilities.get) == str(prediction["label"]))
