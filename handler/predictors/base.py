"""What every runtime provides, and the response shape they all share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence


@dataclass(frozen=True)
class ValidatedBatch:
    """Validated instances as one list per feature, in the manifest's order."""

    columns: dict[str, list[Any]]
    count: int
    unknown_categories: int


class UnscorableInput(Exception):
    """Valid values the model cannot compute on (say a float32 overflow inside a tree model)."""


class Predictor(Protocol):
    """A loaded model that turns validated columns into JSON-ready predictions."""

    def predict(self, batch: ValidatedBatch) -> list[dict[str, Any]]:
        """One prediction per instance, in input order."""
        ...


def classification_predictions(classes: Sequence[Any],
                               probabilities: Sequence[Sequence[float]]) -> list[dict[str, Any]]:
    """`{"label", "probabilities": {class: p}}` per row; the label is the most probable class."""
    keys = [str(label) for label in classes]
    predictions = []
    for row in probabilities:
        best = max(range(len(row)), key=row.__getitem__)
        predictions.append({"label": classes[best], "probabilities": dict(zip(keys, row))})
    return predictions


def regression_predictions(values: Sequence[float]) -> list[dict[str, Any]]:
    """`{"value": v}` per row."""
    return [{"value": value} for value in values]
