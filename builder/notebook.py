"""Package a fitted estimator from a notebook: in-memory objects in, the packager's own run, a summary out.

`package()` saves the estimator with joblib and the frames as CSV files in a temporary directory, then
runs `python -m builder.packager` on those files in a fresh interpreter: the same code path as the CLI,
and the same manifest as the CLI on that saved file (a pickle's bytes depend on which strings the process
interned before loading it, so packaging inside a notebook's long-lived process could pin other bytes).
Against a CLI run on the model's original file, `sklearn_sha256` can differ for models whose pickle changes
on a load/dump cycle (a RandomForest's does): each manifest pins the bytes it wrote. That interpreter is this
one when it holds the `build` group's pins (the project's `.venv` as a Jupyter kernel), else the project's
`.venv/bin/python`: from a notebook kernel with its own scikit-learn, a model pickled there is packaged
in an export environment of that version, as the CLI does.

    from builder import package
    summary = package(pipeline, X_train.sample(500, random_state=0), name="churn", version="1")"""

from __future__ import annotations

import html
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import joblib
import pandas as pd

from builder.bundler import project_name, runtime_pins
from builder.errors import PackagingError
from handler.config import MODEL_DIR_NAME
from handler.manifest import MANIFEST_FILE, Feature, Manifest, Parity, read_manifest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROJECT_PYTHON = PROJECT_ROOT / ".venv" / "bin" / "python"
BUILD_GROUP = "build"  # the pins packaging runs under: they are what the manifest records and parity proves


@dataclass(frozen=True)
class PackageSummary:
    """What `package()` wrote: the manifest and where it lives; renders as text and as a Jupyter table."""

    manifest: Manifest
    out_dir: Path

    @property
    def runtime(self) -> str:
        return self.manifest.runtime

    @property
    def parity(self) -> Parity | None:
        return self.manifest.parity

    @property
    def fallback_reason(self) -> str | None:
        """Why scikit-learn serves the model rather than ONNX (None when ONNX serves it, or was not tried)."""
        return self.manifest.runtime_fallback

    @property
    def features(self) -> list[Feature]:
        return self.manifest.features

    @property
    def sha256(self) -> str:
        return self.manifest.sha256

    @property
    def artifact_path(self) -> Path:
        return self.out_dir / self.manifest.artifact

    @property
    def manifest_path(self) -> Path:
        return self.out_dir / MANIFEST_FILE

    def rows(self) -> list[tuple[str, str]]:
        """(label, text) pairs: what both renderings show."""
        manifest = self.manifest
        rows = [("model", f"{manifest.name} {manifest.version} ({manifest.task}, {manifest.input_format} input)"),
                ("runtime", manifest.runtime), ("parity", _parity_text(manifest.parity))]
        if manifest.runtime_fallback:
            rows.append(("onnx not used", manifest.runtime_fallback))
        rows += [("scikit-learn", manifest.versions.get("scikit-learn", "?")),
                 ("artifact", f"{self.artifact_path} (sha256 {manifest.sha256[:12]}…)"),
                 ("manifest", str(self.manifest_path))]
        if manifest.metrics:
            rows.append(("hold-out", ", ".join(f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}"
                                               for key, value in manifest.metrics.items())))
        rows += [(f"feature {feature.name}", _feature_text(feature)) for feature in manifest.features]
        return rows

    def __repr__(self) -> str:
        width = max(len(label) for label, _ in self.rows())
        return "\n".join(f"{label:<{width}}  {text}" for label, text in self.rows())

    def _repr_html_(self) -> str:
        cells = "".join(f"<tr><th style='text-align:left'>{html.escape(label)}</th>"
                        f"<td style='text-align:left'>{html.escape(text)}</td></tr>" for label, text in self.rows())
        return f"<table>{cells}</table>"


def _parity_text(parity: Parity | None) -> str:
    if parity is None:
        return "not checked"
    verdict = "passed" if parity.passed else "missed"
    relation = "<=" if parity.checked_difference <= parity.tolerance else ">"
    measure = "|ONNX - scikit-learn|" if parity.max_scaled_difference is None else "|ONNX - scikit-learn| / max(1, |y|)"
    labels = {None: "", True: ", labels identical", False: ", labels differ"}[parity.labels_identical]
    return (f"{verdict}: max {measure} {parity.checked_difference:.2g} {relation} {parity.tolerance:g} "
            f"over {parity.rows} rows{labels}")


