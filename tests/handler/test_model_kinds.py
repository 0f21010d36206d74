"""Regressors, array-fed pipelines and encoders that reject unknown values, served end to end by each runtime."""

from __future__ import annotations

import joblib
import numpy as np
import pandas as pd
import pytest

from tests.helpers import problems_by_field, response_json
from tests.models import packaged


@pytest.fixture(params=["onnx", "sklearn"])
def serve(request, tmp_path, reinitialised_handler, api_event, lambda_context):
    """Package a case for the runtime, start a handler on it, and return (manifest, call, tolerance)."""

    def start(case):
        manifest = packaged(case, tmp_path / "model_artifacts", runtime=request.param)
        app = reinitialised_handler(MODEL_DIR=str(tmp_path / "model_artifacts"))
        # scikit-learn reproduces itself to rounding; ONNX to the tolerance its parity check proved
        tolerance = manifest["parity"]["tolerance"] if request.param == "onnx" else 1e-9

        def call(body):
            return response_json(app.lambda_handler(api_event(body=body), lambda_context))

        return manifest, call, tolerance

    return start


def test_a_regressor_answers_values_equal_to_the_model(serve, regressor_case):
    # Given a packaged DataFrame regressor
    manifest, call, tolerance = serve(regressor_case)
    sample = pd.read_csv(regressor_case.sample).head(5)
    instances = [{key: (None if pd.isna(value) else value) for key, value in row.items() if key != "spend"}
                 for row in sample.to_dict(orient="records")]
    # When
    status, body = call({"instances": instances})
    # Then the values are the model's own, within the runtime's tolerance
    expected = joblib.load(regressor_case.model).predict(sample.drop(columns=["spend"]))
    assert status == 200 and manifest["task"] == "regression"
    assert np.allclose([p["value"] for p in body["predictions"]], expected, rtol=0, atol=tolerance)


def test_an_array_pipeline_is_fed_in_feature_order(serve, array_case):
    manifest, call, tolerance = serve(array_case)
    sample = pd.read_csv(array_case.sample).head(3)
    instances = sample.drop(columns=["churned"]).to_dict(orient="records")
    status, body = call({"instances": instances})
    model = joblib.load(array_case.model)
    expected = model.predict_proba(sample.drop(columns=["churned"]).to_numpy(dtype=float))
    assert status == 200 and manifest["input_format"] == "array"
    got = [[p["probabilities"][str(label)] for label in manifest["classes"]] for p in body["predictions"]]
    assert np.allclose(got, expected, rtol=0, atol=tolerance)


def test_an_encoder_that_rejects_unknown_values_gets_a_422_not_a_500(serve, classifier_case):
    # Given a classifier whose plan encoder has handle_unknown="error"
    manifest, call, _ = serve(classifier_case)
    instance = dict(manifest["example"]["instances"][0], plan="platinum")
    # When
    status, body = call({"instances": [instance]})
    # Then
    assert status == 422
    assert problems_by_field(body) == {"instances[0].plan": "unknown category; expected one of: basic, plus, pro"}
