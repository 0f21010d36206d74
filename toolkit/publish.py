"""Publish model_artifacts/ to S3 for a stack with `model_source: s3`, then print the cdk.json context to deploy it.

    python -m toolkit.publish [--bucket B] [--prefix models/] [--profile P] [--region R] [--stack S] [--model-dir D]

The manifest's artifact and the training profile it pins, then manifest.json, go to <prefix><name>/<version>/,
each with its sha256 as object metadata (`sha256`) and as S3's own SHA256 checksum. A version is written once: publishing the same bytes
again changes nothing, other bytes under a published version are refused (an object already there is downloaded
and hashed: its metadata is not trusted). The printed context pins the artifact's and the manifest's sha256.
Without --bucket the bucket is cdk.json's model_bucket_name, else the deployed stack's ModelBucketName output.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore.session
from botocore.exceptions import BotoCoreError, ClientError

from handler.manifest import MANIFEST_FILE, ManifestError, read_manifest
from infra.config import KEY_PREFIX_PATTERN, project_config
from infra.outputs import MODEL_BUCKET
from toolkit.invoke import stack_output

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PREFIX = "models/"
SHA256_METADATA = "sha256"


class PublishError(RuntimeError):
    """The model cannot be published as asked; the message says why and what to do."""


@dataclass(frozen=True)
class Publication:
    """Where a model version now is in S3, and which of its files this run wrote."""

    bucket: str
    key_prefix: str
    sha256: str
    manifest_sha256: str
    uploaded: tuple[str, ...]
    unchanged: tuple[str, ...]

    def context(self, *, with_bucket: bool) -> dict[str, Any]:
        """The cdk.json context keys that point the function at this version and pin its manifest and artifact."""
        bucket = {"model_bucket_name": self.bucket} if with_bucket else {}
        return {"model_source": "s3", **bucket, "model_s3_key_prefix": self.key_prefix, "model_sha256": self.sha256,
                "model_manifest_sha256": self.manifest_sha256}


def publish(client: Any, model_dir: Path, *, bucket: str, prefix: str = DEFAULT_PREFIX) -> Publication:
    """Upload the verified artifact and profile, then their manifest, under `<prefix><name>/<version>/` in bucket.

    Every file is checked against its pin before anything is uploaded; the manifest goes last, so a
    publication whose manifest is there holds every file it pins.
    """
    try:
        manifest = read_manifest(model_dir)
    except ManifestError as error:
        raise PublishError(f"{model_dir}: {error} (package a model first: make model)") from None
    pinned = [("artifact", manifest.artifact, manifest.sha256)] + (
        [("profile", manifest.profile, manifest.profile_sha256)] if manifest.profile is not None else [])
    files = [(name, _pinned_bytes(model_dir / name, sha256, what)) for what, name, sha256 in pinned]
    key_prefix = f"{prefix}{manifest.name}/{manifest.version}/"
    if not re.fullmatch(KEY_PREFIX_PATTERN, key_prefix):
        raise PublishError(f"{key_prefix!r} is not a key prefix the stack accepts: use letters, digits and "
                           "_ . = + - / in --prefix, the model name and its version")
    manifest_bytes = (model_dir / MANIFEST_FILE).read_bytes()
    written = {name: _put_once(client, bucket, key_prefix + name, data)
               for name, data in (*files, (MANIFEST_FILE, manifest_bytes))}
    return Publication(bucket=bucket, key_prefix=key_prefix, sha256=manifest.sha256,
                       manifest_sha256=_sha256(manifest_bytes),
                       uploaded=tuple(name for name, wrote in written.items() if wrote),
                       unchanged=tuple(name for name, wrote in written.items() if not wrote))


def _pinned_bytes(path: Path, sha256: str, what: str) -> bytes:
    """The bytes of a file the manifest pins, refused unless they hash to the pin."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise PublishError(f"{path}: {error.strerror} (package the model again)") from None
    if _sha256(data) != sha256:
        raise PublishError(f"{path} is not the {what} its manifest pins: package the model again")
    return data


