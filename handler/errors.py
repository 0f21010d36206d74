"""The API's error contract: one exception type, one JSON body shape."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class FieldProblem:
    """One offending field of a request, named by its JSON path."""

    field: str
    problem: str


@dataclass
class ApiError(Exception):
    """A request the API refuses: rendered as `{"error": {code, message, details}}`."""

    status: int
    code: str
    message: str
    details: list[FieldProblem] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        details = [{"field": item.field, "problem": item.problem} for item in self.details]
        return {"error": {"code": self.code, "message": self.message, "details": details}}


def model_unavailable() -> ApiError:
    """503 for every route when the model failed to load at init: no cause is disclosed."""
    return ApiError(503, "model_unavailable", "The model is not available. Try again later.")


def internal_error() -> ApiError:
    """500 for anything unexpected: the log has the cause, the caller gets nothing internal."""
    return ApiError(500, "internal_error", "The request could not be processed.")


class ModelLoadError(Exception):
    """The artifact or its manifest cannot be trusted or loaded; `cause` is a stable code for logs."""

    def __init__(self, cause: str, detail: str) -> None:
        super().__init__(f"{cause}: {detail}")
        self.cause = cause
        self.detail = detail
