"""The training profile: the distribution of each feature and of the predictions on the sample, for drift checks.

Written by the packager as profile.json beside the manifest, which pins it by sha256. Small (a few kilobytes)
and deterministic: the same sample and predictions give the same bytes. handler.drift reads it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from handler.drift import PROFILE_FILE, PROFILE_VERSION
from handler.manifest import Feature, sha256_file

QUANTILE_BINS = 10  # deciles: PSI's usual binning
MAX_CATEGORIES = 20  # more frequent categories each get a bin; the rest share "other"
DIGITS = 6  # fractions are rounded to this many decimals


def training_profile(features: Sequence[Feature], typed_sample: pd.DataFrame, predictions: Sequence[Any],
                     classes: Sequence[Any] | None = None) -> dict[str, Any]:
    """The profile of a typed sample (toolkit/builder typed_frame) and the model's predictions on it.

    predictions are predict()'s labels (classes given: a classifier) or values (a regressor).
    """
    columns = [_column_profile(feature.name, typed_sample[feature.name], feature.type in ("number", "integer"))
               for feature in features]
    outputs = pd.Series(np.asarray(predictions), name="prediction")
    prediction = (_categorical(outputs, categories=list(classes)) if classes is not None
                  else _numeric(outputs.astype(np.float64)))
    return {"profile_version": PROFILE_VERSION, "rows": len(typed_sample), "features": columns,
            "prediction": {"name": "prediction", **prediction}}


def write_profile(profile: dict[str, Any], out_dir: Path) -> tuple[str, str]:
    """Write profile.json into out_dir; the manifest keys that pin it: ("profile", "profile_sha256") values."""
    path = out_dir / PROFILE_FILE
    path.write_text(json.dumps(profile, indent=1) + "\n", encoding="utf-8")
    return PROFILE_FILE, sha256_file(path)


def _column_profile(name: str, column: pd.Series, numeric: bool) -> dict[str, Any]:
    present = column.dropna()
    null_rate = round(1 - len(present) / len(column), DIGITS) if len(column) else 0.0
    shape = _numeric(present.astype(np.float64)) if numeric else _categorical(present)
    return {"name": name, **shape, "null_rate": null_rate}


def _numeric(values: pd.Series) -> dict[str, Any]:
    """Decile cut points strictly above the minimum (no bin is empty by construction), deduplicated."""
    array = values.dropna().to_numpy(dtype=np.float64)
    if not len(array):
        return {"kind": "numeric", "edges": [], "fractions": [1.0], "minimum": 0.0, "maximum": 0.0}
    minimum, maximum = float(array.min()), float(array.max())
    cuts = np.unique(np.quantile(array, np.linspace(0, 1, QUANTILE_BINS + 1)[1:-1]))
    edges = cuts[cuts > minimum]
    # Same rule as bisect_right in handler.drift: a value equal to a cut point goes to the bin above it.
    codes = np.searchsorted(edges, array, side="right")
    fractions = np.bincount(codes, minlength=len(edges) + 1) / len(array)
    return {"kind": "numeric", "edges": edges.tolist(), "fractions": _rounded(fractions),
            "minimum": minimum, "maximum": maximum}


def _categorical(values: pd.Series, categories: list[Any] | None = None) -> dict[str, Any]:
    """The given categories (a classifier's classes) or the most frequent ones, and "other" last."""
    present = [_native(value) for value in values.dropna()]
    tally: dict[Any, int] = {}
    for value in present:
        key = (type(value) is bool, value)  # True and 1 stay apart
        tally[key] = tally.get(key, 0) + 1
    if categories is None:
        if all(type(value) is bool for value in present):
            ranked = [(True, False), (True, True)]
        else:
            ranked = sorted(tally, key=lambda key: (-tally[key], str(key[1])))[:MAX_CATEGORIES]
        categories = [value for _, value in ranked]
    else:
        categories = [_native(value) for value in categories]
    counts = [tally.get((type(category) is bool, category), 0) for category in categories]
    total = len(present)
    fractions = np.array([*counts, total - sum(counts)], dtype=np.float64) / (total or 1)
    return {"kind": "categorical", "categories": categories, "fractions": _rounded(fractions)}


def _native(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _rounded(fractions: np.ndarray) -> list[float]:
    return [round(float(share), DIGITS) for share in fractions]
