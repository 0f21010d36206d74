"""Train the demo customer-churn model and package it into model_artifacts/.

Deterministic: a seeded synthetic data set, a seeded split and a seeded model, so a rerun
predicts exactly as the committed artifact does. Run with `python -m builder.demo_model`.
"""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from builder.packager import package_model

ROOT = Path(__file__).resolve().parent.parent
BUILD_DIR = ROOT / "build" / "demo"
ARTIFACTS_DIR = ROOT / "model_artifacts"
NAME, VERSION = "customer-churn", "1.0.0"
TARGET = "churn"
NUMERIC = ["tenure_months", "monthly_charges", "total_charges", "support_calls"]
CATEGORICAL = ["contract", "payment_method", "internet_service"]
N_ROWS, SEED = 4000, 20240611
CONTRACTS = {"month-to-month": 0.55, "one-year": 0.25, "two-year": 0.20}
PAYMENT_METHODS = {"electronic check": 0.35, "mailed check": 0.20, "bank transfer": 0.23, "credit card": 0.22}
INTERNET_SERVICES = {"dsl": 0.35, "fiber optic": 0.45, "no internet": 0.20}
BASE_CHARGE = {"dsl": 55.0, "fiber optic": 85.0, "no internet": 22.0}


def _pick(rng: np.random.Generator, shares: dict[str, float], n_rows: int) -> np.ndarray:
    return rng.choice(list(shares), size=n_rows, p=list(shares.values()))


def _with_missing(rng: np.random.Generator, values: pd.Series, share: float) -> pd.Series:
    return values.mask(rng.random(len(values)) < share)


def make_customers(n_rows: int = N_ROWS, seed: int = SEED) -> pd.DataFrame:
    """Synthetic telecom customers whose churn follows a logistic model of their features plus noise."""
    rng = np.random.default_rng(seed)
    contract = _pick(rng, CONTRACTS, n_rows)
    internet = _pick(rng, INTERNET_SERVICES, n_rows)
    payment = _pick(rng, PAYMENT_METHODS, n_rows)
    loyalty = pd.Series(contract).map({"month-to-month": 12.0, "one-year": 30.0, "two-year": 48.0})
    tenure = np.clip(rng.gamma(2.0, loyalty / 2.0), 0, 72).astype(np.int64)
    monthly = np.round(np.clip(pd.Series(internet).map(BASE_CHARGE) + rng.normal(0, 10, n_rows), 18, None), 2)
    total = pd.Series(np.round(tenure * monthly * rng.uniform(0.95, 1.05, n_rows), 2)).where(tenure > 0)
    support_calls = rng.poisson(1.0 + 0.8 * (internet == "fiber optic"))
    logit = (-1.7 + 1.3 * (contract == "month-to-month") - 0.9 * (contract == "two-year")
             - 0.045 * tenure + 0.025 * (monthly - 60) + 0.35 * support_calls
             + 0.5 * (payment == "electronic check") + rng.normal(0, 0.5, n_rows))
    churn = np.where(rng.random(n_rows) < 1 / (1 + np.exp(-logit)), "yes", "no")
    return pd.DataFrame({
        "tenure_months": tenure,
        "monthly_charges": monthly,
        "total_charges": _with_missing(rng, total, 0.02),
        "support_calls": support_calls,
        "contract": contract,
        "payment_method": payment,
        "internet_service": _with_missing(rng, pd.Series(internet), 0.03),
        TARGET: churn,
    })


def build_pipeline() -> Pipeline:
    """Impute and scale numbers, impute and one-hot encode strings, then gradient boosting."""
    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    categorical = Pipeline([("impute", SimpleImputer(strategy="constant", fill_value="missing")),
                            ("encode", OneHotEncoder(handle_unknown="ignore"))])
    features = ColumnTransformer([("numeric", numeric, NUMERIC), ("categorical", categorical, CATEGORICAL)])
    return Pipeline([("features", features),
                     ("model", GradientBoostingClassifier(n_estimators=100, max_depth=3, random_state=0))])


def split_customers() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The training rows and the hold-out rows, both with the target."""
    customers = make_customers()
    train, holdout = train_test_split(customers, test_size=0.25, random_state=SEED,
                                      stratify=customers[TARGET])
    return train, holdout


def fit_demo_model() -> tuple[Pipeline, pd.DataFrame, pd.DataFrame]:
    """The fitted pipeline, its training rows and the hold-out rows (both with the target)."""
    train, holdout = split_customers()
    model = build_pipeline().fit(train.drop(columns=[TARGET]), train[TARGET])
    return model, train, holdout


def main() -> None:
    model, train, holdout = fit_demo_model()
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, BUILD_DIR / "model.joblib")
    train.to_csv(BUILD_DIR / "sample.csv", index=False)
    holdout.to_csv(BUILD_DIR / "holdout.csv", index=False)
    manifest = package_model(BUILD_DIR / "model.joblib", BUILD_DIR / "sample.csv",
                             holdout_path=BUILD_DIR / "holdout.csv", target=TARGET,
                             name=NAME, version=VERSION, out_dir=ARTIFACTS_DIR)
    print(f"hold-out metrics: {json.dumps(manifest.metrics)}")
    print(f"packaged {NAME} {VERSION} into {ARTIFACTS_DIR.relative_to(ROOT)} (runtime {manifest.runtime})")


if __name__ == "__main__":
    main()
