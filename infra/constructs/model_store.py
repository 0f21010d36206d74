"""Where published models live: a private, versioned, encrypted S3 bucket (or an existing one), read by exact keys."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Acknowledgment, CfnOutput, Duration, RemovalPolicy, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from handler.config import MODEL_S3_BUCKET, MODEL_S3_PREFIX, MODEL_SHA256
from handler.manifest import MANIFEST_FILE
from infra.config import MODEL_BUCKET_OUTPUT


@dataclass(frozen=True)
class PublishedModel:
    """One model version as toolkit.publish put it: under key_prefix, the manifest and its artifact."""

    key_prefix: str
    artifact: str
    sha256: str

    @property
    def keys(self) -> tuple[str, str]:
        return self.key_prefix + MANIFEST_FILE, self.key_prefix + self.artifact


class ModelStore(Construct):
    """The model bucket: created here (kept when the stack is deleted) unless `store_bucket_name` names one."""

    def __init__(self, scope: Construct, construct_id: str, *,
                 store_bucket_name: str | None,
                 store_access_log_retention_days: int) -> None:
        super().__init__(scope, construct_id)
        if store_bucket_name:
            self.bucket: s3.IBucket = s3.Bucket.from_bucket_name(self, "Bucket", store_bucket_name)
        else:
            self.bucket = self._bucket(store_access_log_retention_days)
        output = CfnOutput(self, MODEL_BUCKET_OUTPUT, value=self.bucket.bucket_name,
                           description="Bucket that toolkit.publish uploads models to")
        output.override_logical_id(MODEL_BUCKET_OUTPUT)

    def grant_read_model(self, grantee: iam.IGrantable, model: PublishedModel) -> iam.Grant:
        """s3:GetObject on exactly the model's two objects: no other key, version or bucket action."""
        return iam.Grant.add_to_principal(grantee=grantee, actions=["s3:GetObject"],
                                          resource_arns=[self.bucket.arn_for_objects(key) for key in model.keys])

    def model_environment(self, model: PublishedModel) -> dict[str, str]:
        """The variables that make the handler fetch and verify the model (handler.config)."""
        return {MODEL_S3_BUCKET: self.bucket.bucket_name, MODEL_S3_PREFIX: model.key_prefix,
                MODEL_SHA256: model.sha256}

    def _bucket(self, access_log_retention_days: int) -> s3.Bucket:
        """Versioned, so an overwritten or deleted model can be recovered; every request logged."""
        access_logs = s3.Bucket(
            self, "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,  # the only encryption S3 log delivery supports
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(access_log_retention_days))],
            removal_policy=RemovalPolicy.RETAIN,
        )
        Validations.of(access_logs).acknowledge(Acknowledgment(
            id="AwsSolutions::AwsSolutions-S1",
            reason="This is the access log bucket of the model bucket: logging it to itself would loop"))
        return s3.Bucket(
            self, "Bucket",
            versioned=True,
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            server_access_logs_bucket=access_logs,
            removal_policy=RemovalPolicy.RETAIN,  # published models outlive the stack
        )
