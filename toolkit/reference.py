"""The scikit-learn twin of an ONNX-served model, for side-by-side measurements.

With the onnx runtime, model_artifacts/ still pins the joblib pipeline the graph was
exported from. This builds a small project tree serving that pipeline with the sklearn
runtime: same handler, same pins, same features; only the runtime differs.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

from builder.bundler import model_files
from handler.manifest import MANIFEST_FILE, Manifest, read_manifest, write_manifest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TWIN_DIR = PROJECT_ROOT / "build" / "sklearn-twin"
SHARED = ("handler", "pyproject.toml")


def sklearn_twin(manifest: Manifest) -> Manifest:
    """The same model described for the sklearn runtime (its joblib artifact and sha256)."""
    if manifest.runtime == "sklearn":
        return manifest
    return dataclasses.replace(manifest, runtime="sklearn", artifact=manifest.sklearn_artifact,
                               sha256=manifest.sklearn_sha256, sklearn_artifact=None, sklearn_sha256=None,
                               parity=None)


def sklearn_twin_project(project_root: Path = PROJECT_ROOT, out_dir: Path = TWIN_DIR) -> Path:
    """A project tree (handler/ and pyproject.toml linked, model_artifacts/ rewritten) serving with sklearn."""
    manifest = read_manifest(project_root / "model_artifacts")
    if manifest.runtime != "sklearn" and not manifest.sklearn_artifact:
        raise ValueError("the manifest pins no scikit-learn artifact to compare with")
    twin = sklearn_twin(manifest)
    shutil.rmtree(out_dir, ignore_errors=True)
    models = out_dir / "model_artifacts"
    models.mkdir(parents=True)
    for name in SHARED:
        os.symlink(project_root / name, out_dir / name)
    for name in model_files(twin):  # the artifact and whatever else the manifest pins (the training profile)
        if name != MANIFEST_FILE:
            shutil.copy2(project_root / "model_artifacts" / name, models / name)
    write_manifest(twin, models)
    return out_dir
