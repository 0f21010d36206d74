"""The model function construct: runtime, sizing, environment, alias, its own logs and a least-privilege role."""

from __future__ import annotations

import pytest
from aws_cdk import Duration, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Match, Template

from handler.config import MODEL_SHA256
from infra.outputs import FUNCTION_LOG_GROUP
from tests.infra.conftest import FUNCTION_ENVIRONMENT, logical_id, make_function


def test_function_runs_the_handler_on_the_configured_runtime_architecture_and_size(stack, tiny_code):
    # Given / When
    make_function(stack, tiny_code)

    # Then
    Template.from_stack(stack).has_resource_properties("AWS::Lambda::Function", {
        "Handler": "handler.app.lambda_handler",
        "Runtime": "python3.14",
        "Architectures": ["arm64"],
        "MemorySize": 1769,
        "Timeout": 10,
        "TracingConfig": {"Mode": "Active"},
        "ReservedConcurrentExecutions": Match.absent(),
        "Description": "Serves the model behind the churn-api API",
    })


def test_other_architecture_runtime_and_reserved_concurrency_are_passed_through(stack, tiny_code):
    # Given / When
    make_function(stack, tiny_code, architecture="x86_64", runtime="python3.13",
                  reserved_concurrency=5, timeout=Duration.seconds(29))

    # Then
    Template.from_stack(stack).has_resource_properties("AWS::Lambda::Function", {
        "Runtime": "python3.13", "Architectures": ["x86_64"], "ReservedConcurrentExecutions": 5, "Timeout": 29,
    })


def test_the_environment_is_exactly_the_one_given(stack, tiny_code):
    # Given / When
    make_function(stack, tiny_code)

    # Then
    Template.from_stack(stack).has_resource_properties("AWS::Lambda::Function", {
        "Environment": {"Variables": Match.object_equals(FUNCTION_ENVIRONMENT)},
    })


def test_live_alias_points_at_a_published_version(stack, tiny_code):
    # Given / When
    model = make_function(stack, tiny_code)

    # Then
    template = Template.from_stack(stack)
    versions = template.find_resources("AWS::Lambda::Version")
    assert len(versions) == 1
    template.has_resource_properties("AWS::Lambda::Alias", {
        "Name": "live",
        "FunctionName": {"Ref": logical_id(model.function)},
        "FunctionVersion": {"Fn::GetAtt": [next(iter(versions)), "Version"]},
    })


def test_function_logs_to_its_own_group_kept_for_the_retention_period(stack, tiny_code):
    # Given / When
    model = make_function(stack, tiny_code, log_retention_days=14)

    # Then
    template = Template.from_stack(stack)
    template.has_resource_properties("AWS::Lambda::Function", {
        "LoggingConfig": {"LogGroup": {"Ref": logical_id(model.log_group)}},
    })
    template.has_resource("AWS::Logs::LogGroup", {
        "Properties": {"RetentionInDays": 14}, "DeletionPolicy": "Delete",
    })
    # And its name is a stack output, for the post-deploy check to read REPORT lines from
    template.has_output(FUNCTION_LOG_GROUP, {"Value": {"Ref": logical_id(model.log_group)}})


def test_role_may_write_only_its_own_log_group_and_xray_traces(stack, tiny_code):
    # Given / When
    model = make_function(stack, tiny_code)

    # Then
    template = Template.from_stack(stack)
    template.has_resource_properties("AWS::IAM::Role", {
        "AssumeRolePolicyDocument": {"Statement": [Match.object_like({
            "Action": "sts:AssumeRole", "Principal": {"Service": "lambda.amazonaws.com"}})]},
        "ManagedPolicyArns": Match.absent(),
    })
    policies = template.find_resources("AWS::IAM::Policy")
    assert len(policies) == 1
    statements = next(iter(policies.values()))["Properties"]["PolicyDocument"]["Statement"]
    assert [{**statement, "Action": sorted(statement["Action"])} for statement in statements] == [
        {"Action": ["logs:CreateLogStream", "logs:PutLogEvents"], "Effect": "Allow",
         "Resource": {"Fn::GetAtt": [logical_id(model.log_group), "Arn"]}},
        # X-Ray has no resource-level permissions: the one acknowledged wildcard.
        {"Action": ["xray:PutTelemetryRecords", "xray:PutTraceSegments"], "Effect": "Allow", "Resource": "*"},
    ]


def test_a_replaced_version_is_deleted_not_kept(stack, tiny_code):
    # Given / When
    make_function(stack, tiny_code)

    # Then: kept versions would pile up in the code storage quota and, with SnapStart, keep a billed snapshot
    Template.from_stack(stack).has_resource("AWS::Lambda::Version", {"DeletionPolicy": "Delete"})


@pytest.mark.parametrize(("snap_start", "expected"), [(True, {"ApplyOn": "PublishedVersions"}), (False, None)])
def test_snap_start_applies_to_published_versions_only_when_asked(stack, tiny_code, snap_start, expected):
    # Given / When
    make_function(stack, tiny_code, snap_start=snap_start)

    # Then
    Template.from_stack(stack).has_resource_properties("AWS::Lambda::Function", {
        "SnapStart": expected or Match.absent()})


def test_provisioned_concurrency_is_set_on_the_live_alias(stack, tiny_code):
    # Given / When
    make_function(stack, tiny_code, provisioned_concurrency=3)

    # Then
    Template.from_stack(stack).has_resource_properties("AWS::Lambda::Alias", {
        "Name": "live", "ProvisionedConcurrencyConfig": {"ProvisionedConcurrentExecutions": 3}})


def test_a_new_model_location_alone_publishes_a_new_version(tmp_path):
    # Given the same code, with two published models' environments
    (tmp_path / "index.py").write_text("def lambda_handler(event, context):\n    return {}\n", encoding="utf-8")

    def version_id(sha256: str) -> str:
        stack = Stack()
        make_function(stack, lambda_.Code.from_asset(str(tmp_path)),
                      environment={**FUNCTION_ENVIRONMENT, MODEL_SHA256: sha256})
        [version] = Template.from_stack(stack).find_resources("AWS::Lambda::Version")
        return version

    # When / Then
    assert version_id("a" * 64) != version_id("b" * 64)
    assert version_id("a" * 64) == version_id("a" * 64)
