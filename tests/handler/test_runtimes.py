"""The ONNX and scikit-learn runtimes, each serving the same model: the same answers to the same requests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from handler.manifest import read_manifest
from tests.helpers import PROJECT_ROOT, response_json
from tests.models import packaged
from builder.onnx_export import edge_cases

LONE_SURROGATE = "\udc00"  # valid in a JSON string, not encodable as UTF-8


@pytest.fixture
def serve(reinitialised_handler, api_event, lambda_context):
    """Start a handler on a model directory and answer each body with (status, JSON body)."""

    def answers(model_dir: Path, bodies: list[dict]) -> list[tuple[int, dict]]:
        app = reinitialised_handler(MODEL_DIR=str(model_dir))
        return [response_json(app.lambda_handler(api_event(body=body), lambda_context)) for body in bodies]

    return answers


@pytest.fixture
def model_dirs(request, demo_dir, sklearn_demo_dir, tmp_path) -> dict[str, Path]:
    """runtime → directory of one model packaged for it: the demo, or a case packaged twice."""
    if request.param == "demo":
        return {"onnx": demo_dir, "sklearn": sklearn_demo_dir}
    case = request.getfixturevalue(request.param)
    for runtime in ("onnx", "sklearn"):
        packaged(case, tmp_path / runtime, runtime=runtime)
    return {runtime: tmp_path / runtime for runtime in ("onnx", "sklearn")}


def probability_rows(body: dict, classes: list) -> np.ndarray:
    return np.array([[p["probabilities"][str(label)] for label in classes] for p in body["predictions"]])


@pytest.mark.parametrize("model_dirs", ["demo", "classifier_case", "multiclass_case"], indirect=True)
def test_both_runtimes_answer_alike_on_the_example_and_its_edge_cases(model_dirs, serve):
    # Given the manifest's example, and each instance of it with one feature missing, unseen or extreme
    manifest = read_manifest(model_dirs["onnx"])
    base = manifest.example["instances"]
    strings = [f.name for f in manifest.features if f.type == "string" and f.unknown_category == "ignore"]
    instances = base + edge_cases(manifest.features, base) + [{**base[0], name: LONE_SURROGATE} for name in strings]
    bodies = [{"instances": [instance]} for instance in instances] + [{"instances": instances}]

    # When each runtime answers every request
    onnx = serve(model_dirs["onnx"], bodies)
    sklearn = serve(model_dirs["sklearn"], bodies)

    # Then every answer is a 200, with the same labels and probabilities within the recorded tolerance
    assert {status for status, _ in onnx + sklearn} == {200}
    for (_, got), (_, want) in zip(onnx, sklearn):
        assert [p["label"] for p in got["predictions"]] == [p["label"] for p in want["predictions"]]
        got_rows = probability_rows(got, manifest.classes)
        np.testing.assert_allclose(got_rows, probability_rows(want, manifest.classes),
                                   rtol=0, atol=manifest.parity.tolerance)
        # And ONNX's float32 probabilities still sum to 1, as scikit-learn's do
        np.testing.assert_allclose(got_rows.sum(axis=1), 1.0, rtol=0, atol=1e-12)


@pytest.mark.parametrize("model_dirs", ["classifier_case"], indirect=True)
def test_a_missing_string_is_imputed_and_an_empty_or_nul_one_is_unseen_in_both_runtimes(model_dirs, serve):
    # Given a logistic regression whose region imputer fills "missing", a category it learnt a weight for
    manifest = read_manifest(model_dirs["onnx"])
    instance = manifest.example["instances"][0]
    bodies = [{"instances": [{**instance, "region": value}]} for value in (None, "missing", "", "\x00")]

    # When each runtime answers a missing region, the fill value, an empty string and a NUL (the graph's marker)
    answers = {runtime: [probability_rows(body, manifest.classes) for _, body in serve(model_dir, bodies)]
               for runtime, model_dir in model_dirs.items()}

    # Then, in both, a missing region is the fill value, and "" or NUL an unseen category, not a missing value
    for missing, filled, empty, nul in answers.values():
        np.testing.assert_array_equal(missing, filled)
        assert not np.allclose(missing, empty, rtol=0, atol=1e-3)
        np.testing.assert_array_equal(nul, empty)
    for answer in range(len(bodies)):
        np.testing.assert_allclose(answers["onnx"][answer], answers["sklearn"][answer], rtol=0,
                                   atol=manifest.parity.tolerance)


@pytest.mark.slow
def test_the_onnx_runtime_imports_no_scikit_learn_scipy_pandas_or_joblib(demo_dir):
    # Given a fresh isolated interpreter with only the repository root added to sys.path
    script = ("import json, sys; sys.path.insert(0, sys.argv[1]); import handler.app as app; "
              "print(json.dumps({'runtime': app.MODEL.manifest.runtime, 'modules': sorted(sys.modules)}))")
    environ = {**os.environ, "MODEL_DIR": str(demo_dir)}

    # When it imports the handler, which loads the demo model
    result = subprocess.run([sys.executable, "-I", "-c", script, str(PROJECT_ROOT)], capture_output=True,
                            text=True, env=environ, timeout=120, check=True)

    # Then the model is served by onnxruntime, and none of the scikit-learn stack was imported
    loaded = json.loads(result.stdout.splitlines()[-1])
    packages = {module.split(".")[0] for module in loaded["modules"]}
    assert loaded["runtime"] == "onnx"
    assert {"onnxruntime", "numpy"} <= packages
    assert packages.isdisjoint({"sklearn", "scipy", "pandas", "joblib"})
