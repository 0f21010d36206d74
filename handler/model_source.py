"""Storage adapter for a published model: objects under an S3 prefix, each streamed to disk and checked.

It knows nothing of manifests (handler.loading decides what to fetch and what to pin). Imported only when
MODEL_S3_BUCKET is set, so a bundled model never pays for botocore at cold start. Each file is written
under a temporary name and renamed only once it is complete and hashes to the expected sha256.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, FlexibleChecksumError

from handler.errors import ModelLoadError
from handler.manifest import MAX_ARTIFACT_BYTES

# Init must end within Lambda's 10 s: a stalled S3 costs at most MAX_ATTEMPTS x (connect + read timeout) per file.
CONNECT_TIMEOUT_SECONDS = 1.0
READ_TIMEOUT_SECONDS = 2.0
MAX_ATTEMPTS = 2
CHUNK_BYTES = 1 << 20


def s3_client() -> Any:
    """An S3 client with short timeouts and bounded retries (botocore alone: boto3 adds nothing needed here)."""
    config = Config(connect_timeout=CONNECT_TIMEOUT_SECONDS, read_timeout=READ_TIMEOUT_SECONDS,
                    retries={"total_max_attempts": MAX_ATTEMPTS, "mode": "standard"})
    return botocore.session.get_session().create_client("s3", config=config)


class S3Objects:
    """Objects under `prefix` in `bucket`, downloaded one at a time with one short-lived client."""

    def __init__(self, bucket: str, prefix: str) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self._client = s3_client()

    def __enter__(self) -> S3Objects:
        return self

    def __exit__(self, *_: object) -> None:
        self._client.close()  # no pooled connection may outlive init (nor end up in a SnapStart snapshot)

    def url(self, file_name: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{file_name}"

    def download(self, file_name: str, directory: Path, *, expected_sha256: str | None = None) -> Path:
        """Stream one object into directory; with expected_sha256, refuse other bytes (sha256_mismatch)."""
        return _download(self._client, self.bucket, self.prefix + file_name, directory / file_name,
                         self.url(file_name), expected_sha256)


def _download(client: Any, bucket: str, key: str, destination: Path, url: str,
              expected_sha256: str | None) -> Path:
    """Stream one object to a temporary name, check its sha256 if one is expected, then rename it into place.

    No object over MAX_ARTIFACT_BYTES is stored: /tmp and init's time are not spent on what could never load.
    """
    partial = destination.with_name(f".{destination.name}.partial")
    digest = hashlib.sha256()
    size = 0
    with _s3_errors(url):
        response = client.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        with partial.open("wb") as stream:
            for chunk in response["Body"].iter_chunks(CHUNK_BYTES):
                size += len(chunk)
                if size > MAX_ARTIFACT_BYTES:
                    raise ModelLoadError("artifact_invalid", f"{url} holds over {MAX_ARTIFACT_BYTES} bytes, the cap")
                digest.update(chunk)
                stream.write(chunk)
        if expected_sha256 is not None and digest.hexdigest() != expected_sha256:
            raise ModelLoadError("sha256_mismatch", f"{url} has sha256 {digest.hexdigest()}, "
                                                    f"the deployment pins {expected_sha256}")
        partial.rename(destination)
    return destination


@contextmanager
def _s3_errors(url: str) -> Iterator[None]:
    """Turn what S3, the network or the disk raise into a ModelLoadError with a stable cause."""
    try:
        yield
    except ClientError as error:
        raise _client_error(error, url) from None
    except FlexibleChecksumError:
        raise ModelLoadError("sha256_mismatch", f"{url}: the bytes received fail S3's SHA256 checksum") from None
    except BotoCoreError as error:  # connect or read timeout, refused connection, interrupted body
        raise ModelLoadError("s3_unreachable", f"{url}: {error}") from None
    except OSError as error:  # the temp dir is full or not writable
        raise ModelLoadError("artifact_missing", f"{url} could not be stored ({error.strerror})") from None


def _client_error(error: ClientError, url: str) -> ModelLoadError:
    code = error.response.get("Error", {}).get("Code", "")
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    answered = f"{url}: S3 answered {code or 'an error'} ({status})"
    if code == "NoSuchBucket":
        return ModelLoadError("s3_bucket_missing", answered)
    if status == 404:
        return ModelLoadError("s3_object_missing", answered)
    if status == 403:
        return ModelLoadError("s3_access_denied", f"{answered}; without s3:ListBucket S3 also answers 403 "
                                                  "for a key that does not exist")
    if status >= 500:
        return ModelLoadError("s3_unreachable", f"{answered} after {MAX_ATTEMPTS} attempts")
    return ModelLoadError("s3_request_failed", answered)
