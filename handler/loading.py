"""Init-time work: read the manifest, verify the artifact's sha256, load the predictor."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from handler.config import S3ModelLocation, Settings, SettingsError, load_settings
from handler.errors import ModelLoadError
from handler.manifest import (MANIFEST_FILE, MAX_ARTIFACT_BYTES, Manifest, ManifestError, ManifestMissing,
                              UnsafeFile, read_manifest, read_regular_file)
from handler.predictors import Predictor, load_predictor
from handler.validation import RequestValidator

if TYPE_CHECKING:  # botocore is imported only for a model in S3
    from handler.model_source import S3Objects


@dataclass(frozen=True)
class LoadedModel:
    """A verified model, ready to validate and answer requests."""

    manifest: Manifest
    predictor: Predictor
    validator: RequestValidator
    settings: Settings
    profile_problem: str | None = None  # why the pinned profile could not be fetched from S3 (capture is then off)


def manifest_in(model_dir: Path) -> Manifest:
    """The manifest in model_dir, or a ModelLoadError: manifest_missing or manifest_invalid."""
    try:
        return read_manifest(model_dir)
    except ManifestMissing as error:
        raise ModelLoadError("manifest_missing", str(error)) from None
    except ManifestError as error:
        raise ModelLoadError("manifest_invalid", str(error)) from None


def load_model(settings: Settings) -> LoadedModel:
    """Load the model in settings.model_dir, failing closed with a ModelLoadError naming the cause."""
    manifest = manifest_in(settings.model_dir)
    try:
        # Read once: the bytes we hash are the bytes we unpickle.
        artifact = read_regular_file(settings.model_dir / manifest.artifact, MAX_ARTIFACT_BYTES)
    except FileNotFoundError:
        raise ModelLoadError("artifact_missing", f"{manifest.artifact} not found") from None
    except OSError as error:
        raise ModelLoadError("artifact_missing", f"{manifest.artifact} unreadable ({error.strerror})") from None
    except UnsafeFile as error:
        raise ModelLoadError("artifact_invalid", str(error)) from None
    digest = hashlib.sha256(artifact).hexdigest()
    if digest != manifest.sha256:
        raise ModelLoadError("sha256_mismatch",
                             f"{manifest.artifact} has sha256 {digest}, the manifest pins {manifest.sha256}")
    predictor = load_predictor(manifest, artifact)
    return LoadedModel(manifest=manifest, predictor=predictor,
                       validator=RequestValidator(manifest, settings), settings=settings)


def load_model_from_environment(environ: Mapping[str, str]) -> LoadedModel:
    """Read settings from environ, fetch the model if it is in S3, then load it; any failure is a ModelLoadError.

    An exception no check foresaw (RecursionError, MemoryError, a library's TypeError...) is one too, with the
    cause `load_failed` naming its type: init fails closed whatever goes wrong.
    """
    try:
        return _load_from_environment(environ)
    except ModelLoadError:
        raise
    except Exception as error:
        raise ModelLoadError("load_failed", f"{type(error).__name__}: {str(error)[:300]}") from error


def _load_from_environment(environ: Mapping[str, str]) -> LoadedModel:
    try:
        settings = load_settings(environ)
    except SettingsError as error:
        raise ModelLoadError("settings_invalid", str(error)) from None
    if settings.model_s3 is None:
        return load_model(settings)
    directory, profile_problem = fetch_published_model(settings.model_s3)
    return replace(load_model(replace(settings, model_dir=directory)), profile_problem=profile_problem)


def fetch_published_model(location: S3ModelLocation) -> tuple[Path, str | None]:
    """A new directory in the temp dir (/tmp on Lambda) holding the published manifest, artifact and profile,
    and why the profile could not be fetched (None when it was, or when the manifest pins none).

    The manifest's bytes must hash to the deployment's manifest sha256 (so a rewritten manifest in the bucket
    is refused), it must pin the deployment's sha256 and the artifact must hash to it; on any failure the
    directory is removed and a ModelLoadError names the cause. The profile only serves monitoring, so a
    failure to fetch it fails open: the model loads and capture stays off, naming the S3 cause. Its bytes
    are verified against profile_sha256 when the handler reads them, as for a bundled model.
    """
    from handler.model_source import S3Objects  # botocore is imported only for a model in S3

    directory = Path(tempfile.mkdtemp(prefix="model-"))
    try:
        with S3Objects(location.bucket, location.prefix) as objects:
            objects.download(MANIFEST_FILE, directory, expected_sha256=location.manifest_sha256)
            manifest = manifest_in(directory)
            if manifest.sha256 != location.sha256:
                raise ModelLoadError("sha256_mismatch", f"{objects.url(MANIFEST_FILE)} pins {manifest.sha256}, "
                                                        f"the deployment pins {location.sha256}")
            objects.download(manifest.artifact, directory, expected_sha256=location.sha256)
            profile_problem = None if manifest.profile is None else _fetch_profile(objects, manifest, directory)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return directory, profile_problem


def _fetch_profile(objects: S3Objects, manifest: Manifest, directory: Path) -> str | None:
    """Download the pinned profile; the ModelLoadError's cause and detail instead of raising it."""
    try:
        objects.download(manifest.profile, directory)
    except ModelLoadError as error:
        return f"{error.cause}: {error.detail}"
    return None
