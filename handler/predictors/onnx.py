"""ONNX runtime: the pipeline as exported by the packager, run by onnxruntime without scikit-learn or pandas.

The graph takes one tensor per feature, named after it (string tensors for strings, float64 tensors for
numbers and booleans), or one float64 tensor of every feature for an array-fed pipeline. Graphs exported
with float32 number inputs are fed float32.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import onnxruntime

from handler.errors import ModelLoadError
from handler.manifest import Manifest
from handler.predictors.base import PredictionArrays, UnscorableInput, ValidatedBatch, prediction_dicts

# A string tensor cannot hold NaN: the exported string imputers treat this value as missing instead.
MISSING_STRING = "\x00"
ARRAY_INPUT = "features"  # the one input of an array-fed pipeline
PROBABILITIES_OUTPUT, VALUES_OUTPUT = "probabilities", "variable"  # skl2onnx's names, without ZipMap
CLASSES_METADATA = "classes"  # the classifier's classes, as JSON in the model's metadata
STRING_TENSOR, DOUBLE_TENSOR, FLOAT_TENSOR = "tensor(string)", "tensor(double)", "tensor(float)"
NUMBER_DTYPES = {DOUBLE_TENSOR: np.float64, FLOAT_TENSOR: np.float32}  # float32: exports before float64 inputs


def load(manifest: Manifest, artifact: bytes) -> OnnxPredictor:
    """An inference session on verified artifact bytes, checked against the manifest."""
    try:
        session = onnxruntime.InferenceSession(artifact, session_options(), providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own types for bad protobufs, graphs and opsets
        raise ModelLoadError("artifact_unloadable",
                             f"artifact is not a loadable ONNX model ({type(error).__name__})") from None
    return OnnxPredictor(manifest, session)


def session_options() -> onnxruntime.SessionOptions:
    """One thread, no spinning: a Lambda function has one or two vCPUs and serves one request at a time."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def input_signature(manifest: Manifest) -> dict[str, tuple[str, int]]:
    """Input name → (tensor type, width) that the exported graph takes for this manifest."""
    if manifest.input_format == "array":
        return {ARRAY_INPUT: (DOUBLE_TENSOR, len(manifest.features))}
    return {feature.name: (STRING_TENSOR if feature.type == "string" else DOUBLE_TENSOR, 1)
            for feature in manifest.features}


class OnnxPredictor:
    """Builds one typed tensor per graph input from the validated columns, then runs the session."""

    def __init__(self, manifest: Manifest, session: onnxruntime.InferenceSession) -> None:
        self._signature = input_signature(manifest)
        self._classes = manifest.classes
        self._output = PROBABILITIES_OUTPUT if manifest.classes is not None else VALUES_OUTPUT
        self._check_session(session)
        self._dtypes = {tensor.name: NUMBER_DTYPES.get(tensor.type, object) for tensor in session.get_inputs()}
        self._session = session

    def _check_session(self, session: onnxruntime.InferenceSession) -> None:
        inputs = {tensor.name: (DOUBLE_TENSOR if tensor.type == FLOAT_TENSOR else tensor.type, tuple(tensor.shape[1:]))
                  for tensor in session.get_inputs()}
        if inputs != {name: (tensor_type, (width,)) for name, (tensor_type, width) in self._signature.items()}:
            raise ModelLoadError("manifest_mismatch", "the ONNX model's inputs differ from the manifest's features")
        if self._output not in {tensor.name for tensor in session.get_outputs()}:
            raise ModelLoadError("manifest_mismatch", f"the ONNX model has no {self._output!r} output")
        if self._classes is not None:
            recorded = session.get_modelmeta().custom_metadata_map.get(CLASSES_METADATA)
            if recorded is None or json.loads(recorded) != self._classes:
                raise ModelLoadError("manifest_mismatch", "the ONNX model's classes differ from the manifest's")

    def model_input(self, batch: ValidatedBatch) -> dict[str, np.ndarray]:
        """Columns → one 2-D tensor per graph input; None becomes NaN, or MISSING_STRING for strings."""
        if ARRAY_INPUT in self._signature:
            return {ARRAY_INPUT: np.array(list(batch.columns.values()), dtype=self._dtypes[ARRAY_INPUT]).T}
        return {name: _tensor(values, self._dtypes[name]).reshape(-1, 1)
                for name, values in batch.columns.items()}

    def predict_arrays(self, batch: ValidatedBatch) -> PredictionArrays:
        """Probabilities (normalised per row) or values as float64 arrays; UnscorableInput if any is not finite.

        Safe to call from several threads at once: onnxruntime sessions run concurrently.
        """
        (output,) = self._session.run([self._output], self.model_input(batch))
        output = output.astype(np.float64)
        if self._classes is not None:
            # float32 probabilities sum to 1 within ~1e-7; callers expect a distribution, as scikit-learn gives
            with np.errstate(divide="ignore", invalid="ignore"):  # a zero sum becomes NaN, refused below
                output = output / output.sum(axis=1, keepdims=True)
        if not np.isfinite(output).all():  # e.g. a float32 overflow: the handler answers 422, not NaN
            raise UnscorableInput("the model's output is not finite")
        if self._classes is not None:
            return PredictionArrays(probabilities=output)
        return PredictionArrays(values=output.ravel())

    def predict(self, batch: ValidatedBatch) -> list[dict[str, Any]]:
        return prediction_dicts(self._classes, self.predict_arrays(batch))


def _tensor(values: Any, dtype: Any) -> np.ndarray:
    if dtype is not object:
        return np.asarray(values, dtype=dtype)  # None becomes NaN, booleans 0 and 1
    values = values if isinstance(values, list) else list(values)
    # Whole-column operations: a Python call per value would cost more than the model.
    if not "".join(filter(None, values)).isascii():
        values = [value if value is None else _utf8_safe(value) for value in values]
    strings = np.array(values, dtype=object)
    if values.count(MISSING_STRING):  # a caller's own NUL string stays an unknown category, as scikit-learn sees it
        strings[np.equal(strings, np.array(MISSING_STRING, dtype=object))] = MISSING_STRING * 2
    if values.count(None):
        strings[np.equal(strings, None)] = MISSING_STRING
    return strings


def _utf8_safe(text: str) -> str:
    """The text, with lone surrogates (valid in JSON, not in UTF-8) replaced, so onnxruntime can encode it."""
    if text.isascii():
        return text
    return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
