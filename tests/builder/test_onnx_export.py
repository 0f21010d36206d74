"""The ONNX export: which runtime the packager picks, what the manifest records, the parity check behind it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import onnx
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from handler.manifest import Feature, Parity, read_manifest, sha256_file
from tests.models import demo
from tests.models import (ARRAY_FEATURES, FEATURES, Case, CliResult, MajorityClassifier, doubled,
                                    fitted_case, frame_pipeline, packaged, tree_snapshot)
from builder.artifacts import MARKER_FILE
from builder.onnx_export import (DEFAULT_TOLERANCE, EDGE_BASE_ROWS, OnnxRefused, compare, convert, edge_values,
                                 parity_miss)
from builder.errors import PackagingError

RunCli = Callable[[list[str]], CliResult]


@pytest.fixture(scope="module")
def unconvertible_case(members: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Case:
    """An array pipeline with a FunctionTransformer running custom Python code."""
    model = Pipeline([("double", FunctionTransformer(doubled)), ("model", LogisticRegression())])
    return fitted_case(tmp_path_factory.mktemp("unconvertible"), members, model, ARRAY_FEATURES, "churned",
                       as_array=True)


@pytest.fixture(scope="module")
def unsupported_case(members: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Case:
    """A pipeline ending in an estimator skl2onnx has no converter for."""
    return fitted_case(tmp_path_factory.mktemp("unsupported"), members, frame_pipeline(MajorityClassifier()),
                       FEATURES, "churned")


@pytest.fixture(scope="module")
def awkward_names_case(members: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Case:
    """Feature names that are no C identifiers: a space, a dot, a leading digit, a near twin of another."""
    renamed = {"age": "age in years", "income": "income.usd", "plan": "1st plan", "visits": "age_in_years"}
    numbers = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    features = ColumnTransformer([("numbers", numbers, ["age in years", "income.usd", "age_in_years"]),
                                  ("plan", OneHotEncoder(handle_unknown="ignore"), ["1st plan"])])
    model = Pipeline([("features", features), ("model", LogisticRegression())])
    return fitted_case(tmp_path_factory.mktemp("awkward"), members.rename(columns=renamed), model,
                       list(renamed.values()), "churned")


# Written for every runtime: the training profile and the model card (tests/builder/test_packager.py).
DESCRIPTIONS = {"model_card.md", "profile.json", "profile.png"}


def artifact_names(out_dir: Path) -> list[str]:
    """The files in out_dir besides the profile, the model card and the packager's marker."""
    return sorted(path.name for path in out_dir.iterdir() if path.name not in DESCRIPTIONS | {MARKER_FILE})


# --- models onnxruntime serves ----------------------------------------------------------------------


@pytest.mark.parametrize("case_name", ["demo_case", "classifier_case", "multiclass_case", "regressor_case",
                                       "array_case"])
def test_a_convertible_model_is_served_by_onnx_with_its_parity(case_name: str, request: pytest.FixtureRequest,
                                                               tmp_path: Path) -> None:
    # Given a fitted pipeline skl2onnx can convert
    case: Case = request.getfixturevalue(case_name)

    # When it is packaged with the default runtime choice
    manifest = packaged(case, tmp_path / "out")

    # Then model.onnx serves it, pinned, with the joblib pipeline pinned beside it
    assert manifest["runtime"] == "onnx" and "runtime_fallback" not in manifest
    assert artifact_names(tmp_path / "out") == ["manifest.json", "model.joblib", "model.onnx", "openapi.json"]
    assert manifest["sha256"] == sha256_file(tmp_path / "out" / "model.onnx")
    assert manifest["sklearn_sha256"] == sha256_file(tmp_path / "out" / "model.joblib")
    assert {"onnxruntime", "onnx", "skl2onnx"} <= set(manifest["versions"])
    # And it matched scikit-learn on the sample and on every edge case of every feature
    parity = manifest["parity"]
    features = read_manifest(tmp_path / "out").features
    edge_rows = EDGE_BASE_ROWS * sum(len(edge_values(feature)) for feature in features)
    assert parity["rows"] == len(pd.read_csv(case.sample)) + edge_rows
    assert 0 < Parity(**parity).checked_difference <= parity["tolerance"] == DEFAULT_TOLERANCE
    assert parity.get("labels_identical") is (True if manifest["task"] == "classification" else None)
    assert ("max_scaled_difference" in parity) is (manifest["task"] == "regression")


