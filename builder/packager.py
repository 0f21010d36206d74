"""Package a fitted scikit-learn estimator into model_artifacts/: the joblib artifact, its ONNX export, its manifest.

The manifest describes the input the model expects (read from the estimator and a sample of
its training data), pins the artifact by sha256 and the library versions that pickled it, and
records hold-out scores. The model is served by onnxruntime (model.onnx) when it converts and
matches scikit-learn on the sample and edge cases, else by scikit-learn (see builder.onnx_export).
Every check runs before anything is written, and the output directory is replaced in one rename,
so a failed run leaves it untouched.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from sklearn.base import is_classifier, is_regressor
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.metrics import (accuracy_score, log_loss, mean_absolute_error, r2_score,
                             roc_auc_score, root_mean_squared_error)
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from handler.config import Settings
from handler.manifest import Feature, Manifest, sha256_file, write_manifest
from handler.openapi import openapi_document
from handler.runtimes import RUNTIMES
from builder.onnx_export import DEFAULT_TOLERANCE, OnnxRefused, export_onnx

ARTIFACT = "model.joblib"
ONNX_ARTIFACT = "model.onnx"
RUNTIME_CHOICES = ("auto", "onnx", "sklearn")
OPENAPI_FILE = "openapi.json"
DEFAULT_OUT_DIR = Path("model_artifacts")
EXAMPLE_ROWS = 2
METRIC_DIGITS = 4


class PackagingError(Exception):
    """The inputs cannot make a trustworthy artifact; the message says why."""


@dataclass(frozen=True)
class Encoding:
    """What one encoder knows about one input column."""

    categories: tuple[Any, ...]
    rejects_unknown: bool
    imputed: frozenset[Any]  # values a preceding imputer writes in place of missing ones


def package_model(model_path: Path, sample_path: Path, *, out_dir: Path = DEFAULT_OUT_DIR,
                  name: str | None = None, version: str = "1", holdout_path: Path | None = None,
                  target: str | None = None, runtime: str = "auto",
                  parity_tolerance: float = DEFAULT_TOLERANCE) -> Manifest:
    """Check the model against its sample, then write model.joblib, model.onnx (when onnx serves it)
    and manifest.json into out_dir. runtime is auto (onnx when it matches scikit-learn), onnx or sklearn."""
    model = load_model(model_path)
    task = model_task(model)
    classes = class_labels(model) if task == "classification" else None
    input_format = "dataframe" if hasattr(model, "feature_names_in_") else "array"
    sample = aligned_columns(model, without_column(read_table(sample_path, "sample"), target), "sample")
    features = infer_features(model, sample)
    typed_sample = typed_frame(sample, features, "sample")
    sample_input = model_input(typed_sample, input_format)
    metrics = None if holdout_path is None else holdout_metrics(
        model, task, read_table(holdout_path, "hold-out"), target, features, input_format)
    with _workspace(out_dir) as scratch:
        staged = scratch / "new"
        staged.mkdir()
        joblib.dump(model, staged / ARTIFACT)
        check_reload(model, staged / ARTIFACT, sample_input)
        manifest = Manifest(
            name=name or model_path.stem, version=version, created_at=build_time(), task=task,
            input_format=input_format, features=features, example=example_request(typed_sample),
            artifact=ARTIFACT, sha256=sha256_file(staged / ARTIFACT),
            versions=library_versions(input_format), runtime="sklearn",
            classes=classes, metrics=metrics,
        )
        manifest = select_runtime(manifest, model, records(typed_sample), staged, runtime, parity_tolerance)
        write_manifest(manifest, staged)
        write_openapi(manifest, staged)
        _swap_into_place(staged, out_dir, scratch)
    return manifest


@contextmanager
def _foreign(action: str) -> Iterator[None]:
    """Run library code on the user's files: any exception or warning becomes one PackagingError."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            yield
        except PackagingError:
            raise
        except Exception as error:
            raise PackagingError(f"{action}: {type(error).__name__}: {error}") from error


def _existing(path: Path, what: str) -> Path:
    if not path.is_file():
        raise PackagingError(f"{what} {path} not found")
    return path


