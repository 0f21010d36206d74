"""Plain helpers for the packager tests: tiny data, pipelines, saved cases (fixtures live in conftest.py)."""

from __future__ import annotations

import atexit
import functools
import json
import operator
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from builder.demo_model import NAME, TARGET, VERSION, fit_demo_model
from builder.packager import package_model

FEATURES = ["age", "income", "plan", "region", "is_member"]
ARRAY_FEATURES = ["age", "visits", "plan_code"]
PLANS = ["basic", "plus", "pro"]
REGIONS = ["east", "north", "south"]
TRAIN_ROWS = 240


@dataclass(frozen=True)
class Case:
    """A fitted model saved with joblib, the CSV sample it was fitted on and a labelled hold-out."""

    model: Path
    sample: Path
    holdout: Path
    target: str

    def argv(self, out: Path, **overrides: Any) -> list[str]:
        """CLI arguments for this case; an override of None leaves that option out, `a_b` stands for `--a-b`."""
        options = {"model": self.model, "sample": self.sample, "holdout": self.holdout,
                   "target": self.target, "out": out, **overrides}
        return [part for key, value in options.items() if value is not None
                for part in (f"--{key.replace('_', '-')}", str(value))]


@dataclass(frozen=True)
class CliResult:
    code: int
    stdout_lines: list[str]
    stderr_lines: list[str]


def make_members(n_rows: int = 300, seed: int = 3) -> pd.DataFrame:
    """Gym members: numbers with gaps, strings with gaps, a flag, a 0/1 label and a spend amount."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, n_rows)
    plan = rng.choice(PLANS, n_rows)
    is_member = rng.random(n_rows) < 0.4
    noise = rng.normal(0, 1, n_rows)
    return pd.DataFrame({
        "age": age,
        "income": pd.Series(rng.normal(50_000, 15_000, n_rows).round(2)).mask(rng.random(n_rows) < 0.1),
        "plan": plan,
        "region": pd.Series(rng.choice(REGIONS, n_rows)).mask(rng.random(n_rows) < 0.1),
        "is_member": is_member,
        "visits": rng.poisson(6, n_rows),
        "plan_code": pd.Series(plan).map({name: code for code, name in enumerate(PLANS)}),
        "churned": (0.04 * (age - 50) + (plan == "pro") - 0.8 * is_member + noise > 0).astype(np.int64),
        "spend": (20 + 0.5 * age + 30 * (plan == "pro") + 5 * noise).round(2),
    })


def frame_pipeline(model: Any) -> Pipeline:
    """A DataFrame-fed pipeline: an encoder that rejects unknown values and one that ignores them."""
    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    region = Pipeline([("impute", SimpleImputer(strategy="constant", fill_value="missing")),
                       ("encode", OneHotEncoder(handle_unknown="ignore"))])
    features = ColumnTransformer([
        ("numeric", numeric, ["age", "income"]),
        ("plan", OrdinalEncoder(handle_unknown="error"), ["plan"]),
        ("region", region, ["region"]),
        ("member", "passthrough", ["is_member"]),
    ])
    return Pipeline([("features", features), ("model", model)])


def array_pipeline() -> Pipeline:
    """An array-fed pipeline selecting columns by position."""
    features = ColumnTransformer([("scale", StandardScaler(), [0, 1]),
                                  ("plan", OneHotEncoder(handle_unknown="error"), [2])])
    return Pipeline([("features", features), ("model", LogisticRegression())])


def save_case(directory: Path, model: Any, sample: pd.DataFrame, holdout: pd.DataFrame, target: str) -> Case:
    directory.mkdir(parents=True, exist_ok=True)
    case = Case(directory / "model.joblib", directory / "sample.csv", directory / "holdout.csv", target)
    joblib.dump(model, case.model)
    sample.to_csv(case.sample, index=False)
    holdout.to_csv(case.holdout, index=False)
    return case


def fitted_case(directory: Path, members: pd.DataFrame, model: Any, features: list[str], target: str, *,
                as_array: bool = False) -> Case:
    """model fitted on the training rows of members (as one float array if as_array), saved as a Case."""
    train, holdout = members.iloc[:TRAIN_ROWS], members.iloc[TRAIN_ROWS:]
    inputs = train[features].to_numpy(dtype=np.float64) if as_array else train[features]
    columns = features + [target]
    return save_case(directory, model.fit(inputs, train[target]), train[columns], holdout[columns], target)


def packaged(case: Case, out_dir: Path, **options: Any) -> dict[str, Any]:
    """Package a case with its hold-out and return manifest.json as written."""
    package_model(case.model, case.sample, out_dir=out_dir, holdout_path=case.holdout, target=case.target,
                  **options)
    return json.loads((out_dir / "manifest.json").read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Demo:
    """The demo model: its fitted pipeline saved as a Case, and the directory it was packaged into."""

    case: Case
    model_dir: Path


@cache
def demo() -> Demo:
    """The demo churn model, fitted by builder.demo_model and packaged into a temporary directory once per process.

    Tests of the machinery use it; model_artifacts/ holds whatever model the project ships, which may be any other.
    """
    directory = Path(tempfile.mkdtemp(prefix="demo-model-"))
    atexit.register(shutil.rmtree, directory, True)
    model, train, holdout = fit_demo_model()
    case = save_case(directory, model, train, holdout, TARGET)
    model_dir = directory / "model_artifacts"
    packaged(case, model_dir, name=NAME, version=VERSION)
    return Demo(case, model_dir)


def handler_frame(manifest: dict[str, Any]) -> pd.DataFrame:
    """The example request as the handler feeds it to a DataFrame model: manifest order and dtypes."""
    features = manifest["features"]
    frame = pd.DataFrame(manifest["example"]["instances"], columns=[f["name"] for f in features])
    return frame.astype({f["name"]: f["dtype"] for f in features})


def edited_csv(source: Path, destination: Path, edit: Callable[[pd.DataFrame], pd.DataFrame]) -> Path:
    """A copy of a CSV file with its table changed by edit."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    edit(pd.read_csv(source)).to_csv(destination, index=False)
    return destination


def tree_snapshot(directory: Path) -> dict[str, bytes | None]:
    """Every path below directory with its bytes (None for directories)."""
    return {str(path.relative_to(directory)): None if path.is_dir() else path.read_bytes()
            for path in sorted(directory.rglob("*"))}


# Python code for a FunctionTransformer that skl2onnx cannot convert; from the standard library, so it ships to Lambda
# (a function of the user's own module is refused at packaging).
doubled = functools.partial(operator.mul, 2)


class MajorityClassifier(ClassifierMixin, BaseEstimator):
    """Always the most frequent class: an estimator skl2onnx has no converter for."""

    def fit(self, features: Any, labels: Any) -> MajorityClassifier:
        self.classes_, counts = np.unique(labels, return_counts=True)
        self.shares_ = counts / counts.sum()
        return self

    def predict_proba(self, features: Any) -> np.ndarray:
        return np.tile(self.shares_, (len(features), 1))

    def predict(self, features: Any) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(features), axis=1)]


class ForgetfulClassifier(ClassifierMixin, BaseEstimator):
    """Predicts one class, and the other one after each pickle round trip."""

    def fit(self, features: Any, labels: Any) -> ForgetfulClassifier:
        self.classes_ = np.unique(labels)
        self.flipped_ = False
        return self

    def predict(self, features: Any) -> np.ndarray:
        return np.full(len(features), self.classes_[int(self.flipped_)])

    def __getstate__(self) -> dict[str, Any]:
        return {**super().__getstate__(), "flipped_": not self.flipped_}
