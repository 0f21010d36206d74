"""Hold-out scores: the model fed the labelled hold-out exactly as the handler feeds it requests."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, log_loss, mean_absolute_error, mean_squared_error, r2_score, roc_auc_score

from builder.errors import PackagingError, foreign
from builder.features import aligned_columns, model_input, typed_frame
from handler.manifest import Feature

METRIC_DIGITS = 4


def holdout_metrics(model: Any, task: str, holdout: pd.DataFrame, target: str | None,
                    features: list[Feature], input_format: str) -> dict[str, Any]:
    """Scores on the labelled hold-out, fed to the model exactly as the sample is."""
    if target is None:
        raise PackagingError("a hold-out needs a target column")
    if target not in holdout.columns:
        raise PackagingError(f"hold-out has no target column {target}")
    aligned = aligned_columns(model, holdout.drop(columns=[target]), "hold-out")
    typed = typed_frame(aligned, features, "hold-out")
    labels = holdout[target]
    score = classification_scores if task == "classification" else regression_scores
    with foreign("cannot score the hold-out"):
        scores = score(model, model_input(typed, input_format), labels)
    return {**{key: float(f"{value:.{METRIC_DIGITS}g}") for key, value in scores.items()},
            "n_rows": len(labels)}


def classification_scores(model: Any, inputs: Any, labels: pd.Series) -> dict[str, float]:
    unknown = set(labels) - set(model.classes_)
    if unknown:
        raise PackagingError("hold-out labels the model does not know: "
                             + ", ".join(sorted(map(str, unknown))))
    scores = {"accuracy": accuracy_score(labels, model.predict(inputs))}
    if hasattr(model, "predict_proba"):
        probabilities = model.predict_proba(inputs)
        if len(model.classes_) == 2 and labels.nunique() == 2:
            scores["roc_auc"] = roc_auc_score(labels, probabilities[:, 1])
        scores["log_loss"] = log_loss(labels, probabilities, labels=model.classes_)
    return scores


def regression_scores(model: Any, inputs: Any, labels: pd.Series) -> dict[str, float]:
    predicted = model.predict(inputs)
    return {"r2": r2_score(labels, predicted), "mae": mean_absolute_error(labels, predicted),
            # the square root by hand: root_mean_squared_error only exists from scikit-learn 1.4 (export envs run 1.3)
            "rmse": float(np.sqrt(mean_squared_error(labels, predicted)))}
