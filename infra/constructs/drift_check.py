"""The scheduled drift check: a function of its own reading the API's capture lines, its report bucket,
its schedule, and alarms on sustained drift and on failed runs."""

from __future__ import annotations

from aws_cdk import Acknowledgment, CfnOutput, Duration, RemovalPolicy, Stack, Validations
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from constructs import Construct

from handler.config import METRICS_NAMESPACE, SERVICE_NAME
from handler.drift_check import (CAPTURE_LOG_GROUP, DEFAULT_WINDOW_HOURS, METRIC_DIMENSION, MIN_ROWS, REPORT_BUCKET,
                                 REPORT_PREFIX, WINDOW_HOURS)
from infra.config import PYTHON_RUNTIMES
from infra.constructs.function import ARCHITECTURES
from infra.constructs.log_group import retained_log_group

HANDLER = "handler.drift_check.lambda_handler"
DAILY = events.Schedule.rate(Duration.days(1))
REPORT_KEY_PREFIX = "drift-reports/"
REPORT_OUTPUT = "DriftReportBucketName"
# One run reads at most handler.drift_check.MAX_CAPTURE_LINES lines: minutes at most, in 512 MB.
MEMORY_MB, TIMEOUT = 512, Duration.minutes(5)
# "Sustained": significant drift in this many consecutive runs (two days on the daily schedule).
SUSTAINED_RUNS = 2


