"""Plain helpers the test layers import (fixtures live in conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEMO_MODEL_DIR = PROJECT_ROOT / "model_artifacts"
EVENTS_DIR = Path(__file__).resolve().parent / "events"


def response_json(result: dict[str, Any]) -> tuple[int, Any]:
    """Status and parsed JSON body of a handler result."""
    return result["statusCode"], json.loads(result["body"])


def problems_by_field(body: dict[str, Any]) -> dict[str, str]:
    """An error body's details as {field: problem}."""
    return {item["field"]: item["problem"] for item in body["error"]["details"]}
