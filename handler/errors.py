"""The API's error contract: the catalogue of codes, one exception type, one JSON body shape.

The handler raises from ERRORS, the OpenAPI document renders it, and a test keeps the README's table equal to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ErrorKind:
    """One error code: the HTTP status it answers with and when it happens."""

    status: int
    meaning: str


ERRORS: dict[str, ErrorKind] = {
    "invalid_json": ErrorKind(400, "the body is empty, not UTF-8, not JSON, or nested too deeply"),
    "not_found": ErrorKind(404, "no such route"),
    "method_not_allowed": ErrorKind(405, "the route exists with another method (see the `Allow` header)"),
    "payload_too_large": ErrorKind(413, "the body is over `MAX_BODY_BYTES`"),
    "too_many_instances": ErrorKind(413, "more instances than `MAX_INSTANCES`"),
    "unsupported_media_type": ErrorKind(415, "the `Content-Type` is not `application/json`"),
    "validation_error": ErrorKind(422, "a field is missing, unknown, of the wrong type, null but not nullable, "
                                       "NaN or Infinity, a number beyond ±10¹⁵, a string over "
                                       "`MAX_STRING_LENGTH`, or a category the model rejects"),
    "unscorable_input": ErrorKind(422, "the values are valid but the model cannot compute on them (say a number "
                                       "so large it overflows inside the model); details name the fields outside "
                                       "the training range"),
    "internal_error": ErrorKind(500, "anything unexpected; the log has the details, the answer never does"),
    "model_unavailable": ErrorKind(503, "the model failed to load at start (every route, `/health` included)"),
}


# An error body lists at most this many problems (its message gives the total), each problem's text at most
# PROBLEM_LENGTH characters: no request can make an answer near Lambda's 6 MB response limit.
MAX_DETAILS = 100
PROBLEM_LENGTH = 300


@dataclass(frozen=True)
class FieldProblem:
    """One offending field of a request, named by its JSON path."""

    field: str
    problem: str


@dataclass
class ApiError(Exception):
    """A request the API refuses: rendered as `{"error": {code, message, details}}` with the code's status."""

    code: str
    message: str
    details: list[FieldProblem] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.code not in ERRORS:
            raise ValueError(f"{self.code!r} is not in the error catalogue")
        self.details = self.details[:MAX_DETAILS]

    @property
    def status(self) -> int:
        return ERRORS[self.code].status

    def body(self) -> dict[str, Any]:
        details = [{"field": item.field, "problem": _bounded(item.problem)} for item in self.details]
        return {"error": {"code": self.code, "message": self.message, "details": details}}


def problem_count_message(count: int) -> str:
    """How a validation error's message counts its problems, saying when details list only the first ones."""
    listed = "see details" if count <= MAX_DETAILS else f"details list the first {MAX_DETAILS}"
    return f"{count} problem(s) in the request; {listed}."


def _bounded(text: str) -> str:
    return text if len(text) <= PROBLEM_LENGTH else text[:PROBLEM_LENGTH - 1] + "…"


def model_unavailable() -> ApiError:
    """503 for every route when the model failed to load at init: no cause is disclosed."""
    return ApiError("model_unavailable", "The model is not available. Try again later.")


def internal_error() -> ApiError:
    """500 for anything unexpected: the log has the cause, the caller gets nothing internal."""
    return ApiError("internal_error", "The request could not be processed.")


class ModelLoadError(Exception):
    """The artifact or its manifest cannot be trusted or loaded; `cause` is a stable code for logs."""

    def __init__(self, cause: str, detail: str) -> None:
        super().__init__(f"{cause}: {detail}")
        self.cause = cause
        self.detail = detail
