"""Build-time ONNX export: convert the fitted pipeline with skl2onnx, then prove it answers as scikit-learn does.

Both runtimes are the handler's own predictors, fed the same validated columns: the sample's rows
and edge cases built from the manifest (each nullable feature missing, unseen categories, the ends
of each observed numeric range and beyond). The ONNX model is accepted only when every label is
identical and every probability (or regression value) within the tolerance.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from copy import deepcopy
from dataclasses import dataclass, replace
from typing import Any

from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType, StringTensorType
from skl2onnx.common.exceptions import MissingConverter, MissingShapeCalculator
from sklearn.impute import SimpleImputer

from handler.config import Settings
from handler.errors import ApiError
from handler.manifest import Feature, Manifest, Parity
from handler.predictors import onnx as onnx_runtime
from handler.predictors.base import ValidatedBatch
from handler.predictors.sklearn import SklearnPredictor
from handler.validation import RequestValidator

DEFAULT_TOLERANCE = 1e-5
TARGET_OPSET = 21  # within what skl2onnx 1.20 is tested with and what onnxruntime 1.20+ runs
EDGE_BASE_ROWS = 3  # sample rows each edge case is applied to
# Neither "" nor a caller's NUL string (the graph's missing marker) may be mistaken for a missing value.
UNSEEN_CATEGORIES = ("", "\x00", "never-seen-in-training")
REASON_LENGTH = 200
_TENSOR_TYPES = {onnx_runtime.STRING_TENSOR: StringTensorType, onnx_runtime.FLOAT_TENSOR: FloatTensorType}


class OnnxRefused(Exception):
    """The model cannot be served by onnxruntime; `reason` starts with one of FALLBACK_REASONS."""

    def __init__(self, reason: str, parity: Parity | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.parity = parity


@dataclass(frozen=True)
class OnnxExport:
    """The serialised ONNX model and how closely it matched scikit-learn."""

    model: bytes
    parity: Parity


def export_onnx(manifest: Manifest, model: Any, sample: list[dict[str, Any]], tolerance: float) -> OnnxExport:
    """Convert model and check its parity on sample records plus edge cases, or raise OnnxRefused."""
    onnx_model = convert(manifest, model)
    try:
        predictor = onnx_runtime.load(replace(manifest, runtime="onnx"), onnx_model)
    except Exception as error:
        raise OnnxRefused(f"conversion_error: onnxruntime cannot load the converted model ({_brief(error)})") from None
    batch = validated(manifest, sample + edge_cases(manifest.features, sample[:EDGE_BASE_ROWS]))
    try:
        parity = compare(SklearnPredictor(manifest, model).predict(batch), predictor.predict(batch), tolerance)
    except Exception as error:  # a failure on any row means the two runtimes cannot be shown to agree
        raise OnnxRefused(f"parity_miss: the runtimes cannot be compared ({_brief(error)})") from None
    if not parity.passed:
        raise OnnxRefused(parity_miss(parity), parity)
    return OnnxExport(onnx_model, parity)


def validated(manifest: Manifest, records: list[dict[str, Any]]) -> ValidatedBatch:
    """The rows as the handler would pass them to a predictor: through the request validator."""
    longest = max((len(value) for record in records for value in record.values() if isinstance(value, str)),
                  default=1)
    validator = RequestValidator(manifest, Settings(max_instances=len(records), max_string_length=max(longest, 1)))
    try:
        return validator.validate({"instances": records})
    except ApiError as error:
        first = error.details[0] if error.details else None
        where = f" ({first.field}: {first.problem})" if first else ""
        raise OnnxRefused(f"parity_miss: the parity rows do not pass the request validator{where}") from None


def convert(manifest: Manifest, model: Any) -> bytes:
    """The fitted pipeline as a serialised ONNX graph with the inputs the ONNX predictor feeds it."""
    if manifest.input_format == "array" and any(feature.type == "string" for feature in manifest.features):
        raise OnnxRefused("unsupported_estimator: an array-fed pipeline with string columns")
    inputs = [(name, _TENSOR_TYPES[tensor_type]([None, width]))
              for name, (tensor_type, width) in onnx_runtime.input_signature(manifest).items()]
    ready = _string_imputers_marked(model)
    options = {id(ready): {"zipmap": False}} if manifest.classes is not None else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the parity check, not the converter's warnings, decides
            onnx_model = convert_sklearn(ready, initial_types=inputs, options=options, target_opset=TARGET_OPSET,
                                         name=manifest.name)  # else a random uuid names the graph
    except (MissingConverter, MissingShapeCalculator) as error:
        raise OnnxRefused(f"unsupported_estimator: {_first_line(error)}") from None
    except Exception as error:  # skl2onnx raises whatever its converters raise
        raise OnnxRefused(f"conversion_error: {_brief(error)}") from None
    _sort_opset_imports(onnx_model)
    _name_inputs(onnx_model, [name for name, _ in inputs])
    if manifest.classes is not None:
        onnx_model.metadata_props.add(key=onnx_runtime.CLASSES_METADATA, value=json.dumps(manifest.classes))
    return onnx_model.SerializeToString()


def _sort_opset_imports(onnx_model: Any) -> None:
    """skl2onnx lists opset domains in set order, which varies between runs: sort them, for reproducible bytes."""
    imports = sorted((entry.domain, entry.version) for entry in onnx_model.opset_import)
    del onnx_model.opset_import[:]
    for domain, version in imports:
        onnx_model.opset_import.add(domain=domain, version=version)


def _name_inputs(onnx_model: Any, names: list[str]) -> None:
    """Give the graph's inputs their features' names again: skl2onnx turns "monthly charges" into "monthly_charges".

    No name inside the graph can clash: skl2onnx names inputs first, then makes every other name C-like and unique.
    """
    graph = onnx_model.graph
    renames = {graph_input.name: name for graph_input, name in zip(graph.input, names) if graph_input.name != name}
    for graph_input in graph.input:
        graph_input.name = renames.get(graph_input.name, graph_input.name)
    for node in graph.node:
        node.input[:] = [renames.get(value, value) for value in node.input]


def _string_imputers_marked(model: Any) -> Any:
    """A copy whose string imputers look for MISSING_STRING: skl2onnx cannot match NaN in a string tensor."""
    ready = deepcopy(model)
    for estimator in _estimators(ready):
        if (isinstance(estimator, SimpleImputer) and estimator.statistics_.dtype == object
                and not isinstance(estimator.missing_values, str)):
            estimator.missing_values = onnx_runtime.MISSING_STRING
    return ready


def _estimators(estimator: Any) -> Iterator[Any]:
    """The estimator and every fitted estimator inside its pipelines, column transformers and unions."""
    yield estimator
    children = ([step for _, step in getattr(estimator, "steps", [])]
                + [transformer for _, transformer, _ in getattr(estimator, "transformers_", [])]
                + [transformer for _, transformer in getattr(estimator, "transformer_list", [])])
    for child in children:
        if hasattr(child, "get_params"):  # not "drop" or "passthrough"
            yield from _estimators(child)


def edge_cases(features: list[Feature], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each row with one feature changed to each of its edge values."""
    return [{**row, feature.name: value} for feature in features for value in edge_values(feature) for row in rows]


