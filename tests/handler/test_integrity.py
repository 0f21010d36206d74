"""A broken or tampered model fails closed at init: one clear log line, a metric, 503 everywhere."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import joblib
import pytest
import sklearn.base

import handler.loading
from handler.manifest import sha256_file
from tests.helpers import response_json


def edit_manifest(model_dir: Path, **changes) -> None:
    path = model_dir / "manifest.json"
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def artifact(model_dir: Path) -> Path:
    """The file the manifest says the runtime loads (model.onnx or model.joblib)."""
    return model_dir / json.loads((model_dir / "manifest.json").read_text())["artifact"]


def repin(model_dir: Path) -> None:
    """Make the manifest's sha256 agree with the artifact again (a consistent but bad pair)."""
    edit_manifest(model_dir, sha256=sha256_file(artifact(model_dir)))


def flip_a_byte(model_dir: Path) -> None:
    path = artifact(model_dir)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def truncate(model_dir: Path) -> None:
    artifact(model_dir).write_bytes(artifact(model_dir).read_bytes()[:100])


def pickle_as_other_sklearn_version(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = joblib.load(artifact(model_dir))
    with monkeypatch.context() as patch:
        patch.setattr(sklearn.base, "__version__", "0.24.2")  # what __getstate__ records
        joblib.dump(model, artifact(model_dir))
    repin(model_dir)


def not_an_estimator(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    joblib.dump({"weights": [1, 2, 3]}, artifact(model_dir))
    repin(model_dir)


def rename_first_feature(model_dir: Path) -> None:
    features = json.loads((model_dir / "manifest.json").read_text())["features"]
    edit_manifest(model_dir, features=[{**features[0], "name": "renamed"}, *features[1:]])


def edit_feature(model_dir: Path, **changes) -> None:
    features = json.loads((model_dir / "manifest.json").read_text())["features"]
    edit_manifest(model_dir, features=[{**features[0], **changes}, *features[1:]])


def write_manifest_text(model_dir: Path, text: str | bytes) -> None:
    path = model_dir / "manifest.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())


def replace_artifact(model_dir: Path, make: Callable[[Path], None]) -> None:
    path = artifact(model_dir)
    path.unlink()
    make(path)


def raise_from_the_library(error: BaseException) -> Callable[[Path, pytest.MonkeyPatch], None]:
    """A library raising what no check foresaw while the artifact loads."""

    def inject(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        def load(manifest, artifact_bytes):
            raise error

        monkeypatch.setattr(handler.loading, "load_predictor", load)

    return inject


ANY_RUNTIME_FAULTS = {
    "flipped byte": (lambda d, m: flip_a_byte(d), "sha256_mismatch"),
    "truncated artifact": (lambda d, m: truncate(d), "sha256_mismatch"),
    "artifact missing": (lambda d, m: artifact(d).unlink(), "artifact_missing"),
    "manifest missing": (lambda d, m: (d / "manifest.json").unlink(), "manifest_missing"),
    "manifest not JSON": (lambda d, m: (d / "manifest.json").write_text("{"), "manifest_invalid"),
    "manifest without sha256": (lambda d, m: (d / "manifest.json").write_text(json.dumps(
        {k: v for k, v in json.loads((d / "manifest.json").read_text()).items() if k != "sha256"})),
        "manifest_invalid"),
    "manifest sha256 of another artifact": (lambda d, m: edit_manifest(d, sha256="a" * 64), "sha256_mismatch"),
    "manifest classes not the model's": (lambda d, m: edit_manifest(d, classes=["stay", "leave"]),
                                         "manifest_mismatch"),
    # init faults that crashed the import instead of failing closed
    "manifest not UTF-8": (lambda d, m: write_manifest_text(d, b'\xff\xfe{"name": "x"}'), "manifest_invalid"),
    "manifest nested past the recursion limit": (lambda d, m: write_manifest_text(d, "[" * 100_000 + "]" * 100_000),
                                                 "manifest_invalid"),
    "manifest integer of 5000 digits": (lambda d, m: write_manifest_text(
        d, (d / "manifest.json").read_text().replace('"schema_version": 1', '"schema_version": ' + "9" * 5000)),
        "manifest_invalid"),
    "manifest over 1 MB": (lambda d, m: write_manifest_text(d, (d / "manifest.json").read_text() + " " * 1_048_576),
                           "manifest_invalid"),
    "manifest is a FIFO": (lambda d, m: ((d / "manifest.json").unlink(), os.mkfifo(d / "manifest.json")),
                           "manifest_invalid"),
    "artifact name with a NUL byte": (lambda d, m: edit_manifest(d, artifact="model\u0000.onnx"), "manifest_invalid"),
    "feature name a list": (lambda d, m: edit_feature(d, name=["a"]), "manifest_invalid"),
    "feature name an object": (lambda d, m: edit_feature(d, name={"a": 1}), "manifest_invalid"),
    "categories a number": (lambda d, m: edit_feature(d, categories=3), "manifest_invalid"),
    "categories holding lists": (lambda d, m: edit_feature(d, categories=[["a"]]), "manifest_invalid"),
    "categories a string": (lambda d, m: edit_feature(d, categories="abc"), "manifest_invalid"),
    "nullable the string false": (lambda d, m: edit_feature(d, nullable="false"), "manifest_invalid"),
    "minimum a string": (lambda d, m: edit_feature(d, minimum="x"), "manifest_invalid"),
    "unknown dtype": (lambda d, m: edit_feature(d, dtype="complex256"), "manifest_invalid"),
    "version null": (lambda d, m: edit_manifest(d, version=None), "manifest_invalid"),
    "versions not an object": (lambda d, m: edit_manifest(d, versions=["1.9.1"]), "manifest_invalid"),
    "unknown top-level key": (lambda d, m: edit_manifest(d, owner="someone"), "manifest_invalid"),
    "artifact is a FIFO": (lambda d, m: replace_artifact(d, os.mkfifo), "artifact_invalid"),
    "artifact links to an endless device": (lambda d, m: replace_artifact(d, lambda p: p.symlink_to("/dev/zero")),
                                            "artifact_invalid"),
    "artifact over the size cap": (lambda d, m: m.setattr(handler.loading, "MAX_ARTIFACT_BYTES", 1000),
                                   "artifact_invalid"),
    "RecursionError from a library": (raise_from_the_library(RecursionError("maximum recursion depth")),
                                      "load_failed"),
    "MemoryError from a library": (raise_from_the_library(MemoryError()), "load_failed"),
    "TypeError from a library": (raise_from_the_library(TypeError("'NoneType' is not iterable")), "load_failed"),
    "OverflowError from a library": (raise_from_the_library(OverflowError("int too large")), "load_failed"),
}
SKLEARN_FAULTS = {
    "manifest claims another scikit-learn": (
        lambda d, m: edit_manifest(d, versions={"scikit-learn": "1.0.2"}), "version_mismatch"),
    "artifact pickled by another scikit-learn": (pickle_as_other_sklearn_version, "version_mismatch"),
    "artifact is not an estimator": (not_an_estimator, "not_an_estimator"),
    "manifest features not the model's columns": (lambda d, m: rename_first_feature(d), "manifest_mismatch"),
    "manifest features in another order": (lambda d, m: edit_manifest(d, features=json.loads(
        (d / "manifest.json").read_text())["features"][::-1]), "manifest_mismatch"),
}
ONNX_FAULTS = {
    "corrupt ONNX bytes, repinned": (lambda d, m: (truncate(d), repin(d)), "artifact_unloadable"),
    "manifest features not the model's inputs": (lambda d, m: rename_first_feature(d), "manifest_mismatch"),
}
FAULTS = {**{(runtime, name): fault for runtime in ("onnx", "sklearn") for name, fault in ANY_RUNTIME_FAULTS.items()},
          **{("sklearn", name): fault for name, fault in SKLEARN_FAULTS.items()},
          **{("onnx", name): fault for name, fault in ONNX_FAULTS.items()}}


@pytest.mark.parametrize(("runtime", "fault"), FAULTS, ids=[f"{runtime}: {name}" for runtime, name in FAULTS])
def test_fault_fails_closed_with_the_cause_named(
        runtime, fault, model_copy, sklearn_model_copy, reinitialised_handler, api_event, lambda_context,
        demo_manifest, monkeypatch, handler_logs, capsys):
    # Given a model directory, packaged for the runtime, with one fault injected
    model_dir = {"onnx": model_copy, "sklearn": sklearn_model_copy}[runtime]
    inject, cause = FAULTS[runtime, fault]
    inject(model_dir, monkeypatch)
    # When a new container initialises on it
    app = reinitialised_handler(MODEL_DIR=str(model_dir))
    # Then init logs one error line naming the cause, and emits the failure metric
    errors = [record for record in handler_logs() if record["level"] == "ERROR"]
    assert len(errors) == 1 and errors[0]["cause"] == cause
    assert errors[0]["message"].startswith(f"Model load failed ({cause})")
    assert '"ModelLoadFailure":[1.0]' in capsys.readouterr().out
    # And every route answers 503 without saying why
    for event in (api_event(body=demo_manifest["example"]), api_event("health"), api_event("health", path="/model")):
        result = app.lambda_handler(event, lambda_context)
        status, body = response_json(result)
        assert (status, body["error"]["code"]) == (503, "model_unavailable")
        assert cause not in result["body"] and "joblib" not in result["body"]


def test_sha256_mismatch_log_names_both_digests(model_copy, reinitialised_handler, handler_logs):
    flip_a_byte(model_copy)
    reinitialised_handler(MODEL_DIR=str(model_copy))
    (message,) = [record["message"] for record in handler_logs() if record["level"] == "ERROR"]
    pinned = json.loads((model_copy / "manifest.json").read_text())["sha256"]
    assert pinned in message and sha256_file(artifact(model_copy)) in message


def test_invalid_settings_fail_closed(reinitialised_handler, api_event, lambda_context, handler_logs):
    app = reinitialised_handler(MAX_INSTANCES="lots")
    assert [record["cause"] for record in handler_logs() if record["level"] == "ERROR"] == ["settings_invalid"]
    assert app.lambda_handler(api_event("health"), lambda_context)["statusCode"] == 503


@pytest.mark.parametrize("runtime", ["onnx", "sklearn"])
def test_an_intact_copy_loads(runtime, model_copy, sklearn_model_copy, reinitialised_handler, api_event,
                              lambda_context, handler_logs):
    model_dir = {"onnx": model_copy, "sklearn": sklearn_model_copy}[runtime]
    app = reinitialised_handler(MODEL_DIR=str(model_dir))
    assert app.lambda_handler(api_event("health"), lambda_context)["statusCode"] == 200
    assert [record["runtime"] for record in handler_logs() if record["message"] == "Model loaded"] == [runtime]


def test_an_unknown_log_level_does_not_crash_init(reinitialised_handler, api_event, lambda_context, handler_logs):
    # Given POWERTOOLS_LOG_LEVEL=BOGUS, which Powertools refuses with a ValueError when the logger is created
    app = reinitialised_handler(POWERTOOLS_LOG_LEVEL="BOGUS")
    # Then the function starts at INFO, says why, and serves
    warnings = [record for record in handler_logs() if record["level"] == "WARNING"]
    assert [record["cause"] for record in warnings] == ["log_level_invalid"]
    assert "POWERTOOLS_LOG_LEVEL must be one of" in warnings[0]["message"]
    assert app.lambda_handler(api_event("health"), lambda_context)["statusCode"] == 200
