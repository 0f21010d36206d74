"""The build layer: package a model (builder.packager, or `package` from a notebook) and bundle it for Lambda."""

from __future__ import annotations

from typing import Any

__all__ = ["package"]


def __getattr__(name: str) -> Any:
    # `package` is imported on first use: `import builder.bundler` and friends stay free of pandas and joblib.
    if name == "package":
        from builder.notebook import package

        return package
    raise AttributeError(f"module 'builder' has no attribute {name!r}")
