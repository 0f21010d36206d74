"""What a model runtime is: read by the manifest, the predictors, the bundler and the packager."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Runtime:
    """One way of serving a model: its predictor module, the pins it ships and the versions a manifest records."""

    name: str
    predictor_module: str
    dependency_group: str
    # Distributions whose versions the packager records: the artifact only loads (or was only proven) under them.
    recorded_versions: tuple[str, ...]
    # Only a DataFrame-fed pipeline under this runtime imports pandas (and ships it).
    pandas_for_dataframes: bool


SKLEARN = Runtime("sklearn", "handler.predictors.sklearn", "runtime-sklearn",
                  ("scikit-learn", "numpy", "scipy", "joblib"), pandas_for_dataframes=True)
ONNX = Runtime("onnx", "handler.predictors.onnx", "runtime-onnx",
               ("scikit-learn", "numpy", "joblib", "onnxruntime", "onnx", "skl2onnx"), pandas_for_dataframes=False)
RUNTIMES: dict[str, Runtime] = {runtime.name: runtime for runtime in (SKLEARN, ONNX)}
# Distributions only a DataFrame-fed scikit-learn pipeline needs: pandas and what only pandas requires.
PANDAS_DISTRIBUTIONS = frozenset({"pandas", "python-dateutil", "six"})


def needs_pandas(runtime: str, input_format: str) -> bool:
    """Whether serving a model of this runtime and input format imports pandas."""
    return RUNTIMES[runtime].pandas_for_dataframes and input_format == "dataframe"
