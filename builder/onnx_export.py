"""Build-time ONNX export: convert the fitted pipeline with skl2onnx, then prove it answers as scikit-learn does.

Both runtimes are the handler's own predictors, fed the same validated columns: the sample's rows
and edge cases built from the manifest (each nullable feature missing, unseen categories, the ends
of each observed numeric range and beyond, values at and next to the fitted trees' split thresholds).
The ONNX model is accepted only when every label is identical and every probability (or regression
value) within the tolerance.

The graph takes one input per feature under the feature's own name (float64 for numbers, so that
float transforms compute as scikit-learn does), or one float64 `features` tensor for an array-fed
pipeline. A model whose first step wants one numeric tensor gets a passthrough column transformer in
front, which concatenates the per-feature inputs in the model's column order.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from copy import deepcopy
from dataclasses import dataclass, replace
from typing import Any
from unittest import mock

import numpy as np
import onnxruntime
import pandas as pd
from onnx import TensorProto, helper, numpy_helper, shape_inference
from skl2onnx import convert_sklearn, update_registered_converter
from skl2onnx.common import tree_ensemble
from skl2onnx.common.data_types import (
    DoubleTensorType,
    FloatTensorType,
    StringTensorType,
)
from skl2onnx.common.exceptions import MissingConverter, MissingShapeCalculator
from skl2onnx.common.shape_calculator import (
    calculate_linear_classifier_output_shapes,
    calculate_linear_regressor_output_shapes,
)
from skl2onnx.operator_converters.function_transformer import (
    convert_sklearn_function_transformer,
)
from skl2onnx.operator_converters.imputer_op import convert_sklearn_imputer
from skl2onnx.operator_converters.one_hot_encoder import convert_sklearn_one_hot_encoder
from skl2onnx.operator_converters.ordinal_encoder import convert_sklearn_ordinal_encoder
from skl2onnx.shape_calculators.function_transformer import (
    calculate_sklearn_function_transformer_output_shapes,
)
from skl2onnx.shape_calculators.imputer import calculate_sklearn_imputer_output_shapes
from skl2onnx.shape_calculators.one_hot_encoder import calculate_sklearn_one_hot_encoder_output_shapes
from skl2onnx.shape_calculators.ordinal_encoder import calculate_sklearn_ordinal_encoder_output_shapes
from skl2onnx.sklapi import CastTransformer
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, OrdinalEncoder

from handler.config import Settings
from handler.errors import ApiError
from handler.manifest import Feature, Manifest, Parity
from handler.predictors import onnx as onnx_runtime
from handler.predictors.base import ValidatedBatch
from handler.predictors.sklearn import SklearnPredictor
from handler.validation import RequestValidator

DEFAULT_TOLERANCE = 1e-5
# Opset 21 is within what skl2onnx 1.20 is tested with and what onnxruntime 1.20+ runs; ai.onnx.ml 3
# stores tree thresholds in float64 and is what onnxmltools' XGBoost and LightGBM converters need.
TARGET_OPSET = {"": 21, "ai.onnx.ml": 3}
EDGE_BASE_ROWS = 3  # sample rows each edge case is applied to
THRESHOLD_ROWS = 200  # at most this many parity rows at and next to tree split thresholds
# Neither "" nor a caller's NUL string (the graph's missing marker) may be mistaken for a missing value.
UNSEEN_CATEGORIES = ("", "\x00", "never-seen-in-training")
REASON_LENGTH = 200
_TENSOR_TYPES = {onnx_runtime.STRING_TENSOR: StringTensorType, onnx_runtime.DOUBLE_TENSOR: DoubleTensorType}
# numpy ufuncs a FunctionTransformer may apply, as ONNX operators applied in turn (with a constant 1 for Add, Sub)
_UFUNC_OPERATORS: dict[Any, tuple[str, ...]] = {
    np.log1p: ("Add", "Log"), np.expm1: ("Exp", "Sub"), np.log: ("Log",), np.exp: ("Exp",),
    np.sqrt: ("Sqrt",), np.abs: ("Abs",),
}
_BOOSTER_LIBRARIES = ("xgboost", "lightgbm")
_FLOAT64_TREE_ATTRIBUTES = ("nodes_values", "target_weights", "class_weights")


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
    base_rows = sample[:EDGE_BASE_ROWS]
    batch = validated(manifest, sample + edge_cases(manifest.features, base_rows)
                      + threshold_cases(manifest, model, base_rows))
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
    """The fitted pipeline as a serialised ONNX graph with the inputs the ONNX predictor feeds it.

    Numbers enter as float64 and stay float64 where the converters allow it (tree operators compare
    in float64 with thresholds that reproduce scikit-learn's); else they are cast to float32 right
    before the final estimator (SVMs; first for XGBoost and LightGBM, which compare in float32), else
    the whole graph takes float32 inputs, as exports before float64 did.
    """
    if manifest.input_format == "array" and any(feature.type == "string" for feature in manifest.features):
        raise OnnxRefused("unsupported_estimator: an array-fed pipeline with string columns")
    refuse_unservable(manifest, model)
    _register_converters()
    inputs = [(name, _TENSOR_TYPES[tensor_type]([None, width]))
              for name, (tensor_type, width) in onnx_runtime.input_signature(manifest).items()]
    ready = _columns_concatenated(manifest, _prepared_copy(model))
    float32_inputs = [(name, FloatTensorType(tensor.shape) if isinstance(tensor, DoubleTensorType) else tensor)
                      for name, tensor in inputs]
    candidates = [(ready, inputs), (_cast_before_estimator(ready), inputs), (ready, float32_inputs)]
    if _compares_in_float32(_final_estimator(model)):
        candidates.insert(0, candidates.pop(1))
    error: Exception | None = None
    for candidate, candidate_inputs in candidates:
        try:
            onnx_model = _converted(candidate, candidate_inputs, manifest)
            onnxruntime.InferenceSession(onnx_model.SerializeToString(), _quiet_session(),
                                         providers=["CPUExecutionProvider"])
        except (MissingConverter, MissingShapeCalculator) as missing:
            raise OnnxRefused(f"unsupported_estimator: {_first_line(missing)}") from None
        except Exception as failure:  # skl2onnx raises whatever its converters raise; float32 may still work
            error = failure
            continue
        _name_inputs(onnx_model, [name for name, _ in inputs])
        _name_output(onnx_model, *((1, onnx_runtime.PROBABILITIES_OUTPUT) if manifest.classes is not None
                                   else (0, onnx_runtime.VALUES_OUTPUT)))
        if manifest.classes is not None:
            onnx_model.metadata_props.add(key=onnx_runtime.CLASSES_METADATA, value=json.dumps(manifest.classes))
        return onnx_model.SerializeToString()
    raise OnnxRefused(f"conversion_error: {_brief(error)}")


def _quiet_session() -> onnxruntime.SessionOptions:
    """Session options that keep a candidate graph onnxruntime refuses from printing its error."""
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 4  # fatal only: the refusal is the next candidate's cue, not news
    return options


def refuse_unservable(manifest: Manifest, model: Any) -> None:
    """Refuse, with the reason, models that would convert into wrong or mislabelled answers."""
    if manifest.classes is not None and not hasattr(model, "predict_proba"):
        final = _final_estimator(model)
        name = type(final).__name__
        if hasattr(final, "probability"):
            raise OnnxRefused(f"unsupported_estimator: {name} without probability=True (its decision scores are "
                              "not probabilities: wrap it in CalibratedClassifierCV)")
        raise OnnxRefused(f"unsupported_estimator: {name} without predict_proba (its scores are not probabilities)")
    for estimator in _estimators(model):
        if np.any(getattr(estimator, "is_categorical_", None)):
            raise OnnxRefused(f"unsupported_estimator: {type(estimator).__name__} with native categorical "
                              "features (skl2onnx 1.20 converts them without parity)")
        library = type(estimator).__module__.split(".")[0]
        if library in _BOOSTER_LIBRARIES and not _onnxmltools_available():
            raise OnnxRefused(f"unsupported_estimator: {type(estimator).__name__} needs onnxmltools "
                              "(pip install onnxmltools)")


def _converted(model: Any, inputs: list[tuple[str, Any]], manifest: Manifest) -> Any:
    """skl2onnx's conversion, its opset imports sorted, its float64-fed trees comparing in float64."""
    classifier_options = {"zipmap": False}
    options = ({id(model): classifier_options, id(_final_estimator(model)): classifier_options}
               if manifest.classes is not None else None)
    with warnings.catch_warnings(), _tree_nodes_recorded() as recorded:
        warnings.simplefilter("ignore")  # the parity check, not the converter's warnings, decides
        onnx_model = convert_sklearn(model, initial_types=inputs, options=options, target_opset=TARGET_OPSET,
                                     name=manifest.name)  # else a random uuid names the graph
    _tree_attributes_in_float64(onnx_model, recorded)
    _missing_values_routed(onnx_model, _final_estimator(model))
    _sort_opset_imports(onnx_model)
    return onnx_model


def _missing_values_routed(onnx_model: Any, estimator: Any) -> None:
    """Send a missing value where the scikit-learn tree does: skl2onnx 1.20 sends it right at every split."""
    trees = [member.tree_ for member in np.ravel(getattr(estimator, "estimators_", [estimator]))
             if hasattr(member, "tree_")]
    for node in onnx_model.graph.node:
        attributes = {attribute.name: attribute for attribute in node.attribute}
        if not node.op_type.startswith("TreeEnsemble") or "nodes_missing_value_tracks_true" not in attributes:
            continue
        tree_ids, node_ids = attributes["nodes_treeids"].ints, attributes["nodes_nodeids"].ints
        if not trees or max(tree_ids) >= len(trees):
            continue  # not a scikit-learn tree model, or trees counted otherwise
        routes = attributes["nodes_missing_value_tracks_true"]
        routes.ints[:] = [int(trees[tree].missing_go_to_left[node_id])
                          for tree, node_id in zip(tree_ids, node_ids)]


@contextmanager
def _tree_nodes_recorded() -> Iterator[dict[str, list[float]]]:
    """The float64 thresholds and leaf weights skl2onnx computes for each tree node it adds, for one conversion.

    skl2onnx 1.20 passes a bool as `nodes_missing_value_tracks_true`, which protobuf >= 7.34 refuses:
    it is cast to int here, as sklearn-onnx PR 1256 does. Infinite thresholds are kept as they are.
    """
    add_node = tree_ensemble.add_node
    recorded: dict[str, list[float]] = {name: [] for name in _FLOAT64_TREE_ATTRIBUTES}

    def add_recorded_node(attr_pairs: dict[str, list[Any]], *args: Any, nodes_missing_value_tracks_true: Any = 0,
                          **kwargs: Any) -> None:
        before = {name: len(attr_pairs.get(name, [])) for name in recorded}
        add_node(attr_pairs, *args, nodes_missing_value_tracks_true=int(nodes_missing_value_tracks_true), **kwargs)
        for name, values in recorded.items():
            values.extend(float(value) for value in attr_pairs.get(name, [])[before[name]:])

    sklearn_threshold = tree_ensemble.sklearn_threshold

    def finite_sklearn_threshold(value: float, dtype: Any, mode: str) -> Any:
        # skl2onnx 1.20 searches forever for the float64 twin of an infinite threshold (NaN-only splits)
        return value if np.isinf(value) else sklearn_threshold(value, dtype, mode)

    with (mock.patch.object(tree_ensemble, "add_node", add_recorded_node),
          mock.patch.object(tree_ensemble, "sklearn_threshold", finite_sklearn_threshold)):
        yield recorded


def _tree_attributes_in_float64(onnx_model: Any, recorded: dict[str, list[float]]) -> None:
    """Tree operators fed float64 get float64 thresholds and leaf weights, as recorded: summed in float64.

    skl2onnx 1.20 stores them as float32 attributes, so a float64 feature would meet a rounded threshold
    (its thresholds for scikit-learn's float32 trees are chosen so that `x <= w` in float64 matches
    `float32(x) <= threshold`; HistGradientBoosting compares in float64). onnxruntime's tree operators
    write float32 scores, which skl2onnx declares float64 where the tree is fed float64: those are cast.
    """
    graph = onnx_model.graph
    types = {value.name: value.type.tensor_type.elem_type
             for value in (*shape_inference.infer_shapes(onnx_model).graph.value_info, *graph.input, *graph.output)}
    remaining = {name: iter(values) for name, values in recorded.items()}
    rewritten = False
    for node in list(graph.node):
        if node.domain != "ai.onnx.ml" or not node.op_type.startswith("TreeEnsemble"):
            continue
        attributes = [attribute for attribute in node.attribute if attribute.name in remaining]
        exact = {attribute.name: np.array([next(remaining[attribute.name], np.nan) for _ in attribute.floats])
                 for attribute in attributes}
        if types.get(node.input[0]) != TensorProto.DOUBLE or not all(
                np.array_equal(exact[attribute.name].astype(np.float32), np.array(attribute.floats, np.float32))
                for attribute in attributes):
            continue  # onnxruntime compares float32 features with float32 thresholds; or not the nodes recorded
        for attribute in attributes:
            node.attribute.remove(attribute)
            node.attribute.append(helper.make_attribute(f"{attribute.name}_as_tensor",
                                                        numpy_helper.from_array(exact[attribute.name], attribute.name)))
        scores = 1 if node.op_type == "TreeEnsembleClassifier" else 0
        declared = node.output[scores]
        rewritten = True
        if types.get(declared) == TensorProto.FLOAT:  # declared as what onnxruntime writes: nothing to cast
            continue
        node.output[scores] = f"{declared}_float32"
        graph.node.insert(list(graph.node).index(node) + 1, helper.make_node(
            "Cast", [node.output[scores]], [declared], to=TensorProto.DOUBLE, name=f"{node.name}_to_double"))
    if rewritten:  # attributes as tensors need ai.onnx.ml 3
        for entry in onnx_model.opset_import:
            if entry.domain == "ai.onnx.ml":
                entry.version = max(entry.version, TARGET_OPSET["ai.onnx.ml"])


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
    _rename_values(graph, {graph_input.name: name for graph_input, name in zip(graph.input, names)
                           if graph_input.name != name})


def _name_output(onnx_model: Any, index: int, name: str) -> None:
    """Name the graph's index-th output as the predictor expects: skl2onnx may have given that name to a step's."""
    graph = onnx_model.graph
    current = graph.output[index].name
    if current == name:
        return
    used = {value for node in graph.node for value in (*node.input, *node.output)}
    spare = next(f"{name}_{number}" for number in range(len(used) + 1) if f"{name}_{number}" not in used)
    _rename_values(graph, {name: spare, current: name})


def _rename_values(graph: Any, renames: dict[str, str]) -> None:
    for node in graph.node:
        node.input[:] = [renames.get(value, value) for value in node.input]
        node.output[:] = [renames.get(value, value) for value in node.output]
    for value in (*graph.input, *graph.output):
        value.name = renames.get(value.name, value.name)


def _prepared_copy(model: Any) -> Any:
    """A copy ready for the converters: string imputers look for MISSING_STRING, boosters forget column names.

    skl2onnx cannot match NaN in a string tensor; onnxmltools reads XGBoost's features as f0, f1, ... and
    every split as a threshold.
    """
    ready = deepcopy(model)
    for estimator in _estimators(ready):
        if (isinstance(estimator, SimpleImputer) and estimator.statistics_.dtype == object
                and not isinstance(estimator.missing_values, str)):
            estimator.missing_values = onnx_runtime.MISSING_STRING
        if type(estimator).__module__.startswith("xgboost"):
            booster = estimator.get_booster()
            booster.feature_names = booster.feature_types = None  # a boolean's split then dumps as `x < 1`
    return ready


def _columns_concatenated(manifest: Manifest, model: Any) -> Any:
    """The model behind a passthrough column transformer when its first step wants one numeric tensor.

    Tree, linear and most other converters take a single input; the graph keeps one input per feature.
    """
    first = model
    while isinstance(first, Pipeline):
        first = first.steps[0][1]
    if (manifest.input_format == "array" or isinstance(first, ColumnTransformer)
            or any(feature.type == "string" for feature in manifest.features)):
        return model
    names = manifest.feature_names
    columns = ColumnTransformer([("columns", "passthrough", names)]).fit(pd.DataFrame({name: [0.0] for name in names}))
    return Pipeline([("columns", columns), ("model", model)])


def _cast_before_estimator(model: Any) -> Any:
    """The model with a float32 cast right before its final estimator (whose ONNX operator takes float32)."""
    cast = ("cast_to_float32", CastTransformer(dtype=np.float32))
    if not isinstance(model, Pipeline):
        return Pipeline([cast, ("model", model)])
    *head, (name, last) = model.steps
    if isinstance(last, Pipeline):
        return Pipeline([*head, (name, _cast_before_estimator(last))])
    return Pipeline([*head, cast, (name, last)])


def _compares_in_float32(estimator: Any) -> bool:
    """XGBoost and LightGBM compare features in float32, and their converters take float32 only."""
    return type(estimator).__module__.split(".")[0] in _BOOSTER_LIBRARIES


def _final_estimator(model: Any) -> Any:
    while isinstance(model, Pipeline):
        model = model.steps[-1][1]
    return model


def _estimators(estimator: Any) -> Iterator[Any]:
    """The estimator and every fitted estimator inside its pipelines, column transformers and unions."""
    yield estimator
    children = ([step for _, step in getattr(estimator, "steps", [])]
                + [transformer for _, transformer, _ in getattr(estimator, "transformers_", [])]
                + [transformer for _, transformer in getattr(estimator, "transformer_list", [])])
    for child in children:
        if hasattr(child, "get_params"):  # not "drop" or "passthrough"
            yield from _estimators(child)


# --- converters skl2onnx lacks --------------------------------------------------------------------


def _register_converters() -> None:
    """numpy-ufunc FunctionTransformers, and XGBoost and LightGBM estimators when onnxmltools is installed."""
    update_registered_converter(FunctionTransformer, "SklearnFunctionTransformer", _function_transformer_shape,
                                _convert_function_transformer)
    update_registered_converter(SimpleImputer, "SklearnSimpleImputer", calculate_sklearn_imputer_output_shapes,
                                _convert_simple_imputer)
    update_registered_converter(OrdinalEncoder, "SklearnOrdinalEncoder",
                                calculate_sklearn_ordinal_encoder_output_shapes, _convert_ordinal_encoder)
    update_registered_converter(OneHotEncoder, "SklearnOneHotEncoder",
                                calculate_sklearn_one_hot_encoder_output_shapes, _convert_one_hot_encoder)
    if _onnxmltools_available():
        _register_boosters()


def _function_transformer_shape(operator: Any) -> None:
    if operator.raw_operator.func not in _UFUNC_OPERATORS:
        return calculate_sklearn_function_transformer_output_shapes(operator)  # identity, or its error
    width = sum(variable.type.shape[1] or 0 for variable in operator.inputs) or None
    operator.outputs[0].type = deepcopy(operator.inputs[0].type)
    operator.outputs[0].type.shape = [operator.inputs[0].get_first_dimension(), width]


def _convert_function_transformer(scope: Any, operator: Any, container: Any) -> None:
    """A numpy ufunc as its ONNX operators, in the input's precision; anything else as skl2onnx does it."""
    function = operator.raw_operator.func
    if function not in _UFUNC_OPERATORS:
        return convert_sklearn_function_transformer(scope, operator, container)
    value = _concatenated_inputs(scope, operator, container)
    one_type = TensorProto.DOUBLE if isinstance(operator.inputs[0].type, DoubleTensorType) else TensorProto.FLOAT
    steps = _UFUNC_OPERATORS[function]
    for index, step in enumerate(steps):
        result = operator.outputs[0].full_name if index == len(steps) - 1 else scope.get_unique_variable_name(step)
        operands = [value]
        if step in ("Add", "Sub"):
            operands.append(scope.get_unique_variable_name("one"))
            container.add_initializer(operands[1], one_type, [], [1.0])
        container.add_node(step, operands, result, name=scope.get_unique_operator_name(step))
        value = result


def _convert_simple_imputer(scope: Any, operator: Any, container: Any) -> None:
    """NaN replaced in float64 (onnxruntime's Imputer operator takes float32 only); else as skl2onnx does it."""
    imputer = operator.raw_operator
    if not (isinstance(operator.inputs[0].type, DoubleTensorType) and _imputes_in_place(imputer)
            and pd.isna(imputer.missing_values)):
        return convert_sklearn_imputer(scope, operator, container)
    value = _concatenated_inputs(scope, operator, container)
    missing, statistics = scope.get_unique_variable_name("missing"), scope.get_unique_variable_name("statistics")
    container.add_initializer(statistics, TensorProto.DOUBLE, [1, imputer.statistics_.size],
                              imputer.statistics_.astype(np.float64).tolist())
    container.add_node("IsNaN", [value], missing, name=scope.get_unique_operator_name("IsNaN"))
    container.add_node("Where", [missing, statistics, value], operator.outputs[0].full_name,
                       name=scope.get_unique_operator_name("Where"))


def _convert_ordinal_encoder(scope: Any, operator: Any, container: Any) -> None:
    """Strings with a missing category seen in training: a missing value encodes as encoded_missing_value (NaN by
    default, which a gradient-boosting model routes as missing), where skl2onnx gives it the unknown value.
    Anything else as skl2onnx does it."""
    encoder = operator.raw_operator
    if (getattr(encoder, "_infrequent_enabled", False) or not any(map(_ends_with_missing, encoder.categories_))
            or not all(isinstance(variable.type, StringTensorType) for variable in operator.inputs)):
        return convert_sklearn_ordinal_encoder(scope, operator, container)
    unknown = np.nan if encoder.handle_unknown == "error" else float(encoder.unknown_value)
    encoded = []
    for column, categories in zip(_input_columns(scope, operator, container), encoder.categories_):
        missing = _ends_with_missing(categories)
        known = [str(category) for category in categories[:-1 if missing else None]]
        codes = [float(code) for code in range(len(known))] + [float(encoder.encoded_missing_value)] * missing
        encoded.append(scope.get_unique_variable_name("ordinal"))
        container.add_node("LabelEncoder", column, encoded[-1], op_domain="ai.onnx.ml", op_version=2,
                           keys_strings=known + [onnx_runtime.MISSING_STRING] * missing, values_floats=codes,
                           default_float=unknown, name=scope.get_unique_operator_name("LabelEncoder"))
    joined = scope.get_unique_variable_name("ordinals")
    container.add_node("Concat", encoded, joined, axis=1, name=scope.get_unique_operator_name("Concat"))
    to = TensorProto.FLOAT if np.issubdtype(encoder.dtype, np.floating) else TensorProto.INT64
    container.add_node("Cast", joined, operator.outputs[0].full_name, to=to,
                       name=scope.get_unique_operator_name("Cast"))


def _convert_one_hot_encoder(scope: Any, operator: Any, container: Any) -> None:
    """As skl2onnx does it, with a missing value seen in training matched as MISSING_STRING, its own column as
    in scikit-learn (skl2onnx writes that category as the text "nan")."""
    added = len(container.nodes)
    convert_sklearn_one_hot_encoder(scope, operator, container)
    encoders = [node for node in container.nodes[added:] if node.op_type == "OneHotEncoder"]
    for node, categories in zip(encoders, [c for c in operator.raw_operator.categories_ if len(c)]):
        for attribute in node.attribute:
            if attribute.name == "cats_strings" and _ends_with_missing(categories):
                attribute.strings[-1] = onnx_runtime.MISSING_STRING.encode()


def _ends_with_missing(categories: np.ndarray) -> bool:
    """scikit-learn puts a missing value (NaN or None) seen in training last among a column's categories."""
    return categories.dtype == object and len(categories) > 0 and pd.isna(categories[-1])


def _input_columns(scope: Any, operator: Any, container: Any) -> list[str]:
    """One (N, 1) tensor per column of the operator's inputs, in order."""
    columns = []
    for variable in operator.inputs:
        if variable.get_second_dimension() == 1:
            columns.append(variable.full_name)
            continue
        for position in range(variable.get_second_dimension()):
            index, column = scope.get_unique_variable_name("index"), scope.get_unique_variable_name("column")
            container.add_initializer(index, TensorProto.INT64, [], [position])
            container.add_node("ArrayFeatureExtractor", [variable.full_name, index], column, op_domain="ai.onnx.ml",
                               name=scope.get_unique_operator_name("ArrayFeatureExtractor"))
            columns.append(column)
    return columns


def _concatenated_inputs(scope: Any, operator: Any, container: Any) -> str:
    names = [variable.full_name for variable in operator.inputs]
    if len(names) == 1:
        return names[0]
    joined = scope.get_unique_variable_name("joined")
    container.add_node("Concat", names, joined, axis=1, name=scope.get_unique_operator_name("Concat"))
    return joined


def _onnxmltools_available() -> bool:
    try:
        import onnxmltools  # noqa: F401
    except ImportError:
        return False
    return True


def _register_boosters() -> None:
    """XGBoost and LightGBM scikit-learn-API estimators, with onnxmltools' converters."""
    classifier_options = {"nocl": [True, False], "zipmap": [True, False, "columns"]}
    try:
        import xgboost
        from onnxmltools.convert.xgboost.operator_converters.XGBoost import (
            convert_xgboost,
        )
    except ImportError:
        pass
    else:
        update_registered_converter(xgboost.XGBClassifier, "XGBoostXGBClassifier",
                                    calculate_linear_classifier_output_shapes, convert_xgboost,
                                    options=classifier_options)
        update_registered_converter(xgboost.XGBRegressor, "XGBoostXGBRegressor",
                                    calculate_linear_regressor_output_shapes, convert_xgboost)
    try:
        import lightgbm
        from onnxmltools.convert.lightgbm.operator_converters.LightGbm import (
            convert_lightgbm,
        )
    except ImportError:
        return
    update_registered_converter(lightgbm.LGBMClassifier, "LightGbmLGBMClassifier",
                                calculate_linear_classifier_output_shapes, convert_lightgbm,
                                options=classifier_options)
    update_registered_converter(lightgbm.LGBMRegressor, "LightGbmLGBMRegressor",
                                calculate_linear_regressor_output_shapes, convert_lightgbm)


# --- parity rows ------------------------------------------------------------------------------------


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


def threshold_cases(manifest: Manifest, model: Any, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with one raw numeric feature at, or next to, a split threshold of the model's trees.

    Where float32 and float64 comparisons disagree, a tree answers differently: these rows find it.
    Thresholds of trees that read transformed columns are in another space, and left out.
    """
    if not rows:
        return []
    types = {feature.name: feature.type for feature in manifest.features}
    values = sorted({(name, value) for name, threshold in tree_thresholds(model, manifest.feature_names)
                     if types[name] in ("number", "integer")
                     for value in _around(threshold, types[name] == "integer")})
    step = max(1, math.ceil(len(values) / THRESHOLD_ROWS))
    return [{**rows[index % len(rows)], name: value} for index, (name, value) in enumerate(values[::step])]


def _around(threshold: float, integer: bool) -> list[float | int]:
    """The threshold and its float64 and float32 neighbours; for integers, the two either side."""
    if integer:
        return [math.floor(threshold), math.ceil(threshold)]
    single = np.float32(threshold)
    return [float(value) for value in (threshold, np.nextafter(threshold, -np.inf), np.nextafter(threshold, np.inf),
                                       single, np.nextafter(single, np.float32(-np.inf)),
                                       np.nextafter(single, np.float32(np.inf)))
            if np.isfinite(value)]


def tree_thresholds(model: Any, columns: list[str]) -> Iterator[tuple[str, float]]:
    """(column, threshold) for every split of the final estimator's trees on a raw input column."""
    raw_columns = _raw_columns(model, list(columns))
    for feature, threshold in _splits(_final_estimator(model)):
        if feature < len(raw_columns) and raw_columns[feature] is not None:
            yield raw_columns[feature], float(threshold)


def _raw_columns(model: Any, columns: list[str | None]) -> list[str | None]:
    """For each column the final estimator reads, the input column it is unchanged from (None if transformed)."""
    if isinstance(model, Pipeline):
        for _, step in model.steps[:-1]:
            columns = _raw_columns_after(step, columns)
        return _raw_columns(model.steps[-1][1], columns)
    return columns


def _raw_columns_after(step: Any, columns: list[str | None]) -> list[str | None]:
    if step in (None, "passthrough") or isinstance(step, CastTransformer) or _imputes_in_place(step):
        return columns  # missing values aside, the values go through unchanged
    if isinstance(step, ColumnTransformer):
        width = sum(piece.stop - piece.start for piece in step.output_indices_.values())
        mapped: list[str | None] = [None] * width
        names = [str(name) for name in getattr(step, "feature_names_in_", range(len(columns)))]
        for name, transformer, selection in step.transformers_:
            piece = step.output_indices_[name]
            if transformer == "passthrough" or _imputes_in_place(transformer):
                selected = _selection(names, selection)
                mapped[piece] = [columns[names.index(column)] for column in selected][:piece.stop - piece.start]
        return mapped
    return [None] * len(columns)


def _imputes_in_place(step: Any) -> bool:
    return (isinstance(step, SimpleImputer) and not step.add_indicator
            and not pd.isna(step.statistics_).any())  # an all-missing column would be dropped


def _selection(names: list[str], selection: Any) -> list[str]:
    """A column transformer's selection (names, indices, slice or mask) as column names."""
    header = pd.DataFrame(columns=names)
    selection = [selection] if np.isscalar(selection) else selection
    try:
        return [str(name) for name in header.loc[:, selection].columns]
    except (KeyError, TypeError):
        return [str(name) for name in header.iloc[:, selection].columns]


def _splits(estimator: Any) -> Iterator[tuple[int, float]]:
    """(feature index, threshold) of every split node in a scikit-learn tree model."""
    tree = getattr(estimator, "tree_", None)
    if tree is not None:
        internal = tree.children_left >= 0
        yield from zip(tree.feature[internal].tolist(), tree.threshold[internal].tolist())
    for predictors in getattr(estimator, "_predictors", []):  # HistGradientBoosting
        for predictor in predictors:
            nodes = predictor.nodes[~predictor.nodes["is_leaf"].astype(bool)]
            yield from zip(nodes["feature_idx"].tolist(), nodes["num_threshold"].tolist())
    for member in np.ravel(getattr(estimator, "estimators_", [])):  # forests, gradient boosting
        if hasattr(member, "tree_"):
            yield from _splits(member)


# --- comparison -------------------------------------------------------------------------------------


def compare(expected: list[dict[str, Any]], actual: list[dict[str, Any]], tolerance: float) -> Parity:
    """How far the ONNX predictions are from scikit-learn's, as served: labels, probabilities, values.

    Probabilities are held to the tolerance as absolute differences; regression values relative to their
    size, |difference| / max(1, |value|), since float32 arithmetic on a value near 250 is off by ~1e-5.
    """
    if "value" in expected[0]:
        pairs = [(want["value"], got["value"]) for want, got in zip(expected, actual)]
        differences = [abs(want - got) for want, got in pairs]
        scaled = max(abs(want - got) / max(1.0, abs(want)) for want, got in pairs)
        return Parity(tolerance=tolerance, max_abs_difference=max(differences), rows=len(expected),
                      max_scaled_difference=scaled)
    differences = [abs(probability - got["probabilities"][label])
                   for want, got in zip(expected, actual) for label, probability in want["probabilities"].items()]
    labels_identical = all(want["label"] == got["label"] for want, got in zip(expected, actual))
    return Parity(tolerance=tolerance, max_abs_difference=max(differences), rows=len(expected),
                  labels_identical=labels_identical)


def parity_miss(parity: Parity) -> str:
    """The fallback reason for a parity check that failed."""
    labels = "labels differ, " if parity.labels_identical is False else ""
    measure = "abs" if parity.max_scaled_difference is None else "scaled"
    return (f"parity_miss: {labels}max {measure} difference {parity.checked_difference:.3g} "
            f"(tolerance {parity.tolerance:g}) on {parity.rows} rows")


def _brief(error: Exception | None) -> str:
    return f"{type(error).__name__}: {_first_line(error)}"


def _first_line(error: Exception | None) -> str:
    """The first line of an error's message, cut short: some converters print whole node attributes."""
    line = (str(error).strip().splitlines() or [""])[0]
    return line if len(line) <= REASON_LENGTH else line[:REASON_LENGTH] + "…"
