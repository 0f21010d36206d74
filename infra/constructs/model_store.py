"""Where published models live: a private, versioned, encrypted S3 bucket (or an existing one), read by exact keys."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from handler.config import S3ModelLocation
from handler.manifest import MANIFEST_FILE
from infra.constructs.stack_output import stable_output
from infra.outputs import MODEL_BUCKET


class ModelStore(Construct):
    """The model bucket: created here (kept when the stack is deleted) unless `bucket_name` names one."""

    def __init__(self, scope: Construct, construct_id: str, *,
                 bucket_name: str | None,
                 access_log_retention_days: int) -> None:
        super().__init__(scope, construct_id)
        if bucket_name:
            self.bucket: s3.IBucket = s3.Bucket.from_bucket_name(self, "Bucket", bucket_name)
        else:
            self.bucket = self._bucket(access_log_retention_days)
        stable_output(self, MODEL_BUCKET, value=self.bucket.bucket_name,
                      description="Bucket that toolkit.publish uploads models to")

    def location(self, key_prefix: str, sha256: str) -> S3ModelLocation:
        """Where a model publish put in this bucket is, as the handler's settings name it."""
        return S3ModelLocation(bucket=self.bucket.bucket_name, prefix=key_prefix, sha256=sha256)

    def grant_read_model(self, grantee: iam.IGrantable, model: S3ModelLocation, artifact: str,
                         profile: str | None = None) -> iam.Grant:
        """s3:GetObject on exactly the model's manifest, artifact and training profile: no other key or action."""
        keys = (model.key(MANIFEST_FILE), model.key(artifact), *((model.key(profile),) if profile else ()))
        return iam.Grant.add_to_principal(grantee=grantee, actions=["s3:GetObject"],
                                          resource_arns=[self.bucket.arn_for_objects(key) for key in keys])

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
