"""Plain helpers the test layers import (fixtures live in conftest.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEMO_MODEL_DIR = PROJECT_ROOT / "model_artifacts"
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
