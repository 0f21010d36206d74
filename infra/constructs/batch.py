"""Batch scoring: a Step Functions Distributed Map over byte ranges of S3 objects, scored by the model bundle.

plan (Lambda) → Distributed Map over <output>plan.json (one child per range: the score Lambda) → summarize
(Lambda), which fails the execution unless every row is accounted for. Items are ranges, not rows: each child
reads its own range from S3, so a child's input stays a few hundred bytes whatever the file's size.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Acknowledgment, CfnOutput, Duration, RemovalPolicy, Stack, Validations
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from handler.config import METRICS_NAMESPACE, SERVICE_NAME
from handler.batch import INPUT_BUCKET, INPUT_PREFIX, OUTPUT_BUCKET, OUTPUT_PREFIX, PART_MB
from infra.constructs.function import ARCHITECTURES
from infra.constructs.log_group import retained_log_group

HANDLERS = {"Plan": "handler.batch.plan_handler", "Score": "handler.batch.score_range_handler",
            "Summarize": "handler.batch.summarize_handler"}
STATE_MACHINE_OUTPUT = "BatchStateMachineArn"
INPUT_BUCKET_OUTPUT, OUTPUT_BUCKET_OUTPUT = "BatchInputBucketName", "BatchOutputBucketName"
# Lambda's own transient faults; a child's real failure (a bad range, a count mismatch) is not retried.
LAMBDA_SERVICE_ERRORS = ["Lambda.ServiceException", "Lambda.AWSLambdaException", "Lambda.SdkClientException",
                         "Lambda.TooManyRequestsException"]


class BatchScoring(Construct):
    """The batch state machine, its three functions (one bundle), its buckets, alarm and outputs."""

    def __init__(self, scope: Construct, construct_id: str, *,
                 code: lambda_.Code,
                 runtime: str,
                 architecture: str,
                 memory_mb: int,
                 timeout: Duration,
                 log_retention_days: int,
                 service_name: str,
                 metrics_namespace: str,
                 max_concurrency: int,
                 reserved_concurrency: int | None,
                 input_bucket_name: str | None = None,
                 input_prefix: str = "input/",
                 output_bucket_name: str | None = None,
                 output_prefix: str = "output/",
                 part_mb: int = 64,
                 model_environment: Mapping[str, str] | None = None) -> None:
        super().__init__(scope, construct_id)
        self._log_retention_days = log_retention_days
        access_logs = self._access_log_bucket() if not (input_bucket_name and output_bucket_name) else None
        self.input_bucket = self._bucket("InputBucket", input_bucket_name, access_logs)
        self.output_bucket = self._bucket("OutputBucket", output_bucket_name, access_logs)
        environment = {
            SERVICE_NAME: service_name,
            METRICS_NAMESPACE: metrics_namespace,
            INPUT_BUCKET: self.input_bucket.bucket_name, INPUT_PREFIX: input_prefix,
            OUTPUT_BUCKET: self.output_bucket.bucket_name, OUTPUT_PREFIX: output_prefix,
            PART_MB: str(part_mb),
            **(model_environment or {}),
        }
        self.functions = {
            name: self._function(name, handler, code=code, runtime=runtime,
                                 architecture=architecture, memory_mb=memory_mb, timeout=timeout,
                                 environment=environment,
                                 # Only the children run in parallel; the reservation keeps the API's share free.
                                 reserved=reserved_concurrency if name == "Score" else None)
            for name, handler in HANDLERS.items()}
        plan, score, summarize = (self.functions[name] for name in HANDLERS)
        output_objects = f"{output_prefix}*"
        # Exact actions on the prefixes' objects: the grant_* helpers would add GetObject*, GetBucket* and List*.
        self._allow(plan, ["s3:ListBucket"], [self.input_bucket.bucket_arn],
                    conditions={"StringLike": {"s3:prefix": f"{input_prefix}*"}})
        self._allow(plan, ["s3:GetObject"], [self.input_bucket.arn_for_objects(f"{input_prefix}*")])
        self._allow(score, ["s3:GetObject"], [self.input_bucket.arn_for_objects(f"{input_prefix}*")])
        for function, actions in ((plan, ["s3:PutObject"]), (score, ["s3:PutObject"]),
                                  (summarize, ["s3:GetObject", "s3:PutObject"])):
            self._allow(function, actions, [self.output_bucket.arn_for_objects(output_objects)])
        self.state_machine = self._state_machine(plan, score, summarize, max_concurrency, output_objects)
        self._acknowledge_prefix_wildcards(input_prefix, output_prefix)
        self.failed_alarm = cloudwatch.Alarm(
            self, "ExecutionsFailedAlarm",
            metric=self.state_machine.metric_failed(period=Duration.minutes(5), statistic="Sum"),
            threshold=1, evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description="A batch scoring execution failed: a range could not be scored or a count disagreed")
        for output_id, value, description in (
                (STATE_MACHINE_OUTPUT, self.state_machine.state_machine_arn, "python -m toolkit.batch start runs it"),
                (INPUT_BUCKET_OUTPUT, self.input_bucket.bucket_name, f"Put files to score under {input_prefix}"),
                (OUTPUT_BUCKET_OUTPUT, self.output_bucket.bucket_name, f"Results under {output_prefix}")):
            CfnOutput(self, output_id, value=value, description=description).override_logical_id(output_id)

    def _acknowledge_prefix_wildcards(self, input_prefix: str, output_prefix: str) -> None:
        """cdk-nag names each wildcard by its resource; every one here stops at a prefix or this machine's runs."""
        prefixes = {"input": f"{self._nag_arn(self.input_bucket)}/{input_prefix}*",
                    "output": f"{self._nag_arn(self.output_bucket)}/{output_prefix}*"}
        reason = ("Objects under the configured {} prefix only: the files to score and the parts written are "
                  "named at run time")
        for name, function in self.functions.items():
            Validations.of(function.role).acknowledge(*(
                Acknowledgment(id=f"AwsSolutions::AwsSolutions-IAM5[Resource::{arn}]", reason=reason.format(kind))
                for kind, arn in prefixes.items()))
        machine = self._logical_id(self.state_machine)
        execution = (f'arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:'
                     f'{{"Fn::Select":[6,{{"Fn::Split":[":",{{"Ref":"{machine}"}}]}}]}}')
        runs = "The Distributed Map's own child executions, named at run time"
        # The CDK writes the map's own policy beside the role's default policy, under the state machine.
        Validations.of(self.state_machine).acknowledge(
            Acknowledgment(id=f"AwsSolutions::AwsSolutions-IAM5[Resource::{execution}:*]", reason=runs),
            Acknowledgment(id=f"AwsSolutions::AwsSolutions-IAM5[Resource::{execution}/*:*]", reason=runs))
        Validations.of(self.state_machine.role).acknowledge(
            Acknowledgment(id=f"AwsSolutions::AwsSolutions-IAM5[Resource::{prefixes['output']}]",
                           reason="The plan the map reads lies under the output prefix, its key named per run"),
            Acknowledgment(id="AwsSolutions::AwsSolutions-IAM5[Resource::*]",
                           reason="X-Ray and CloudWatch Logs delivery actions support no resource-level permissions"),
            *(Acknowledgment(id=f"AwsSolutions::AwsSolutions-IAM5[Resource::<{self._logical_id(function)}.Arn>:*]",
                             reason="lambda:InvokeFunction on the function's versions and aliases, as the CDK grants")
              for function in self.functions.values()))

    def _logical_id(self, construct: Construct) -> str:
        return Stack.of(self).resolve(construct.node.default_child.logical_id)

    def _nag_arn(self, bucket: s3.IBucket) -> str:
        """A bucket's ARN as cdk-nag writes it in a finding."""
        if isinstance(bucket, s3.Bucket):
            return f"<{self._logical_id(bucket)}.Arn>"
        return f"arn:<AWS::Partition>:s3:::{bucket.bucket_name}"

    @staticmethod
    def _allow(function: lambda_.Function, actions: list[str], resources: list[str],
               conditions: dict[str, dict[str, str]] | None = None) -> None:
        function.add_to_role_policy(iam.PolicyStatement(actions=actions, resources=resources, conditions=conditions))

    def _access_log_bucket(self) -> s3.Bucket:
        bucket = s3.Bucket(self, "AccessLogs", encryption=s3.BucketEncryption.S3_MANAGED,
                           block_public_access=s3.BlockPublicAccess.BLOCK_ALL, enforce_ssl=True,
                           lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(self._log_retention_days))],
                           removal_policy=RemovalPolicy.RETAIN)
        Validations.of(bucket).acknowledge(Acknowledgment(
            id="AwsSolutions::AwsSolutions-S1",
            reason="This is the access log bucket of the batch buckets: logging it to itself would loop"))
        return bucket

    def _bucket(self, construct_id: str, name: str | None, access_logs: s3.Bucket | None) -> s3.IBucket:
        """An existing bucket by name, or a private, encrypted, versioned one with access logs, kept on delete."""
        if name:
            return s3.Bucket.from_bucket_name(self, construct_id, name)
        return s3.Bucket(self, construct_id, versioned=True, encryption=s3.BucketEncryption.S3_MANAGED,
                         block_public_access=s3.BlockPublicAccess.BLOCK_ALL, enforce_ssl=True,
                         server_access_logs_bucket=access_logs, server_access_logs_prefix=f"{construct_id}/",
                         removal_policy=RemovalPolicy.RETAIN)

    def _function(self, name: str, handler: str, *, code: lambda_.Code, runtime: str, architecture: str,
                  memory_mb: int, timeout: Duration, environment: dict[str, str],
                  reserved: int | None) -> lambda_.Function:
        log_group = retained_log_group(self, f"{name}LogGroup", retention_days=self._log_retention_days)
        role = iam.Role(self, f"{name}Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                        description=f"Batch {name.lower()} function: its log group, X-Ray and its S3 prefixes")
        log_group.grant_write(role)
        function = lambda_.Function(
            self, f"{name}Function", code=code, handler=handler,
            runtime=lambda_.Runtime(runtime, lambda_.RuntimeFamily.PYTHON),
            architecture=ARCHITECTURES[architecture], memory_size=memory_mb, timeout=timeout,
            reserved_concurrent_executions=reserved, role=role, log_group=log_group,
            tracing=lambda_.Tracing.ACTIVE, environment=environment,
            description=f"Batch scoring: {name.lower()} step")
        Validations.of(role).acknowledge(
            Acknowledgment(id="AwsSolutions::AwsSolutions-IAM5[Resource::*]",
                           reason="X-Ray PutTraceSegments and PutTelemetryRecords support no resource-level "
                                  "permissions"))
        Validations.of(function).acknowledge(
            Acknowledgment(id="Serverless::Serverless-LambdaDLQ",
                           reason="Invoked synchronously by Step Functions, which records and retries failures"),
            Acknowledgment(id="AwsSolutions::AwsSolutions-L1",
                           reason="The runtime is the API function's, chosen in cdk.json (python_runtime)"),
            Acknowledgment(id="Serverless::Serverless-LambdaLatestVersion",
                           reason="The runtime is the API function's, chosen in cdk.json (python_runtime)"))
        return function

    def _state_machine(self, plan: lambda_.IFunction, score: lambda_.IFunction, summarize: lambda_.IFunction,
                       max_concurrency: int, output_objects: str) -> sfn.StateMachine:
        plan_task = tasks.LambdaInvoke(self, "Plan", lambda_function=plan, payload_response_only=True,
                                       result_path="$.plan", retry_on_service_exceptions=False)
        score_task = tasks.LambdaInvoke(self, "ScoreRange", lambda_function=score, payload_response_only=True,
                                        retry_on_service_exceptions=False)
        summarize_task = tasks.LambdaInvoke(self, "Summarize", lambda_function=summarize, payload_response_only=True,
                                            input_path="$.plan",
                                            retry_on_service_exceptions=False)
        for task in (plan_task, score_task, summarize_task):
            task.add_retry(errors=LAMBDA_SERVICE_ERRORS, interval=Duration.seconds(2), max_attempts=6,
                           backoff_rate=2)
        score_map = sfn.DistributedMap(
            self, "ScoreRanges",
            # By path, not by bucket: given the bucket, the CDK would grant GetObject on all of it.
            item_reader=sfn.S3JsonItemReader(bucket_name_path=sfn.JsonPath.string_at("$.plan.output_bucket"),
                                             key=sfn.JsonPath.string_at("$.plan.plan_key")),
            max_concurrency=max_concurrency,
            tolerated_failure_percentage=0,  # one failed range fails the run: a partial result is never "done"
            result_path=sfn.JsonPath.DISCARD,  # counts go to S3 per part; summarize reads them there
        )
        score_map.item_processor(score_task)
        log_group = retained_log_group(self, "StateMachineLogGroup", retention_days=self._log_retention_days)
        state_machine = sfn.StateMachine(
            self, "StateMachine",
            definition_body=sfn.DefinitionBody.from_chainable(plan_task.next(score_map).next(summarize_task)),
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=False),
            tracing_enabled=True,
        )
        # DistributedMap grants itself StartExecution on this machine and Describe/Stop on its executions.
        state_machine.add_to_role_policy(iam.PolicyStatement(  # the plan, which the map's ItemReader reads
            actions=["s3:GetObject"], resources=[self.output_bucket.arn_for_objects(output_objects)]))
        return state_machine
