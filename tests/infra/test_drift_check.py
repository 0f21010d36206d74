"""The drift check construct: schedule, least-privilege role, private report bucket, alarms, cdk-nag clean."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Match, Template

from infra.app import add_nag_checks
from infra.constructs.drift_check import DriftCheck
from infra.constructs.log_group import retained_log_group
from tests.infra.conftest import FEATURE_FLAGS, logical_id


def make_check(stack: Stack, code: lambda_.Code, **overrides: Any) -> tuple[DriftCheck, Any]:
    api_log_group = retained_log_group(stack, "ApiLogGroup", retention_days=30)
    arguments: dict[str, Any] = {
        "code": code, "runtime": "python3.14", "architecture": "arm64", "api_log_group": api_log_group,
        "service_name": "churn-api", "metrics_namespace": "ChurnModels", "log_retention_days": 30,
    }
    return DriftCheck(stack, "DriftCheck", **{**arguments, **overrides}), api_log_group


def policy_statements(template: Template, check: DriftCheck) -> list[dict[str, Any]]:
    policies = template.find_resources("AWS::IAM::Policy", {"Properties": {
        "Roles": [{"Ref": logical_id(check.role)}]}})
    return [statement for policy in policies.values()
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]]


def test_the_check_runs_the_bundle_drift_entry_daily_with_its_settings(stack, tiny_code):
    # Given / When
    check, api_log_group = make_check(stack, tiny_code, min_rows=500)

    # Then
    template = Template.from_stack(stack)
    template.has_resource_properties("AWS::Lambda::Function", {
        "Handler": "handler.drift_check.lambda_handler",
        "Runtime": "python3.14",
        "Architectures": ["arm64"],
        "Environment": {"Variables": {
            "CAPTURE_LOG_GROUP": {"Ref": logical_id(api_log_group)},
            "REPORT_BUCKET": {"Ref": logical_id(check.bucket)},
            "REPORT_PREFIX": "drift-reports/",
            "WINDOW_HOURS": "24",
            "MIN_ROWS": "500",
            "POWERTOOLS_SERVICE_NAME": "churn-api",
            "POWERTOOLS_METRICS_NAMESPACE": "ChurnModels",
        }},
    })
    template.has_resource_properties("AWS::Events::Rule", {
        "ScheduleExpression": "rate(1 day)",
        "Targets": [Match.object_like({"Arn": {"Fn::GetAtt": [logical_id(check.function), "Arn"]},
                                       "RetryPolicy": {"MaximumRetryAttempts": 2}})],
    })


def test_a_schedule_expression_is_passed_through(stack, tiny_code):
    # Given / When
    make_check(stack, tiny_code, schedule=events.Schedule.expression("cron(0 6 * * ? *)"))

    # Then
    Template.from_stack(stack).has_resource_properties("AWS::Events::Rule",
                                                       {"ScheduleExpression": "cron(0 6 * * ? *)"})


def test_the_role_reads_only_the_api_log_group_writes_only_reports_and_one_metric_namespace(stack, tiny_code):
    # Given / When
    check, api_log_group = make_check(stack, tiny_code)

    # Then
    statements = policy_statements(Template.from_stack(stack), check)
    by_action = {json.dumps(statement["Action"]): statement for statement in statements}
    assert by_action['"logs:FilterLogEvents"']["Resource"] == {"Fn::GetAtt": [logical_id(api_log_group), "Arn"]}
    assert by_action['"s3:PutObject"']["Resource"] == {"Fn::Join": ["", [
        {"Fn::GetAtt": [logical_id(check.bucket), "Arn"]}, "/drift-reports/*"]]}
    assert by_action['"cloudwatch:PutMetricData"']["Condition"] == {
        "StringEquals": {"cloudwatch:namespace": "ChurnModels"}}
    actions = {action for statement in statements for action in
               ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])}
    assert not {action for action in actions if action.startswith("s3:") and action != "s3:PutObject"}
    assert not {action for action in actions if action.startswith("logs:")} - {
        "logs:FilterLogEvents", "logs:CreateLogStream", "logs:PutLogEvents"}


def test_the_report_bucket_is_private_encrypted_versioned_and_ssl_only(stack, tiny_code):
    # Given / When
    check, _ = make_check(stack, tiny_code, report_retention_days=90)

    # Then
    template = Template.from_stack(stack)
    template.has_resource_properties("AWS::S3::Bucket", {
        "VersioningConfiguration": {"Status": "Enabled"},
        "BucketEncryption": {"ServerSideEncryptionConfiguration": [
            {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]},
        "PublicAccessBlockConfiguration": {"BlockPublicAcls": True, "BlockPublicPolicy": True,
                                           "IgnorePublicAcls": True, "RestrictPublicBuckets": True},
        "LifecycleConfiguration": {"Rules": [Match.object_like({"ExpirationInDays": 90})]},
    })
    template.has_resource_properties("AWS::S3::BucketPolicy", {
        "Bucket": {"Ref": logical_id(check.bucket)},
        "PolicyDocument": {"Statement": Match.array_with([Match.object_like({
            "Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}})])},
    })
    template.has_output("DriftReportBucketName", {"Value": {"Ref": logical_id(check.bucket)}})


def test_sustained_drift_alarms_after_two_daily_runs_and_notifies_the_topic(stack, tiny_code):
    # Given
    topic = sns.Topic(stack, "Topic")

    # When
    make_check(stack, tiny_code, alarm_topic=topic)

    # Then
    template = Template.from_stack(stack)
    template.has_resource_properties("AWS::CloudWatch::Alarm", {
        "MetricName": "DriftedFeatures", "Namespace": "ChurnModels", "Statistic": "Maximum", "Period": 86400,
        "Dimensions": [{"Name": "service", "Value": "churn-api"}],
        "Threshold": 1, "EvaluationPeriods": 2, "DatapointsToAlarm": 2,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold", "TreatMissingData": "notBreaching",
        "AlarmActions": [{"Ref": logical_id(topic)}],
    })
    template.has_resource_properties("AWS::CloudWatch::Alarm", {
        "MetricName": "Errors", "Namespace": "AWS/Lambda", "AlarmActions": [{"Ref": logical_id(topic)}]})


def test_without_a_topic_the_alarms_have_no_actions(stack, tiny_code):
    # Given / When
    make_check(stack, tiny_code)

    # Then
    alarms = Template.from_stack(stack).find_resources("AWS::CloudWatch::Alarm")
    assert len(alarms) == 2
    assert all("AlarmActions" not in alarm["Properties"] for alarm in alarms.values())


@pytest.mark.parametrize("runtime", ["python3.14", "python3.12"])
def test_cdk_nag_finds_nothing_unacknowledged(tmp_path: Path, runtime: str):
    # Given
    app = App(context=FEATURE_FLAGS, outdir=str(tmp_path / "cdk.out"))
    stack = Stack(app, "Under-Test")
    code = tmp_path / "code"
    code.mkdir()
    (code / "index.py").write_text("def lambda_handler(event, context):\n    return {}\n", encoding="utf-8")
    make_check(stack, lambda_.Code.from_asset(str(code)), runtime=runtime, alarm_topic=sns.Topic(
        stack, "Topic", enforce_ssl=True, master_key=None))
    add_nag_checks(app)

    # When
    app.synth()  # raises on any unacknowledged finding

    # Then
    reports = json.loads((tmp_path / "cdk.out" / "validation-report.json").read_text(encoding="utf-8"))["pluginReports"]
    conclusions = {report["pluginName"]: report["conclusion"] for report in reports}
    assert (conclusions["AwsSolutions"], conclusions["Serverless"]) == ("success", "success")
