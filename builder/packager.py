"""Package a fitted scikit-learn estimator into model_artifacts/: the joblib artifact, its ONNX export, its manifest,
its training profile and its model card.

The manifest describes the input the model expects (read from the estimator and a sample of
its training data), pins the artifact by sha256 and the library versions that pickled it, pins the
training profile (profile.json: the sample's distributions, for drift checks), and records hold-out
scores; model_card.md and profile.png describe the model for people. The model is served by
onnxruntime (model.onnx) when it converts and matches scikit-learn on the sample and edge cases,
else by scikit-learn (see builder.onnx_export).
Every check runs before anything is written, and the output directory is replaced by two renames with signals
held off, so a failed or interrupted run leaves it untouched. Only a directory the packager wrote (or an empty one)
is ever replaced.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import signal
import sys
from dataclasses import replace
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import sklearn
from sklearn.base import is_classifier, is_regressor
from sklearn.utils.validation import check_is_fitted

from builder.artifacts import NEW, check_replaceable, swap_into_place, workspace, write_openapi
from builder.errors import PackagingError, foreign
from builder.export_env import ExportEnvError, ensure_export_env, run_in_export_env
from builder.features import (aligned_columns, example_request, infer_features, json_native, model_input, records,
                              typed_frame, without_column)
from builder.metrics import holdout_metrics
from builder.model_card import write_model_card
from builder.onnx_export import DEFAULT_TOLERANCE, OnnxRefused, export_onnx
from builder.pickle_version import PickleFacts, PickleVersionError, read_pickle_facts
from builder.profile import training_profile, write_profile
from handler.capture import read_profile
from handler.config import MODEL_DIR_NAME
from handler.manifest import Manifest, read_manifest, sha256_file, write_manifest
from handler.runtimes import RUNTIMES

ARTIFACT = "model.joblib"
ONNX_ARTIFACT = "model.onnx"
RUNTIME_CHOICES = ("auto", "onnx", "sklearn")
DEFAULT_OUT_DIR = Path(MODEL_DIR_NAME)
# Code a pickled pipeline may call: what every Lambda bundle ships (its runtime's libraries, the standard library).
SHIPPED_PACKAGES = frozenset({"sklearn", "numpy", "scipy", "pandas", "joblib"})
# Exit statuses of a run stopped by Ctrl-C or SIGTERM, as a shell reports them (128 + the signal's number).
INTERRUPTED_STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}


class Interrupted(BaseException):
    """SIGTERM arrived: unwinds like Ctrl-C's KeyboardInterrupt, so scratch directories are removed on the way."""


def package_model(model_path: Path, sample_path: Path, *, out_dir: Path = DEFAULT_OUT_DIR,
                  name: str | None = None, version: str = "1", holdout_path: Path | None = None,
                  target: str | None = None, runtime: str = "auto",
                  parity_tolerance: float = DEFAULT_TOLERANCE) -> Manifest:
    """Check the model against its sample, then write model.joblib, model.onnx (when onnx serves it),
    profile.json, manifest.json, openapi.json and the model card into out_dir.
    runtime is auto (onnx when it matches scikit-learn), onnx or sklearn.

    A model pickled by another scikit-learn version is never unpickled here: the same packaging runs in an
    export environment of that version (built once, cached under build/export-envs/)."""
    check_replaceable(out_dir)  # before any work: a directory of the user's files is never replaced
    facts = pickle_facts(_existing(model_path, "model"))
    if facts.sklearn_version not in (None, sklearn.__version__):  # None: no scikit-learn object names one
        arguments = cli_arguments(model_path, sample_path, out_dir=out_dir, name=name, version=version,
                                  holdout_path=holdout_path, target=target, runtime=runtime,
                                  parity_tolerance=parity_tolerance)
        return package_in_export_env(facts, arguments, out_dir)
    model = load_model(model_path)
    check_shipped_code(model)
    task = model_task(model)
    classes = class_labels(model) if task == "classification" else None
    input_format = "dataframe" if hasattr(model, "feature_names_in_") else "array"
    sample = aligned_columns(model, without_column(read_table(sample_path, "sample"), target), "sample")
    features = infer_features(model, sample)
    typed_sample = typed_frame(sample, features, "sample")
    sample_input = model_input(typed_sample, input_format)
    expected = predictions(model, sample_input)
    metrics = None if holdout_path is None else holdout_metrics(
        model, task, read_table(holdout_path, "hold-out"), target, features, input_format)
    with workspace(out_dir) as scratch:
        staged = scratch / NEW
        staged.mkdir()
        joblib.dump(model, staged / ARTIFACT)
        check_reload(expected, staged / ARTIFACT, sample_input)
        manifest = Manifest(
            name=name or model_path.stem, version=version, created_at=build_time(), task=task,
            input_format=input_format, features=features, example=example_request(typed_sample),
            artifact=ARTIFACT, sha256=sha256_file(staged / ARTIFACT),
            versions=library_versions(input_format), runtime="sklearn",
            classes=classes, metrics=metrics,
        )
        manifest = select_runtime(manifest, model, records(typed_sample), staged, runtime, parity_tolerance)
        manifest = pin_training_profile(manifest, typed_sample, expected[0], staged)
        write_manifest(manifest, staged)
        write_openapi(manifest, staged)
        write_card(manifest, staged)
        swap_into_place(staged, out_dir, scratch)
    return manifest


