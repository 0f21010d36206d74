"""The model function: the bundle on Lambda with its own log group, a least-privilege role and a `live` alias."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.config import PYTHON_RUNTIMES
from infra.constructs.log_group import retained_log_group
from infra.constructs.stack_output import stable_output
from infra.outputs import FUNCTION_LOG_GROUP

HANDLER = "handler.app.lambda_handler"
LIVE_ALIAS = "live"
ARCHITECTURES = {"arm64": lambda_.Architecture.ARM_64, "x86_64": lambda_.Architecture.X86_64}


class ModelFunction(Construct):
    """Lambda running handler.app from `code`; callers should invoke `alias`, not the function.

    `environment` is the handler's, as handler.config.function_environment builds it.
    """

    def __init__(self, scope: Construct, construct_id: str, *,
                 code: lambda_.Code,
                 runtime: str,
                 architecture: str,
                 memory_mb: int,
                 timeout: Duration,
                 log_retention_days: int,
                 environment: Mapping[str, str],
                 description: str,
                 reserved_concurrency: int | None = None,
                 snap_start: bool = False,
                 provisioned_concurrency: int | None = None) -> None:
        super().__init__(scope, construct_id)
        self.log_group = retained_log_group(self, "LogGroup", retention_days=log_retention_days)
        # A role of our own: no AWSLambdaBasicExecutionRole, which may write to every log group.
        self.role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                             description="Model function: writes its own log group and X-Ray traces, nothing else")
        self.log_group.grant_write(self.role)
        self.function = lambda_.Function(
            self, "Function",
            code=code,
            handler=HANDLER,
            # Every runtime config.py allows is python3.12 or later, which SnapStart supports.
            runtime=lambda_.Runtime(runtime, lambda_.RuntimeFamily.PYTHON, supports_snap_start=True),
            architecture=ARCHITECTURES[architecture],
            memory_size=memory_mb,
            timeout=timeout,
            reserved_concurrent_executions=reserved_concurrency,
            role=self.role,
            log_group=self.log_group,
            tracing=lambda_.Tracing.ACTIVE,
            # Part of the version's hash: a new published model (its sha256) alone publishes a new version.
            environment=dict(environment),
            snap_start=lambda_.SnapStartConf.ON_PUBLISHED_VERSIONS if snap_start else None,
            # A replaced version is deleted: kept, each would count against the code storage quota and,
            # with SnapStart, keep its snapshot cached and billed.
            current_version_options=lambda_.VersionOptions(removal_policy=RemovalPolicy.DESTROY),
            description=description,
        )
        self.alias = lambda_.Alias(self, "LiveAlias", alias_name=LIVE_ALIAS, version=self.function.current_version,
                                   provisioned_concurrent_executions=provisioned_concurrency)
        stable_output(self, FUNCTION_LOG_GROUP, value=self.log_group.log_group_name,
                      description="Log group with the function's REPORT lines")
        Validations.of(self.role).acknowledge(Acknowledgment(
            id="AwsSolutions::AwsSolutions-IAM5[Resource::*]",
            reason="X-Ray PutTraceSegments and PutTelemetryRecords support no resource-level permissions"))
        Validations.of(self.function).acknowledge(Acknowledgment(
            id="Serverless::Serverless-LambdaDLQ",
            reason="Invoked synchronously by API Gateway: a failure goes back to the caller, nothing to dead-letter"))
        if runtime != PYTHON_RUNTIMES[-1]:
            self._acknowledge_older_runtime(runtime)

    def _acknowledge_older_runtime(self, runtime: str) -> None:
        reason = f"{runtime} was chosen in cdk.json (python_runtime); the default is {PYTHON_RUNTIMES[-1]}"
        Validations.of(self.function).acknowledge(
            Acknowledgment(id="AwsSolutions::AwsSolutions-L1", reason=reason),
            Acknowledgment(id="Serverless::Serverless-LambdaLatestVersion", reason=reason))