def edge_values(feature: Feature) -> list[Any]:
    """Values the handler accepts for a feature that a sample may lack: missing, unseen, extreme."""
    values: list[Any] = [None] if feature.nullable else []
    if feature.unknown_category == "reject":
        return values  # the handler refuses other values before the model sees them
    if feature.type == "string" and feature.unknown_category == "ignore":
        values += UNSEEN_CATEGORIES
    if feature.type == "boolean":
        values += [False, True]
    if feature.minimum is not None:
        span = (feature.maximum - feature.minimum) or 1
        values += [feature.minimum, feature.maximum, feature.minimum - span, feature.maximum + span]
    return values


def compare(expected: list[dict[str, Any]], actual: list[dict[str, Any]], tolerance: float) -> Parity:
    """How far the ONNX predictions are from scikit-learn's, as served: labels, probabilities, values."""
    if "value" in expected[0]:
        differences = [abs(want["value"] - got["value"]) for want, got in zip(expected, actual)]
        labels_identical = None
    else:
        differences = [abs(probability - got["probabilities"][label])
                       for want, got in zip(expected, actual) for label, probability in want["probabilities"].items()]
        labels_identical = all(want["label"] == got["label"] for want, got in zip(expected, actual))
    return Parity(tolerance=tolerance, max_abs_difference=max(differences), rows=len(expected),
                  labels_identical=labels_identical)


def parity_miss(parity: Parity) -> str:
    """The fallback reason for a parity check that failed."""
    labels = "labels differ, " if parity.labels_identical is False else ""
    return (f"parity_miss: {labels}max abs difference {parity.max_abs_difference:.3g} "
            f"(tolerance {parity.tolerance:g}) on {parity.rows} rows")


def _brief(error: Exception) -> str:
    return f"{type(error).__name__}: {_first_line(error)}"


def _first_line(error: Exception) -> str:
    """The first line of an error's message, cut short: some converters print whole node attributes."""
    line = (str(error).strip().splitlines() or [""])[0]
    return line if len(line) <= REASON_LENGTH else line[:REASON_LENGTH] + "…"
