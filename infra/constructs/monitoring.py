"""Alarms on what breaks a model API, an optional e-mail topic for them, and one dashboard."""

from __future__ import annotations

from collections.abc import Callable

from aws_cdk import Acknowledgment, Duration, Validations
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from infra.constructs.api import ModelApi
from infra.constructs.function import ModelFunction

PERIOD = Duration.minutes(5)
# p99 duration this close to the timeout means requests are about to be cut off.
DURATION_ALARM_SHARE_OF_TIMEOUT = 0.8


class ModelMonitoring(Construct):
    """Alarms (missing data is not breaching), optional SNS e-mail, and a dashboard for one model API.

    `service_name` and `metrics_namespace` are the ones the handler publishes its own metrics under.
    """

    def __init__(self, scope: Construct, construct_id: str, *,
                 function: ModelFunction,
                 api: ModelApi,
                 service_name: str,
                 metrics_namespace: str,
                 alarm_email: str | None = None) -> None:
        super().__init__(scope, construct_id)
        self._namespace = metrics_namespace
        self._service_name = service_name
        lambda_function, http_api = function.function, api.http_api
        duration_threshold = lambda_function.timeout.to_milliseconds() * DURATION_ALARM_SHARE_OF_TIMEOUT
        api_5xx = self._alarm("Api5xx", http_api.metric_server_error(period=PERIOD, statistic="Sum"), 1,
                              "The API answered 5xx: the function failed, timed out or was throttled")
        function_errors = self._alarm(
            "FunctionErrors", lambda_function.metric_errors(period=PERIOD, statistic="Sum"), 1,
            "The function raised an unhandled error or timed out")
        model_load_failure = self._alarm(
            "ModelLoadFailure", self._custom_metric("ModelLoadFailure", "Sum"), 1,
            "The model artifact failed verification or loading at init: every request gets 503")
        # What a broken version causes; throttles and a slow p99 are about capacity, which a rollback would not fix.
        self.rollback_alarms = [api_5xx, function_errors, model_load_failure]
        self.alarms = [
            api_5xx,
            function_errors,
            self._alarm("FunctionThrottles", lambda_function.metric_throttles(period=PERIOD, statistic="Sum"), 1,
                        "Lambda throttled invocations: concurrency limit reached"),
            self._alarm("DurationP99", lambda_function.metric_duration(period=PERIOD, statistic="p99"),
                        duration_threshold,
                        f"p99 duration is at {DURATION_ALARM_SHARE_OF_TIMEOUT:.0%} of the timeout or more"),
            model_load_failure,
        ]
        self.topic = self._notify(alarm_email) if alarm_email else None
        self.dashboard = self._dashboard(lambda_function, http_api)

    def _custom_metric(self, name: str, statistic: str, **extra_dimensions: str) -> cloudwatch.Metric:
        """A metric the handler publishes through Powertools (EMF), dimensioned by service."""
        return cloudwatch.Metric(namespace=self._namespace, metric_name=name, statistic=statistic, period=PERIOD,
                                 dimensions_map={**extra_dimensions, "service": self._service_name})

    def _alarm(self, name: str, metric: cloudwatch.IMetric, threshold: float, description: str) -> cloudwatch.Alarm:
        return cloudwatch.Alarm(
            self, f"{name}Alarm",
            metric=metric,
            threshold=threshold,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=description,
        )

    def _notify(self, email: str) -> sns.Topic:
        """E-mail every alarm and its recovery to `email` (the address must confirm the subscription)."""
        topic = sns.Topic(self, "AlarmTopic", display_name=f"{self._service_name} alarms", enforce_ssl=True)
        topic.add_subscription(subscriptions.EmailSubscription(email))
        action = cloudwatch_actions.SnsAction(topic)
        for alarm in self.alarms:
            alarm.add_alarm_action(action)
            alarm.add_ok_action(action)
        Validations.of(topic).acknowledge(
            Acknowledgment(id="AwsSolutions::AwsSolutions-SNS2",
                           reason="Alarm messages hold alarm names and metric values only; CloudWatch cannot "
                                  "publish under the AWS-managed SNS key and a customer key costs money idle"),
            Acknowledgment(id="Serverless::Serverless-SNSRedrivePolicy",
                           reason="SNS retries e-mail delivery itself; a dead-letter queue of alarm e-mails "
                                  "would be a resource nobody reads"))
        return topic

    def _dashboard(self, function: lambda_.IFunction, api: apigwv2.IHttpApi) -> cloudwatch.Dashboard:
        def graph(title: str, left: list[cloudwatch.IMetric],
                  right: list[cloudwatch.IMetric] | None = None) -> cloudwatch.GraphWidget:
            return cloudwatch.GraphWidget(title=title, left=left, right=right or [], width=8)

        def percentiles(metric_of: Callable[..., cloudwatch.Metric], label: str) -> list[cloudwatch.IMetric]:
            return [metric_of(period=PERIOD, statistic=statistic, label=f"{label} {statistic}")
                    for statistic in ("p50", "p99")]

        dashboard = cloudwatch.Dashboard(self, "Dashboard")
        dashboard.add_widgets(
            graph("Requests", [api.metric_count(period=PERIOD, label="API requests"),
                               function.metric_invocations(period=PERIOD, label="Invocations")]),
            graph("Errors", [api.metric_server_error(period=PERIOD, label="API 5xx"),
                             api.metric_client_error(period=PERIOD, label="API 4xx"),
                             function.metric_errors(period=PERIOD, label="Function errors"),
                             function.metric_throttles(period=PERIOD, label="Throttles")]),
            graph("Latency (ms)", percentiles(function.metric_duration, "Function duration")
                  + percentiles(api.metric_latency, "API latency")),
        )
        dashboard.add_widgets(
            graph("Cold starts", [self._custom_metric("ColdStart", "Sum", function_name=function.function_name)]),
            graph("Predictions", [self._custom_metric("PredictionsServed", "Sum"),
                                  self._custom_metric("UnknownCategories", "Sum")],
                  right=[self._custom_metric("PredictionLatency", statistic) for statistic in ("p50", "p99")]),
            cloudwatch.AlarmStatusWidget(title="Alarms", alarms=self.alarms, width=8),
        )
        return dashboard
