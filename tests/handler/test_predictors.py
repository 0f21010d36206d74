"""The predictors: records become exactly the input each runtime's model takes."""

from __future__ import annotations

import sys
from dataclasses import replace

import numpy as np
import pytest

from handler.predictors.base import UnscorableInput
from handler.config import Settings
from handler.errors import ModelLoadError
from handler.loading import LoadedModel, load_model
from handler.predictors import load_predictor
from handler.predictors.base import classification_predictions, regression_predictions
from handler.predictors.onnx import MISSING_STRING

RUNTIMES = ["onnx", "sklearn"]


@pytest.fixture(scope="module")
def demo(demo_dir, sklearn_demo_dir) -> dict[str, LoadedModel]:
    """The demo model loaded by each runtime, as the handler loads it at init."""
    return {"onnx": load_model(Settings(model_dir=demo_dir)),
            "sklearn": load_model(Settings(model_dir=sklearn_demo_dir))}


def example_with_nulls(model: LoadedModel) -> tuple[list[str], dict]:
    """The manifest's first example with every nullable feature left empty."""
    nullable = [f.name for f in model.manifest.features if f.nullable]
    return nullable, {**model.manifest.example["instances"][0], **{name: None for name in nullable}}


def test_the_sklearn_input_has_the_manifest_columns_and_dtypes(demo):
    # Given the example with one nullable number and one nullable string left empty
    model = demo["sklearn"]
    nullable, instance = example_with_nulls(model)
    # When
    frame = model.predictor.model_input(model.validator.validate({"instances": [instance]}))
    # Then
    assert list(frame.columns) == model.manifest.feature_names
    assert {name: str(dtype) for name, dtype in frame.dtypes.items()} == {
        f.name: f.dtype for f in model.manifest.features}
    # None becomes NaN, which imputers recognise (None in an object column they would not)
    assert all(frame[name].isna().all() for name in nullable)
    assert all(isinstance(frame[name].iloc[0], float) for name in nullable)


def test_the_onnx_input_is_one_typed_tensor_per_feature(demo):
    # Given the example with one nullable number and one nullable string left empty
    model = demo["onnx"]
    nullable, instance = example_with_nulls(model)
    # When
    tensors = model.predictor.model_input(model.validator.validate({"instances": [instance]}))
    # Then every feature is a one-column tensor: strings as objects, numbers as the float type the graph declares
    assert list(tensors) == model.manifest.feature_names
    floats = {np.dtype(np.float32), np.dtype(np.float64)}
    for feature in model.manifest.features:
        tensor = tensors[feature.name]
        assert tensor.shape == (1, 1)
        assert tensor.dtype == np.dtype(object) if feature.type == "string" else tensor.dtype in floats
    # And a missing number is NaN, a missing string the marker the exported imputers look for
    types = {f.name: f.type for f in model.manifest.features}
    assert {types[name] for name in nullable} == {"number", "string"}
    for name in nullable:
        value = tensors[name][0, 0]
        assert value == MISSING_STRING if types[name] == "string" else np.isnan(value)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_predictions_are_json_ready_python_values(demo, runtime):
    model = demo[runtime]
    (prediction,) = model.predictor.predict(model.validator.validate({"instances": model.manifest.example["instances"][:1]}))
    assert type(prediction["label"]) is str
    assert all(type(p) is float for p in prediction["probabilities"].values())
    assert sum(prediction["probabilities"].values()) == pytest.approx(1.0, abs=1e-12)


def test_classification_label_is_the_most_probable_class():
    assert classification_predictions([0, 1, 2], [[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]]) == [
        {"label": 1, "probabilities": {"0": 0.2, "1": 0.5, "2": 0.3}},
        {"label": 0, "probabilities": {"0": 0.6, "1": 0.1, "2": 0.3}},
    ]


def test_regression_values_are_wrapped():
    assert regression_predictions([1.5, -2.0]) == [{"value": 1.5}, {"value": -2.0}]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_classes_that_differ_from_the_manifest_are_refused(demo, runtime):
    model = demo[runtime]
    artifact = (model.settings.model_dir / model.manifest.artifact).read_bytes()
    with pytest.raises(ModelLoadError) as caught:
        load_predictor(replace(model.manifest, classes=["stay", "leave"]), artifact)
    assert caught.value.cause == "manifest_mismatch"


def test_an_unknown_runtime_is_refused(demo):
    with pytest.raises(ModelLoadError) as caught:
        load_predictor(replace(demo["onnx"].manifest, runtime="tensorflow"), b"")
    assert caught.value.cause == "manifest_invalid"


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_runtime_whose_libraries_are_not_installed_is_refused(demo, runtime, monkeypatch):
    # Given a bundle without the runtime's module (as when its libraries were left out)
    model = demo[runtime]
    monkeypatch.setitem(sys.modules, f"handler.predictors.{runtime}", None)
    # When the predictor is loaded
    with pytest.raises(ModelLoadError) as caught:
        load_predictor(model.manifest, b"")
    # Then it fails closed with a cause naming the runtime
    assert caught.value.cause == "runtime_unavailable"
    assert f"the {runtime} runtime cannot be imported" in caught.value.detail


def test_an_onnx_output_that_is_not_finite_is_unscorable_not_infinity(demo, monkeypatch):
    # Given a graph whose output overflows (as a linear model far outside its training range can)
    model = demo["onnx"]
    width = len(model.manifest.classes or [None])
    monkeypatch.setattr(model.predictor, "_session", FakeSession(np.full((1, width), np.inf)))
    # When / Then the predictor refuses to answer infinity; the API turns this into a 422
    with pytest.raises(UnscorableInput):
        model.predictor.predict(model.validator.validate({"instances": model.manifest.example["instances"][:1]}))


class FakeSession:
    """An inference session that answers one fixed output."""

    def __init__(self, output: np.ndarray) -> None:
        self._output = output

    def run(self, names, inputs):
        return [self._output]