@pytest.mark.parametrize(("value", "onnx_value", "passed"), [
    (250.0, 250.0 + 1.83e-5, True),  # float32 rounding of a large prediction: 7.3e-8 of its size
    (-3000.0, -3000.0 - 0.02, True),  # 6.7e-6 of its size
    (-3000.0, -3000.0 - 0.05, False),  # 1.7e-5 of its size
    (0.5, 0.5 + 2e-5, False),  # values under 1 are held to the absolute difference
    (0.5, 0.5 + 9e-6, True),
])
def test_regression_values_are_held_to_the_tolerance_relative_to_their_size(value: float, onnx_value: float,
                                                                             passed: bool) -> None:
    parity = compare([{"value": value}], [{"value": onnx_value}], tolerance=1e-5)
    assert parity.max_abs_difference == pytest.approx(abs(onnx_value - value))
    assert parity.max_scaled_difference == pytest.approx(abs(onnx_value - value) / max(1.0, abs(value)))
    assert parity.passed is passed


def test_probabilities_are_held_to_the_absolute_tolerance() -> None:
    expected = [{"label": "yes", "probabilities": {"no": 0.25, "yes": 0.75}}]
    actual = [{"label": "yes", "probabilities": {"no": 0.25 - 2e-5, "yes": 0.75 + 2e-5}}]
    parity = compare(expected, actual, tolerance=1e-5)
    assert parity.max_scaled_difference is None and not parity.passed
    assert parity_miss(parity).startswith("parity_miss: max abs difference 2e-05")


def test_the_export_is_reproducible(classifier_case: Case, tmp_path: Path) -> None:
    # Given a model packaged twice
    first = packaged(classifier_case, tmp_path / "first")
    second = packaged(classifier_case, tmp_path / "second")

    # Then both model.onnx files are the same bytes, with opset domains in a fixed (sorted) order
    assert first["sha256"] == second["sha256"]
    exported = onnx.load(tmp_path / "first" / "model.onnx")
    domains = [entry.domain for entry in exported.opset_import]
    assert domains == sorted(domains)


def test_graph_inputs_keep_the_feature_names(awkward_names_case: Case, tmp_path: Path) -> None:
    # Given features whose names skl2onnx would rewrite into C identifiers
    # When the model is packaged
    manifest = packaged(awkward_names_case, tmp_path / "out")

    # Then ONNX serves it, its graph taking one input per feature under the feature's own name
    assert manifest["runtime"] == "onnx"
    exported = onnx.load(tmp_path / "out" / "model.onnx")
    assert [graph_input.name for graph_input in exported.graph.input] == [f["name"] for f in manifest["features"]]


@pytest.mark.parametrize(("feature", "expected"), [
    (Feature("region", "string", "object", True, ["east"], "ignore"), [None, "", "\x00", "never-seen-in-training"]),
    (Feature("plan", "string", "object", False, ["basic"], "reject"), []),
    (Feature("age", "integer", "int64", False, minimum=18, maximum=79), [18, 79, -43, 140]),
    (Feature("income", "number", "float64", True, minimum=10.0, maximum=10.0), [None, 10.0, 10.0, 9.0, 11.0]),
    (Feature("is_member", "boolean", "object", True), [None, False, True]),
], ids=["string ignoring unknowns", "string rejecting unknowns", "integer", "number of one value", "boolean"])
def test_edge_values_are_what_the_handler_accepts_beyond_the_sample(feature: Feature, expected: list[Any]) -> None:
    # When the edge values of a feature are listed
    # Then they are missing (if nullable), unseen (unless rejected), and the range's ends and beyond
    assert edge_values(feature) == expected


# --- fallbacks and refusals -----------------------------------------------------------------------


def test_an_unconvertible_model_falls_back_to_sklearn_with_the_reason(unconvertible_case: Case,
                                                                      tmp_path: Path) -> None:
    # Given a pipeline with a custom Python function in it
    # When it is packaged with the default runtime choice
    manifest = packaged(unconvertible_case, tmp_path / "out")

    # Then scikit-learn serves it, and the manifest says why
    assert (manifest["runtime"], manifest["artifact"]) == ("sklearn", "model.joblib")
    assert manifest["runtime_fallback"].startswith("conversion_error: RuntimeError: FunctionTransformer is not supported")
    assert not {"parity", "sklearn_artifact", "sklearn_sha256"} & set(manifest)
    assert "onnxruntime" not in manifest["versions"]
    assert artifact_names(tmp_path / "out") == ["manifest.json", "model.joblib", "openapi.json"]