def _put_once(client: Any, bucket: str, key: str, data: bytes) -> bool:
    """Write data at key unless these very bytes are there already; True when written, PublishError for others."""
    digest = _sha256(data)
    published = _published_sha256(client, bucket, key)
    if published is None:
        checksum = base64.b64encode(bytes.fromhex(digest)).decode()  # S3 refuses the upload if the bytes differ
        try:
            client.put_object(Bucket=bucket, Key=key, Body=data, Metadata={SHA256_METADATA: digest},
                              ChecksumAlgorithm="SHA256", ChecksumSHA256=checksum,
                              IfNoneMatch="*")  # another publisher may have written it since we looked
            return True
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "PreconditionFailed":
                raise
        published = _published_sha256(client, bucket, key)
    if published == digest:
        return False
    raise PublishError(f"s3://{bucket}/{key} already holds other bytes (sha256 {published}): "
                       "a published version is never overwritten; package the model with a new --version")


def _published_sha256(client: Any, bucket: str, key: str) -> str | None:
    """The sha256 of the bytes of the object at key, downloaded and hashed (metadata can lie); None when absent."""
    try:
        response = client.get_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "NoSuchKey" or \
                error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
            return None
        raise
    digest = hashlib.sha256()
    for chunk in response["Body"].iter_chunks(1 << 20):
        digest.update(chunk)
    return digest.hexdigest()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def target_bucket(session: botocore.session.Session, region: str, *, bucket: str | None,
                  stack: str | None) -> tuple[str, bool]:
    """The bucket to publish to, and whether cdk.json must name it (True unless it is the stack's own)."""
    if bucket:
        return bucket, True
    config = project_config()
    if config.model_bucket_name:
        return config.model_bucket_name, True
    return stack_output(session, region, stack or config.stack_name, MODEL_BUCKET), False


def main(argv: Sequence[str] | None = None) -> int:
    """Publish, print what was written and the context to deploy; exit 1 with one `error:` line otherwise."""
    parser = argparse.ArgumentParser(prog="python -m toolkit.publish", description=__doc__.splitlines()[0])
    parser.add_argument("--bucket", help="bucket to publish to (default: cdk.json's model_bucket_name, else the "
                                         "stack's ModelBucketName output)")
    parser.add_argument("--prefix", default=DEFAULT_PREFIX,
                        help=f"key prefix, ending in '/' (default: {DEFAULT_PREFIX})")
    parser.add_argument("--profile", help="AWS profile (default: the usual credential chain)")
    parser.add_argument("--region", help="AWS region (default: the profile's)")
    parser.add_argument("--stack", help="stack to read the bucket from (default: from cdk.json)")
    parser.add_argument("--model-dir", type=Path, default=PROJECT_ROOT / "model_artifacts",
                        help="packaged model to publish (default: model_artifacts/)")
    args = parser.parse_args(argv)
    if args.prefix and not args.prefix.endswith("/"):
        parser.error("--prefix must end with '/'")
    session = botocore.session.Session(profile=args.profile)
    region = args.region or session.get_config_variable("region")
    try:
        bucket, name_bucket = target_bucket(session, region, bucket=args.bucket, stack=args.stack)
        publication = publish(session.create_client("s3", region_name=region), args.model_dir, bucket=bucket,
                              prefix=args.prefix)
    except (PublishError, LookupError, ClientError, BotoCoreError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    written = ", ".join([f"{name} uploaded" for name in publication.uploaded]
                        + [f"{name} already there" for name in publication.unchanged])
    print(f"published s3://{publication.bucket}/{publication.key_prefix} ({written})")
    print(f"manifest sha256 {publication.manifest_sha256}, artifact sha256 {publication.sha256}")
    print("Put these keys in cdk.json's context, then deploy (make deploy):")
    print(json.dumps(publication.context(with_bucket=name_bucket), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
