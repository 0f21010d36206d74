"""The model function: the bundle on Lambda with its own log group, a least-privilege role and a `live` alias."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Acknowledgment, CfnOutput, Duration, RemovalPolicy, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.config import PYTHON_RUNTIMES
from infra.constructs.log_group import retained_log_group

HANDLER = "handler.app.lambda_handler"
LIVE_ALIAS = "live"
ARCHITECTURES = {"arm64": lambda_.Architecture.ARM_64, "x86_64": lambda_.Architecture.X86_64}


class ModelFunction(Construct):
    """Lambda running handler.app from `function_code`; callers should invoke `alias`, not the function."""

    def __init__(self, scope: Construct, construct_id: str, *,
                 function_code: lambda_.Code,
                 function_runtime: str,
                 function_architecture: str,
                 function_memory_mb: int,
                 function_timeout: Duration,
                 function_reserved_concurrency: int | None,
                 function_log_retention_days: int,
                 function_service_name: str,
                 function_metrics_namespace: str,
                 function_log_level: str,
                 function_max_instances: int | None = None,
                 function_max_body_bytes: int | None = None,
                 function_max_string_length: int | None = None,
                 function_docs_enabled: bool = False,
                 function_model_environment: Mapping[str, str] | None = None,
                 function_snap_start: bool = False,
                 function_provisioned_concurrency: int | None = None) -> None:
        super().__init__(scope, construct_id)
        self.log_group = retained_log_group(self, "LogGroup", retention_days=function_log_retention_days)
        # A role of our own: no AWSLambdaBasicExecutionRole, which may write to every log group.
        self.role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                             description="Model function: writes its own log group and X-Ray traces, nothing else")
        self.log_group.grant_write(self.role)
        handler_limits = {"MAX_INSTANCES": function_max_instances, "MAX_BODY_BYTES": function_max_body_bytes,
                          "MAX_STRING_LENGTH": function_max_string_length}
        self.function = lambda_.Function(
            self, "Function",
            code=function_code,
            handler=HANDLER,
            # Every runtime config.py allows is python3.12 or later, which SnapStart supports.
            runtime=lambda_.Runtime(function_runtime, lambda_.RuntimeFamily.PYTHON, supports_snap_start=True),
            architecture=ARCHITECTURES[function_architecture],
            memory_size=function_memory_mb,
            timeout=function_timeout,
            reserved_concurrent_executions=function_reserved_concurrency,
            role=self.role,
            log_group=self.log_group,
            tracing=lambda_.Tracing.ACTIVE,
            environment={
                "POWERTOOLS_SERVICE_NAME": function_service_name,
                "POWERTOOLS_METRICS_NAMESPACE": function_metrics_namespace,
                "POWERTOOLS_LOG_LEVEL": function_log_level,
                # Unset limits fall back to the handler's own defaults.
                **{name: str(value) for name, value in handler_limits.items() if value is not None},
                **({"DOCS_ENABLED": "true"} if function_docs_enabled else {}),
                # Where a published model is (its sha256 included, so a new model alone publishes a new version).
                **(function_model_environment or {}),
            },
            snap_start=lambda_.SnapStartConf.ON_PUBLISHED_VERSIONS if function_snap_start else None,
            # A replaced version is deleted: kept, each would count against the code storage quota and,
            # with SnapStart, keep its snapshot cached and billed.
            current_version_options=lambda_.VersionOptions(removal_policy=RemovalPolicy.DESTROY),
            description=f"Serves the model behind the {function_service_name} API",
        )
        self.alias = lambda_.Alias(self, "LiveAlias", alias_name=LIVE_ALIAS, version=self.function.current_version,
                                   provisioned_concurrent_executions=function_provisioned_concurrency)
        log_output = CfnOutput(self, "FunctionLogGroupName", value=self.log_group.log_group_name,
                               description="Log group with the function's REPORT lines")
        log_output.override_logical_id("FunctionLogGroupName")  # a stable key for toolkit.postdeploy
        Validations.of(self.role).acknowledge(Acknowledgment(
            id="AwsSolutions::AwsSolutions-IAM5[Resource::*]",
            reason="X-Ray PutTraceSegments and PutTelemetryRecords support no resource-level permissions"))
        Validations.of(self.function).acknowledge(Acknowledgment(
            id="Serverless::Serverless-LambdaDLQ",
            reason="Invoked synchronously by API Gateway: a failure goes back to the caller, nothing to dead-letter"))
        if function_runtime != PYTHON_RUNTIMES[-1]:
            self._acknowledge_older_runtime(function_runtime)

    def _acknowledge_older_runtime(self, runtime: str) -> None:
        reason = f"{runtime} was chosen in cdk.json (python_runtime); the default is {PYTHON_RUNTIMES[-1]}"
        Validations.of(self.function).acknowledge(
            Acknowledgment(id="AwsSolutions::AwsSolutions-L1", reason=reason),
            Acknowledgment(id="Serverless::Serverless-LambdaLatestVersion", reason=reason))
