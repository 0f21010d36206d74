"""The stack: wires the units from one config, grants invoke principals and model reads, defines nothing itself."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

import pytest
from aws_cdk import App, CfnResource
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Annotations, Match, Template
from cfnlint.api import lint_file

from handler.config import (
    DOCS_ENABLED,
    LOG_LEVEL,
    MAX_INSTANCES,
    METRICS_NAMESPACE,
    MODEL_MANIFEST_SHA256,
    MODEL_S3_BUCKET,
    MODEL_S3_PREFIX,
    MODEL_SHA256,
    S3_VARIABLES,
    SERVICE_NAME,
    load_settings,
)
from handler.manifest import read_manifest
from infra.app import add_nag_checks
from infra.config import StackConfig
from infra.outputs import MODEL_BUCKET
from infra.stack import ModelApiStack
from tests.infra.conftest import FEATURE_FLAGS
from tests.infra.test_app import ALLOWED_LINT_WARNINGS
from tests.models import demo

ROLE_ARN = "arn:aws:iam::123456789012:role/analytics/churn-dashboard"
USER_ARN = "arn:aws:iam::123456789012:user/batch-scorer"
UNITS = ("Model", "Api", "Monitoring", "Rollout")
MANIFEST = read_manifest(demo().model_dir)
PREFIX = "models/customer-churn/1.0.0/"
MANIFEST_SHA256 = hashlib.sha256((demo().model_dir / "manifest.json").read_bytes()).hexdigest()
PUBLISHED = {"model_source": "s3", "model_s3_key_prefix": PREFIX, "model_sha256": MANIFEST.sha256,
             "model_manifest_sha256": MANIFEST_SHA256}


def make_stack(config: StackConfig, code: lambda_.Code, app: App | None = None, **changes: Any) -> ModelApiStack:
    return ModelApiStack(app or App(context=FEATURE_FLAGS), "Under-Test",
                         config=dataclasses.replace(config, **changes), function_code=code, manifest=MANIFEST)


def function_properties(template: Template) -> dict[str, Any]:
    """The model function's properties (the stack's only function unless a pre-traffic check is asked for)."""
    return next(function["Properties"] for function in template.find_resources("AWS::Lambda::Function").values()
                if function["Properties"]["Handler"] == "handler.app.lambda_handler")


def s3_reads(template: Template) -> list[dict[str, Any]]:
    return [statement for policy in template.find_resources("AWS::IAM::Policy").values()
            for statement in policy["Properties"]["PolicyDocument"]["Statement"] if "s3:" in str(statement["Action"])]


def test_every_resource_belongs_to_a_unit_construct(default_config, tiny_code):
    # Given / When
    stack = make_stack(default_config, tiny_code, invoke_principals=(ROLE_ARN,))

    # Then
    resources = [construct for construct in stack.node.find_all() if isinstance(construct, CfnResource)]
    owners = {resource.node.path.split("/")[1] for resource in resources}
    assert owners == {*UNITS, "Invoker0"}  # Invoker0: the grant's policy on the imported role


def test_a_published_model_adds_the_model_store_unit(default_config, tiny_code):
    # Given / When
    stack = make_stack(default_config, tiny_code, **PUBLISHED)

    # Then
    owners = {construct.node.path.split("/")[1] for construct in stack.node.find_all()
              if isinstance(construct, CfnResource)}
    assert owners == {*UNITS, "ModelStore"}


def test_config_reaches_the_function_the_api_and_the_alarms(default_config, tiny_code):
    # Given / When
    stack = make_stack(default_config, tiny_code, memory_mb=3008, timeout_seconds=20, throttle_rate_limit=7)

    # Then
    template = Template.from_stack(stack)
    template.has_resource_properties("AWS::Lambda::Function", {"MemorySize": 3008, "Timeout": 20})
    template.has_resource_properties("AWS::ApiGatewayV2::Stage", {
        "DefaultRouteSettings": Match.object_like({"ThrottlingRateLimit": 7})})
    template.has_resource_properties("AWS::CloudWatch::Alarm", {"MetricName": "Duration", "Threshold": 16_000})


def test_the_function_environment_holds_the_observability_names_and_only_the_limits_that_are_set(default_config,
                                                                                                  tiny_code):
    # Given / When
    template = Template.from_stack(make_stack(default_config, tiny_code, log_level="DEBUG", max_instances=50))

    # Then
    variables = function_properties(template)["Environment"]["Variables"]
    assert variables == {SERVICE_NAME: "model-api", METRICS_NAMESPACE: "SklearnModelApi", LOG_LEVEL: "DEBUG",
                         MAX_INSTANCES: "50"}
    assert load_settings(variables).max_instances == 50


def test_docs_enabled_switches_on_the_handlers_docs_page_and_its_route(default_config, tiny_code):
    # Given / When
    template = Template.from_stack(make_stack(default_config, tiny_code, docs_enabled=True))

    # Then
    assert function_properties(template)["Environment"]["Variables"][DOCS_ENABLED] == "true"
    template.has_resource_properties("AWS::ApiGatewayV2::Route", {"RouteKey": "GET /docs"})


def test_api_invokes_the_live_alias_not_the_unpublished_function(default_config, tiny_code):
    # Given / When
    template = Template.from_stack(make_stack(default_config, tiny_code))

    # Then
    [alias_id] = template.find_resources("AWS::Lambda::Alias")
    template.has_resource_properties("AWS::ApiGatewayV2::Integration", {"IntegrationUri": {"Ref": alias_id}})


def test_invoke_principals_get_execute_api_invoke_on_their_own_identity_policy(default_config, tiny_code):
    # Given / When
    stack = make_stack(default_config, tiny_code, invoke_principals=(ROLE_ARN, USER_ARN))

    # Then
    template = Template.from_stack(stack)
    invoke_policies = [policy["Properties"] for policy in template.find_resources("AWS::IAM::Policy").values()
                       if policy["Properties"]["PolicyDocument"]["Statement"][0]["Action"] == "execute-api:Invoke"]
    attached = sorted(properties.get("Roles", []) + properties.get("Users", []) for properties in invoke_policies)
    assert attached == [["batch-scorer"], ["churn-dashboard"]]


def test_auth_none_is_wired_through_and_warned_about(default_config, tiny_code):
    # Given / When
    stack = make_stack(default_config, tiny_code, auth="none")

    # Then
    Template.from_stack(stack).has_resource_properties("AWS::ApiGatewayV2::Route", {"AuthorizationType": "NONE"})
    Annotations.from_stack(stack).has_warning("/Under-Test/Api", Match.string_like_regexp("auth is 'none'"))


def test_a_published_model_is_read_from_the_stacks_bucket_by_its_exact_keys(default_config, tiny_code):
    # Given / When
    stack = make_stack(default_config, tiny_code, **PUBLISHED)

    # Then the function knows where the model is and which sha256 to expect
    template = Template.from_stack(stack)
    [bucket_id] = [logical_id for logical_id, bucket in template.find_resources("AWS::S3::Bucket").items()
                   if "VersioningConfiguration" in bucket["Properties"]]
    variables = function_properties(template)["Environment"]["Variables"]
    assert {name: variables[name] for name in S3_VARIABLES} == {
        MODEL_S3_BUCKET: {"Ref": bucket_id}, MODEL_S3_PREFIX: PREFIX, MODEL_SHA256: MANIFEST.sha256,
        MODEL_MANIFEST_SHA256: MANIFEST_SHA256}
    # And may read the manifest, the artifact and the training profile, and nothing else in S3
    [statement] = s3_reads(template)
    assert statement["Action"] == "s3:GetObject"
    published = ("manifest.json", MANIFEST.artifact) + ((MANIFEST.profile,) if MANIFEST.profile else ())
    assert statement["Resource"] == [{"Fn::Join": ["", [{"Fn::GetAtt": [bucket_id, "Arn"]}, f"/{PREFIX}{name}"]]}
                                     for name in published]


def test_an_existing_bucket_is_read_by_name_and_none_is_created(default_config, tiny_code):
    # Given / When
    stack = make_stack(default_config, tiny_code, model_bucket_name="team-models", **PUBLISHED)

    # Then
    template = Template.from_stack(stack)
    template.resource_count_is("AWS::S3::Bucket", 0)
    assert function_properties(template)["Environment"]["Variables"][MODEL_S3_BUCKET] == "team-models"
    [statement] = s3_reads(template)
    published = ("manifest.json", MANIFEST.artifact) + ((MANIFEST.profile,) if MANIFEST.profile else ())
    assert [part[-1] for part in (arn["Fn::Join"][1] for arn in statement["Resource"])] == [
        f":s3:::team-models/{PREFIX}{name}" for name in published]


def test_s3_before_anything_is_published_creates_the_bucket_serves_the_bundled_model_and_says_so(default_config,
                                                                                                 tiny_code):
    # Given / When
    stack = make_stack(default_config, tiny_code, model_source="s3")

    # Then
    template = Template.from_stack(stack)
    template.has_output(MODEL_BUCKET, Match.any_value())
    assert not set(S3_VARIABLES) & set(function_properties(template)["Environment"]["Variables"])
    assert s3_reads(template) == []
    Annotations.from_stack(stack).has_warning("/Under-Test/ModelStore",
                                              Match.string_like_regexp("no model is published yet"))


def test_a_bundled_model_needs_no_bucket_and_no_s3_permission(default_config, tiny_code):
    # Given / When (publish's keys are ignored while model_source is bundled)
    template = Template.from_stack(make_stack(default_config, tiny_code, **{**PUBLISHED, "model_source": "bundled"}))

    # Then
    template.resource_count_is("AWS::S3::Bucket", 0)
    assert MODEL_SHA256 not in function_properties(template)["Environment"]["Variables"]
    assert s3_reads(template) == []


def test_the_rollout_rolls_back_on_the_monitoring_alarms_of_a_broken_version(default_config, tiny_code):
    # Given / When
    template = Template.from_stack(make_stack(default_config, tiny_code))

    # Then
    alarms = {logical_id: alarm["Properties"]["MetricName"]
              for logical_id, alarm in template.find_resources("AWS::CloudWatch::Alarm").items()}
    [group] = template.find_resources("AWS::CodeDeploy::DeploymentGroup").values()
    watched = [alarms[alarm["Name"]["Ref"]] for alarm in group["Properties"]["AlarmConfiguration"]["Alarms"]]
    assert watched == ["5xx", "Errors", "ModelLoadFailure"]
    assert group["Properties"]["DeploymentConfigName"] == "CodeDeployDefault.LambdaCanary10Percent5Minutes"


def test_the_pre_traffic_check_expects_the_packaged_models_sha256(default_config, tiny_code):
    # Given / When
    template = Template.from_stack(make_stack(default_config, tiny_code, pre_traffic_check=True))

    # Then
    template.has_resource_properties("AWS::Lambda::Function", {"Environment": {"Variables": Match.object_like({
        "EXPECTED_SHA256": MANIFEST.sha256})}})


@pytest.mark.parametrize(("switch", "resource", "expected"), [
    ({"snap_start": True}, "AWS::Lambda::Function", {"SnapStart": {"ApplyOn": "PublishedVersions"}}),
    ({"provisioned_concurrency": 2}, "AWS::Lambda::Alias",
     {"ProvisionedConcurrencyConfig": {"ProvisionedConcurrentExecutions": 2}}),
], ids=["snap-start", "provisioned-concurrency"])
def test_cold_start_switches_reach_the_function_or_its_alias(default_config, tiny_code, switch, resource, expected):
    # Given / When
    template = Template.from_stack(make_stack(default_config, tiny_code, **switch))

    # Then
    template.has_resource_properties(resource, expected)


@pytest.mark.parametrize("changes", [
    {},
    {"auth": "none"},
    {"alarm_email": "ml-oncall@example.com", "invoke_principals": (ROLE_ARN, USER_ARN),
     "cors_allowed_origins": ("https://app.example.com",), "reserved_concurrency": 10},
    {"architecture": "x86_64", "python_runtime": "python3.12", "log_retention_days": 365, "memory_mb": 3008,
     "timeout_seconds": 29},
    {**PUBLISHED, "pre_traffic_check": True, "snap_start": True, "deployment": "linear_10_percent_every_1_minute"},
    {**PUBLISHED, "model_bucket_name": "team-models", "provisioned_concurrency": 2, "deployment": "all_at_once"},
    {"model_source": "s3"},
], ids=["defaults", "auth-none", "every-option", "x86-python312-sizes", "s3-bucket-hook-snapstart",
        "s3-existing-bucket-provisioned", "s3-nothing-published"])
def test_cdk_nag_and_cfn_lint_pass_for_every_kind_of_configuration(default_config, tiny_code, tmp_path, changes):
    # Given
    app = App(context=FEATURE_FLAGS, outdir=str(tmp_path / "cdk.out"))
    make_stack(default_config, tiny_code, app, **changes)
    add_nag_checks(app)

    # When
    app.synth()  # raises on any unacknowledged finding

    # Then
    reports = json.loads((tmp_path / "cdk.out" / "validation-report.json").read_text(encoding="utf-8"))["pluginReports"]
    conclusions = {report["pluginName"]: report["conclusion"] for report in reports}
    assert (conclusions["AwsSolutions"], conclusions["Serverless"]) == ("success", "success")
    findings = lint_file(tmp_path / "cdk.out" / "Under-Test.template.json")
    assert {match.rule.id for match in findings} <= ALLOWED_LINT_WARNINGS, [str(match) for match in findings]
