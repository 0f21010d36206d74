"""Safe rollout: CodeDeploy shifts the `live` alias to each new version and rolls back when an alarm fires.

An optional pre-traffic hook calls the new version (/health, /model, /predict with the manifest's
example) before any caller reaches it, and fails the deployment on a wrong answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from aws_cdk import Acknowledgment, Duration, Stack, Validations
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_codedeploy as codedeploy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.config import PYTHON_RUNTIMES
from infra.constructs.log_group import retained_log_group

DEPLOYMENT_CONFIGS = {
    "canary_10_percent_5_minutes": codedeploy.LambdaDeploymentConfig.CANARY_10_PERCENT_5_MINUTES,
    "linear_10_percent_every_1_minute": codedeploy.LambdaDeploymentConfig.LINEAR_10_PERCENT_EVERY_1_MINUTE,
    "all_at_once": codedeploy.LambdaDeploymentConfig.ALL_AT_ONCE,
}
HOOK_CODE = Path(__file__).resolve().parent.parent / "pre_traffic_check"
# Two cold starts and three calls of the new version, each at most init (10 s) plus its timeout (29 s).
HOOK_TIMEOUT = Duration.minutes(3)


class ModelRollout(Construct):
    """A CodeDeploy deployment group for `alias`, rolled back by `alarms`.

    With `pre_traffic_check`, a hook first checks that the new version serves the model of `expected_sha256`.
    """

    def __init__(self, scope: Construct, construct_id: str, *,
                 alias: lambda_.Alias,
                 alarms: Sequence[cloudwatch.IAlarm],
                 deployment: str,
                 expected_sha256: str,
                 log_retention_days: int,
                 pre_traffic_check: bool = False) -> None:
        super().__init__(scope, construct_id)
        self.pre_traffic_hook = (self._pre_traffic_hook(alias.version, expected_sha256, log_retention_days)
                                 if pre_traffic_check else None)
        self.deployment_group = codedeploy.LambdaDeploymentGroup(
            self, "DeploymentGroup",
            alias=alias,
            deployment_config=DEPLOYMENT_CONFIGS[deployment],
            alarms=list(alarms),
            auto_rollback=codedeploy.AutoRollbackConfig(failed_deployment=True, stopped_deployment=True,
                                                        deployment_in_alarm=True),
            pre_hook=self.pre_traffic_hook,
        )
        Validations.of(self.deployment_group).acknowledge(Acknowledgment(
            id="AwsSolutions::AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
               "AWSCodeDeployRoleForLambdaLimited]",
            reason="CodeDeploy's own managed role for Lambda: update the alias and invoke the hook, nothing more"))
        if self.pre_traffic_hook:
            hook_id = Stack.of(self).resolve(self.pre_traffic_hook.node.default_child.logical_id)
            Validations.of(self.deployment_group).acknowledge(Acknowledgment(
                id=f"AwsSolutions::AwsSolutions-IAM5[Resource::<{hook_id}.Arn>:*]",
                reason="CodeDeploy may invoke the pre-traffic hook and its versions (CDK grants the :* suffix)"))

    def _pre_traffic_hook(self, version: lambda_.IVersion, expected_sha256: str,
                          log_retention_days: int) -> lambda_.Function:
        """A small function (no bundle, Lambda's own boto3) that may invoke only the version being deployed."""
        log_group = retained_log_group(self, "PreTrafficCheckLogs", retention_days=log_retention_days)
        role = iam.Role(self, "PreTrafficCheckRole", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                        description="Pre-traffic check: invokes the new model version, reports to CodeDeploy")
        log_group.grant_write(role)
        hook = lambda_.Function(
            self, "PreTrafficCheck",
            code=lambda_.Code.from_asset(str(HOOK_CODE), exclude=["__pycache__", "*.pyc"]),
            handler="index.lambda_handler",
            runtime=lambda_.Runtime(PYTHON_RUNTIMES[-1], lambda_.RuntimeFamily.PYTHON),
            architecture=lambda_.Architecture.ARM_64,
            memory_size=256,
            timeout=HOOK_TIMEOUT,
            role=role,
            log_group=log_group,
            # The version is part of the hook's configuration, so the hook is updated before the alias moves.
            environment={"TARGET_VERSION_ARN": version.function_arn, "EXPECTED_SHA256": expected_sha256},
            description="CodeDeploy pre-traffic check of the model function's new version",
        )
        version.grant_invoke(hook)
        Validations.of(hook).acknowledge(
            Acknowledgment(id="Serverless::Serverless-LambdaDLQ",
                           reason="CodeDeploy fails and rolls back a deployment whose hook never reports"),
            Acknowledgment(id="Serverless::Serverless-LambdaTracing",
                           reason="Runs once per deployment and logs every check it made; traces would add nothing"))
        return hook
