"""Deployment settings: cdk.json's defaults, and a message naming the key and what it allows for each wrong value."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from aws_cdk import App

from infra.app import build
from infra.config import SETTINGS, ConfigError, StackConfig, load_config, settings_table
from tests.helpers import PROJECT_ROOT

WRONG_VALUES = [
    ("stage", "Prod_1"),
    ("service_name", "model api"),
    ("metrics_namespace", "AWS/Lambda"),
    ("log_level", "verbose"),
    ("architecture", "aarch64"),
    ("python_runtime", "python3.9"),
    ("memory_mb", 64),
    ("memory_mb", True),
    ("timeout_seconds", 30),
    ("timeout_seconds", "ten"),
    ("reserved_concurrency", 0),
    ("reserved_concurrency", 10_001),
    ("log_retention_days", 2),
    ("log_retention_days", True),
    ("log_retention_days", 30.0),
    ("auth", "cognito"),
    ("throttle_rate_limit", 0),
    ("throttle_burst_limit", 10_000),
    ("cors_allowed_origins", ["*"]),
    ("cors_allowed_origins", ["http://app.example.com"]),
    ("cors_allowed_origins", "https://app.example.com/path"),
    ("alarm_email", "not-an-address"),
    ("invoke_principals", ["arn:aws:iam::123456789012:group/analysts"]),
    ("invoke_principals", "123456789012"),
    ("max_instances", 0),
    ("max_instances", 10_000_000),
    ("max_body_bytes", 10_000_000),
    ("max_string_length", -1),
    ("docs_enabled", "yes"),
    ("model_source", "efs"),
    ("model_bucket_name", "Models_Bucket"),
    ("model_bucket_name", "a..b"),
    ("model_bucket_name", "192.168.10.12"),
    ("model_bucket_name", "xn--models"),
    ("model_bucket_name", "models-s3alias"),
    ("model_s3_key_prefix", "models/churn/1.0.0"),
    ("model_s3_key_prefix", "models/*/"),
    ("model_s3_key_prefix", "models/../other/"),
    ("model_sha256", "A" * 64),
    ("model_manifest_sha256", "b" * 63),
    ("deployment", "blue_green"),
    ("pre_traffic_check", "yes"),
    ("snap_start", 1),
    ("throttle_rate_limit", True),
    ("provisioned_concurrency", 0),
    ("batch", "yes"),
    ("batch_max_concurrency", 0),
    ("batch_reserved_concurrency", 5000),
    ("batch_memory_mb", 64),
    ("batch_part_mb", 0),
    ("batch_input_bucket_name", "a..b"),
    ("batch_input_prefix", "input"),
    ("batch_output_bucket_name", "Output"),
    ("batch_output_prefix", "/output/"),
    ("capture", "all"),
    ("capture_sample_rate", 1.5),
    ("drift_check", 1),
    ("drift_schedule", "daily"),
    ("drift_min_rows", 0),
]
ALLOWED = {setting.key: setting.allowed for setting in SETTINGS}


def test_cdk_json_states_every_setting_at_its_default(cdk_context):
    # Given
    ours = {key: value for key, value in cdk_context.items() if not key.startswith("@")}

    # When / Then (a tuple default is a JSON list in cdk.json)
    assert ours == {setting.key: json.loads(json.dumps(setting.default)) for setting in SETTINGS}


def test_every_default_meets_its_own_rule_and_an_empty_context_gives_the_defaults():
    # Given / When / Then
    assert {setting.key: setting.parse(setting.default) for setting in SETTINGS} == {
        setting.key: setting.default for setting in SETTINGS}
    assert load_config({}) == StackConfig()


def test_the_readme_settings_table_is_the_one_the_declarations_give():
    # Given
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")

    # When
    [section] = re.findall(r"<!-- settings:start -->\n(.*?)\n<!-- settings:end -->", readme, flags=re.DOTALL)

    # Then
    assert section == settings_table(), "regenerate the README's table with `python -m infra.config`"
    for setting in SETTINGS:
        assert f"| `{setting.key}` | `{json.dumps(setting.default)}` |" in section


def test_defaults_make_an_iam_protected_arm64_python314_function_of_one_vcpu():
    # Given / When
    config = load_config({})

    # Then
    assert (config.auth, config.architecture, config.python_runtime, config.memory_mb) == (
        "iam", "arm64", "python3.14", 1769)
    assert config.timeout_seconds < 30
    assert (config.cors_allowed_origins, config.invoke_principals, config.alarm_email) == ((), (), None)
    assert config.stack_name == "model-api-dev"
    assert config.python_version == "3.14"


def test_the_rollout_defaults_to_a_canary_and_the_model_to_the_bundled_one():
    # Given / When
    config = load_config({})

    # Then
    assert (config.deployment, config.pre_traffic_check) == ("canary_10_percent_5_minutes", False)
    assert (config.model_source, config.model_is_published) == ("bundled", False)
    assert (config.snap_start, config.provisioned_concurrency) == (False, None)


def test_a_published_model_needs_s3_and_the_three_keys_publish_prints():
    # Given
    keys = {"model_s3_key_prefix": "models/churn/1.0.0/", "model_sha256": "a" * 64, "model_manifest_sha256": "b" * 64}

    # When / Then
    assert load_config({"model_source": "s3", **keys}).model_is_published
    assert not load_config({"model_source": "s3"}).model_is_published  # the bucket first, the model later
    assert not load_config({"model_source": "bundled", **keys}).model_is_published


@pytest.mark.parametrize(("context", "message"), [
    ({"snap_start": True, "provisioned_concurrency": 2},
     ("snap_start and provisioned_concurrency: choose one; AWS Lambda does not support SnapStart with provisioned "
      "concurrency")),
    ({"reserved_concurrency": 2, "provisioned_concurrency": 3},
     "provisioned_concurrency: got 3; allowed: at most reserved_concurrency (2)"),
    ({"model_source": "s3", "model_sha256": "a" * 64},
     "model_s3_key_prefix, model_sha256 and model_manifest_sha256: set all three"),
    ({"model_source": "s3", "model_s3_key_prefix": "models/churn/1.0.0/", "model_sha256": "a" * 64},
     "model_s3_key_prefix, model_sha256 and model_manifest_sha256: set all three"),
], ids=["snap-start-with-provisioned", "provisioned-over-reserved", "half-a-published-model",
        "a published model without its manifest pin"])
def test_values_that_cannot_go_together_are_refused_with_the_reason(context, message):
    # Given / When
    with pytest.raises(ConfigError) as raised:
        load_config(context)

    # Then
    assert message in str(raised.value)


def test_every_key_has_a_wrong_value_test():
    assert {setting.key for setting in SETTINGS} == {key for key, _ in WRONG_VALUES}


@pytest.mark.parametrize(("key", "value"), WRONG_VALUES)
def test_a_wrong_value_names_the_key_and_the_allowed_values(key, value):
    # Given / When
    with pytest.raises(ConfigError) as raised:
        load_config({key: value})

    # Then
    message = str(raised.value)
    assert f"{key}: got {value!r}" in message
    assert ALLOWED[key] in message


def test_every_wrong_key_is_reported_at_once():
    # Given / When
    with pytest.raises(ConfigError) as raised:
        load_config({"memory_mb": 1, "auth": "open"})

    # Then
    assert re.search(r"memory_mb: .*\n\s+auth: ", str(raised.value))


@pytest.mark.parametrize(("key", "meant"), [
    ("memroy_mb", "memory_mb"), ("Stage", "stage"), ("memory-mb", "memory_mb"), ("MODEL-SOURCE", "model_source"),
])
def test_a_misspelt_key_is_an_error_with_a_suggestion(key, meant):
    # Given / When
    with pytest.raises(ConfigError, match=rf"{key}: unknown context key \(did you mean {meant}\?\)"):
        load_config({key: "x"})


def test_a_key_like_no_other_is_an_error_too():
    # Given / When
    with pytest.raises(ConfigError, match=r"Region: unknown context key; known keys: stage, service_name, "):
        load_config({"Region": "eu-west-1"})


def test_cdk_feature_flags_lookups_and_cli_keys_are_not_ours_to_check():
    # Given
    context = {"@aws-cdk/core:newStyleStackSynthesis": True, "aws:cdk:bundling-stacks": ["**"],
               "availability-zones:account=123456789012:region=eu-west-1": ["eu-west-1a"],
               "acknowledged-issue-numbers": [32775], "cli-telemetry": False}

    # When / Then
    assert load_config(context) == load_config({})


@pytest.mark.parametrize(("context", "expected"), [
    ({"memory_mb": "3008"}, {"memory_mb": 3008}),
    ({"throttle_rate_limit": "12.5"}, {"throttle_rate_limit": 12.5}),
    ({"reserved_concurrency": "null"}, {"reserved_concurrency": None}),
    ({"log_retention_days": "90"}, {"log_retention_days": 90}),
    ({"cors_allowed_origins": "https://a.example.com, http://localhost:5173"},
     {"cors_allowed_origins": ("https://a.example.com", "http://localhost:5173")}),
    ({"invoke_principals": '["arn:aws:iam::123456789012:role/app"]'},
     {"invoke_principals": ("arn:aws:iam::123456789012:role/app",)}),
    ({"snap_start": "true", "pre_traffic_check": "False"}, {"snap_start": True, "pre_traffic_check": False}),
    ({"provisioned_concurrency": "4"}, {"provisioned_concurrency": 4}),
])
def test_command_line_strings_are_parsed(context: dict[str, Any], expected: dict[str, Any]):
    # Given / When (`-c key=value` always arrives as a string)
    config = load_config(context)

    # Then
    assert {key: getattr(config, key) for key in expected} == expected


def test_the_app_refuses_to_build_from_a_wrong_context_before_bundling():
    # Given
    app = App(context={"architecture": "sparc"})

    # When / Then
    with pytest.raises(ConfigError, match="architecture: got 'sparc'; allowed: one of arm64, x86_64"):
        build(app)


def test_the_app_refuses_a_published_model_other_than_the_packaged_one(cdk_context):
    # Given the keys of another model than model_artifacts/ holds (the bundle's libraries follow its manifest)
    app = App(context={**cdk_context, "model_source": "s3", "model_s3_key_prefix": "models/other/1/",
                       "model_sha256": "e" * 64, "model_manifest_sha256": "f" * 64})

    # When / Then
    with pytest.raises(ConfigError, match=r"model_sha256: got 'e{64}'; allowed: the sha256 model_artifacts/manifest"):
        build(app)
