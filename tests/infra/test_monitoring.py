"""The monitoring construct: five alarms, optional e-mail notifications and a dashboard."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk import Duration, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Match, Template

from infra.constructs.api import ModelApi
from infra.constructs.function import ModelFunction
from infra.constructs.monitoring import ModelMonitoring
from tests.infra.conftest import logical_id, make_api, make_function


def make_monitoring(stack: Stack, code: lambda_.Code, timeout_seconds: int = 10,
                    **overrides: Any) -> tuple[ModelFunction, ModelApi, ModelMonitoring]:
    model = make_function(stack, code, timeout=Duration.seconds(timeout_seconds))
    api = make_api(stack, model.alias)
    arguments: dict[str, Any] = {"function": model, "api": api, "service_name": "churn-api",
                                 "metrics_namespace": "ChurnModels"}
    return model, api, ModelMonitoring(stack, "Monitoring", **{**arguments, **overrides})


def alarms_by_metric(template: Template) -> dict[str, dict[str, Any]]:
    return {alarm["Properties"]["MetricName"]: alarm["Properties"]
            for alarm in template.find_resources("AWS::CloudWatch::Alarm").values()}


def test_alarms_watch_5xx_errors_throttles_duration_and_model_load_failures(stack, tiny_code):
    # Given / When
    model, api, _ = make_monitoring(stack, tiny_code)

    # Then
    alarms = alarms_by_metric(Template.from_stack(stack))
    function_dimension = [{"Name": "FunctionName", "Value": {"Ref": logical_id(model.function)}}]
    expected = {
        "5xx": ("AWS/ApiGateway", [{"Name": "ApiId", "Value": {"Ref": logical_id(api.http_api)}}], "Sum", 1),
        "Errors": ("AWS/Lambda", function_dimension, "Sum", 1),
        "Throttles": ("AWS/Lambda", function_dimension, "Sum", 1),
        "ModelLoadFailure": ("ChurnModels", [{"Name": "service", "Value": "churn-api"}], "Sum", 1),
    }
    for metric, (namespace, dimensions, statistic, threshold) in expected.items():
        assert alarms[metric]["Namespace"] == namespace
        assert alarms[metric]["Dimensions"] == dimensions
        assert alarms[metric]["Statistic"] == statistic
        assert alarms[metric]["Threshold"] == threshold
    assert set(alarms) == {*expected, "Duration"}


def test_p99_duration_alarm_fires_at_80_percent_of_the_timeout(stack, tiny_code):
    # Given / When
    make_monitoring(stack, tiny_code, timeout_seconds=20)

    # Then
    duration = alarms_by_metric(Template.from_stack(stack))["Duration"]
    assert duration["ExtendedStatistic"] == "p99"
    assert duration["Threshold"] == 16_000


def test_every_alarm_fires_on_one_bad_period_and_ignores_missing_data(stack, tiny_code):
    # Given / When
    make_monitoring(stack, tiny_code)

    # Then
    for alarm in alarms_by_metric(Template.from_stack(stack)).values():
        assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert alarm["TreatMissingData"] == "notBreaching"
        assert alarm["EvaluationPeriods"] == 1
        assert alarm["Period"] == 300
        assert "AlarmActions" not in alarm


def test_no_topic_without_an_alarm_email(stack, tiny_code):
    # Given / When
    make_monitoring(stack, tiny_code)

    # Then
    Template.from_stack(stack).resource_count_is("AWS::SNS::Topic", 0)


def test_alarm_email_gets_every_alarm_and_recovery_over_an_ssl_only_topic(stack, tiny_code):
    # Given / When
    make_monitoring(stack, tiny_code, alarm_email="ml-oncall@example.com")

    # Then
    template = Template.from_stack(stack)
    [topic_id] = template.find_resources("AWS::SNS::Topic")
    template.has_resource_properties("AWS::SNS::Subscription", {
        "Protocol": "email", "Endpoint": "ml-oncall@example.com", "TopicArn": {"Ref": topic_id},
    })
    template.has_resource_properties("AWS::SNS::TopicPolicy", {"PolicyDocument": {"Statement": [Match.object_like({
        "Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}})]}})
    for alarm in alarms_by_metric(template).values():
        assert alarm["AlarmActions"] == [{"Ref": topic_id}]
        assert alarm["OKActions"] == [{"Ref": topic_id}]


def test_dashboard_shows_traffic_errors_latency_cold_starts_and_predictions(stack, tiny_code):
    # Given / When
    make_monitoring(stack, tiny_code)

    # Then
    [dashboard] = Template.from_stack(stack).find_resources("AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for needle in ("Invocations", "5xx", "Errors", "Throttles", "p50", "p99", "ColdStart", "function_name",
                   "PredictionsServed", "PredictionLatency", "UnknownCategories", "alarms"):
        assert needle in body, needle


def test_a_rollout_rolls_back_on_what_a_broken_version_causes_not_on_capacity_alarms(stack, tiny_code):
    # Given / When
    _, _, monitoring = make_monitoring(stack, tiny_code)

    # Then
    names = [stack.resolve(alarm.node.default_child.metric_name) for alarm in monitoring.rollback_alarms]
    assert names == ["5xx", "Errors", "ModelLoadFailure"]
    assert set(monitoring.rollback_alarms) < set(monitoring.alarms)
