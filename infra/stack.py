"""The model API stack: wires the function, API, monitoring, rollout and model store units and grants; defines no
resources itself."""

from __future__ import annotations

from typing import Any

from aws_cdk import Annotations, Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from handler.manifest import Manifest
from infra.config import StackConfig
from infra.constructs.api import ModelApi
from infra.constructs.function import ModelFunction
from infra.constructs.model_store import ModelStore, PublishedModel
from infra.constructs.monitoring import ModelMonitoring
from infra.constructs.rollout import ModelRollout


class ModelApiStack(Stack):
    """A fitted model behind an IAM-authorised HTTP API, with alarms, a dashboard and alarm-guarded rollouts."""

    def __init__(self, scope: Construct, construct_id: str, *, config: StackConfig, function_code: lambda_.Code,
                 manifest: Manifest, **stack_options: Any) -> None:
        super().__init__(scope, construct_id, **stack_options)
        timeout = Duration.seconds(config.timeout_seconds)
        store = ModelStore(self, "ModelStore", store_bucket_name=config.model_bucket_name,
                           store_access_log_retention_days=config.log_retention_days,
                           ) if config.model_source == "s3" else None
        published = PublishedModel(key_prefix=config.model_s3_key_prefix, artifact=manifest.artifact,
                                   sha256=manifest.sha256) if store and config.model_is_published else None
        model = ModelFunction(
            self, "Model",
            function_code=function_code,
            function_runtime=config.python_runtime,
            function_architecture=config.architecture,
            function_memory_mb=config.memory_mb,
            function_timeout=timeout,
            function_reserved_concurrency=config.reserved_concurrency,
            function_log_retention_days=config.log_retention_days,
            function_service_name=config.service_name,
            function_metrics_namespace=config.metrics_namespace,
            function_log_level=config.log_level,
            function_max_instances=config.max_instances,
            function_max_body_bytes=config.max_body_bytes,
            function_max_string_length=config.max_string_length,
            function_docs_enabled=config.docs_enabled,
            function_model_environment=store.model_environment(published) if published else None,
            function_snap_start=config.snap_start,
            function_provisioned_concurrency=config.provisioned_concurrency,
        )
        if published:
            store.grant_read_model(model.function, published)
        elif store:
            Annotations.of(store).add_warning_v2(
                "model-api:no-published-model",
                "model_source is s3 but no model is published yet: the function serves the bundled model until "
                "`python -m toolkit.publish` has run and cdk.json holds the keys it prints")
        api = ModelApi(
            self, "Api",
            api_handler=model.alias,
            api_require_iam_auth=config.auth == "iam",
            api_throttling_rate_limit=config.throttle_rate_limit,
            api_throttling_burst_limit=config.throttle_burst_limit,
            api_cors_allowed_origins=config.cors_allowed_origins,
            api_log_retention_days=config.log_retention_days,
            api_docs_enabled=config.docs_enabled,
        )
        monitoring = ModelMonitoring(
            self, "Monitoring",
            monitoring_function=model.function,
            monitoring_api=api.http_api,
            monitoring_timeout=timeout,
            monitoring_service_name=config.service_name,
            monitoring_metrics_namespace=config.metrics_namespace,
            monitoring_alarm_email=config.alarm_email,
        )
        ModelRollout(
            self, "Rollout",
            rollout_alias=model.alias,
            rollout_deployment=config.deployment,
            rollout_alarms=monitoring.rollback_alarms,
            rollout_pre_traffic_check=config.pre_traffic_check,
            rollout_expected_sha256=manifest.sha256,
            rollout_log_retention_days=config.log_retention_days,
        )
        for index, arn in enumerate(config.invoke_principals):
            api.grant_invoke(_principal(self, f"Invoker{index}", arn))


def _principal(scope: Construct, construct_id: str, arn: str) -> iam.IGrantable:
    """An existing role or user, so the grant lands in its identity policy (HTTP APIs have no resource policy)."""
    if ":role/" in arn:
        return iam.Role.from_role_arn(scope, construct_id, arn)
    return iam.User.from_user_arn(scope, construct_id, arn)