class DriftCheck(Construct):
    """Runs handler.drift_check on `schedule` against `api_log_group`; reports to its own bucket."""

    def __init__(self, scope: Construct, construct_id: str, *,
                 code: lambda_.Code,
                 runtime: str,
                 architecture: str,
                 api_log_group: logs.ILogGroup,
                 service_name: str,
                 metrics_namespace: str,
                 log_retention_days: int,
                 schedule: events.Schedule = DAILY,
                 window_hours: int = DEFAULT_WINDOW_HOURS,
                 min_rows: int = 200,
                 report_retention_days: int = 400,
                 alarm_topic: sns.ITopic | None = None) -> None:
        super().__init__(scope, construct_id)
        self.bucket = self._report_bucket(report_retention_days)
        self.log_group = retained_log_group(self, "LogGroup", retention_days=log_retention_days)
        self.role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                             description="Drift check: reads the API's log group, writes reports and its metrics")
        self.log_group.grant_write(self.role)
        self._grant_least_privilege(api_log_group, metrics_namespace)
        self.function = lambda_.Function(
            self, "Function",
            code=code,
            handler=HANDLER,
            runtime=lambda_.Runtime(runtime, lambda_.RuntimeFamily.PYTHON),
            architecture=ARCHITECTURES[architecture],
            memory_size=MEMORY_MB,
            timeout=TIMEOUT,
            reserved_concurrent_executions=1,  # one run at a time: two would publish the same window twice
            role=self.role,
            log_group=self.log_group,
            tracing=lambda_.Tracing.ACTIVE,
            environment={
                CAPTURE_LOG_GROUP: api_log_group.log_group_name,
                REPORT_BUCKET: self.bucket.bucket_name,
                REPORT_PREFIX: REPORT_KEY_PREFIX,
                WINDOW_HOURS: str(window_hours),
                MIN_ROWS: str(min_rows),
                SERVICE_NAME: service_name,
                METRICS_NAMESPACE: metrics_namespace,
            },
            description=f"Compares the {service_name} API's captured inputs with the training profile",
        )
        self.rule = events.Rule(self, "Schedule", schedule=schedule, description="Runs the drift check",
                                targets=[targets.LambdaFunction(self.function, retry_attempts=2)])
        self.alarms = [self._drift_alarm(metrics_namespace, service_name), self._failure_alarm()]
        if alarm_topic is not None:
            action = cloudwatch_actions.SnsAction(alarm_topic)
            for alarm in self.alarms:
                alarm.add_alarm_action(action)
                alarm.add_ok_action(action)
        output = CfnOutput(self, REPORT_OUTPUT, value=self.bucket.bucket_name,
                           description=f"Bucket holding the drift reports under {REPORT_KEY_PREFIX}")
        output.override_logical_id(REPORT_OUTPUT)
        self._acknowledge(runtime)

    def _report_bucket(self, retention_days: int) -> s3.Bucket:
        """Private, encrypted, versioned; reports expire after retention_days."""
        bucket = s3.Bucket(
            self, "Reports",
            versioned=True,
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(retention_days),
                                              noncurrent_version_expiration=Duration.days(30))],
            removal_policy=RemovalPolicy.RETAIN,  # reports are the history of the model's data: they outlive the stack
        )
        Validations.of(bucket).acknowledge(Acknowledgment(
            id="AwsSolutions::AwsSolutions-S1",
            reason="Only the drift check writes here, and its runs are logged; reports hold bin shares, no raw "
                   "data, so an access log bucket would cost more than it tells"))
        return bucket

    def _grant_least_privilege(self, api_log_group: logs.ILogGroup, namespace: str) -> None:
        """FilterLogEvents on the API's log group, PutObject under the report prefix, metrics in one namespace."""
        self.role.add_to_policy(iam.PolicyStatement(actions=["logs:FilterLogEvents"],
                                                    resources=[api_log_group.log_group_arn]))
        self.role.add_to_policy(iam.PolicyStatement(actions=["s3:PutObject"],
                                                    resources=[self.bucket.arn_for_objects(f"{REPORT_KEY_PREFIX}*")]))
        self.role.add_to_policy(iam.PolicyStatement(actions=["cloudwatch:PutMetricData"], resources=["*"],
                                                    conditions={"StringEquals": {"cloudwatch:namespace": namespace}}))

    def _drift_alarm(self, namespace: str, service_name: str) -> cloudwatch.Alarm:
        drifted = cloudwatch.Metric(namespace=namespace, metric_name="DriftedFeatures", statistic="Maximum",
                                    period=Duration.days(1), dimensions_map={METRIC_DIMENSION: service_name})
        # Below the minimum sample size the check publishes no DriftedFeatures: missing data never alarms.
        return cloudwatch.Alarm(
            self, "SustainedDriftAlarm", metric=drifted, threshold=1,
            evaluation_periods=SUSTAINED_RUNS, datapoints_to_alarm=SUSTAINED_RUNS,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=f"At least one feature drifted significantly in {SUSTAINED_RUNS} consecutive daily "
                              "drift checks: see the drift report")

    def _failure_alarm(self) -> cloudwatch.Alarm:
        return cloudwatch.Alarm(
            self, "CheckFailedAlarm", metric=self.function.metric_errors(period=Duration.days(1), statistic="Sum"),
            threshold=1, evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description="The drift check failed (its log says which AWS call or file): no drift verdict today")

    def _acknowledge(self, runtime: str) -> None:
        bucket_id = Stack.of(self).resolve(self.bucket.node.default_child.logical_id)
        Validations.of(self.role).acknowledge(
            Acknowledgment(id=f"AwsSolutions::AwsSolutions-IAM5[Resource::<{bucket_id}.Arn>/{REPORT_KEY_PREFIX}*]",
                           reason="PutObject on the report objects under one prefix, whose keys hold the run's date"),
            Acknowledgment(id="AwsSolutions::AwsSolutions-IAM5[Resource::*]",
                           reason="PutMetricData and X-Ray support no resource-level permissions; PutMetricData is "
                                  "held to one namespace by condition"))
        Validations.of(self.rule).acknowledge(Acknowledgment(
            id="Serverless::Serverless-EventBusDLQ",
            reason="The schedule's event carries no data: a run EventBridge could not deliver after its retries "
                   "leaves a day without the CapturedRows metric, and the next run reports again"))
        Validations.of(self.function).acknowledge(Acknowledgment(
            id="Serverless::Serverless-LambdaDLQ",
            reason="A failed scheduled run is retried twice by EventBridge, then raises CheckFailedAlarm; the next "
                   "run covers a new window, so there is nothing to replay from a queue"))
        if runtime != PYTHON_RUNTIMES[-1]:
            reason = f"{runtime} is the API function's runtime (python_runtime in cdk.json): both run one bundle"
            Validations.of(self.function).acknowledge(
                Acknowledgment(id="AwsSolutions::AwsSolutions-L1", reason=reason),
                Acknowledgment(id="Serverless::Serverless-LambdaLatestVersion", reason=reason))