def pickle_facts(path: Path) -> PickleFacts:
    """Which scikit-learn (and numpy) pickled the model, read from its bytes without unpickling it."""
    try:
        return read_pickle_facts(path)
    except PickleVersionError as error:
        raise PackagingError(str(error)) from None


def cli_arguments(model_path: Path, sample_path: Path, *, out_dir: Path, name: str | None, version: str,
                  holdout_path: Path | None, target: str | None, runtime: str, parity_tolerance: float) -> list[str]:
    """The packager's command line for these arguments (absolute paths: the export environment runs elsewhere)."""
    options = {"--model": model_path.resolve(), "--sample": sample_path.resolve(), "--out": out_dir.resolve(),
               "--name": name, "--version": version, "--holdout": holdout_path and holdout_path.resolve(),
               "--target": target, "--runtime": runtime, "--parity-tolerance": repr(parity_tolerance)}
    return [part for option, value in options.items() if value is not None for part in (option, str(value))]


def package_in_export_env(facts: PickleFacts, arguments: list[str], out_dir: Path) -> Manifest:
    """Run this packager in an environment of the pickle's scikit-learn version; its manifest, as written."""
    try:
        env = ensure_export_env(facts.sklearn_version, facts.numpy_major)
    except ExportEnvError as error:  # its message names the version found, the one expected and the remedy
        raise PackagingError(str(error)) from None
    done = run_in_export_env(env, "builder.packager", arguments)
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["the export environment's packager failed silently"])[-1]
        raise PackagingError(f"in the scikit-learn {facts.sklearn_version} export environment: "
                             f"{last.removeprefix('error: ')}")
    return read_manifest(out_dir)


def _existing(path: Path, what: str) -> Path:
    if not path.is_file():
        raise PackagingError(f"{what} {path} not found")
    return path


def load_model(path: Path) -> Any:
    """Load a fitted estimator saved with joblib (a version mismatch warning is an error)."""
    with foreign(f"cannot load model {path} with joblib"):
        model = joblib.load(_existing(path, "model"))
    if not callable(getattr(model, "predict", None)):
        raise PackagingError(f"model {path} holds a {type(model).__name__}, not an estimator with predict")
    with foreign(f"model {path} is not a fitted estimator"):
        check_is_fitted(model)
    return model


