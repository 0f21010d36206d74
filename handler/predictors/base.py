"""What every runtime provides, and the response shape they all share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np


@dataclass(frozen=True)
class ValidatedBatch:
    """Validated instances as one list (or numpy array) per feature, in the manifest's order."""

    columns: dict[str, list[Any]]
    count: int
    unknown_categories: int


@dataclass(frozen=True)
class PredictionArrays:
    """Predictions as arrays: class probabilities (rows x classes) of a classifier, or values of a regressor."""

    probabilities: np.ndarray | None = None
    values: np.ndarray | None = None

    @property
    def best(self) -> np.ndarray:
        """Index of the most probable class per row (the first one on a tie)."""
        # a pass per class: argmax along a short axis of a million rows is ~10x slower
        probabilities = self.probabilities
        best = np.zeros(len(probabilities), dtype=np.intp)
        top = probabilities[:, 0]
        for column in range(1, probabilities.shape[1]):
            better = probabilities[:, column] > top
            best[better] = column
            top = np.where(better, probabilities[:, column], top)
        return best


class UnscorableInput(Exception):
    """Valid values the model cannot compute on (say a float32 overflow inside a tree model)."""


class Predictor(Protocol):
    """A loaded model that turns validated columns into predictions: arrays for files, JSON-ready rows for the API."""

    def predict_arrays(self, batch: ValidatedBatch) -> PredictionArrays:
        """Probabilities or values for every instance, in input order."""
        ...

    def predict(self, batch: ValidatedBatch) -> list[dict[str, Any]]:
        """One prediction per instance, in input order."""
        ...


def prediction_dicts(classes: Sequence[Any] | None, arrays: PredictionArrays) -> list[dict[str, Any]]:
    """The API's shape of array predictions."""
    if classes is not None:
        return classification_predictions(classes, arrays.probabilities)
    return regression_predictions(np.ravel(arrays.values).tolist())


def classification_predictions(classes: Sequence[Any],
                               probabilities: Sequence[Sequence[float]] | np.ndarray) -> list[dict[str, Any]]:
    """`{"label", "probabilities": {class: p}}` per row; the label is the most probable class."""
    keys = [str(label) for label in classes]
    rows = np.asarray(probabilities, dtype=np.float64).reshape(-1, len(keys))
    best = PredictionArrays(probabilities=rows).best.tolist()
    return [{"label": classes[index], "probabilities": dict(zip(keys, row))}
            for index, row in zip(best, rows.tolist())]


def regression_predictions(values: Sequence[float]) -> list[dict[str, Any]]:
    """`{"value": v}` per row."""
    return [{"value": value} for value in values]
