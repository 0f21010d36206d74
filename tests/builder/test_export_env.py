"""Export environments: which versions they hold, how they refuse, and packaging a foreign pickle in one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime
import pandas as pd
import pytest
from packaging.version import Version

from builder import export_env
from builder.export_env import (
    MARKER_FILE,
    ExportEnv,
    ExportEnvError,
    ensure_export_env,
    export_requirements,
    last_words,
    numpy_major_for,
    run_in_export_env,
    supported_version,
)
from builder.pickle_version import read_pickle_facts
from handler.config import Settings
from handler.loading import load_model
from handler.manifest import read_manifest
from handler.scoring import score

PINNED = "1.9.1"
FOREIGN = "1.6.1"
NETWORK_WORDS = ("fetch", "connect", "network", "dns", "offline", "timed out", "resolve")


@pytest.mark.parametrize("found", ["1.3.0", "1.5.2", "1.6.1", "1.9.0", PINNED])
def test_releases_from_the_oldest_supported_to_the_pin_are_accepted(found: str) -> None:
    assert supported_version(found, PINNED) == Version(found)


@pytest.mark.parametrize(("found", "cause"), [
    ("1.2.2", "older than the oldest supported (1.3.0)"),
    ("1.10.0", f"newer than this project's {PINNED}; raise the scikit-learn pin"),
    ("1.6.dev0", "not a release on the package index"),
    ("1.7.0rc1", "not a release on the package index"),
    ("banana", "which is not a version"),
])
def test_versions_outside_the_range_are_refused_with_the_remedy(found: str, cause: str) -> None:
    with pytest.raises(ExportEnvError) as error:
        supported_version(found, PINNED)

    message = str(error.value)
    assert cause in message
    assert f"retrain and save the model in .venv (scikit-learn {PINNED})" in message
    assert "\n" not in message


@pytest.mark.parametrize(("version", "pickled", "expected"), [
    ("1.3.2", None, 1), ("1.3.2", 1, 1), ("1.4.1", None, 1),
    ("1.4.2", None, 2), ("1.5.2", 1, 1), ("1.6.1", 2, 2), ("1.6.1", None, 2),
])
def test_numpy_major_follows_the_pickle_and_what_the_release_runs_on(version: str, pickled: int | None,
                                                                      expected: int) -> None:
    assert numpy_major_for(Version(version), pickled) == expected


def test_a_numpy_2_pickle_cannot_come_from_a_numpy_1_release() -> None:
    with pytest.raises(ExportEnvError, match="names numpy 2 modules, but scikit-learn 1.3.2 only runs on numpy 1"):
        numpy_major_for(Version("1.3.2"), 2)


def test_requirements_bound_the_companions_and_pin_the_projects_converter() -> None:
    old = export_requirements(Version("1.3.2"), 1)
    recent = export_requirements(Version("1.6.1"), 2)
    unlisted = export_requirements(Version("1.9.0"), 2)

    assert old[:4] == ["scikit-learn==1.3.2", "numpy<2", "scipy<1.12", "pandas<2.2"]
    assert recent[:4] == ["scikit-learn==1.6.1", "numpy>=2,<2.3", "scipy<1.16", "pandas<2.3"]
    assert unlisted[:4] == ["scikit-learn==1.9.0", "numpy>=2", "scipy", "pandas"]
    converter = [f"skl2onnx=={export_env.metadata.version('skl2onnx')}", f"onnx=={export_env.metadata.version('onnx')}",
                 f"onnxruntime=={onnxruntime.__version__}"]
    assert all(requirement in old for requirement in converter)
    assert "protobuf<7.34" in old


def test_packaging_inside_an_export_env_never_starts_another(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(export_env.INSIDE_VARIABLE, "1.5.2")

    with pytest.raises(ExportEnvError, match="already in the export environment for scikit-learn 1.5.2"):
        ensure_export_env(FOREIGN, cache_dir=tmp_path)


def test_an_environment_that_cannot_be_built_is_one_line_and_leaves_nothing(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Given an installer that fails as uv does when a release has no wheel for this Python
    fake_uv = tmp_path / "uv"
    fake_uv.write_text("#!/bin/sh\n"
                       "if [ \"$1\" = venv ]; then mkdir -p \"$5/bin\"; exit 0; fi\n"
                       "echo '  × No solution found when resolving dependencies:' >&2\n"
                       "echo '  ╰─▶ Because scikit-learn==1.6.1 has no wheels with a matching Python ABI tag' >&2\n"
                       "echo '      hint: You require CPython 3.14' >&2\n"
                       "exit 1\n")
    fake_uv.chmod(0o755)
    monkeypatch.setattr(export_env, "_uv", lambda: str(fake_uv))
    cache = tmp_path / "envs"

    # When an environment is asked for
    with pytest.raises(ExportEnvError) as error:
        ensure_export_env(FOREIGN, 2, cache_dir=cache)

    # Then the message has the cause and the remedy on one line, and no environment is left to be reused
    message = str(error.value)
    assert message.startswith(f"cannot build the export environment for scikit-learn {FOREIGN} on Python 3.")
    assert "Because scikit-learn==1.6.1 has no wheels with a matching Python ABI tag" in message
    assert "retrain and save the model in .venv" in message
    assert "\n" not in message
    assert list(cache.iterdir()) == []


@pytest.mark.parametrize(("output", "expected"), [
    ("Collecting x\nERROR: No matching distribution found for scikit-learn==1.3.2\n",
     "ERROR: No matching distribution found for scikit-learn==1.3.2"),
    ("  × Failed to fetch: `scikit-learn`\n  ╰─▶ Could not connect, are you offline?\n  hint: retry\n",
     "Could not connect, are you offline?"),
    (("error: No solution found when resolving dependencies\n  cause: Because scikit-learn==1.3.2 has no usable "
     "wheels, we can conclude that your requirements are unsatisfiable.\n\nhint: Wheels are required\n"),
     "Because scikit-learn==1.3.2 has no usable wheels, we can conclude that your requirements are unsatisfiable"),
    ("", "no output"),
])
def test_last_words_pick_the_installers_cause(output: str, expected: str) -> None:
    assert last_words(output) == expected


def test_only_a_completed_environment_for_the_same_requirements_is_reused(tmp_path: Path) -> None:
    env = tmp_path / "sklearn-1.6.1-numpy2-py311"
    (env / "bin").mkdir(parents=True)
    (env / "bin" / "python").symlink_to(sys.executable)
    requirements = export_requirements(Version(FOREIGN), 2)

    assert export_env._ready(env, requirements) is None  # no marker: never finished
    (env / MARKER_FILE).write_text(json.dumps({"requirements": requirements, "installed": {"scikit-learn": FOREIGN}}))
    assert export_env._ready(env, requirements) == ExportEnv(env, FOREIGN, {"scikit-learn": FOREIGN})
    assert export_env._ready(env, requirements[:-1]) is None  # built for other requirements


def test_run_in_export_env_imports_this_project(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python").symlink_to(sys.executable)

    done = run_in_export_env(ExportEnv(tmp_path, FOREIGN, {}), "builder.pickle_version", [])

    assert done.returncode == 0, done.stderr


def test_run_in_export_env_marks_the_process_and_drops_the_callers_environment(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[tuple[list[str], dict[str, str]]] = []
    monkeypatch.setattr(export_env.subprocess, "run", lambda command, **options: calls.append((command, options["env"])))
    monkeypatch.setenv("PYTHONHOME", "/elsewhere")
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")

    run_in_export_env(ExportEnv(tmp_path, FOREIGN, {}), "builder.packager", ["--model", "m.joblib"])

    ((command, environment),) = calls
    assert command == [str(tmp_path / "bin" / "python"), "-m", "builder.packager", "--model", "m.joblib"]
    assert environment["PYTHONPATH"] == str(export_env.PROJECT_ROOT)
    assert environment[export_env.INSIDE_VARIABLE] == FOREIGN
    assert "PYTHONHOME" not in environment


@pytest.mark.slow
def test_a_model_pickled_by_another_version_packages_in_its_export_env(tmp_path: Path) -> None:
    # Given the export environment for scikit-learn 1.6.1 (built once, then reused from build/export-envs)
    try:
        env = ensure_export_env(FOREIGN, 2)
    except ExportEnvError as error:
        if any(word in str(error).lower() for word in NETWORK_WORDS):
            pytest.skip(f"the package index is unreachable, so no export environment can be built: {error}")
        raise
    # And a pipeline fitted and pickled there
    fit = subprocess.run([str(env.python), "-c", FIT_IN_ENV, str(tmp_path)], capture_output=True, text=True,
                         check=False)
    assert fit.returncode == 0, fit.stderr
    facts = read_pickle_facts(tmp_path / "model.joblib")

    # When the packager runs in that environment
    done = run_in_export_env(env, "builder.packager", ["--model", str(tmp_path / "model.joblib"),
                                                        "--sample", str(tmp_path / "sample.csv"),
                                                        "--out", str(tmp_path / "out")])

    # Then it serves by ONNX, records the pickle's versions, and this interpreter's onnxruntime agrees with it
    assert (facts.sklearn_version, facts.numpy_major) == (FOREIGN, 2)
    assert done.returncode == 0, done.stderr
    manifest = read_manifest(tmp_path / "out")
    assert manifest.runtime == "onnx"
    assert manifest.versions["scikit-learn"] == FOREIGN
    assert manifest.parity is not None and manifest.parity.passed
    served = score(load_model(Settings(model_dir=tmp_path / "out")),
                   {"instances": pd.read_csv(tmp_path / "sample.csv").to_dict(orient="records")})
    probabilities = [[row["probabilities"][str(label)] for label in manifest.classes] for row in served.predictions]
    np.testing.assert_allclose(probabilities, np.load(tmp_path / "expected.npy"), atol=1e-5)


FIT_IN_ENV = """
import sys
from pathlib import Path
import joblib, numpy as np, pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline

out = Path(sys.argv[1])
rng = np.random.default_rng(0)
frame = pd.DataFrame({"tenure": rng.integers(0, 72, 200).astype(float), "charges": rng.normal(70, 20, 200)})
labels = (frame["tenure"] < 20).astype(int)
columns = ColumnTransformer([("numbers", SimpleImputer(), ["tenure", "charges"])])
model = make_pipeline(columns, RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0)).fit(frame, labels)
joblib.dump(model, out / "model.joblib")
frame.head(50).to_csv(out / "sample.csv", index=False)
np.save(out / "expected.npy", model.predict_proba(pd.read_csv(out / "sample.csv")))
"""
