"""The scoring service: validated instances in, predictions and the model's identity out.

The API route calls it for each request; the batch entry calls predict_batch for each chunk of a file.
It knows nothing of HTTP or S3.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from handler.errors import ApiError
from handler.loading import LoadedModel
from handler.manifest import Manifest
from handler.predictors.base import UnscorableInput, ValidatedBatch
from handler.validation import outside_training_range


@dataclass(frozen=True)
class Scored:
    """Predictions for one validated batch, in input order, and what scoring them cost."""

    predictions: list[dict[str, Any]]
    batch: ValidatedBatch  # the validated columns the predictions were made from
    latency_ms: float

    @property
    def count(self) -> int:
        return self.batch.count

    @property
    def unknown_categories(self) -> int:
        return self.batch.unknown_categories


def score(model: LoadedModel, payload: Any) -> Scored:
    """Validate a `{"instances": [...]}` payload and predict it; ApiError (4xx) names every problem."""
    return predict_batch(model, model.validator.validate(payload))


def predict_batch(model: LoadedModel, batch: ValidatedBatch) -> Scored:
    """Predict validated columns in one call; values the model cannot compute on are a 422 naming suspects."""
    started = time.perf_counter()
    try:
        predictions = model.predictor.predict(batch)
    except UnscorableInput as error:
        raise ApiError("unscorable_input", "The model cannot score these values.",
                       outside_training_range(batch, model.manifest)) from error
    return Scored(predictions=predictions, batch=batch, latency_ms=(time.perf_counter() - started) * 1000)


def model_identity(manifest: Manifest) -> dict[str, str]:
    """How every answer names the model that gave it."""
    return {"name": manifest.name, "version": manifest.version}
