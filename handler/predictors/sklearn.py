"""scikit-learn runtime: a joblib artifact fed a DataFrame or an array, as it was fitted."""

from __future__ import annotations

import io
import warnings
from typing import Any

import joblib
import numpy as np
import sklearn
from sklearn.exceptions import InconsistentVersionWarning

from handler.errors import ModelLoadError
from handler.manifest import Manifest
from handler.predictors.base import PredictionArrays, UnscorableInput, ValidatedBatch, prediction_dicts


def load(manifest: Manifest, artifact: bytes) -> SklearnPredictor:
    """Unpickle verified artifact bytes, refusing any scikit-learn version but the installed one."""
    built_with = manifest.versions.get("scikit-learn")
    if built_with != sklearn.__version__:
        raise ModelLoadError("version_mismatch", f"artifact built with scikit-learn {built_with}, "
                                                 f"runtime has {sklearn.__version__}")
    with warnings.catch_warnings():
        warnings.simplefilter("error", InconsistentVersionWarning)
        try:
            model = joblib.load(io.BytesIO(artifact))
        except InconsistentVersionWarning as warning:
            raise ModelLoadError("version_mismatch", f"artifact pickled by scikit-learn "
                                                     f"{warning.original_sklearn_version}") from None
        except Exception as error:  # unpickling can raise anything; all of it means "unusable"
            raise ModelLoadError("artifact_unloadable",
                                 f"artifact could not be unpickled ({type(error).__name__})") from None
    return SklearnPredictor(manifest, model)


class SklearnPredictor:
    """Builds exactly the input the pipeline was fitted on, then calls it."""

    def __init__(self, manifest: Manifest, model: Any) -> None:
        self._check_model(manifest, model)
        self._model = model
        self._classes = manifest.classes
        self._dtypes = {feature.name: np.dtype(feature.dtype) for feature in manifest.features}
        self._as_frame = manifest.input_format == "dataframe"
        if self._as_frame:
            import pandas  # only DataFrame-fed pipelines pay for pandas

            self._pandas = pandas
        self._array_dtype = np.result_type(*self._dtypes.values())

    @staticmethod
    def _check_model(manifest: Manifest, model: Any) -> None:
        needed = "predict_proba" if manifest.task == "classification" else "predict"
        if not callable(getattr(model, needed, None)):
            raise ModelLoadError("not_an_estimator", f"artifact has no {needed}()")
        if manifest.task == "classification":
            classes = getattr(model, "classes_", None)
            if classes is None or np.asarray(classes).tolist() != manifest.classes:
                raise ModelLoadError("manifest_mismatch", "artifact classes differ from the manifest's")
        SklearnPredictor._check_features(manifest, model)

    @staticmethod
    def _check_features(manifest: Manifest, model: Any) -> None:
        """The manifest's features are the columns the model was fitted on (as the ONNX runtime checks its inputs):
        a renamed feature would otherwise answer 422 to every request while /health says 200."""
        fitted_names = getattr(model, "feature_names_in_", None)
        if fitted_names is not None:
            if [str(name) for name in fitted_names] != manifest.feature_names:
                raise ModelLoadError("manifest_mismatch", "the model was fitted on other columns than the "
                                                          "manifest's features (or in another order)")
            return
        if manifest.input_format == "dataframe":
            raise ModelLoadError("manifest_mismatch", "the manifest says dataframe but the model has no column names")
        count = getattr(model, "n_features_in_", len(manifest.features))
        if count != len(manifest.features):
            raise ModelLoadError("manifest_mismatch", f"the model takes {count} features, the manifest lists "
                                                      f"{len(manifest.features)}")

    def model_input(self, batch: ValidatedBatch) -> Any:
        """Columns → DataFrame with the manifest's dtypes, or a 2-D array in feature order."""
        columns = {name: _column(values, self._dtypes[name]) for name, values in batch.columns.items()}
        if self._as_frame:
            # A Series keeps object columns object: pandas 3 would otherwise infer its str dtype.
            return self._pandas.DataFrame({name: self._pandas.Series(values, dtype=values.dtype, copy=False)
                                           if values.dtype == object else values
                                           for name, values in columns.items()}, copy=False)
        return np.column_stack([columns[name].astype(self._array_dtype) for name in columns])

    def predict_arrays(self, batch: ValidatedBatch) -> PredictionArrays:
        """predict_proba or predict of the pipeline as float64 arrays."""
        try:
            features = self.model_input(batch)
        except OverflowError as error:  # an integer the model's dtype cannot hold, e.g. 300 for int8
            raise UnscorableInput(str(error)) from error
        try:
            if self._classes is not None:
                return PredictionArrays(probabilities=np.asarray(self._model.predict_proba(features), dtype=np.float64))
            return PredictionArrays(values=np.ravel(self._model.predict(features)))
        except (ValueError, FloatingPointError) as error:  # e.g. a float32 overflow inside a tree model
            raise UnscorableInput(str(error)) from error

    def predict(self, batch: ValidatedBatch) -> list[dict[str, Any]]:
        return prediction_dicts(self._classes, self.predict_arrays(batch))


def _column(values: list[Any], dtype: np.dtype) -> np.ndarray:
    if dtype == object:
        return np.array([np.nan if value is None else value for value in values], dtype=object)
    return np.array(values, dtype=dtype)  # None becomes NaN in float columns
