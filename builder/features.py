"""Feature inference: what input a fitted estimator expects, read from the estimator and a sample of its data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline

from builder.errors import PackagingError, foreign
from handler.manifest import Feature
from handler.validation import NUMBER_LIMIT

EXAMPLE_ROWS = 2


@dataclass(frozen=True)
class Encoding:
    """What one encoder knows about one input column."""

    categories: tuple[Any, ...]
    rejects_unknown: bool
    imputed: frozenset[Any]  # values a preceding imputer writes in place of missing ones


def without_column(table: pd.DataFrame, column: str | None) -> pd.DataFrame:
    return table.drop(columns=[column]) if column in table.columns else table


def aligned_columns(model: Any, table: pd.DataFrame, what: str) -> pd.DataFrame:
    """The table's columns in the order the model expects, or an error naming the mismatch."""
    expected = getattr(model, "feature_names_in_", None)
    if expected is None:
        count = getattr(model, "n_features_in_", table.shape[1])
        if table.shape[1] != count:
            raise PackagingError(f"{what} has {table.shape[1]} columns, the model expects {count}")
        return table
    expected = [str(column) for column in expected]
    missing = [column for column in expected if column not in table.columns]
    unexpected = [str(column) for column in table.columns if column not in expected]
    if missing or unexpected:
        raise PackagingError(f"{what} columns do not match the model's: missing "
                             f"{', '.join(missing) or 'none'}; unexpected {', '.join(unexpected) or 'none'}")
    return table[expected]


def infer_features(model: Any, sample: pd.DataFrame) -> list[Feature]:
    """One Feature per sample column, with the categories the model's encoders know."""
    encodings = column_encodings(model, [str(column) for column in sample.columns])
    return [describe_column(sample[column], encodings.get(str(column))) for column in sample.columns]


def describe_column(column: pd.Series, encoding: Encoding | None) -> Feature:
    """A sample column as a Feature: JSON type, predict-time dtype, gaps, range, categories."""
    kind = feature_type(column)
    nullable = bool(column.isna().any())
    numeric = kind in ("number", "integer")
    if kind == "integer":
        check_integer_range(column)
    return Feature(
        name=str(column.name), type=kind, dtype=model_dtype(kind, nullable), nullable=nullable,
        categories=None if encoding is None else known_categories(encoding, column),
        unknown_category=None if encoding is None else ("reject" if encoding.rejects_unknown else "ignore"),
        minimum=json_native(column.min()) if numeric else None,
        maximum=json_native(column.max()) if numeric else None,
    )


