"""The model API stack: wires the function, API, monitoring, rollout, model store, batch scoring and drift check
units and grants; defines no resources itself."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from aws_cdk import Annotations, Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from handler.config import function_environment, settings_environment
from handler.manifest import Manifest
from infra.config import StackConfig
from infra.constructs.api import ModelApi
from infra.constructs.batch import BatchScoring
from infra.constructs.drift_check import DriftCheck
from infra.constructs.function import ModelFunction
from infra.constructs.model_store import ModelStore
from infra.constructs.monitoring import ModelMonitoring
from infra.constructs.rollout import ModelRollout


class ModelApiStack(Stack):
    """A fitted model behind an IAM-authorised HTTP API, with alarms, a dashboard and alarm-guarded rollouts."""

    def __init__(self, scope: Construct, construct_id: str, *, config: StackConfig, function_code: lambda_.Code,
                 manifest: Manifest, **stack_options: Any) -> None:
        super().__init__(scope, construct_id, **stack_options)
        store = ModelStore(self, "ModelStore", bucket_name=config.model_bucket_name,
                           access_log_retention_days=config.log_retention_days,
                           ) if config.model_source == "s3" else None
        # The manifest's bytes are pinned beside the artifact's: a manifest rewritten in the bucket is refused.
        published = (replace(store.location(config.model_s3_key_prefix, config.model_sha256),
                             manifest_sha256=config.model_manifest_sha256)
                     if store and config.model_is_published else None)
        model = ModelFunction(
            self, "Model",
            code=function_code,
            runtime=config.python_runtime,
            architecture=config.architecture,
            memory_mb=config.memory_mb,
            timeout=Duration.seconds(config.timeout_seconds),
            reserved_concurrency=config.reserved_concurrency,
            log_retention_days=config.log_retention_days,
            environment=function_environment(config.handler_settings(model_s3=published),
                                             service_name=config.service_name,
                                             metrics_namespace=config.metrics_namespace,
                                             log_level=config.log_level),
            snap_start=config.snap_start,
            provisioned_concurrency=config.provisioned_concurrency,
            description=f"Serves the model behind the {config.service_name} API",
        )
        if published:
            store.grant_read_model(model.function, published, artifact=manifest.artifact, profile=manifest.profile)
        elif store:
            Annotations.of(store).add_warning_v2(
                "model-api:no-published-model",
                "model_source is s3 but no model is published yet: the function serves the bundled model until "
                "`python -m toolkit.publish` has run and cdk.json holds the keys it prints")
        api = ModelApi(
            self, "Api",
            handler=model.alias,
            require_iam_auth=config.auth == "iam",
            throttling_rate_limit=config.throttle_rate_limit,
            throttling_burst_limit=config.throttle_burst_limit,
            cors_allowed_origins=config.cors_allowed_origins,
            log_retention_days=config.log_retention_days,
            docs_enabled=config.docs_enabled,
        )
        monitoring = ModelMonitoring(
            self, "Monitoring",
            function=model,
            api=api,
            service_name=config.service_name,
            metrics_namespace=config.metrics_namespace,
            alarm_email=config.alarm_email,
        )
        ModelRollout(
            self, "Rollout",
            alias=model.alias,
            alarms=monitoring.rollback_alarms,
            deployment=config.deployment,
            expected_sha256=manifest.sha256,
            log_retention_days=config.log_retention_days,
            pre_traffic_check=config.pre_traffic_check,
        )
        for index, arn in enumerate(config.invoke_principals):
            api.grant_invoke(_principal(self, f"Invoker{index}", arn))
        if config.batch:
            batch = BatchScoring(
                self, "Batch",
                code=function_code,
                runtime=config.python_runtime,
                architecture=config.architecture,
                memory_mb=config.batch_memory_mb,
                timeout=Duration.minutes(15),  # a part is sized to take minutes, not the API's seconds
                log_retention_days=config.log_retention_days,
                service_name=config.service_name,
                metrics_namespace=config.metrics_namespace,
                max_concurrency=config.batch_max_concurrency,
                reserved_concurrency=config.batch_reserved_concurrency,
                input_bucket_name=config.batch_input_bucket_name,
                input_prefix=config.batch_input_prefix,
                output_bucket_name=config.batch_output_bucket_name,
                output_prefix=config.batch_output_prefix,
                part_mb=config.batch_part_mb,
                model_environment=settings_environment(config.handler_settings(model_s3=published)),
            )
            for function in batch.functions.values():
                if published:
                    store.grant_read_model(function, published, artifact=manifest.artifact,
                                           profile=manifest.profile)
        if config.drift_check:
            DriftCheck(
                self, "DriftCheck",
                code=function_code,
                runtime=config.python_runtime,
                architecture=config.architecture,
                api_log_group=model.log_group,
                service_name=config.service_name,
                metrics_namespace=config.metrics_namespace,
                log_retention_days=config.log_retention_days,
                schedule=events.Schedule.expression(config.drift_schedule),
                min_rows=config.drift_min_rows,
                alarm_topic=monitoring.topic,
            )


def _principal(scope: Construct, construct_id: str, arn: str) -> iam.IGrantable:
    """An existing role or user, so the grant lands in its identity policy (HTTP APIs have no resource policy)."""
    if ":role/" in arn:
        return iam.Role.from_role_arn(scope, construct_id, arn)
    return iam.User.from_user_arn(scope, construct_id, arn)
