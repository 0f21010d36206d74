"""ONNX coverage: the model shapes analysts fit, each served by onnxruntime with parity or falling back by name.

SHAPES is the one list of shapes and their expected outcomes; coverage_table() renders it for the README.
Every shape is a small model fitted here and packaged end to end by the packager.
"""

from __future__ import annotations

import importlib.util
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Lasso, LinearRegression, LogisticRegression, Ridge
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    KBinsDiscretizer,
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    PolynomialFeatures,
    StandardScaler,
    TargetEncoder,
)
from sklearn.svm import SVC, SVR
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from handler.config import Settings
from handler.loading import load_model
from handler.manifest import Parity, read_manifest
from tests.helpers import PROJECT_ROOT
from tests.models import TRAIN_ROWS, doubled, fitted_case, packaged
from builder.onnx_export import (
    DEFAULT_TOLERANCE,
    THRESHOLD_ROWS,
    threshold_cases,
    tree_thresholds,
)

ONNX = "onnx"
PLANS = ["basic", "plus", "pro"]
# Numbers, integers and a boolean, none missing: what a bare estimator takes. Names with a space and a dash.
NUMERIC = ["age", "tenure months", "visits-per-week", "plan_code", "is_member"]
WITH_GAPS = [*NUMERIC, "income"]  # plus a number with missing values
LIGHTGBM_NAMES = ["age", "visits-per-week", "plan_code", "is_member"]  # LightGBM renames "tenure months"
MIXED = ["age", "income", "tenure months", "plan", "region", "is_member"]  # plus strings, one with gaps