def _feature_text(feature: Feature) -> str:
    parts = [feature.type, "nullable" if feature.nullable else "required"]
    if feature.minimum is not None:
        parts.append(f"{feature.minimum} to {feature.maximum}")
    if feature.categories:
        parts.append(f"{len(feature.categories)} categories ({feature.unknown_category} unknown)")
    return ", ".join(parts)


def package(estimator: Any, sample_frame: pd.DataFrame, *, name: str, version: str,
            holdout: pd.DataFrame | None = None, target: str | None = None, out: str | Path = MODEL_DIR_NAME,
            runtime: str = "auto", parity_tolerance: float | None = None) -> PackageSummary:
    """Package a fitted estimator exactly as `python -m builder.packager` does, from in-memory objects.

    sample_frame is a sample of the training data, one column per model input (a DataFrame: its
    column names become the API's field names); holdout is a labelled hold-out with the target column.
    A relative out is resolved against the current directory, as the CLI does: in a notebook that is
    the notebook's folder, so pass the project's model_artifacts/ path to serve the model from there.
    parity_tolerance None keeps the packager's default. Raises PackagingError with the CLI's `error:` line.
    """
    out_dir = Path(out).resolve()
    python = packager_python()
    with tempfile.TemporaryDirectory(prefix="package-") as scratch:
        inputs = _saved_inputs(Path(scratch), estimator, sample_frame, holdout)
        options = {"--model": inputs["model"], "--sample": inputs["sample"], "--holdout": inputs.get("holdout"),
                   "--target": target, "--name": name, "--version": version, "--out": out_dir,
                   "--runtime": runtime, "--parity-tolerance": None if parity_tolerance is None else repr(parity_tolerance)}
        arguments = [part for option, value in options.items() if value is not None for part in (option, str(value))]
        done = subprocess.run([str(python), "-m", "builder.packager", *arguments], cwd=PROJECT_ROOT,
                              capture_output=True, text=True, check=False)
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["the packager failed silently"])[-1]
        raise PackagingError(last.removeprefix("error: "))
    return PackageSummary(read_manifest(out_dir), out_dir)


def _saved_inputs(scratch: Path, estimator: Any, sample_frame: Any, holdout: Any) -> dict[str, Path]:
    """The estimator as model.joblib and the frames as CSV files (no index column), as the CLI takes them."""
    for what, frame in (("sample_frame", sample_frame), ("holdout", holdout)):
        if frame is not None and not isinstance(frame, pd.DataFrame):
            raise PackagingError(f"{what} must be a pandas DataFrame, not {type(frame).__name__}; for a model "
                                 "fitted on an array, name its columns: pd.DataFrame(X, columns=[...])")
    paths = {"model": scratch / "model.joblib", "sample": scratch / "sample.csv"}
    joblib.dump(estimator, paths["model"])
    sample_frame.to_csv(paths["sample"], index=False)
    if holdout is not None:
        paths["holdout"] = scratch / "holdout.csv"
        holdout.to_csv(paths["holdout"], index=False)
    return paths


def packager_python() -> Path:
    """This interpreter when it holds every pin of the build group, else the project's .venv Python."""
    mismatch = build_pin_mismatch()
    if mismatch is None:
        return Path(sys.executable)
    if not PROJECT_PYTHON.exists() or PROJECT_PYTHON.resolve() == Path(sys.executable).resolve():
        raise PackagingError(f"this Python cannot package: {mismatch}; run `make run` once in {PROJECT_ROOT} "
                             "to create .venv, then package from there or from this kernel again")
    return PROJECT_PYTHON


def build_pin_mismatch() -> str | None:
    """None when this interpreter holds every pin of the build group, else the first difference."""
    for pin in runtime_pins(PROJECT_ROOT / "pyproject.toml", BUILD_GROUP):
        distribution, pinned = project_name(pin), pin.split("==", 1)[1]
        try:
            installed = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            return f"{distribution} is not installed (the project pins {pinned})"
        if installed != pinned:
            return f"{distribution} is {installed} (the project pins {pinned})"
    return None
