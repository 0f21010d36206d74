"""Reading and checking manifest.json."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from handler.manifest import ManifestError, ManifestMissing, manifest_from_dict, read_manifest, write_manifest


@pytest.fixture
def manifest_data(demo_manifest: dict) -> dict:
    return demo_manifest


def test_manifest_round_trips_through_json(manifest_data, tmp_path):
    # Given the demo manifest (onnx runtime, with its parity), read and written again
    manifest = manifest_from_dict(manifest_data)
    write_manifest(manifest, tmp_path)
    # Then nothing was lost or added
    assert json.loads((tmp_path / "manifest.json").read_text()) == manifest_data
    assert read_manifest(tmp_path) == manifest


def test_public_view_hides_the_artifact_file_names_and_build_diagnostics(manifest_data):
    manifest_data["runtime_fallback"] = "parity_miss: max abs difference 0.08"
    view = manifest_from_dict(manifest_data).public_view()
    assert not {"artifact", "sklearn_artifact", "profile", "runtime_fallback"} & set(view)
    assert view["profile_sha256"] == manifest_data["profile_sha256"]
    assert view["sha256"] == manifest_data["sha256"] and view["versions"] == manifest_data["versions"]
    assert view["runtime"] == "onnx" and view["parity"] == manifest_data["parity"]


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
    ("sklearn_sha256", "ABC", "sklearn_sha256 must be 64 lowercase hex"),
    ("sklearn_artifact", ".hidden", "sklearn_artifact must be a plain file name"),
    ("profile", "drift/profile.json", "profile must be a plain file name"),
    ("profile_sha256", "ABC", "profile_sha256 must be 64 lowercase hex"),
    ("runtime_fallback", "it did not work", "runtime_fallback must be a string that starts with one of"),
    ("parity", {"tolerance": 1e-5}, "parity: .*missing"),
    ("parity", {"tolerance": -1, "max_abs_difference": 0, "rows": 3}, "parity: tolerance, max_abs_difference"),
    ("parity", {"tolerance": 0, "max_abs_difference": 0, "rows": 3, "max_scaled_difference": "0"},
     "parity: tolerance, max_abs_difference and max_scaled_difference"),
    ("parity", {"tolerance": 0, "max_abs_difference": 0, "rows": 0}, "parity: rows must be a positive integer"),
    ("parity", {"tolerance": 0, "max_abs_difference": 0, "rows": 3, "labels_identical": 1},
     "parity: labels_identical must be true or false"),
])
def test_invalid_values_are_refused(manifest_data, key, value, message):
    manifest_data[key] = value
    with pytest.raises(ManifestError, match=message):
        manifest_from_dict(manifest_data)


def test_the_profile_is_pinned_as_a_pair(manifest_data):
    # Given a manifest naming its profile without the sha256 that pins it
    del manifest_data["profile_sha256"]
    # Then it is refused, as an artifact without its sha256 would be
    with pytest.raises(ManifestError, match="profile_sha256 must be 64 lowercase hex"):
        manifest_from_dict(manifest_data)
    # And a manifest without a profile at all (packaged before profiles) is valid
    del manifest_data["profile"]
    assert manifest_from_dict(manifest_data).profile is None


def test_a_missing_manifest_is_told_apart_from_a_broken_one(tmp_path: Path):
    with pytest.raises(ManifestMissing):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{broken")
    with pytest.raises(ManifestError, match="not valid JSON"):
        read_manifest(tmp_path)


def test_every_problem_of_a_mangled_manifest_is_named(manifest_data):
    # Given a manifest mangled in several keys at once
    manifest_data.update(owner="someone", version=None, versions=["1.9.1"], classes=[["stay"], "leave"])
    manifest_data["features"][0].update(nullable="false", minimum="x", colour="red")
    manifest_data["features"][1].update(name={"a": 1}, categories="abc")
    # When / Then each is named in one error
    with pytest.raises(ManifestError) as raised:
        manifest_from_dict(manifest_data)
    for named in ("manifest has unknown keys: owner", "version must be a non-empty string", "versions must be an object",
                  "classes must be a non-empty list", "features[0]: has unknown keys: colour",
                  "features[1]: name must be a non-empty string"):
        assert named in str(raised.value)


@pytest.mark.parametrize(("changes", "named"), [
    ({"nullable": "false"}, "nullable must be true or false"),
    ({"categories": "abc"}, "categories must be a list"),
    ({"categories": [1, [2]]}, "categories must be a list"),
    ({"minimum": "x"}, "minimum must be a number"),
    ({"minimum": 5, "maximum": 1}, "minimum must not exceed maximum"),
    ({"name": ""}, "name must be a non-empty string"),
    ({"name": "a\x00b"}, "name must be a non-empty string without NUL"),
    ({"dtype": "complex256"}, "dtype must be one of"),
])
def test_each_feature_key_is_checked_by_type_and_range(manifest_data, changes, named):
    manifest_data["features"][0].update(changes)
    with pytest.raises(ManifestError, match=re.escape(named)):
        manifest_from_dict(manifest_data)


def test_a_manifest_that_is_not_a_regular_file_is_refused_without_blocking(tmp_path: Path):
    os.mkfifo(tmp_path / "manifest.json")
    with pytest.raises(ManifestError, match="not a regular file"):
        read_manifest(tmp_path)
