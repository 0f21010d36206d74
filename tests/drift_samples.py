"""The demo model with a training profile beside its manifest, and samples of new data: fresh or shifted."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from builder.demo_model import SEED, TARGET, make_customers
from tests.models import demo

SHIFTED_FEATURES = ["monthly_charges", "payment_method"]


def profiled_model_dir(directory: Path) -> Path:
    """A copy of the demo model directory: the packager pinned its training profile in the manifest."""
    return Path(shutil.copytree(demo().model_dir, directory))


def unprofiled_model_dir(directory: Path) -> Path:
    """A copy of the demo model directory as packaged before profiles: the manifest pins none."""
    model_dir = Path(shutil.copytree(demo().model_dir, directory))
    path = model_dir / "manifest.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    del data["profile"], data["profile_sha256"]
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    (model_dir / "profile.json").unlink()
    return model_dir


def fresh_customers(n_rows: int) -> pd.DataFrame:
    """New customers from the training distribution (another seed), without the target."""
    return make_customers(n_rows, seed=SEED + 1).drop(columns=[TARGET])


def shifted_customers(n_rows: int) -> pd.DataFrame:
    """New customers whose monthly charges rose by 30 and who mostly pay by electronic check."""
    customers = fresh_customers(n_rows)
    rng = np.random.default_rng(7)
    customers["monthly_charges"] = customers["monthly_charges"] + 30.0
    customers["payment_method"] = customers["payment_method"].mask(rng.random(n_rows) < 0.6, "electronic check")
    return customers


def instances(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows as request instances: plain values, None where missing."""
    part = frame.astype(object).where(frame.notna(), None)
    return [{key: value.item() if isinstance(value, np.generic) else value for key, value in row.items()}
            for row in part.to_dict(orient="records")]
