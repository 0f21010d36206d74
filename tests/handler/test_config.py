"""Environment variables → Settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from handler.config import (DEFAULT_MODEL_DIR, S3ModelLocation, Settings, SettingsError, function_environment,
                            load_settings, observability_names, settings_environment)


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


def test_capture_is_binned_for_every_request_unless_set():
    assert (Settings().capture_mode, Settings().capture_sample_rate) == ("binned", 1.0)
    settings = load_settings({"CAPTURE_MODE": "Off", "CAPTURE_SAMPLE_RATE": "0.25"})
    assert (settings.capture_mode, settings.capture_sample_rate) == ("off", 0.25)
    assert load_settings({"CAPTURE_SAMPLE_RATE": "0"}).capture_sample_rate == 0.0


@pytest.mark.parametrize(("variable", "value"), [
    ("CAPTURE_MODE", "full"), ("CAPTURE_SAMPLE_RATE", "1.5"), ("CAPTURE_SAMPLE_RATE", "-0.1"),
    ("CAPTURE_SAMPLE_RATE", "nan"), ("CAPTURE_SAMPLE_RATE", "half"),
])
def test_a_wrong_capture_setting_is_named(variable, value):
    with pytest.raises(SettingsError, match=f"{variable} must be .*, got '{value}'"):
        load_settings({variable: value})


def test_observability_names_fall_back_to_defaults():
    assert observability_names({}) == ("model-api", "SklearnModelApi")
    assert observability_names({"POWERTOOLS_SERVICE_NAME": "churn",
                                "POWERTOOLS_METRICS_NAMESPACE": "Churn"}) == ("churn", "Churn")


def test_the_environment_the_stack_builds_loads_back_as_the_same_settings():
    # Given settings as a deployment chooses them
    settings = Settings(max_instances=50, max_body_bytes=4096, docs_enabled=True,
                        model_s3=S3ModelLocation("models", "churn/2/", "a" * 64),
                        capture_mode="raw", capture_sample_rate=0.1)
    # When the stack turns them into environment variables and the handler reads them back
    environment = function_environment(settings, service_name="churn", metrics_namespace="Churn", log_level="DEBUG")
    # Then nothing is lost, and Powertools gets its own names
    assert load_settings(environment) == settings
    assert observability_names(environment) == ("churn", "Churn")
    assert environment["POWERTOOLS_LOG_LEVEL"] == "DEBUG"


def test_default_settings_need_no_environment_variable():
    assert settings_environment(Settings()) == {}
