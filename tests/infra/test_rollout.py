"""The rollout construct: CodeDeploy traffic shifting on the `live` alias, alarm rollbacks, the pre-traffic hook."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk import Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Match, Template

from infra.config import DEPLOYMENTS
from infra.constructs.rollout import ModelRollout
from tests.infra.conftest import logical_id

SHA = "c" * 64
CONFIG_NAMES = {"canary_10_percent_5_minutes": "CodeDeployDefault.LambdaCanary10Percent5Minutes",
                "linear_10_percent_every_1_minute": "CodeDeployDefault.LambdaLinear10PercentEvery1Minute",
                "all_at_once": "CodeDeployDefault.LambdaAllAtOnce"}


def make_rollout(stack: Stack, code: lambda_.Code, **overrides: Any) -> tuple[ModelRollout, lambda_.Alias,
                                                                              list[cloudwatch.Alarm]]:
    function = lambda_.Function(stack, "Handler", runtime=lambda_.Runtime.PYTHON_3_14,
                                handler="index.lambda_handler", code=code)
    alias = lambda_.Alias(stack, "Live", alias_name="live", version=function.current_version)
    alarms = [cloudwatch.Alarm(stack, f"Alarm{index}", metric=function.metric_errors(), threshold=1,
                               evaluation_periods=1) for index in range(3)]
    arguments: dict[str, Any] = {
        "alias": alias,
        "alarms": alarms,
        "deployment": "canary_10_percent_5_minutes",
        "expected_sha256": SHA,
        "log_retention_days": 30,
    }
    return ModelRollout(stack, "Rollout", **{**arguments, **overrides}), alias, alarms


def test_every_deployment_option_has_a_codedeploy_configuration():
    assert set(DEPLOYMENTS) == set(CONFIG_NAMES)


@pytest.mark.parametrize("deployment", DEPLOYMENTS)
def test_the_deployment_group_shifts_traffic_as_configured_and_rolls_back_on_the_alarms(stack, tiny_code, deployment):
    # Given / When
    _, _, alarms = make_rollout(stack, tiny_code, deployment=deployment)

    # Then
    Template.from_stack(stack).has_resource_properties("AWS::CodeDeploy::DeploymentGroup", {
        "DeploymentConfigName": CONFIG_NAMES[deployment],
        "AlarmConfiguration": {"Enabled": True, "Alarms": [{"Name": {"Ref": logical_id(alarm)}} for alarm in alarms]},
        "AutoRollbackConfiguration": {"Enabled": True, "Events": Match.array_with(
            ["DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM"])},
        "DeploymentStyle": {"DeploymentOption": "WITH_TRAFFIC_CONTROL", "DeploymentType": "BLUE_GREEN"},
    })


def test_the_alias_is_updated_through_codedeploy_without_a_hook_by_default(stack, tiny_code):
    # Given / When
    rollout, _, _ = make_rollout(stack, tiny_code)

    # Then
    template = Template.from_stack(stack)
    [alias_resource] = template.find_resources("AWS::Lambda::Alias").values()
    update = alias_resource["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]
    assert update["DeploymentGroupName"] == {"Ref": logical_id(rollout.deployment_group)}
    assert "BeforeAllowTrafficHook" not in update
    assert rollout.pre_traffic_hook is None
    template.resource_count_is("AWS::Lambda::Function", 1)


def test_the_pre_traffic_hook_runs_before_traffic_and_may_invoke_only_the_new_version(stack, tiny_code):
    # Given / When
    rollout, alias, _ = make_rollout(stack, tiny_code, pre_traffic_check=True)

    # Then it runs before any traffic shifts, knowing the version and the sha256 to expect
    template = Template.from_stack(stack)
    hook_id, version_id = logical_id(rollout.pre_traffic_hook), logical_id(alias.version)
    [alias_resource] = template.find_resources("AWS::Lambda::Alias").values()
    assert alias_resource["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]["BeforeAllowTrafficHook"] == {"Ref": hook_id}
    template.has_resource_properties("AWS::Lambda::Function", {
        "Handler": "index.lambda_handler", "Runtime": "python3.14", "Timeout": 180,
        "Environment": {"Variables": {"TARGET_VERSION_ARN": {"Ref": version_id}, "EXPECTED_SHA256": SHA}},
    })
    # And its role may invoke that version alone, report to this deployment group, and write its own logs
    role_policy = next(policy["Properties"]["PolicyDocument"]["Statement"]
                       for policy in template.find_resources("AWS::IAM::Policy").values()
                       if "PreTrafficCheckRole" in policy["Properties"]["Roles"][0]["Ref"])
    by_action = {statement["Action"] if isinstance(statement["Action"], str) else tuple(sorted(statement["Action"])):
                 statement["Resource"] for statement in role_policy}
    assert by_action[("logs:CreateLogStream", "logs:PutLogEvents")] == {
        "Fn::GetAtt": [logical_id(rollout.pre_traffic_hook.log_group), "Arn"]}
    assert by_action["lambda:InvokeFunction"] == {"Ref": version_id}
    assert ":deploymentgroup:" in str(by_action["codedeploy:PutLifecycleEventHookExecutionStatus"])
    assert set(by_action) == {("logs:CreateLogStream", "logs:PutLogEvents"), "lambda:InvokeFunction",
                              "codedeploy:PutLifecycleEventHookExecutionStatus"}
