"""The notebook API: in-memory objects in, the packager's own manifest out, a summary that reads well."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

import builder.notebook
from builder import package
from builder.errors import PackagingError
from builder.notebook import PackageSummary
from handler.manifest import Feature, Manifest, Parity, read_manifest, sha256_file
from tests.helpers import PROJECT_ROOT
from tests.models import FEATURES, frame_pipeline, make_members

EPOCH = "1767225600"  # 2026-01-01: created_at equal in every manifest compared


@pytest.fixture
def members() -> pd.DataFrame:
    """The model's columns and its label: what a sample and a hold-out hold."""
    return make_members(n_rows=200)[[*FEATURES, "churned"]]


@pytest.fixture
def fitted(members: pd.DataFrame) -> object:
    return frame_pipeline(RandomForestClassifier(n_estimators=5, max_depth=3, random_state=0)).fit(
        members[FEATURES], members["churned"])


@pytest.mark.slow
def test_package_writes_the_manifest_into_a_directory_relative_to_the_current_one(
        fitted, members, tmp_path, monkeypatch):
    # Given a notebook whose current directory is tmp_path
    monkeypatch.chdir(tmp_path)
    # When
    summary = package(fitted, members.sample(120, random_state=0), name="members", version="2",
                      holdout=members.tail(60), target="churned", out="served")
    # Then
    assert summary.out_dir == tmp_path / "served"
    assert summary.manifest == read_manifest(tmp_path / "served")
    assert summary.runtime == "onnx" and summary.parity is not None and summary.parity.passed
    assert summary.fallback_reason is None
    assert [feature.name for feature in summary.features] == FEATURES
    assert summary.sha256 == sha256_file(summary.artifact_path)
    assert summary.manifest_path == tmp_path / "served" / "manifest.json"
    assert summary.manifest.metrics is not None


def test_the_summary_names_runtime_parity_fallback_features_and_paths_as_text_and_html(tmp_path):
    # Given the manifest of a model ONNX missed parity for
    manifest = Manifest(
        name="majority <b>", version="1", created_at="2026-01-01T00:00:00Z", task="classification",
        input_format="dataframe", artifact="model.joblib", sha256="ab" * 32, versions={"scikit-learn": "1.6.1"},
        features=[Feature("age", "integer", "int64", nullable=False, minimum=18, maximum=79),
                  Feature("plan", "string", "object", nullable=True, categories=["basic", "pro"],
                          unknown_category="ignore")],
        example={"instances": [{"age": 30, "plan": "pro"}]}, classes=[0, 1], metrics={"accuracy": 0.8125},
        parity=Parity(tolerance=1e-5, max_abs_difference=0.02, rows=40, labels_identical=True),
        runtime_fallback="parity_miss: probabilities differ by 0.02")
    summary = PackageSummary(manifest, tmp_path)
    # When
    text, page = repr(summary), summary._repr_html_()
    # Then
    for shown in ("runtime", "sklearn", "missed: max |ONNX - scikit-learn| 0.02 > 1e-05 over 40 rows",
                  "onnx not used  parity_miss", "scikit-learn   1.6.1", "abababababab", str(tmp_path / "manifest.json"),
                  "accuracy 0.8125", "feature age    integer, required, 18 to 79",
                  "feature plan   string, nullable, 2 categories (ignore unknown)"):
        assert shown in text
    assert page.startswith("<table>") and "majority &lt;b&gt;" in page and "<b>" not in page