def check_shipped_code(model: Any) -> None:
    """Refuse a pipeline calling a function that would not be there in Lambda (only handler/ and libraries ship).

    FunctionTransformer(func=mymodule.f) pickles a reference to mymodule: it loads here and fails at init in
    Lambda with ModuleNotFoundError. Every callable among the estimator's parameters must come from scikit-learn,
    numpy, scipy, pandas, joblib or the standard library.
    """
    with foreign("cannot read the model's parameters"):
        params = model.get_params(deep=True) if hasattr(model, "get_params") else {}
    for name, value in params.items():
        while isinstance(value, functools.partial):
            value = value.func
        if hasattr(value, "get_params") or not callable(value):
            continue  # an estimator: its own parameters are among these (deep=True)
        module = getattr(value, "__module__", None) or "an unknown module"
        root = module.split(".")[0]
        if root not in SHIPPED_PACKAGES and (root == "__main__" or root not in sys.stdlib_module_names):
            function = getattr(value, "__qualname__", type(value).__name__)
            raise PackagingError(f"parameter {name} calls {function} from module {module}, which does not ship "
                                 "to Lambda (only handler/ and the runtime's libraries do): use a function of "
                                 "scikit-learn, numpy, scipy, pandas or the standard library")


def model_task(model: Any) -> str:
    """classification or regression, from scikit-learn's estimator tags."""
    with foreign(f"cannot tell what task {type(model).__name__} does"):
        classifier, regressor = is_classifier(model), is_regressor(model)
    if classifier:
        return "classification"
    if regressor:
        return "regression"
    raise PackagingError(f"{type(model).__name__} is neither a classifier nor a regressor")


def class_labels(model: Any) -> list[Any]:
    """The classifier's classes as JSON values; one output only."""
    labels = getattr(model, "classes_", None)
    if labels is None or any(np.ndim(label) for label in labels):
        raise PackagingError(f"{type(model).__name__} has no single list of classes_ "
                             "(multi-output classifiers are not supported)")
    return [json_native(label) for label in labels]


def read_table(path: Path, what: str) -> pd.DataFrame:
    """A CSV file with a header row and at least one data row."""
    with foreign(f"cannot read {what} {path}"):
        table = pd.read_csv(_existing(path, what), low_memory=False)
    if table.empty:
        raise PackagingError(f"{what} {path} has no rows")
    return table


def predictions(model: Any, inputs: Any) -> list[np.ndarray]:
    """predict, and predict_proba where the model has it."""
    with foreign("the model cannot predict on the sample"):
        return [getattr(model, method)(inputs) for method in ("predict", "predict_proba")
                if hasattr(model, method)]


def check_reload(expected: list[np.ndarray], artifact: Path, inputs: Any) -> None:
    """The saved artifact, loaded back, must predict exactly as the model in memory did (expected)."""
    with foreign("cannot load the saved artifact back"):
        reloaded = joblib.load(artifact)
    actual = predictions(reloaded, inputs)
    if not all(np.array_equal(before, after) for before, after in zip(expected, actual)):
        raise PackagingError("the model predicts differently after a joblib round trip")


def select_runtime(manifest: Manifest, model: Any, sample: list[dict[str, Any]], staged: Path, runtime: str,
                   tolerance: float) -> Manifest:
    """The sklearn manifest, or one serving model.onnx when the export matches scikit-learn.

    With runtime "onnx" a refused export is an error; with "auto" the manifest records why it fell back.
    """
    if runtime not in RUNTIME_CHOICES:
        raise PackagingError(f"runtime must be one of {', '.join(RUNTIME_CHOICES)}, not {runtime}")
    if runtime == "sklearn":
        return manifest
    try:
        export = export_onnx(manifest, model, sample, tolerance)
    except OnnxRefused as refusal:
        if runtime == "onnx":
            raise PackagingError(f"--runtime onnx is not possible: {refusal.reason}") from None
        return replace(manifest, runtime_fallback=refusal.reason, parity=refusal.parity)
    (staged / ONNX_ARTIFACT).write_bytes(export.model)
    return replace(manifest, runtime="onnx", artifact=ONNX_ARTIFACT, sha256=sha256_file(staged / ONNX_ARTIFACT),
                   sklearn_artifact=manifest.artifact, sklearn_sha256=manifest.sha256, parity=export.parity,
                   versions=library_versions(manifest.input_format, "onnx"))


def pin_training_profile(manifest: Manifest, typed_sample: pd.DataFrame, predicted: np.ndarray,
                         staged: Path) -> Manifest:
    """Write profile.json (the sample's and its predictions' distributions) and pin it in the manifest."""
    with foreign("cannot profile the sample"):
        profile = training_profile(manifest.features, typed_sample, predicted, manifest.classes)
    name, sha256 = write_profile(profile, staged)
    return replace(manifest, profile=name, profile_sha256=sha256)