def load_model(path: Path) -> Any:
    """Load a fitted estimator saved with joblib (a version mismatch warning is an error)."""
    with _foreign(f"cannot load model {path} with joblib"):
        model = joblib.load(_existing(path, "model"))
    if not callable(getattr(model, "predict", None)):
        raise PackagingError(f"model {path} holds a {type(model).__name__}, not an estimator with predict")
    with _foreign(f"model {path} is not a fitted estimator"):
        check_is_fitted(model)
    return model


def model_task(model: Any) -> str:
    """classification or regression, from scikit-learn's estimator tags."""
    with _foreign(f"cannot tell what task {type(model).__name__} does"):
        classifier, regressor = is_classifier(model), is_regressor(model)
    if classifier:
        return "classification"
    if regressor:
        return "regression"
    raise PackagingError(f"{type(model).__name__} is neither a classifier nor a regressor")


def class_labels(model: Any) -> list[Any]:
    """The classifier's classes as JSON values; one output only."""
    labels = getattr(model, "classes_", None)
    if labels is None or any(np.ndim(label) for label in labels):
        raise PackagingError(f"{type(model).__name__} has no single list of classes_ "
                             "(multi-output classifiers are not supported)")
    return [json_native(label) for label in labels]


def read_table(path: Path, what: str) -> pd.DataFrame:
    """A CSV file with a header row and at least one data row."""
    with _foreign(f"cannot read {what} {path}"):
        table = pd.read_csv(_existing(path, what), low_memory=False)
    if table.empty:
        raise PackagingError(f"{what} {path} has no rows")
    return table


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
    return "boolean" if pd.api.types.infer_dtype(column, skipna=True) == "boolean" else "string"


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
        with _foreign(f"{what} column {feature.name} does not fit dtype {feature.dtype}"):
            columns[feature.name] = column.astype(feature.dtype)
    return pd.DataFrame(columns, index=table.index)


def model_input(typed: pd.DataFrame, input_format: str) -> pd.DataFrame | np.ndarray:
    """What predict gets: the frame, or one array in the dtype all its columns share."""
    return typed if input_format == "dataframe" else typed.to_numpy(dtype=np.result_type(*typed.dtypes))


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
    with _foreign("cannot score the hold-out"):
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
            "rmse": root_mean_squared_error(labels, predicted)}


def predictions(model: Any, inputs: Any) -> list[np.ndarray]:
    """predict, and predict_proba where the model has it."""
    with _foreign("the model cannot predict on the sample"):
        return [getattr(model, method)(inputs) for method in ("predict", "predict_proba")
                if hasattr(model, method)]


def check_reload(model: Any, artifact: Path, inputs: Any) -> None:
    """The saved artifact, loaded back, must predict exactly as the model in memory."""
    expected = predictions(model, inputs)
    with _foreign("cannot load the saved artifact back"):
        reloaded = joblib.load(artifact)
    actual = predictions(reloaded, inputs)
    if not all(np.array_equal(before, after) for before, after in zip(expected, actual)):
        raise PackagingError("the model predicts differently after a joblib round trip")


def select_runtime(manifest: Manifest, model: Any, sample: list[dict[str, Any]], staged: Path, runtime: str,
                   tolerance: float) -> Manifest:
    """The sklearn manifest, or one serving model.onnx when the export matches scikit-learn.

    With runtime "onnx" a refused export is an error; with "auto" the manifest records why it fell back.
    """
    if runtime not in RUNTIME_CHOICES:
        raise PackagingError(f"runtime must be one of {', '.join(RUNTIME_CHOICES)}, not {runtime}")
    if runtime == "sklearn":
        return manifest
    try:
        export = export_onnx(manifest, model, sample, tolerance)
    except OnnxRefused as refusal:
        if runtime == "onnx":
            raise PackagingError(f"--runtime onnx is not possible: {refusal.reason}") from None
        return replace(manifest, runtime_fallback=refusal.reason, parity=refusal.parity)
    (staged / ONNX_ARTIFACT).write_bytes(export.model)
    return replace(manifest, runtime="onnx", artifact=ONNX_ARTIFACT, sha256=sha256_file(staged / ONNX_ARTIFACT),
                   sklearn_artifact=manifest.artifact, sklearn_sha256=manifest.sha256, parity=export.parity,
                   versions=library_versions(manifest.input_format, "onnx"))