def test_an_estimator_without_converter_falls_back_as_unsupported(unsupported_case: Case, tmp_path: Path) -> None:
    manifest = packaged(unsupported_case, tmp_path / "out")
    assert manifest["runtime"] == "sklearn"
    assert manifest["runtime_fallback"].startswith("unsupported_estimator: Unable to find a shape calculator")
    assert "MajorityClassifier" in manifest["runtime_fallback"]


def test_a_parity_miss_falls_back_with_the_figures(classifier_case: Case, tmp_path: Path) -> None:
    # Given a tolerance float32 arithmetic cannot meet
    # When the model is packaged
    manifest = packaged(classifier_case, tmp_path / "out", parity_tolerance=0.0)

    # Then scikit-learn serves it, and the manifest records how far ONNX was
    assert manifest["runtime"] == "sklearn"
    assert manifest["runtime_fallback"].startswith("parity_miss: max abs difference")
    assert manifest["parity"]["tolerance"] == 0 and manifest["parity"]["max_abs_difference"] > 0
    assert manifest["parity"]["labels_identical"] is True
    assert "model.onnx" not in artifact_names(tmp_path / "out")


def test_an_array_pipeline_of_strings_is_refused_before_conversion() -> None:
    # Given the manifest of a model fed one array that holds string columns
    manifest = replace(read_manifest(demo().model_dir), input_format="array")

    # When it is converted
    # Then it is refused: one float tensor cannot carry strings
    with pytest.raises(OnnxRefused, match="^unsupported_estimator: an array-fed pipeline with string columns$"):
        convert(manifest, model=None)


def test_forcing_onnx_on_an_unconvertible_model_is_an_error(unconvertible_case: Case, published: Path,
                                                             run_cli: RunCli) -> None:
    # Given an earlier model_artifacts/
    before = tree_snapshot(published.parent)

    # When an unconvertible model is packaged with --runtime onnx
    result = run_cli(unconvertible_case.argv(published, runtime="onnx"))

    # Then it exits 2 with one error line naming the reason, and leaves model_artifacts/ as it was
    assert result.code == 2 and result.stdout_lines == []
    assert len(result.stderr_lines) == 1
    assert result.stderr_lines[0].startswith("error: --runtime onnx is not possible: conversion_error: ")
    assert tree_snapshot(published.parent) == before


def test_an_unknown_runtime_choice_is_refused(classifier_case: Case, tmp_path: Path) -> None:
    with pytest.raises(PackagingError, match="runtime must be one of auto, onnx, sklearn, not onnxx"):
        packaged(classifier_case, tmp_path / "out", runtime="onnxx")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "abc"])
def test_a_parity_tolerance_that_is_not_a_finite_number_at_least_0_is_refused(
        value: str, classifier_case: Case, tmp_path: Path, run_cli: RunCli, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run_cli(classifier_case.argv(tmp_path / "out", parity_tolerance=value))
    assert exit_info.value.code == 2
    assert "--parity-tolerance" in capsys.readouterr().err


def test_the_cli_says_which_runtime_serves_and_why_not_onnx(unconvertible_case: Case, array_case: Case,
                                                            tmp_path: Path, run_cli: RunCli) -> None:
    # When one model is packaged with each runtime choice
    forced = run_cli(array_case.argv(tmp_path / "forced", runtime="sklearn"))
    fallback = run_cli(unconvertible_case.argv(tmp_path / "fallback"))

    # Then each run prints one line naming the runtime, and the reason onnx was not used
    assert forced.code == fallback.code == 0
    assert len(forced.stdout_lines) == len(fallback.stdout_lines) == 1
    assert "(runtime sklearn," in forced.stdout_lines[0] and "onnx not used" not in forced.stdout_lines[0]
    assert "onnx not used: conversion_error: RuntimeError: FunctionTransformer" in fallback.stdout_lines[0]
    # And forcing sklearn skips the export altogether
    assert artifact_names(tmp_path / "forced") == ["manifest.json", "model.joblib", "openapi.json"]
    assert "runtime_fallback" not in read_manifest(tmp_path / "forced").to_dict()
