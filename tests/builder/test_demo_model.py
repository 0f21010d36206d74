"""The demo model: deterministic data, a deterministic fit, and a package served by onnxruntime with its parity."""

from __future__ import annotations

import joblib
import numpy as np
import pandas as pd

from builder.demo_model import CATEGORICAL, NAME, NUMERIC, TARGET, VERSION, fit_demo_model, make_customers
from handler.manifest import read_manifest, sha256_file
from tests.models import demo, handler_frame


def test_the_demo_packages_into_a_manifest_pinning_both_artifacts() -> None:
    # Given the demo, fitted and packaged as `make model` does
    model_dir = demo().model_dir
    manifest = read_manifest(model_dir)

    # Then the manifest describes the demo model and matches both artifacts' bytes
    assert (manifest.name, manifest.version, manifest.task) == (NAME, VERSION, "classification")
    assert manifest.classes == ["no", "yes"]
    assert manifest.feature_names == NUMERIC + CATEGORICAL
    assert manifest.sha256 == sha256_file(model_dir / manifest.artifact)
    assert manifest.sklearn_sha256 == sha256_file(model_dir / manifest.sklearn_artifact)
    # And it is served by onnxruntime, having matched scikit-learn on the sample and edge cases
    assert manifest.runtime == "onnx" and manifest.parity.passed
    assert set(manifest.metrics) == {"accuracy", "roc_auc", "log_loss", "n_rows"}


def test_the_demo_example_predicts_with_the_demo_pipeline() -> None:
    # Given the manifest's example, built into a frame with the manifest's dtypes as the handler does
    model_dir = demo().model_dir
    manifest = read_manifest(model_dir)
    frame = handler_frame(manifest.to_dict())

    # When the packaged pipeline predicts on it
    probabilities = joblib.load(model_dir / manifest.sklearn_artifact).predict_proba(frame)

    # Then each row gets one probability per class
    assert probabilities.shape == (len(frame), 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)


def test_demo_data_is_deterministic_and_plausible() -> None:
    # When the data set is generated twice
    customers = make_customers()

    # Then it is the same, has gaps where the design says, and a believable churn rate
    pd.testing.assert_frame_equal(customers, make_customers())
    assert list(customers.columns) == NUMERIC + CATEGORICAL + [TARGET]
    assert customers["tenure_months"].dtype == np.int64 and customers["support_calls"].dtype == np.int64
    assert customers[["total_charges", "internet_service"]].isna().any().all()
    assert not customers.drop(columns=["total_charges", "internet_service"]).isna().any().any()
    assert 0.15 < (customers[TARGET] == "yes").mean() < 0.40


def test_refitting_the_demo_model_predicts_identically() -> None:
    # Given the demo pipeline as packaged
    packaged = joblib.load(demo().case.model)

    # When the demo pipeline is trained again
    rebuilt, train, holdout = fit_demo_model()

    # Then both give identical probabilities on the training sample and the hold-out
    for rows in (train, holdout):
        features = rows.drop(columns=[TARGET])
        np.testing.assert_array_equal(rebuilt.predict_proba(features), packaged.predict_proba(features))