def write_openapi(manifest: Manifest, out_dir: Path) -> Path:
    """openapi.json for the default request limits; the API serves its own at /openapi.json."""
    path = out_dir / OPENAPI_FILE
    path.write_text(json.dumps(openapi_document(manifest, Settings()), indent=2) + "\n", encoding="utf-8")
    return path


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


def library_versions(input_format: str, runtime: str = "sklearn") -> dict[str, str]:
    """The versions that pickled the artifact (it only loads under the same ones), and exported it to ONNX."""
    distributions = [*RUNTIMES[runtime].recorded_versions] + (["pandas"] if input_format == "dataframe" else [])
    return {"python": platform.python_version(),
            **{distribution: metadata.version(distribution) for distribution in distributions}}


def build_time() -> str:
    """Now in UTC, or SOURCE_DATE_EPOCH when set, so that rebuilds can be reproducible."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    try:
        moment = datetime.now(UTC) if epoch is None else datetime.fromtimestamp(int(epoch), UTC)
    except (ValueError, OverflowError):
        raise PackagingError(f"SOURCE_DATE_EPOCH must be whole seconds since 1970, not {epoch}") from None
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@contextmanager
def _workspace(out_dir: Path) -> Iterator[Path]:
    """A scratch directory next to out_dir (same filesystem, so renames are atomic), removed afterwards."""
    if out_dir.exists() and not out_dir.is_dir():
        raise PackagingError(f"{out_dir} exists and is not a directory")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=f".{out_dir.name}-") as scratch:
        yield Path(scratch)


def _swap_into_place(staged: Path, out_dir: Path, scratch: Path) -> None:
    """Move the old out_dir into scratch (deleted with it), then move staged in its place."""
    old = scratch / "old"
    if out_dir.exists():
        out_dir.rename(old)
    try:
        staged.rename(out_dir)
    except OSError:
        if old.exists():
            old.rename(out_dir)
        raise


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m builder.packager",
        description="Package a fitted scikit-learn estimator (joblib) into a directory holding "
                    "model.joblib, model.onnx (when onnxruntime can serve it) and manifest.json, "
                    "after checking it against a sample of its input.")
    parser.add_argument("--model", type=Path, required=True, help="fitted estimator saved with joblib")
    parser.add_argument("--sample", type=Path, required=True,
                        help="CSV sample of the training data, one column per model input")
    parser.add_argument("--holdout", type=Path, help="labelled hold-out CSV to score (needs --target)")
    parser.add_argument("--target", help="label column: scored in the hold-out, dropped from the sample")
    parser.add_argument("--name", help="model name (default: the model file's stem)")
    parser.add_argument("--version", default="1", help="model version (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT_DIR,
                        help="output directory, replaced as a whole (default: %(default)s)")
    parser.add_argument("--runtime", choices=RUNTIME_CHOICES, default="auto",
                        help="what serves the model: onnx when its export matches scikit-learn (auto), "
                             "onnx or an error, or sklearn (default: %(default)s)")
    parser.add_argument("--parity-tolerance", type=tolerance, default=DEFAULT_TOLERANCE,
                        help="largest absolute difference between ONNX and scikit-learn probabilities "
                             "or values that onnx may serve with (default: %(default)g)")
    return parser.parse_args(argv)


def tolerance(text: str) -> float:
    """A --parity-tolerance value: a finite number >= 0."""
    value = float(text)
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, not {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        manifest = package_model(args.model, args.sample, out_dir=args.out, name=args.name,
                                 version=args.version, holdout_path=args.holdout, target=args.target,
                                 runtime=args.runtime, parity_tolerance=args.parity_tolerance)
    except (PackagingError, OSError) as error:
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    fallback = f"; onnx not used: {manifest.runtime_fallback}" if manifest.runtime_fallback else ""
    print(f"packaged {manifest.name} {manifest.version} into {args.out} "
          f"(runtime {manifest.runtime}, sha256 {manifest.sha256[:12]}){fallback}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
