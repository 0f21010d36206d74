"""A published model in S3: downloaded at init into a fresh directory and verified before anything loads it.

Imported only when MODEL_S3_BUCKET is set, so a bundled model never pays for botocore at cold start.
Each file is written under a temporary name and renamed only once it is complete (and, for the
artifact, hashes to the pinned sha256); on any failure the directory is removed.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, FlexibleChecksumError

from handler.config import S3ModelLocation
from handler.errors import ModelLoadError
from handler.loading import manifest_in
from handler.manifest import MANIFEST_FILE

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


def fetch_model(location: S3ModelLocation) -> Path:
    """A new directory in the temp dir (/tmp on Lambda) holding the verified manifest and artifact.

    The manifest must pin location.sha256 and the artifact must hash to it; any failure is a ModelLoadError.
    """
    directory = Path(tempfile.mkdtemp(prefix="model-"))
    client = s3_client()
    try:
        _download(client, location, MANIFEST_FILE, directory)
        manifest = manifest_in(directory)
        if manifest.sha256 != location.sha256:
            raise ModelLoadError("sha256_mismatch", f"s3://{location.bucket}/{location.key(MANIFEST_FILE)} pins "
                                                    f"{manifest.sha256}, the deployment pins {location.sha256}")
        _download(client, location, manifest.artifact, directory, expected_sha256=location.sha256)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    finally:
        client.close()  # no pooled connection may outlive init (nor end up in a SnapStart snapshot)
    return directory


def _download(client: Any, location: S3ModelLocation, file_name: str, directory: Path, *,
              expected_sha256: str | None = None) -> None:
    """Stream one object to a temporary name, check its sha256 if one is expected, then rename it into place."""
    url = f"s3://{location.bucket}/{location.key(file_name)}"
    partial = directory / f".{file_name}.partial"
    digest = hashlib.sha256()
    with _s3_errors(url):
        response = client.get_object(Bucket=location.bucket, Key=location.key(file_name), ChecksumMode="ENABLED")
        with partial.open("wb") as stream:
            for chunk in response["Body"].iter_chunks(CHUNK_BYTES):
                digest.update(chunk)
                stream.write(chunk)
        if expected_sha256 is not None and digest.hexdigest() != expected_sha256:
            raise ModelLoadError("sha256_mismatch", f"{url} has sha256 {digest.hexdigest()}, "
                                                    f"the deployment pins {expected_sha256}")
        partial.rename(directory / file_name)


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
