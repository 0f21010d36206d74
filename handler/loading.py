"""Init-time work: read the manifest, verify the artifact's sha256, load the predictor."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from handler.config import Settings, SettingsError, load_settings
from handler.errors import ModelLoadError
from handler.manifest import Manifest, ManifestError, ManifestMissing, read_manifest
from handler.predictors import Predictor, load_predictor
from handler.validation import RequestValidator


@dataclass(frozen=True)
class LoadedModel:
    """A verified model, ready to validate and answer requests."""

    manifest: Manifest
    predictor: Predictor
    validator: RequestValidator
    settings: Settings


def load_model(settings: Settings) -> LoadedModel:
    """Load the model in settings.model_dir, failing closed with a ModelLoadError naming the cause."""
    try:
        manifest = read_manifest(settings.model_dir)
    except ManifestMissing as error:
        raise ModelLoadError("manifest_missing", str(error)) from None
    except ManifestError as error:
        raise ModelLoadError("manifest_invalid", str(error)) from None
    try:
        # Read once: the bytes we hash are the bytes we unpickle.
        artifact = (settings.model_dir / manifest.artifact).read_bytes()
    except FileNotFoundError:
        raise ModelLoadError("artifact_missing", f"{manifest.artifact} not found") from None
    except OSError as error:
        raise ModelLoadError("artifact_missing", f"{manifest.artifact} unreadable ({error.strerror})") from None
    digest = hashlib.sha256(artifact).hexdigest()
    if digest != manifest.sha256:
        raise ModelLoadError("sha256_mismatch",
                             f"{manifest.artifact} has sha256 {digest}, the manifest pins {manifest.sha256}")
    predictor = load_predictor(manifest, artifact)
    return LoadedModel(manifest=manifest, predictor=predictor,
                       validator=RequestValidator(manifest, settings), settings=settings)


def load_model_from_environment(environ: Mapping[str, str]) -> LoadedModel:
    """Read settings from environ, then load the model; any failure is a ModelLoadError."""
    try:
        settings = load_settings(environ)
    except SettingsError as error:
        raise ModelLoadError("settings_invalid", str(error)) from None
    return load_model(settings)
