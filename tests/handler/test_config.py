"""Environment variables → Settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from handler.config import DEFAULT_MODEL_DIR, Settings, SettingsError, load_settings, observability_names


def test_defaults_apply_when_nothing_is_set():
    assert load_settings({}) == Settings(model_dir=DEFAULT_MODEL_DIR, max_instances=1000,
                                         max_body_bytes=1_048_576, max_string_length=256)


def test_values_are_read_from_the_environment():
    settings = load_settings({"MODEL_DIR": "/opt/model", "MAX_INSTANCES": "10",
                              "MAX_BODY_BYTES": "2048", "MAX_STRING_LENGTH": "32"})
    assert settings == Settings(model_dir=Path("/opt/model"), max_instances=10,
                                max_body_bytes=2048, max_string_length=32)


def test_every_wrong_variable_is_named():
    with pytest.raises(SettingsError) as caught:
        load_settings({"MAX_INSTANCES": "many", "MAX_STRING_LENGTH": "0"})
    assert "MAX_INSTANCES must be an integer >= 1, got 'many'" in str(caught.value)
    assert "MAX_STRING_LENGTH must be an integer >= 1, got '0'" in str(caught.value)


def test_observability_names_fall_back_to_defaults():
    assert observability_names({}) == ("model-api", "SklearnModelApi")
    assert observability_names({"POWERTOOLS_SERVICE_NAME": "churn",
                                "POWERTOOLS_METRICS_NAMESPACE": "Churn"}) == ("churn", "Churn")