def feature_type(column: pd.Series) -> str:
    """The JSON type of a column's values (a float column stays a number even if values are whole)."""
    if pd.api.types.is_bool_dtype(column.dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(column.dtype):
        return "integer"
    if pd.api.types.is_float_dtype(column.dtype):
        return "number"
    inferred = pd.api.types.infer_dtype(column, skipna=True)
    if inferred == "integer":  # Python ints that overflowed int64 when the CSV was read: still integers
        return "integer"
    return "boolean" if inferred == "boolean" else "string"


def check_integer_range(column: pd.Series) -> None:
    """An integer column's values must be within the ±10¹⁵ the API accepts: the first one beyond is named."""
    beyond = column.dropna().map(abs) > NUMBER_LIMIT
    if beyond.any():
        position = column.index.get_loc(beyond.idxmax())
        raise PackagingError(f"sample column {column.name} row {position + 1} holds {column.iloc[position]}, beyond "
                             f"the ±10^15 the API accepts for a number: fix or drop that row")


def model_dtype(kind: str, nullable: bool) -> str:
    """The pandas dtype the column needs at predict time (NaN needs float or object)."""
    if kind == "integer":
        return "float64" if nullable else "int64"
    if kind == "boolean":
        return "object" if nullable else "bool"
    return "float64" if kind == "number" else "object"


def known_categories(encoding: Encoding, column: pd.Series) -> list[Any]:
    """The encoder's categories, less an imputer's fill value the sample never shows."""
    observed = set(column.dropna())
    return sorted(value for value in encoding.categories
                  if value not in encoding.imputed or value in observed)


def column_encodings(estimator: Any, columns: list[str],
                     imputed: frozenset[Any] = frozenset()) -> dict[str, Encoding]:
    """Walk pipelines and column transformers to the encoders that see each input column."""
    if isinstance(estimator, Pipeline):
        return _pipeline_encodings(estimator, columns, imputed)
    if isinstance(estimator, ColumnTransformer):
        found: dict[str, Encoding] = {}
        for _, transformer, selection in estimator.transformers_:
            for column, encoding in column_encodings(transformer, selected_columns(columns, selection),
                                                     imputed).items():
                if column not in found or encoding.rejects_unknown:
                    found[column] = encoding
        return found
    return _encoder_encodings(estimator, columns, imputed)


def _pipeline_encodings(pipeline: Pipeline, columns: list[str],
                        imputed: frozenset[Any]) -> dict[str, Encoding]:
    """The first step that encodes answers; imputers before it keep the columns as they are."""
    for _, step in pipeline.steps:
        found = column_encodings(step, columns, imputed)
        if found or isinstance(step, ColumnTransformer):
            return found
        if isinstance(step, SimpleImputer) and step.strategy == "constant":
            imputed = imputed | {json_native(value) for value in step.statistics_}
    return {}


def _encoder_encodings(encoder: Any, columns: list[str], imputed: frozenset[Any]) -> dict[str, Encoding]:
    categories = getattr(encoder, "categories_", None)
    names = [str(name) for name in getattr(encoder, "feature_names_in_", columns)]
    if categories is None or len(categories) != len(names):
        return {}
    rejects_unknown = getattr(encoder, "handle_unknown", None) == "error"
    return {name: Encoding(tuple(json_native(value) for value in known if not pd.isna(value)),
                           rejects_unknown, imputed)
            for name, known in zip(names, categories)}


def selected_columns(columns: list[str], selection: Any) -> list[str]:
    """Resolve a ColumnTransformer selection (names, indices, slice or mask) to column names."""
    header = pd.DataFrame(columns=columns)
    selection = [selection] if np.isscalar(selection) else selection
    try:
        return list(header.loc[:, selection].columns)
    except (KeyError, TypeError):
        return list(header.iloc[:, selection].columns)


def typed_frame(table: pd.DataFrame, features: list[Feature], what: str) -> pd.DataFrame:
    """The table with each column in its feature's dtype, as the handler will build it."""
    columns = {}
    for feature in features:
        column = table[feature.name]
        if not feature.nullable and column.isna().any():
            raise PackagingError(f"{what} column {feature.name} has missing values, the sample has none")
        with foreign(f"{what} column {feature.name} does not fit dtype {feature.dtype}"):
            columns[feature.name] = column.astype(feature.dtype)
    return pd.DataFrame(columns, index=table.index)


def model_input(typed: pd.DataFrame, input_format: str) -> pd.DataFrame | np.ndarray:
    """What predict gets: the frame, or one array in the dtype all its columns share."""
    return typed if input_format == "dataframe" else typed.to_numpy(dtype=np.result_type(*typed.dtypes))


def example_request(typed: pd.DataFrame) -> dict[str, Any]:
    """A request body of sample rows, complete ones first choice."""
    complete = typed.dropna()
    return {"instances": records((complete if len(complete) else typed).head(EXAMPLE_ROWS))}


def records(typed: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows as instances of a request: JSON values, None where missing."""
    return [{str(key): json_native(value) for key, value in row.items()} for row in typed.to_dict(orient="records")]


def json_native(value: Any) -> Any:
    """A plain Python value for JSON: numpy scalars unwrapped, NaN and NA as None."""
    if pd.isna(value):
        return None
    return value.item() if isinstance(value, np.generic) else value
