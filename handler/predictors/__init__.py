"""Model runtimes behind one interface; each runtime's imports stay inside its own module."""

from __future__ import annotations

from importlib import import_module

from handler.errors import ModelLoadError
from handler.manifest import Manifest
from handler.predictors.base import Predictor
from handler.runtimes import RUNTIMES



def load_predictor(manifest: Manifest, artifact: bytes) -> Predictor:
    """Load the verified artifact bytes with the runtime the manifest names."""
    runtime = RUNTIMES.get(manifest.runtime)
    if runtime is None:
        raise ModelLoadError("manifest_invalid", f"unsupported runtime {manifest.runtime!r}")
    try:
        module = import_module(runtime.predictor_module)
    except ImportError as error:  # a bundle built without this runtime's libraries
        raise ModelLoadError("runtime_unavailable",
                             f"the {manifest.runtime} runtime cannot be imported ({error.name or error})") from None
    return module.load(manifest, artifact)


__all__ = ["Predictor", "load_predictor"]
