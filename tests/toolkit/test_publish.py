"""toolkit.publish on moto: versioned keys, sha256 metadata and checksum, idempotence, refusal to overwrite."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil

import pytest

from tests.helpers import BUCKET
from toolkit import publish as publish_module
from toolkit.publish import PublishError, publish

PREFIX = "models/customer-churn/1.0.0/"


@pytest.fixture
def model_dir(demo_dir, tmp_path):
    """A writable copy of the demo model directory."""
    return shutil.copytree(demo_dir, tmp_path / "model_artifacts")


def test_publishing_uploads_the_artifact_profile_and_manifest_under_name_and_version(s3_client, demo_dir,
                                                                                     demo_manifest):
    # Given / When
    publication = publish(s3_client, demo_dir, bucket=BUCKET)

    # Then
    assert (publication.key_prefix, publication.sha256) == (PREFIX, demo_manifest["sha256"])
    assert publication.uploaded == ("model.onnx", "profile.json", "manifest.json") and publication.unchanged == ()
    for name in ("model.onnx", "profile.json", "manifest.json"):
        head = s3_client.head_object(Bucket=BUCKET, Key=PREFIX + name, ChecksumMode="ENABLED")
        digest = hashlib.sha256((demo_dir / name).read_bytes()).digest()
        assert head["Metadata"] == {"sha256": digest.hex()}
        assert head["ChecksumSHA256"] == base64.b64encode(digest).decode()


def test_publishing_the_same_model_again_changes_nothing(published, s3_client, demo_dir):
    # Given the demo model already published
    versions_before = s3_client.list_object_versions(Bucket=BUCKET)["Versions"]

    # When
    again = publish(s3_client, demo_dir, bucket=BUCKET)

    # Then
    assert again.uploaded == () and again.unchanged == ("model.onnx", "profile.json", "manifest.json")
    assert s3_client.list_object_versions(Bucket=BUCKET)["Versions"] == versions_before


def test_other_bytes_under_a_published_version_are_refused(published, s3_client, model_dir, demo_dir):
    # Given the same name and version, repackaged (another created_at)
    manifest = json.loads((model_dir / "manifest.json").read_text())
    (model_dir / "manifest.json").write_text(json.dumps({**manifest, "created_at": "2027-01-01T00:00:00Z"}))

    # When / Then
    with pytest.raises(PublishError, match=rf"s3://{BUCKET}/{PREFIX}manifest.json already holds other bytes"):
        publish(s3_client, model_dir, bucket=BUCKET)
    body = s3_client.get_object(Bucket=BUCKET, Key=PREFIX + "manifest.json")["Body"].read()
    assert body == (demo_dir / "manifest.json").read_bytes()


def test_an_object_whose_metadata_lies_is_judged_by_its_bytes(published, s3_client, demo_dir):
    # Given the published manifest rewritten in the bucket (features reordered) with the original sha256 metadata
    key = PREFIX + "manifest.json"
    original = s3_client.get_object(Bucket=BUCKET, Key=key)
    manifest = json.loads((demo_dir / "manifest.json").read_text())
    tampered = json.dumps({**manifest, "features": manifest["features"][::-1]}).encode()
    s3_client.put_object(Bucket=BUCKET, Key=key, Body=tampered, Metadata=original["Metadata"])

    # When the same model is published again / Then the bytes, not the metadata, are compared
    with pytest.raises(PublishError, match=hashlib.sha256(tampered).hexdigest()):
        publish(s3_client, demo_dir, bucket=BUCKET)


def test_a_publisher_racing_us_with_the_same_bytes_is_not_an_error(s3_client, demo_dir):
    # Given another publisher writing the manifest between our look and our write
    def race(params, **_):
        if params["Key"].endswith("manifest.json"):
            s3_client.meta.events.unregister("before-parameter-build.s3.PutObject", race)
            s3_client.put_object(Bucket=BUCKET, Key=params["Key"], Body=params["Body"], Metadata=params["Metadata"])

    s3_client.meta.events.register("before-parameter-build.s3.PutObject", race)

    # When
    publication = publish(s3_client, demo_dir, bucket=BUCKET)

    # Then our conditional write lost, and found the very bytes it meant to write
    assert publication.uploaded == ("model.onnx", "profile.json") and publication.unchanged == ("manifest.json",)


def test_an_artifact_its_manifest_does_not_pin_is_never_published(s3_client, model_dir):
    # Given
    (model_dir / "model.onnx").write_bytes(b"not the pinned graph")

    # When / Then
    with pytest.raises(PublishError, match="is not the artifact its manifest pins"):
        publish(s3_client, model_dir, bucket=BUCKET)
    assert "Contents" not in s3_client.list_objects_v2(Bucket=BUCKET)


def test_a_profile_its_manifest_does_not_pin_is_never_published(s3_client, model_dir):
    # Given a profile edited after packaging
    (model_dir / "profile.json").write_text("{}")

    # When / Then: nothing is uploaded, not even the artifact, whose pin holds
    with pytest.raises(PublishError, match="profile.json is not the profile its manifest pins"):
        publish(s3_client, model_dir, bucket=BUCKET)
    assert "Contents" not in s3_client.list_objects_v2(Bucket=BUCKET)


def test_a_model_packaged_before_profiles_is_published_without_one(s3_client, model_dir):
    # Given a manifest that pins no profile
    manifest = json.loads((model_dir / "manifest.json").read_text())
    del manifest["profile"], manifest["profile_sha256"]
    (model_dir / "manifest.json").write_text(json.dumps(manifest))

    # When / Then
    assert publish(s3_client, model_dir, bucket=BUCKET).uploaded == ("model.onnx", "manifest.json")


def test_a_version_that_makes_an_unsafe_key_is_refused(s3_client, model_dir):
    # Given a version with a character an IAM resource ARN would read as a wildcard
    manifest = json.loads((model_dir / "manifest.json").read_text())
    (model_dir / "manifest.json").write_text(json.dumps({**manifest, "version": "1.*"}))

    # When / Then
    with pytest.raises(PublishError, match="not a key prefix the stack accepts"):
        publish(s3_client, model_dir, bucket=BUCKET)


def test_main_prints_the_context_to_deploy_with_the_bucket_it_was_given(s3_client, demo_dir, demo_manifest, capsys):
    # Given / When
    status = publish_module.main(["--bucket", BUCKET, "--region", "eu-west-1", "--model-dir", str(demo_dir)])

    # Then
    out = capsys.readouterr().out
    assert status == 0
    assert out.startswith(f"published s3://{BUCKET}/{PREFIX} (model.onnx uploaded, profile.json uploaded, "
                           "manifest.json uploaded)")
    manifest_bytes = (demo_dir / "manifest.json").read_bytes()
    context = json.loads(out[out.index("{"):])
    assert context == {"model_source": "s3", "model_bucket_name": BUCKET, "model_s3_key_prefix": PREFIX,
                       "model_sha256": json.loads(manifest_bytes)["sha256"],
                       "model_manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest()}
    assert f"manifest sha256 {context['model_manifest_sha256']}" in out


def test_main_publishes_to_the_stacks_own_bucket_without_naming_it(s3_client, demo_dir, monkeypatch, capsys):
    # Given the deployed stack's ModelBucketName output
    asked = []
    monkeypatch.setattr(publish_module, "stack_output",
                        lambda session, region, stack, key: asked.append((stack, key)) or BUCKET)

    # When
    status = publish_module.main(["--region", "eu-west-1", "--model-dir", str(demo_dir)])

    # Then: the stack owns the bucket, so cdk.json must not name it (that would mean "an existing bucket")
    out = capsys.readouterr().out
    assert (status, asked) == (0, [("model-api-dev", "ModelBucketName")])
    assert "model_bucket_name" not in json.loads(out[out.index("{"):])


def test_main_reports_a_missing_bucket_in_one_error_line(s3_client, demo_dir, capsys):
    # Given / When
    status = publish_module.main(["--bucket", "no-such-bucket", "--region", "eu-west-1", "--model-dir", str(demo_dir)])

    # Then
    assert status == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("error: ") and "NoSuchBucket" in line
