"""The packager: manifest content for each kind of model, and refusal of every bad input."""

from __future__ import annotations

import io
import json
import math
import os
import re
import signal
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any
from unittest import mock

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.cluster import KMeans
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.multioutput import MultiOutputClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

import builder.packager as packager

from handler.capture import read_profile
from handler.manifest import read_manifest, sha256_file
from tests.models import (ARRAY_FEATURES, FEATURES, PLANS, REGIONS, TRAIN_ROWS, Case, CliResult,
                                    ForgetfulClassifier, array_pipeline, doubled, edited_csv, fitted_case,
                                    handler_frame, packaged, tree_snapshot)
from builder.artifacts import MARKER_FILE, swap_into_place, workspace
from builder.errors import PackagingError
from builder.features import Encoding, describe_column, known_categories, selected_columns
from builder.packager import check_shipped_code, package_model

RunCli = Callable[[list[str]], CliResult]


@pytest.fixture(scope="module")
def classifier_output(classifier_case: Case, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """model_artifacts/ for the DataFrame classifier, packaged with its hold-out."""
    out_dir = tmp_path_factory.mktemp("out") / "model_artifacts"
    packaged(classifier_case, out_dir)
    return out_dir


@pytest.fixture
def classifier_manifest(classifier_output: Path) -> dict[str, Any]:
    return json.loads((classifier_output / "manifest.json").read_text(encoding="utf-8"))


# --- a DataFrame-fed classifier -------------------------------------------------------------


def test_classifier_manifest_describes_the_model(classifier_manifest: dict[str, Any]) -> None:
    # Given a DataFrame pipeline fitted on 0/1 labels, packaged without --name or --version
    manifest = classifier_manifest

    # Then the manifest names it after its file and records what the handler needs
    assert manifest["name"] == "model"
    assert manifest["version"] == "1"
    assert manifest["task"] == "classification"
    assert manifest["classes"] == [0, 1]
    assert all(type(label) is int for label in manifest["classes"])
    assert manifest["input_format"] == "dataframe"
    assert manifest["runtime"] == "onnx"
    assert (manifest["artifact"], manifest["sklearn_artifact"]) == ("model.onnx", "model.joblib")


def test_classifier_features_follow_the_model_and_the_sample(classifier_manifest: dict[str, Any],
                                                             members: pd.DataFrame) -> None:
    # Given a sample CSV whose columns are in reverse order
    train = members.iloc[:TRAIN_ROWS]

    # When the manifest is written
    features = {feature["name"]: feature for feature in classifier_manifest["features"]}

    # Then features come in the model's order, typed from the sample, with the encoders' categories
    assert list(features) == FEATURES
    assert features["age"] == {"name": "age", "type": "integer", "dtype": "int64", "nullable": False,
                               "minimum": int(train["age"].min()), "maximum": int(train["age"].max())}
    assert features["income"] == {"name": "income", "type": "number", "dtype": "float64", "nullable": True,
                                  "minimum": train["income"].min(), "maximum": train["income"].max()}
    assert features["plan"] == {"name": "plan", "type": "string", "dtype": "object", "nullable": False,
                                "categories": PLANS, "unknown_category": "reject"}
    assert features["region"] == {"name": "region", "type": "string", "dtype": "object", "nullable": True,
                                  "categories": REGIONS, "unknown_category": "ignore"}
    assert features["is_member"] == {"name": "is_member", "type": "boolean", "dtype": "bool",
                                     "nullable": False}


def test_classifier_example_is_a_valid_request(classifier_manifest: dict[str, Any],
                                               classifier_case: Case) -> None:
    # Given the manifest's example request
    instances = classifier_manifest["example"]["instances"]

    # When the handler would build the model input from it
    frame = handler_frame(classifier_manifest)

    # Then it holds one or two complete, JSON-native records the model accepts
    assert 1 <= len(instances) <= 2
    assert all(list(instance) == FEATURES and None not in instance.values() for instance in instances)
    assert json.loads(json.dumps(instances, allow_nan=False)) == instances
    assert set(joblib.load(classifier_case.model).predict(frame)) <= {0, 1}


def test_classifier_artifact_is_pinned_by_sha256_and_versions(classifier_output: Path,
                                                              classifier_manifest: dict[str, Any],
                                                              classifier_case: Case) -> None:
    # Given the packaged directory
    out_dir = classifier_output

    # When the artifact is loaded back
    reloaded = joblib.load(out_dir / "model.joblib")

    # Then both artifacts' sha256 and the library versions are recorded, and it predicts as the original
    assert classifier_manifest["sha256"] == sha256_file(out_dir / "model.onnx")
    assert classifier_manifest["sklearn_sha256"] == sha256_file(out_dir / "model.joblib")
    assert classifier_manifest["versions"] == {
        "python": classifier_manifest["versions"]["python"],
        **{name: metadata.version(name) for name in ("scikit-learn", "numpy", "joblib", "pandas",
                                                     "onnxruntime", "onnx", "skl2onnx")},
    }
    sample = pd.read_csv(classifier_case.sample)[FEATURES]
    original = joblib.load(classifier_case.model)
    np.testing.assert_array_equal(reloaded.predict_proba(sample), original.predict_proba(sample))
    assert read_manifest(out_dir).to_dict() == classifier_manifest


def test_classifier_metrics_come_from_the_holdout(classifier_manifest: dict[str, Any],
                                                  classifier_case: Case) -> None:
    # Given the labelled hold-out
    holdout = pd.read_csv(classifier_case.holdout)

    # When the manifest records the scores
    metrics = classifier_manifest["metrics"]

    # Then they are the model's scores on those rows, rounded
    predicted = joblib.load(classifier_case.model).predict(holdout[FEATURES])
    expected_accuracy = accuracy_score(holdout["churned"], predicted)
    assert set(metrics) == {"accuracy", "roc_auc", "log_loss", "n_rows"}
    assert metrics["n_rows"] == len(holdout)
    assert metrics["accuracy"] == pytest.approx(expected_accuracy, abs=1e-3)
    assert 0.5 < metrics["roc_auc"] <= 1
    assert metrics["log_loss"] > 0


def test_classifier_profile_is_pinned_and_describes_the_sample_and_its_predictions(
        classifier_output: Path, classifier_manifest: dict[str, Any], classifier_case: Case) -> None:
    # Given the packaged directory
    manifest = read_manifest(classifier_output)

    # When its profile is read as the handler reads it (verified against its pin)
    profile = read_profile(classifier_output, manifest)

    # Then it is pinned beside the manifest, covers every feature in order and the predicted classes
    assert (classifier_manifest["profile"], classifier_manifest["profile_sha256"]) == (
        "profile.json", sha256_file(classifier_output / "profile.json"))
    assert profile.feature_names == FEATURES and profile.rows == TRAIN_ROWS
    assert profile.prediction.kind == "categorical" and profile.prediction.categories == [0, 1]
    predicted = joblib.load(classifier_case.model).predict(pd.read_csv(classifier_case.sample)[FEATURES])
    assert profile.prediction.fractions[1] == pytest.approx(predicted.mean(), abs=1e-6)
    # And a model card with its plot is written beside it, naming the model and its hold-out scores
    card = (classifier_output / "model_card.md").read_text(encoding="utf-8")
    assert card.startswith("# Model card: model 1") and "| roc_auc |" in card and "![" in card
    assert (classifier_output / "profile.png").read_bytes().startswith(b"\x89PNG")


def test_the_profile_is_reproducible(classifier_case: Case, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a reproducible build
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1704164645")

    # When the same model is packaged twice
    packaged(classifier_case, tmp_path / "one")
    packaged(classifier_case, tmp_path / "two")

    # Then the profile, the card and its plot are the same bytes
    for name in ("profile.json", "model_card.md", "profile.png"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name


# --- other kinds of model ---------------------------------------------------------------------


def test_regressor_manifest_has_regression_metrics_and_no_classes(regressor_case: Case,
                                                                  tmp_path: Path) -> None:
    # Given a DataFrame regressor with a hold-out
    # When it is packaged with a name and a version
    manifest = packaged(regressor_case, tmp_path / "out", name="spend", version="2.1.0")

    # Then
    assert (manifest["name"], manifest["version"], manifest["task"]) == ("spend", "2.1.0", "regression")
    assert "classes" not in manifest
    assert set(manifest["metrics"]) == {"r2", "mae", "rmse", "n_rows"}
    assert manifest["metrics"]["r2"] > 0.5
    assert manifest["metrics"]["rmse"] >= manifest["metrics"]["mae"] > 0
    assert [feature["name"] for feature in manifest["features"]] == FEATURES
    # And its profile describes the predicted values over quantile bins
    prediction = read_profile(tmp_path / "out", read_manifest(tmp_path / "out")).prediction
    assert prediction.kind == "numeric" and len(prediction.edges) == len(prediction.fractions) - 1 > 1


def test_array_pipeline_takes_names_from_the_header_and_categories_by_position(array_case: Case,
                                                                               tmp_path: Path) -> None:
    # Given a pipeline fitted on a NumPy array, selecting columns by index
    # When it is packaged
    manifest = packaged(array_case, tmp_path / "out")

    # Then it takes an array, named by the sample's header, and pandas is not pinned
    features = {feature["name"]: feature for feature in manifest["features"]}
    assert manifest["input_format"] == "array"
    assert list(features) == ARRAY_FEATURES
    assert features["plan_code"]["categories"] == [0, 1, 2]
    assert features["plan_code"]["unknown_category"] == "reject"
    assert features["visits"]["dtype"] == "int64"
    assert "pandas" not in manifest["versions"]
    assert manifest["metrics"]["n_rows"] == len(pd.read_csv(array_case.holdout))


def test_target_without_holdout_only_drops_the_column(classifier_case: Case, tmp_path: Path) -> None:
    # Given a sample that still holds the label column
    # When it is packaged with --target but no --holdout
    manifest = package_model(classifier_case.model, classifier_case.sample, out_dir=tmp_path / "out",
                             target="churned")

    # Then the label is not a feature and there are no metrics
    assert manifest.feature_names == FEATURES
    assert manifest.metrics is None


def test_source_date_epoch_fixes_created_at(classifier_case: Case, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    # Given SOURCE_DATE_EPOCH for a reproducible build
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1704164645")

    # When the model is packaged
    manifest = packaged(classifier_case, tmp_path / "out")

    # Then created_at is that moment in UTC
    assert manifest["created_at"] == "2024-01-02T03:04:05Z"


def test_created_at_defaults_to_now_in_utc(classifier_manifest: dict[str, Any]) -> None:
    # Given a build without SOURCE_DATE_EPOCH
    created_at = classifier_manifest["created_at"]

    # Then created_at is a recent UTC timestamp
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", created_at)
    age = datetime.now(UTC) - datetime.strptime(created_at, "%Y-%m-%dT%H:%M:%S%z")
    assert 0 <= age.total_seconds() < 600


def test_cli_replaces_an_earlier_output_whole(published: Path, array_case: Case, run_cli: RunCli) -> None:
    # Given model_artifacts/ from an earlier run, with a stray file in it
    (published / "stray.txt").write_text("old", encoding="utf-8")

    # When another model is packaged into it
    result = run_cli(array_case.argv(published, version="3"))

    # Then the directory holds only the new artifact, no scratch directory is left, and one line says so
    assert result.code == 0
    assert result.stderr_lines == []
    assert len(result.stdout_lines) == 1 and "model 3" in result.stdout_lines[0]
    assert sorted(path.name for path in published.iterdir()) == [MARKER_FILE, "manifest.json", "model.joblib",
                                                                 "model.onnx",
                                                                 "model_card.md", "openapi.json", "profile.json",
                                                                 "profile.png"]
    assert read_manifest(published).input_format == "array"
    assert [path.name for path in published.parent.iterdir()] == ["model_artifacts"]


def test_cli_help_lists_the_options(run_cli: RunCli, capsys: pytest.CaptureFixture[str]) -> None:
    # When --help is asked for
    with pytest.raises(SystemExit) as exit_info:
        run_cli(["--help"])

    # Then it exits 0 after describing every option
    assert exit_info.value.code == 0
    usage = capsys.readouterr().out
    assert all(option in usage for option in ("--model", "--sample", "--holdout", "--target", "--name",
                                              "--version", "--out", "--runtime", "--parity-tolerance"))


# --- refusals -----------------------------------------------------------------------------------


def _write(path: Path, content: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def _dumped(path: Path, model: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, path)
    return path


def _pickled_by_older_sklearn(case: Case, inputs: Path) -> dict[str, Any]:
    model = joblib.load(case.model)
    with mock.patch("sklearn.base.__version__", "1.0.2"):
        return {"model": _dumped(inputs / "old.joblib", model)}


def _array_model_with_three_columns(case: Case, inputs: Path) -> dict[str, Any]:
    model = array_pipeline().fit(np.array([[20.0, 1, 0], [60, 9, 1], [40, 5, 2]] * 4), [0, 1, 0] * 4)
    return {"model": _dumped(inputs / "array.joblib", model),
            "sample": _write(inputs / "sample.csv", b"age,visits\n20,1\n60,9\n"), "holdout": None}


def _holdout_without_target(case: Case, inputs: Path) -> dict[str, Any]:
    return {"sample": edited_csv(case.sample, inputs / "sample.csv", lambda t: t.drop(columns="churned")),
            "target": None}


BadInputs = Callable[[Case, Path], dict[str, Any]]
BAD_INPUTS: dict[str, tuple[BadInputs, str]] = {
    "model file missing": (lambda case, inputs: {"model": inputs / "absent.joblib"}, "not found"),
    "model not a joblib file": (
        lambda case, inputs: {"model": _write(inputs / "bad.joblib", b"not a pickle")}, "the file is not a pickle"),
    "model pickled by an unsupported scikit-learn": (_pickled_by_older_sklearn, "scikit-learn 1.0.2"),
    "object without predict": (
        lambda case, inputs: {"model": _dumped(inputs / "dict.joblib", {"weights": [1, 2]})},
        "not an estimator with predict"),
    "estimator not fitted": (
        lambda case, inputs: {"model": _dumped(inputs / "unfitted.joblib", LogisticRegression())},
        "not a fitted estimator"),
    "neither classifier nor regressor": (
        lambda case, inputs: {"model": _dumped(inputs / "kmeans.joblib", KMeans(n_clusters=2, n_init=1).fit(
            np.array([[0.0], [1], [10], [11]])))},
        "neither a classifier nor a regressor"),
    "multi-output classifier": (
        lambda case, inputs: {"model": _dumped(inputs / "multi.joblib", MultiOutputClassifier(
            LogisticRegression()).fit(np.array([[0.0], [1], [2], [3]]), np.array([[0, 1], [1, 0]] * 2)))},
        "multi-output classifiers are not supported"),
    "sample file missing": (lambda case, inputs: {"sample": inputs / "absent.csv"}, "not found"),
    "sample unreadable": (
        lambda case, inputs: {"sample": _write(inputs / "bad.csv", b'age,plan\n1,"basic\n')},
        "cannot read sample"),
    "sample without rows": (
        lambda case, inputs: {"sample": edited_csv(case.sample, inputs / "empty.csv", lambda t: t.iloc[:0])},
        "has no rows"),
    "sample columns differ": (
        lambda case, inputs: {"sample": edited_csv(case.sample, inputs / "renamed.csv",
                                                   lambda t: t.rename(columns={"age": "years"}))},
        "missing age; unexpected years"),
    "array sample with too few columns": (_array_model_with_three_columns,
                                          "has 2 columns, the model expects 3"),
    "sample value the model rejects": (
        lambda case, inputs: {"sample": edited_csv(case.sample, inputs / "platinum.csv",
                                                   lambda t: t.assign(plan="platinum"))},
        "the model cannot predict on the sample"),
    "hold-out file missing": (lambda case, inputs: {"holdout": inputs / "absent.csv"}, "not found"),
    "hold-out target missing": (
        lambda case, inputs: {"holdout": edited_csv(case.holdout, inputs / "unlabelled.csv",
                                                    lambda t: t.drop(columns="churned"))},
        "hold-out has no target column churned"),
    "hold-out without target option": (_holdout_without_target, "a hold-out needs a target column"),
    "hold-out labels the model never saw": (
        lambda case, inputs: {"holdout": edited_csv(case.holdout, inputs / "labels.csv",
                                                    lambda t: t.assign(churned=7))},
        "labels the model does not know"),
    "hold-out gaps where the sample has none": (
        lambda case, inputs: {"holdout": edited_csv(case.holdout, inputs / "gaps.csv",
                                                    lambda t: t.assign(age=np.nan))},
        "hold-out column age has missing values"),
    "model that changes when pickled": (
        lambda case, inputs: {"model": _dumped(inputs / "forgetful.joblib",
                                               ForgetfulClassifier().fit(None, [0, 1]))},
        "predicts differently after a joblib round trip"),
}


@pytest.mark.parametrize(("bad_inputs", "message"), BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_input_exits_2_with_one_error_line_and_keeps_the_output(
        bad_inputs: BadInputs, message: str, classifier_case: Case, published: Path, run_cli: RunCli,
        tmp_path: Path) -> None:
    # Given an earlier model_artifacts/ and one bad input
    before = tree_snapshot(published.parent)
    argv = classifier_case.argv(published, **bad_inputs(classifier_case, tmp_path / "inputs"))

    # When the packager runs
    result = run_cli(argv)

    # Then it exits 2 with one error line, and model_artifacts/ (and its parent) are as they were
    assert result.code == 2
    assert len(result.stderr_lines) == 1, result.stderr_lines
    assert result.stderr_lines[0].startswith("error: ")
    assert message in result.stderr_lines[0]
    assert result.stdout_lines == []
    assert tree_snapshot(published.parent) == before


def test_invalid_source_date_epoch_is_refused(classifier_case: Case, published: Path, run_cli: RunCli,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a SOURCE_DATE_EPOCH that is not a number of seconds
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    before = tree_snapshot(published.parent)

    # When the packager runs
    result = run_cli(classifier_case.argv(published))

    # Then
    assert result.code == 2
    assert result.stderr_lines == ["error: SOURCE_DATE_EPOCH must be whole seconds since 1970, not yesterday"]
    assert tree_snapshot(published.parent) == before


def test_output_path_that_is_a_file_is_refused(classifier_case: Case, tmp_path: Path,
                                               run_cli: RunCli) -> None:
    # Given --out naming an existing file
    out_file = _write(tmp_path / "model_artifacts", b"keep me")

    # When the packager runs
    result = run_cli(classifier_case.argv(out_file))

    # Then the file is left alone
    assert result.code == 2
    assert result.stderr_lines == [f"error: {out_file} exists and is not a directory"]
    assert out_file.read_bytes() == b"keep me"


# --- the pieces -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("values", "expected"), [
    (pd.Series([3, 1, 2], name="n"), ("integer", "int64", False, 1, 3)),
    (pd.Series([3, None, 1], dtype="Int64", name="n"), ("integer", "float64", True, 1, 3)),
    (pd.Series([1.0, 2.0, np.nan], name="n"), ("number", "float64", True, 1.0, 2.0)),
    (pd.Series([np.nan, np.nan], name="n"), ("number", "float64", True, None, None)),
    (pd.Series([True, False], name="n"), ("boolean", "bool", False, None, None)),
    (pd.Series([True, None], dtype=object, name="n"), ("boolean", "object", True, None, None)),
    (pd.Series(["a", None], name="n"), ("string", "object", True, None, None)),
    (pd.Series(["a", "b"], dtype=object, name="n"), ("string", "object", False, None, None)),
], ids=["int", "nullable int", "float with whole values", "all missing", "bool", "bool with gaps",
        "str with gaps", "object strings"])
def test_column_description(values: pd.Series, expected: tuple[Any, ...]) -> None:
    # When a sample column without an encoder is described
    feature = describe_column(values, None)

    # Then its JSON type, predict-time dtype, nullability and range follow its values
    assert (feature.type, feature.dtype, feature.nullable, feature.minimum, feature.maximum) == expected
    assert feature.categories is None and feature.unknown_category is None


@pytest.mark.parametrize(("selection", "expected"), [
    (["c", "a"], ["c", "a"]),
    ("b", ["b"]),
    (2, ["c"]),
    ([0, 3], ["a", "d"]),
    (slice(1, 3), ["b", "c"]),
    (slice("b", "c"), ["b", "c"]),
    (np.array([True, False, False, True]), ["a", "d"]),
], ids=["names", "one name", "one index", "indices", "index slice", "name slice", "mask"])
def test_column_transformer_selections_resolve_to_names(selection: Any, expected: list[str]) -> None:
    # When a ColumnTransformer selection is resolved against the input columns
    # Then it gives the names it selects
    assert selected_columns(["a", "b", "c", "d"], selection) == expected


@pytest.mark.parametrize(("sample_values", "expected"), [
    (["x", "y"], ["x", "y"]),
    (["x", "missing"], ["missing", "x", "y"]),
], ids=["fill value unseen: dropped", "fill value is real data: kept"])
def test_imputer_fill_value_is_a_category_only_if_the_sample_has_it(sample_values: list[str],
                                                                    expected: list[str]) -> None:
    # Given an encoder that learnt the imputer's fill value "missing"
    encoding = Encoding(("missing", "x", "y"), rejects_unknown=False, imputed=frozenset({"missing"}))

    # When its categories are listed against the sample
    # Then
    assert known_categories(encoding, pd.Series(sample_values)) == expected


def test_the_openapi_document_is_written_beside_the_manifest(published: Path) -> None:
    document = json.loads((published / "openapi.json").read_text(encoding="utf-8"))
    manifest = read_manifest(published)
    assert document["info"]["version"] == manifest.version
    instance = document["components"]["schemas"]["PredictRequest"]["properties"]["instances"]["items"]
    assert instance["required"] == [f.name for f in manifest.features if not f.nullable]


# --- an output that never destroys ----------------------------------------------------------------


def test_a_directory_of_the_users_files_is_never_replaced(classifier_case: Case, tmp_path: Path,
                                                          run_cli: RunCli) -> None:
    # Given --out naming a folder of someone's files (say their home directory)
    home = tmp_path / "home"
    _write(home / "thesis.tex", b"years of work")
    _write(home / ".bashrc", b"alias ll='ls -l'")
    before = tree_snapshot(tmp_path)

    # When the packager runs
    result = run_cli(classifier_case.argv(home))

    # Then it refuses in one line, before any work, and nothing changed
    assert result.code == 2
    assert result.stderr_lines == [f"error: {home} holds files the packager did not write and would replace them "
                                   "all; choose a new or empty --out directory"]
    assert tree_snapshot(tmp_path) == before


def test_an_empty_directory_is_filled_and_marked(classifier_case: Case, tmp_path: Path, run_cli: RunCli) -> None:
    out_dir = tmp_path / "empty"
    out_dir.mkdir()
    assert run_cli(classifier_case.argv(out_dir)).code == 0
    assert (out_dir / MARKER_FILE).is_file() and (out_dir / "manifest.json").is_file()


@pytest.fixture
def ctrl_c_raises() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt, as in a terminal, also when the suite started with SIGINT ignored (a
    background job of a non-interactive shell inherits it ignored, and Python then installs no handler)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.usefixtures("ctrl_c_raises")
def test_a_signal_during_the_swap_is_held_until_the_new_output_is_in_place(published: Path, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a staged output, and Ctrl-C arriving between the two renames of the swap
    scratch = tmp_path / "scratch"
    staged = scratch / "new"
    staged.mkdir(parents=True)
    (staged / "manifest.json").write_text("{}", encoding="utf-8")
    real_rename = Path.rename

    def rename_then_interrupt(self: Path, target: Path) -> Path:
        moved = real_rename(self, target)
        if self == published:
            os.kill(os.getpid(), signal.SIGINT)  # after the old output moved aside, before the new one moves in
        return moved

    monkeypatch.setattr(Path, "rename", rename_then_interrupt)
    # And other threads, as BLAS or onnxruntime start, any of which the kernel may hand the signal to
    idle = threading.Event()
    for _ in range(4):
        threading.Thread(target=idle.wait, daemon=True).start()

    # When / Then the interruption is delivered only once the new output is in place
    try:
        with pytest.raises(KeyboardInterrupt):
            swap_into_place(staged, published, scratch)
    finally:
        idle.set()
    assert (published / "manifest.json").read_text(encoding="utf-8") == "{}"


def test_a_swap_killed_between_its_renames_is_recovered_by_the_next_run(published: Path) -> None:
    # Given what SIGKILL between the renames leaves: no output, the old one in the packager's scratch directory
    before = tree_snapshot(published)
    scratch = published.parent / ".model_artifacts-killed"
    scratch.mkdir()
    (scratch / MARKER_FILE).write_text("", encoding="utf-8")
    published.rename(scratch / "old")

    # When the next run sets up its workspace
    with workspace(published):
        restored = tree_snapshot(published)

    # Then the old output is back and no scratch directory is left
    assert restored == before
    assert [path.name for path in published.parent.iterdir()] == ["model_artifacts"]


@pytest.mark.usefixtures("ctrl_c_raises")
@pytest.mark.parametrize(("signal_number", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_and_sigterm_print_one_line_and_leave_no_scratch(
        signal_number: int, status: int, classifier_case: Case, published: Path, run_cli: RunCli,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a run interrupted while it writes into its scratch directory
    before = tree_snapshot(published.parent)
    monkeypatch.setattr(packager, "write_card", lambda *_: os.kill(os.getpid(), signal_number))

    # When
    result = run_cli(classifier_case.argv(published))

    # Then one line, the shell's status for the signal, no scratch, the earlier output untouched
    assert result.code == status
    assert result.stderr_lines == [f"interrupted: no scratch left behind, {published} holds a complete model or none"]
    assert tree_snapshot(published.parent) == before


def _twice(values: Any) -> Any:
    return values * 2


def test_a_function_from_the_users_own_module_is_refused_naming_it(members: pd.DataFrame, tmp_path: Path,
                                                                   run_cli: RunCli) -> None:
    # Given a pipeline calling a function of this (the user's) module, which Lambda would not have
    model = Pipeline([("twice", FunctionTransformer(_twice)), ("model", LogisticRegression())])
    case = fitted_case(tmp_path / "custom", members, model, ARRAY_FEATURES, "churned", as_array=True)

    # When / Then
    result = run_cli(case.argv(tmp_path / "out"))
    assert result.code == 2
    assert result.stderr_lines == [
        f"error: parameter twice__func calls _twice from module {__name__}, which does not ship to Lambda (only "
        "handler/ and the runtime's libraries do): use a function of scikit-learn, numpy, scipy, pandas or the "
        "standard library"]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("function", [np.log1p, math.sqrt, doubled, None])
def test_functions_that_ship_pass_the_check(function: Any) -> None:
    check_shipped_code(Pipeline([("f", FunctionTransformer(function)), ("model", LogisticRegression())]))


@pytest.mark.parametrize("outlier", ["99999999999999999999999", "18446744073709551615", "-1000000000000001"])
def test_an_integer_outlier_stops_the_packager_naming_row_and_value(outlier: str) -> None:
    column = pd.read_csv(io.StringIO(f"visits\n1\n{outlier}\n3\n"))["visits"]
    with pytest.raises(PackagingError, match=rf"sample column visits row 2 holds {outlier}, beyond the ±10\^15"):
        describe_column(column, None)