def write_card(manifest: Manifest, staged: Path) -> None:
    """model_card.md and profile.png, from the profile read back as the handler reads it (so it is proven to load)."""
    try:
        write_model_card(manifest, read_profile(staged, manifest), staged)
    except ImportError as error:  # matplotlib draws the card's plot
        raise PackagingError(f"cannot write the model card: {error} (install the build dependencies)") from None


def library_versions(input_format: str, runtime: str = "sklearn") -> dict[str, str]:
    """The versions that pickled the artifact (it only loads under the same ones), and exported it to ONNX."""
    distributions = [*RUNTIMES[runtime].recorded_versions] + (["pandas"] if input_format == "dataframe" else [])
    return {"python": platform.python_version(),
            **{distribution: metadata.version(distribution) for distribution in distributions}}


def build_time() -> str:
    """Now in UTC, or SOURCE_DATE_EPOCH when set, so that rebuilds can be reproducible."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    try:
        moment = datetime.now(UTC) if epoch is None else datetime.fromtimestamp(int(epoch), UTC)
    except (ValueError, OverflowError):
        raise PackagingError(f"SOURCE_DATE_EPOCH must be whole seconds since 1970, not {epoch}") from None
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m builder.packager",
        description="Package a fitted scikit-learn estimator (joblib) into a directory holding "
                    "model.joblib, model.onnx (when onnxruntime can serve it), manifest.json, the training "
                    "profile and a model card, after checking it against a sample of its input.")
    parser.add_argument("--model", type=Path, required=True, help="fitted estimator saved with joblib")
    parser.add_argument("--sample", type=Path, required=True,
                        help="CSV sample of the training data, one column per model input")
    parser.add_argument("--holdout", type=Path, help="labelled hold-out CSV to score (needs --target)")
    parser.add_argument("--target", help="label column: scored in the hold-out, dropped from the sample")
    parser.add_argument("--name", help="model name (default: the model file's stem)")
    parser.add_argument("--version", default="1", help="model version (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT_DIR,
                        help="output directory, replaced as a whole; must be new, empty or written by the "
                             "packager (default: %(default)s)")
    parser.add_argument("--runtime", choices=RUNTIME_CHOICES, default="auto",
                        help="what serves the model: onnx when its export matches scikit-learn (auto), "
                             "onnx or an error, or sklearn (default: %(default)s)")
    parser.add_argument("--parity-tolerance", type=tolerance, default=DEFAULT_TOLERANCE,
                        help="largest absolute difference between ONNX and scikit-learn probabilities "
                             "or values that onnx may serve with (default: %(default)g)")
    return parser.parse_args(argv)


def tolerance(text: str) -> float:
    """A --parity-tolerance value: a finite number >= 0."""
    value = float(text)
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, not {text}")
    return value


def _terminate(signal_number: int, _: Any) -> None:
    raise Interrupted(signal_number)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        manifest = package_model(args.model, args.sample, out_dir=args.out, name=args.name,
                                 version=args.version, holdout_path=args.holdout, target=args.target,
                                 runtime=args.runtime, parity_tolerance=args.parity_tolerance)
    except (PackagingError, OSError) as error:
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Interrupted) as stop:
        # Scratch was removed while the interruption unwound; the swap holds signals, so out is never half-written.
        received = stop.args[0] if isinstance(stop, Interrupted) else signal.SIGINT
        print(f"interrupted: no scratch left behind, {args.out} holds a complete model or none", file=sys.stderr)
        return INTERRUPTED_STATUS[received]
    finally:
        signal.signal(signal.SIGTERM, previous)
    fallback = f"; onnx not used: {manifest.runtime_fallback}" if manifest.runtime_fallback else ""
    print(f"packaged {manifest.name} {manifest.version} into {args.out} "
          f"(runtime {manifest.runtime}, sha256 {manifest.sha256[:12]}){fallback}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
