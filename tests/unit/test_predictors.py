"""The scikit-learn predictor: records become exactly the input the pipeline was fitted on."""

from __future__ import annotations

from dataclasses import replace

import pytest

from handler.config import Settings
from handler.errors import ModelLoadError
from handler.manifest import read_manifest
from handler.predictors import load_predictor
from handler.predictors.base import classification_predictions, regression_predictions
from handler.validation import RequestValidator
from tests.helpers import DEMO_MODEL_DIR


@pytest.fixture(scope="module")
def demo():
    manifest = read_manifest(DEMO_MODEL_DIR)
    predictor = load_predictor(manifest, (DEMO_MODEL_DIR / manifest.artifact).read_bytes())
    return manifest, predictor, RequestValidator(manifest, Settings())


def test_the_model_input_has_the_manifest_columns_and_dtypes(demo):
    # Given the example with one nullable number and one nullable string left empty
    manifest, predictor, validator = demo
    nullable = [f.name for f in manifest.features if f.nullable]
    instance = {**manifest.example["instances"][0], **{name: None for name in nullable}}
    # When
    frame = predictor.model_input(validator.validate({"instances": [instance]}))
    # Then
    assert list(frame.columns) == manifest.feature_names
    assert {name: str(dtype) for name, dtype in frame.dtypes.items()} == {
        f.name: f.dtype for f in manifest.features}
    # None becomes NaN, which imputers recognise (None in an object column they would not)
    assert all(frame[name].isna().all() for name in nullable)
    assert all(isinstance(frame[name].iloc[0], float) for name in nullable)


def test_predictions_are_json_ready_python_values(demo):
    manifest, predictor, validator = demo
    (prediction,) = predictor.predict(validator.validate({"instances": manifest.example["instances"][:1]}))
    assert type(prediction["label"]) is str
    assert all(type(p) is float for p in prediction["probabilities"].values())


def test_classification_label_is_the_most_probable_class():
    assert classification_predictions([0, 1, 2], [[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]]) == [
        {"label": 1, "probabilities": {"0": 0.2, "1": 0.5, "2": 0.3}},
        {"label": 0, "probabilities": {"0": 0.6, "1": 0.1, "2": 0.3}},
    ]


def test_regression_values_are_wrapped():
    assert regression_predictions([1.5, -2.0]) == [{"value": 1.5}, {"value": -2.0}]


def test_classes_that_differ_from_the_manifest_are_refused(demo):
    manifest, _, _ = demo
    with pytest.raises(ModelLoadError) as caught:
        load_predictor(replace(manifest, classes=["stay", "leave"]), (DEMO_MODEL_DIR / manifest.artifact).read_bytes())
    assert caught.value.cause == "manifest_mismatch"


def test_an_unknown_runtime_is_refused(demo):
    manifest, _, _ = demo
    with pytest.raises(ModelLoadError) as caught:
        load_predictor(replace(manifest, runtime="tensorflow"), b"")
    assert caught.value.cause == "manifest_invalid"
