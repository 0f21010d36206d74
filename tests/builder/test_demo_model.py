"""The committed demo artifact: consistent with its manifest, and rebuilt identically by the demo script."""

from __future__ import annotations

import joblib
import numpy as np
import pandas as pd

from handler.manifest import read_manifest, sha256_file
from tests.models import handler_frame
from builder.demo_model import (ARTIFACTS_DIR, CATEGORICAL, NAME, NUMERIC, TARGET, VERSION, fit_demo_model,
                                make_customers)


def test_committed_manifest_pins_the_committed_artifact() -> None:
    # Given the committed model_artifacts/
    manifest = read_manifest(ARTIFACTS_DIR)

    # Then the manifest is valid, describes the demo model and matches both artifacts' bytes
    assert (manifest.name, manifest.version, manifest.task) == (NAME, VERSION, "classification")
    assert manifest.classes == ["no", "yes"]
    assert manifest.feature_names == NUMERIC + CATEGORICAL
    assert manifest.sha256 == sha256_file(ARTIFACTS_DIR / manifest.artifact)
    assert manifest.sklearn_sha256 == sha256_file(ARTIFACTS_DIR / manifest.sklearn_artifact)
    # And it is served by onnxruntime, having matched scikit-learn on the sample and edge cases
    assert manifest.runtime == "onnx" and manifest.parity.passed
    assert set(manifest.metrics) == {"accuracy", "roc_auc", "log_loss", "n_rows"}


def test_committed_example_predicts_with_the_committed_model() -> None:
    # Given the manifest's example, built into a frame with the manifest's dtypes as the handler does
    manifest = read_manifest(ARTIFACTS_DIR)
    frame = handler_frame(manifest.to_dict())

    # When the committed pipeline predicts on it
    probabilities = joblib.load(ARTIFACTS_DIR / manifest.sklearn_artifact).predict_proba(frame)

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


def test_rebuilding_the_demo_model_predicts_like_the_committed_one() -> None:
    # Given the committed artifact
    committed = joblib.load(ARTIFACTS_DIR / "model.joblib")

    # When the demo pipeline is trained again
    rebuilt, train, holdout = fit_demo_model()

    # Then both give identical probabilities on the training sample and the hold-out
    for rows in (train, holdout):
        features = rows.drop(columns=[TARGET])
        np.testing.assert_array_equal(rebuilt.predict_proba(features), committed.predict_proba(features))
