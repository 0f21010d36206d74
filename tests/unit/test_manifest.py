"""Reading and checking manifest.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from handler.manifest import ManifestError, ManifestMissing, manifest_from_dict, read_manifest, write_manifest
from tests.helpers import DEMO_MODEL_DIR


@pytest.fixture
def manifest_data() -> dict:
    return json.loads((DEMO_MODEL_DIR / "manifest.json").read_text(encoding="utf-8"))


def test_manifest_round_trips_through_json(manifest_data, tmp_path):
    # Given the demo manifest, read and written again
    manifest = manifest_from_dict(manifest_data)
    write_manifest(manifest, tmp_path)
    # Then nothing was lost or added
    assert json.loads((tmp_path / "manifest.json").read_text()) == manifest_data
    assert read_manifest(tmp_path) == manifest


def test_public_view_hides_the_artifact_file_name(manifest_data):
    view = manifest_from_dict(manifest_data).public_view()
    assert "artifact" not in view
    assert view["sha256"] == manifest_data["sha256"] and view["versions"] == manifest_data["versions"]


def test_missing_keys_are_all_named(manifest_data):
    del manifest_data["sha256"], manifest_data["features"]
    with pytest.raises(ManifestError, match="missing keys: features, sha256"):
        manifest_from_dict(manifest_data)


@pytest.mark.parametrize(("key", "value", "message"), [
    ("task", "clustering", "task must be one of"),
    ("input_format", "parquet", "input_format must be one of"),
    ("sha256", "ABC", "sha256 must be 64 lowercase hex"),
    ("artifact", "../model.joblib", "artifact must be a plain file name"),
    ("features", [], "features must be a non-empty list"),
    ("features", [{"name": "x", "type": "complex", "dtype": "float64", "nullable": False}], r"features\[0\]: type must be one of"),
    ("features", [{"name": "x"}], r"features\[0\]:"),
    ("runtime", "tensorflow", "runtime must be one of"),
])
def test_invalid_values_are_refused(manifest_data, key, value, message):
    manifest_data[key] = value
    with pytest.raises(ManifestError, match=message):
        manifest_from_dict(manifest_data)


def test_a_missing_manifest_is_told_apart_from_a_broken_one(tmp_path: Path):
    with pytest.raises(ManifestMissing):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{broken")
    with pytest.raises(ManifestError, match="not valid JSON"):
        read_manifest(tmp_path)