def test_a_sample_that_is_not_a_dataframe_is_refused_with_what_to_pass(fitted, members, tmp_path):
    with pytest.raises(PackagingError, match=r"sample_frame must be a pandas DataFrame, not ndarray; .*columns="):
        package(fitted, members[FEATURES].to_numpy(), name="m", version="1", out=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_another_python_without_the_projects_venv_is_told_how_to_get_one(fitted, members, tmp_path, monkeypatch):
    # Given an interpreter without the build pins, and no .venv to hand the packaging to
    monkeypatch.setattr(builder.notebook, "build_pin_mismatch", lambda: "skl2onnx is not installed")
    monkeypatch.setattr(builder.notebook, "PROJECT_PYTHON", tmp_path / "no-venv" / "bin" / "python")
    # When / Then
    with pytest.raises(PackagingError, match=r"this Python cannot package: skl2onnx is not installed; run `make run`"):
        package(fitted, members.head(50), name="m", version="1", target="churned", out=tmp_path / "out")


def test_this_environment_holds_the_build_pins():
    assert builder.notebook.build_pin_mismatch() is None


NOTEBOOK = """
    import joblib
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from builder import package
    from tests.models import FEATURES, frame_pipeline

    frame = pd.read_csv("members.csv")
    model = frame_pipeline(LogisticRegression())
    model.fit(frame[FEATURES], frame["churned"])
    sample = frame.sample(150, random_state=1)
    joblib.dump(model, "model.joblib")  # what the CLI is given
    sample.to_csv("sample.csv", index=False)
    summary = package(model, sample, name="members", version="3", holdout=frame.tail(50), target="churned",
                      out="from-notebook")
    print(repr(summary))
"""


@pytest.mark.slow
def test_a_script_outside_the_repository_writes_the_manifest_the_cli_writes(members, tmp_path):
    # Given data in a directory outside the repository, and a script there that fits a model on it and packages it
    members.to_csv(tmp_path / "members.csv", index=False)
    members.tail(50).to_csv(tmp_path / "holdout.csv", index=False)
    (tmp_path / "notebook.py").write_text(textwrap.dedent(NOTEBOOK), encoding="utf-8")
    # (A linear model: a tree's pickle differs between processes, its node arrays hold uninitialised padding.)
    environment = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "SOURCE_DATE_EPOCH": EPOCH}

    # When the script packages with package() and the CLI packages the same inputs
    script = subprocess.run([sys.executable, "notebook.py"], cwd=tmp_path, env=environment,
                            capture_output=True, text=True, timeout=300)
    cli = subprocess.run([sys.executable, "-m", "builder.packager", "--model", "model.joblib", "--sample",
                          "sample.csv", "--holdout", "holdout.csv", "--target", "churned", "--name", "members",
                          "--version", "3", "--out", "from-cli"], cwd=tmp_path, env=environment,
                         capture_output=True, text=True, timeout=300)

    # Then both wrote the same manifest, and the script printed its summary
    assert script.returncode == 0, script.stderr
    assert cli.returncode == 0, cli.stderr
    assert not PROJECT_ROOT.joinpath("from-notebook").exists()
    written = [(tmp_path / out / "manifest.json").read_bytes() for out in ("from-notebook", "from-cli")]
    assert written[0] == written[1]
    assert "runtime" in script.stdout and json.loads(written[0])["sha256"][:12] in script.stdout


def hand_packaging_to_a_project_python(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """This interpreter lacks the build pins; the project's Python is a launcher of this one."""
    launcher = tmp_path / "venv-python"
    launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n', encoding="utf-8")
    launcher.chmod(0o755)
    monkeypatch.setattr(builder.notebook, "build_pin_mismatch", lambda: "scikit-learn is 1.6.1")
    monkeypatch.setattr(builder.notebook, "PROJECT_PYTHON", launcher)


@pytest.mark.slow
def test_another_python_hands_the_packaging_to_the_projects_venv(members, tmp_path, monkeypatch):
    # Given an interpreter without the build pins, and a project Python (a launcher of this one's CLI)
    hand_packaging_to_a_project_python(tmp_path, monkeypatch)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    sample = members.head(100)
    # (A linear model: a tree's pickle differs between processes, its node arrays hold uninitialised padding.)
    fitted = frame_pipeline(LogisticRegression()).fit(members[FEATURES], members["churned"])

    # When
    handed = package(fitted, sample, name="m", version="1", target="churned",
                                     out=tmp_path / "handed")
    monkeypatch.undo()
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    direct = package(fitted, sample, name="m", version="1", target="churned", out=tmp_path / "direct")

    # Then
    assert handed.manifest == direct.manifest


@pytest.mark.slow
def test_a_refusal_from_the_projects_venv_is_one_packaging_error(members, tmp_path, monkeypatch):
    hand_packaging_to_a_project_python(tmp_path, monkeypatch)
    with pytest.raises(PackagingError, match=r"^model .* holds a dict, not an estimator with predict$"):
        package({"not": "a model"}, members.head(20), name="m", version="1", out=tmp_path / "out")
    assert not (tmp_path / "out").exists()