def make_customers(n_rows: int = 300, seed: int = 11) -> pd.DataFrame:
    """Customers: float, integer, boolean and string columns (some with gaps), an ordinal code, three targets."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, n_rows)
    tenure = rng.uniform(1, 72, n_rows).round(1)
    plan_code = rng.integers(0, 3, n_rows)
    is_member = rng.random(n_rows) < 0.4
    score = 0.04 * (age - 50) + 0.6 * plan_code - 0.8 * is_member - 0.02 * tenure + rng.normal(0, 1, n_rows)
    return pd.DataFrame({
        "age": age,
        "income": pd.Series(rng.normal(50_000, 15_000, n_rows).round(2)).mask(rng.random(n_rows) < 0.1),
        "tenure months": tenure,
        "visits-per-week": rng.poisson(3, n_rows),
        "plan_code": plan_code,
        "plan": np.array(PLANS)[plan_code],
        "region": pd.Series(rng.choice(["east", "north", "south"], n_rows)).mask(rng.random(n_rows) < 0.1),
        "is_member": is_member,
        "churned": (score > 0).astype(np.int64),
        "segment": np.select([score < -0.7, score < 0.7], ["low", "mid"], "high"),
        "spend": (20 + 0.5 * age + 12 * plan_code + 0.3 * tenure + rng.normal(0, 5, n_rows)).round(2),
    })


@dataclass(frozen=True)
class Shape:
    """A model shape, how it is fitted, and what the packager must make of it: "onnx" or a fallback reason."""

    name: str
    model: Callable[[], Any]  # a new unfitted estimator
    features: list[str]
    target: str
    expect: str = ONNX
    as_array: bool = False
    needs: str | None = None  # an optional library the shape is built with

    def expected(self) -> str:
        """The expected outcome here: without onnxmltools, boosters fall back naming what to install."""
        if self.needs is not None and importlib.util.find_spec("onnxmltools") is None:
            return f"unsupported_estimator: {type(_final(self.model())).__name__} needs onnxmltools"
        return self.expect


def _final(model: Any) -> Any:
    return model.steps[-1][1] if isinstance(model, Pipeline) else model


def scaled(model: Any) -> Pipeline:
    return make_pipeline(StandardScaler(), model)


def mixed_columns(numbers: Any, strings: Any, *, impute_strings: bool = True) -> ColumnTransformer:
    """Imputed numbers through `numbers` (if any), strings (with gaps) through `strings`, imputed first unless
    the encoder is to meet the gaps itself, the flag as it is."""
    imputed = SimpleImputer(strategy="median")
    return ColumnTransformer([
        ("numbers", imputed if numbers is None else make_pipeline(imputed, numbers), ["age", "income", "tenure months"]),
        ("strings", make_pipeline(SimpleImputer(strategy="constant", fill_value="missing"), strings)
         if impute_strings else strings, ["plan", "region"]),
        ("flag", "passthrough", ["is_member"]),
    ])


def mixed(numbers: Any, strings: Any, model: Any, *, impute_strings: bool = True) -> Pipeline:
    features = mixed_columns(numbers, strings, impute_strings=impute_strings)
    return Pipeline([("features", features), ("model", model)])


def ufunc_shape(function: Any, *, positive: bool) -> Shape:
    """A numpy ufunc FunctionTransformer, fed absolute values (log, sqrt) or standardised ones (exp)."""
    before = FunctionTransformer(np.abs) if positive else StandardScaler()
    model = lambda: Pipeline([("before", before), ("function", FunctionTransformer(function)),
                              ("model", LogisticRegression())])
    return Shape(f"function_transformer_{function.__name__}", model, ["age", "tenure months"], "churned")


def xgboost_classifier() -> Any:
    from xgboost import XGBClassifier

    return XGBClassifier(n_estimators=8, max_depth=3, n_jobs=1)


def xgboost_regressor() -> Any:
    from xgboost import XGBRegressor

    return XGBRegressor(n_estimators=8, max_depth=3, n_jobs=1)


def lightgbm_classifier() -> Any:
    from lightgbm import LGBMClassifier

    return LGBMClassifier(n_estimators=8, num_leaves=7, min_child_samples=5, n_jobs=1, verbose=-1)


def lightgbm_regressor() -> Any:
    from lightgbm import LGBMRegressor

    return LGBMRegressor(n_estimators=8, num_leaves=7, min_child_samples=5, n_jobs=1, verbose=-1)


FOREST = {"n_estimators": 10, "max_depth": 5, "random_state": 0}
BOOSTING = {"n_estimators": 10, "max_depth": 3, "random_state": 0}
HIST = {"max_iter": 10, "random_state": 0}

def fitted_both_ways(name: str, model: Callable[[], Any], features: list[str], target: str) -> list[Shape]:
    """The shape fitted on a DataFrame and on an array."""
    return [Shape(f"{name}_frame", model, features, target), Shape(f"{name}_array", model, features, target,
                                                                    as_array=True)]


SHAPES = [
    # linear models, trees, ensembles and other estimators, each fitted on a DataFrame and on an array
    *fitted_both_ways("logistic_binary", lambda: scaled(LogisticRegression()), NUMERIC, "churned"),
    *fitted_both_ways("logistic_multiclass", lambda: scaled(LogisticRegression()), NUMERIC, "segment"),
    *fitted_both_ways("linear_regression", LinearRegression, NUMERIC, "spend"),
    *fitted_both_ways("ridge", Ridge, NUMERIC, "spend"),
    *fitted_both_ways("lasso", lambda: Lasso(alpha=0.1), NUMERIC, "spend"),
    *fitted_both_ways("decision_tree_classifier", lambda: DecisionTreeClassifier(max_depth=5, random_state=0),
                      NUMERIC, "churned"),
    *fitted_both_ways("decision_tree_regressor", lambda: DecisionTreeRegressor(max_depth=5, random_state=0),
                      NUMERIC, "spend"),
    *fitted_both_ways("random_forest_classifier", lambda: RandomForestClassifier(**FOREST), NUMERIC, "churned"),
    *fitted_both_ways("random_forest_regressor", lambda: RandomForestRegressor(**FOREST), NUMERIC, "spend"),
    *fitted_both_ways("extra_trees_classifier", lambda: ExtraTreesClassifier(**FOREST), NUMERIC, "segment"),
    *fitted_both_ways("extra_trees_regressor", lambda: ExtraTreesRegressor(**FOREST), NUMERIC, "spend"),
    *fitted_both_ways("gradient_boosting_classifier", lambda: GradientBoostingClassifier(**BOOSTING), NUMERIC,
                      "churned"),
    *fitted_both_ways("gradient_boosting_regressor", lambda: GradientBoostingRegressor(**BOOSTING), NUMERIC,
                      "spend"),
    *fitted_both_ways("hist_gradient_boosting_classifier_nan", lambda: HistGradientBoostingClassifier(**HIST),
                      WITH_GAPS, "churned"),
    *fitted_both_ways("hist_gradient_boosting_regressor_nan", lambda: HistGradientBoostingRegressor(**HIST),
                      WITH_GAPS, "spend"),
    *fitted_both_ways("hist_gradient_boosting_multiclass_nan", lambda: HistGradientBoostingClassifier(**HIST),
                      WITH_GAPS, "segment"),
    Shape("hist_gradient_boosting_native_categorical",
          lambda: HistGradientBoostingClassifier(categorical_features=["plan_code"], **HIST), NUMERIC, "churned",
          expect="unsupported_estimator: HistGradientBoostingClassifier with native categorical features"),
    *fitted_both_ways("svc_probability", lambda: scaled(SVC(probability=True, random_state=0)), NUMERIC, "churned"),
    Shape("svc_calibrated_array", lambda: scaled(CalibratedClassifierCV(SVC(), ensemble=False)), NUMERIC, "churned",
          as_array=True),
    Shape("svc_without_probability_frame", lambda: scaled(SVC()), NUMERIC, "churned",
          expect="unsupported_estimator: SVC without probability=True"),
    *fitted_both_ways("svr", lambda: scaled(SVR()), NUMERIC, "spend"),
    *fitted_both_ways("k_neighbours_classifier", lambda: scaled(KNeighborsClassifier()), NUMERIC, "segment"),
    *fitted_both_ways("k_neighbours_regressor", lambda: scaled(KNeighborsRegressor()), NUMERIC, "spend"),
    *fitted_both_ways("mlp_classifier", lambda: scaled(MLPClassifier(hidden_layer_sizes=(8,), max_iter=50,
                                                                     random_state=0)), NUMERIC, "churned"),
    *fitted_both_ways("mlp_regressor", lambda: scaled(MLPRegressor(hidden_layer_sizes=(8,), max_iter=50,
                                                                   random_state=0)), NUMERIC, "spend"),
    *fitted_both_ways("gaussian_naive_bayes", GaussianNB, NUMERIC, "segment"),
    # column transformers over float, integer, boolean and string columns
    Shape("one_hot_ignore_logistic", lambda: mixed(StandardScaler(), OneHotEncoder(handle_unknown="ignore"),
                                                   LogisticRegression()), MIXED, "churned"),
    Shape("one_hot_error_random_forest", lambda: mixed(StandardScaler(), OneHotEncoder(handle_unknown="error"),
                                                       RandomForestClassifier(**FOREST)), MIXED, "segment"),
    Shape("ordinal_unknown_hist_gradient_boosting", lambda: mixed(
        None, OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
        HistGradientBoostingRegressor(**HIST)), MIXED, "spend"),
    Shape("impute_scale_random_forest_regressor", lambda: mixed(StandardScaler(), OneHotEncoder(handle_unknown="ignore"),
                                                                RandomForestRegressor(**FOREST)), MIXED, "spend"),
    Shape("min_max_k_neighbours", lambda: mixed(MinMaxScaler(), OneHotEncoder(handle_unknown="ignore"),
                                                KNeighborsClassifier()), MIXED, "churned"),
    Shape("k_bins_logistic", lambda: mixed(KBinsDiscretizer(n_bins=4, encode="onehot-dense", quantile_method="averaged_inverted_cdf"),
                                           OneHotEncoder(handle_unknown="ignore"), LogisticRegression()),
          MIXED, "churned"),
    Shape("polynomial_ridge", lambda: mixed(make_pipeline(StandardScaler(), PolynomialFeatures(2)),
                                            OneHotEncoder(handle_unknown="ignore"), Ridge()), MIXED, "spend"),
    Shape("polynomial_logistic", lambda: mixed(make_pipeline(StandardScaler(), PolynomialFeatures(2)),
                                               OneHotEncoder(handle_unknown="ignore"), LogisticRegression()),
          MIXED, "churned"),
    Shape("target_encoder_logistic", lambda: mixed(StandardScaler(), TargetEncoder(random_state=0),
                                                   LogisticRegression()), MIXED, "churned"),
    Shape("string_labels_random_forest", lambda: mixed(None, OrdinalEncoder(handle_unknown="error"),
                                                       RandomForestClassifier(**FOREST)), MIXED, "segment"),
    # encoders meeting missing strings themselves: a category of their own (one-hot), NaN for the trees (ordinal)
    Shape("one_hot_missing_strings_logistic", lambda: mixed(
        StandardScaler(), OneHotEncoder(handle_unknown="ignore"), LogisticRegression(), impute_strings=False),
        MIXED, "churned"),
    Shape("ordinal_missing_strings_hist_gradient_boosting", lambda: mixed(
        None, OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
        HistGradientBoostingClassifier(random_state=0), impute_strings=False), MIXED, "churned"),
    Shape("ordinal_missing_strings_coded_random_forest", lambda: mixed(
        None, OrdinalEncoder(encoded_missing_value=-2), RandomForestClassifier(**FOREST), impute_strings=False),
        MIXED, "segment"),
    # fully grown trees vote: an even forest ties at exactly 0.5, and the label must break the tie as scikit-learn does
    Shape("random_forest_vote_ties", lambda: mixed(None, OrdinalEncoder(handle_unknown="error"),
                                                   RandomForestClassifier(n_estimators=50, random_state=0)),
          MIXED, "churned"),
    # numpy-ufunc and custom-code FunctionTransformers
    ufunc_shape(np.log1p, positive=True),
    ufunc_shape(np.log, positive=True),
    ufunc_shape(np.sqrt, positive=True),
    ufunc_shape(np.abs, positive=False),
    ufunc_shape(np.exp, positive=False),
    ufunc_shape(np.expm1, positive=False),
    Shape("function_transformer_custom_code", lambda: make_pipeline(FunctionTransformer(doubled), Ridge()),
          NUMERIC, "spend", expect="conversion_error: RuntimeError: FunctionTransformer is not supported"),
    # XGBoost and LightGBM, when installed
    Shape("xgboost_classifier_frame", xgboost_classifier, NUMERIC, "churned", needs="xgboost"),
    Shape("xgboost_regressor_pipeline", lambda: mixed(StandardScaler(), OneHotEncoder(handle_unknown="ignore"),
                                                      xgboost_regressor()), MIXED, "spend", needs="xgboost"),
    Shape("lightgbm_classifier_pipeline", lambda: mixed(None, OneHotEncoder(handle_unknown="ignore"),
                                                        lightgbm_classifier()), MIXED, "segment", needs="lightgbm"),
    Shape("lightgbm_regressor_frame", lightgbm_regressor, LIGHTGBM_NAMES, "spend", needs="lightgbm"),
    Shape("lightgbm_classifier_frame", lightgbm_classifier, LIGHTGBM_NAMES, "churned", needs="lightgbm"),
]


def coverage_table() -> str:
    """SHAPES as a markdown table: each shape and whether ONNX serves it, or why not."""
    rows = [f"| `{shape.name}` | {'onnx' if shape.expect == ONNX else 'scikit-learn: `' + shape.expect + '`'}"
            f"{' (with ' + shape.needs + ' and onnxmltools installed)' if shape.needs else ''} |"
            for shape in SHAPES]
    served = sum(shape.expect == ONNX for shape in SHAPES)
    return "\n".join(["| Model shape | Served by |", "| --- | --- |", *rows, "",
                      f"{served} of {len(SHAPES)} shapes served by ONNX."]) + "\n"


@pytest.fixture(scope="module")
def customers() -> pd.DataFrame:
    return make_customers()


def fitted(shape: Shape, customers: pd.DataFrame, directory: Path) -> Any:
    """The shape fitted on the training rows and saved as a packager case."""
    if shape.needs is not None:
        pytest.importorskip(shape.needs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # tiny data, few iterations: fast, not converged
        warnings.simplefilter("ignore", FutureWarning)  # SVC(probability=True) is deprecated, still fitted
        return fitted_case(directory, customers, shape.model(), shape.features, shape.target,
                           as_array=shape.as_array)


@pytest.mark.parametrize("shape", SHAPES, ids=[shape.name for shape in SHAPES])
def test_each_shape_is_served_by_onnx_with_parity_or_falls_back_by_name(shape: Shape, customers: pd.DataFrame,
                                                                         tmp_path: Path) -> None:
    # Given a small model of this shape, fitted and saved with its sample
    case = fitted(shape, customers, tmp_path / "case")

    # When it is packaged with the default runtime choice
    manifest = packaged(case, tmp_path / "out")

    # Then ONNX serves it within the default tolerance, or scikit-learn does for the expected reason
    expected = shape.expected()
    if expected == ONNX:
        assert manifest["runtime"] == ONNX, manifest.get("runtime_fallback")
        assert Parity(**manifest["parity"]).checked_difference <= DEFAULT_TOLERANCE
        assert manifest["parity"].get("labels_identical") in (True, None)
    else:
        assert manifest["runtime"] == "sklearn"
        assert manifest["runtime_fallback"].startswith(expected), manifest["runtime_fallback"]


def test_at_least_30_shapes_and_90_percent_served_by_onnx() -> None:
    served = [shape for shape in SHAPES if shape.expect == ONNX]
    assert len(SHAPES) >= 30
    assert len(served) >= 0.9 * len(SHAPES)
    assert len({shape.name for shape in SHAPES}) == len(SHAPES)


def test_the_coverage_table_lists_every_shape_once() -> None:
    table = coverage_table()
    assert all(table.count(f"`{shape.name}`") == 1 for shape in SHAPES)
    assert table.startswith("| Model shape | Served by |\n| --- | --- |\n")


@pytest.mark.parametrize("model", [RandomForestClassifier(**FOREST), HistGradientBoostingClassifier(**HIST)],
                         ids=["random_forest", "hist_gradient_boosting"])
def test_a_model_fitted_on_a_dataframe_is_served_by_onnx_as_scikit_learn_answers_on_held_out_rows(
        model: Any, customers: pd.DataFrame, tmp_path: Path) -> None:
    # Given a tree model fitted directly on a DataFrame of numbers and an ordinal-encoded column
    case = fitted_case(tmp_path / "case", customers, model, WITH_GAPS, "segment")

    # When it is packaged, then loaded as the handler loads it
    packaged(case, tmp_path / "out")
    served = load_model(Settings(model_dir=tmp_path / "out"))

    # Then ONNX serves the held-out rows with scikit-learn's labels and probabilities
    assert served.manifest.runtime == ONNX
    holdout = customers.iloc[TRAIN_ROWS:][WITH_GAPS]
    instances = [{name: None if pd.isna(value) else value.item() if isinstance(value, np.generic) else value
                  for name, value in row.items()} for row in holdout.to_dict(orient="records")]
    answers = served.predictor.predict(served.validator.validate({"instances": instances}))
    probabilities = model.predict_proba(holdout)
    assert [answer["label"] for answer in answers] == model.predict(holdout).tolist()
    got = np.array([[answer["probabilities"][str(label)] for label in model.classes_] for answer in answers])
    np.testing.assert_allclose(got, probabilities, rtol=0, atol=DEFAULT_TOLERANCE)


def test_tree_parity_rows_sit_at_and_next_to_the_fitted_thresholds(customers: pd.DataFrame,
                                                                   tmp_path: Path) -> None:
    # Given a forest fitted on raw columns, packaged
    case = fitted_case(tmp_path / "case", customers, RandomForestRegressor(**FOREST), NUMERIC, "spend")
    manifest = packaged(case, tmp_path / "out")
    model = joblib.load(case.model)
    base = pd.read_csv(case.sample)[NUMERIC].head(1).to_dict(orient="records")

    # When its threshold rows are built from one sample row
    rows = threshold_cases(read_manifest(tmp_path / "out"), model, base)

    # Then there are at most THRESHOLD_ROWS, all in the parity check, each changing one feature to a value
    # at most a float32 step from one of that feature's thresholds (integers: the two either side)
    thresholds = list(tree_thresholds(model, NUMERIC))
    assert 0 < len(rows) <= THRESHOLD_ROWS < manifest["parity"]["rows"]
    for row in rows:
        (name,) = [name for name in NUMERIC if row[name] != base[0][name]] or [None]
        if name is not None:
            assert any(abs(row[name] - threshold) <= max(0.5, abs(threshold) * 1e-6) if name != "tenure months"
                       else abs(row[name] - threshold) <= abs(threshold) * 1e-6
                       for feature, threshold in thresholds if feature == name)


def test_boosters_fall_back_naming_onnxmltools_when_it_is_missing(customers: pd.DataFrame, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # Given an XGBoost model, and no onnxmltools to convert it
    case = fitted(next(shape for shape in SHAPES if shape.needs == "xgboost"), customers, tmp_path / "case")
    monkeypatch.setitem(sys.modules, "onnxmltools", None)

    # When it is packaged
    manifest = packaged(case, tmp_path / "out")

    # Then scikit-learn serves it, and the reason says what to install
    assert manifest["runtime_fallback"] == ("unsupported_estimator: XGBClassifier needs onnxmltools "
                                            "(pip install onnxmltools)")


def test_the_readme_coverage_table_is_this_matrix():
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    shown = readme[readme.index("<!-- coverage:start -->\n") + len("<!-- coverage:start -->\n"):
                   readme.index("<!-- coverage:end -->")]
    assert shown == coverage_table()
