"""Environment variables → Settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from handler.config import (DEFAULT_MODEL_DIR, S3ModelLocation, Settings, SettingsError, function_environment,
                            load_settings, log_level, observability_names, settings_environment)


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
    assert "MAX_INSTANCES must be an integer from 1 to 100000, got 'many'" in str(caught.value)
    assert "MAX_STRING_LENGTH must be an integer from 1 to 6291456, got '0'" in str(caught.value)


@pytest.mark.parametrize(("variable", "value"), [
    ("MAX_INSTANCES", "100001"), ("MAX_INSTANCES", "1" * 5000), ("MAX_INSTANCES", "-1"), ("MAX_INSTANCES", "1e3"),
    ("MAX_BODY_BYTES", "6291457"), ("MAX_BODY_BYTES", "63"), ("MAX_STRING_LENGTH", "10000000"),
    ("MAX_INSTANCES", "\u0661\u0662"),  # digits int() accepts, no one means
])
def test_values_outside_sane_ranges_are_refused(variable, value):
    with pytest.raises(SettingsError, match=f"{variable} must be an integer from"):
        load_settings({variable: value})


def test_the_largest_allowed_values_load():
    settings = load_settings({"MAX_INSTANCES": "100000", "MAX_BODY_BYTES": "6291456"})
    assert (settings.max_instances, settings.max_body_bytes) == (100_000, 6_291_456)


@pytest.mark.parametrize(("value", "level", "problem"), [
    ("", "INFO", False), ("debug", "DEBUG", False), (" Warning ", "WARNING", False),
    ("BOGUS", "INFO", True), ("10", "INFO", True),
])
def test_the_log_level_is_normalised_and_an_unknown_one_falls_back_to_info(value, level, problem):
    found, why = log_level({"POWERTOOLS_LOG_LEVEL": value})
    assert found == level and (why is not None) == problem


def test_s3_mode_needs_the_manifest_pin_too():
    pins = {"MODEL_S3_BUCKET": "models", "MODEL_S3_PREFIX": "churn/2/", "MODEL_SHA256": "a" * 64}
    with pytest.raises(SettingsError, match="MODEL_MANIFEST_SHA256 must be 64 lowercase hex"):
        load_settings(pins)
    settings = load_settings({**pins, "MODEL_MANIFEST_SHA256": "b" * 64})
    assert settings.model_s3 == S3ModelLocation("models", "churn/2/", "a" * 64, "b" * 64)


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
                        model_s3=S3ModelLocation("models", "churn/2/", "a" * 64, "b" * 64),
                        capture_mode="raw", capture_sample_rate=0.1)
    # When the stack turns them into environment variables and the handler reads them back
    environment = function_environment(settings, service_name="churn", metrics_namespace="Churn", log_level="DEBUG")
    # Then nothing is lost, and Powertools gets its own names
    assert load_settings(environment) == settings
    assert observability_names(environment) == ("churn", "Churn")
    assert environment["POWERTOOLS_LOG_LEVEL"] == "DEBUG"


def test_default_settings_need_no_environment_variable():
    assert settings_environment(Settings()) == {}
