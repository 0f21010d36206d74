"""The model store construct: a private, versioned, retained bucket with access logs, read only by exact keys."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk.assertions import Match, Template

from handler.config import S3ModelLocation
from infra.constructs.model_store import ModelStore
from infra.outputs import MODEL_BUCKET
from tests.infra.conftest import logical_id

PREFIX, SHA = "models/churn/2.0.0/", "b" * 64
BLOCK_ALL = {"BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True,
             "RestrictPublicBuckets": True}


def make_store(stack: Stack, **overrides: Any) -> ModelStore:
    arguments: dict[str, Any] = {"bucket_name": None, "access_log_retention_days": 90}
    return ModelStore(stack, "ModelStore", **{**arguments, **overrides})


def test_the_created_bucket_is_versioned_encrypted_private_logged_and_retained(stack):
    # Given / When
    store = make_store(stack)

    # Then
    template = Template.from_stack(stack)
    template.resource_count_is("AWS::S3::Bucket", 2)  # the model bucket and its access log bucket
    template.has_resource(
        "AWS::S3::Bucket", {
            "Properties": {
                "VersioningConfiguration": {"Status": "Enabled"},
                "BucketEncryption": {"ServerSideEncryptionConfiguration": [
                    {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]},
                "PublicAccessBlockConfiguration": BLOCK_ALL,
                "LoggingConfiguration": {"DestinationBucketName": Match.any_value()},
            },
            "DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain",
        })
    template.has_resource_properties("AWS::S3::BucketPolicy", {
        "Bucket": {"Ref": logical_id(store.bucket)},
        "PolicyDocument": {"Statement": Match.array_with([Match.object_like({
            "Effect": "Deny", "Action": "s3:*", "Condition": {"Bool": {"aws:SecureTransport": "false"}}})])},
    })
    template.has_output(MODEL_BUCKET, {"Value": {"Ref": logical_id(store.bucket)}})


def test_access_logs_are_private_retained_expire_and_come_only_from_the_model_bucket(flagged_stack):
    # Given / When
    store = make_store(flagged_stack, access_log_retention_days=30)

    # Then
    template = Template.from_stack(flagged_stack)
    template.has_resource("AWS::S3::Bucket", {
        "Properties": {
            "LifecycleConfiguration": {"Rules": [{"ExpirationInDays": 30, "Status": "Enabled"}]},
            "PublicAccessBlockConfiguration": BLOCK_ALL,
            "BucketEncryption": Match.any_value(),
        },
        "DeletionPolicy": "Retain",
    })
    template.has_resource_properties("AWS::S3::BucketPolicy", {"PolicyDocument": {"Statement": Match.array_with([
        Match.object_like({"Effect": "Allow", "Action": "s3:PutObject",
                           "Principal": {"Service": "logging.s3.amazonaws.com"},
                           "Condition": Match.object_like({"ArnLike": {"aws:SourceArn": {
                               "Fn::GetAtt": [logical_id(store.bucket), "Arn"]}}})})])}})


def test_an_existing_bucket_is_used_as_it_is(stack):
    # Given / When
    store = make_store(stack, bucket_name="team-models")

    # Then
    template = Template.from_stack(stack)
    template.resource_count_is("AWS::S3::Bucket", 0)
    template.has_output(MODEL_BUCKET, {"Value": "team-models"})
    assert stack.resolve(store.bucket.bucket_name) == "team-models"


def test_reading_a_model_grants_get_object_on_exactly_its_two_keys(stack):
    # Given
    store = make_store(stack, bucket_name="team-models")
    reader = iam.Role(stack, "Reader", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))

    # When
    store.grant_read_model(reader, store.location(PREFIX, SHA), artifact="model.onnx")

    # Then
    [policy] = Template.from_stack(stack).find_resources("AWS::IAM::Policy").values()
    [statement] = policy["Properties"]["PolicyDocument"]["Statement"]
    assert (statement["Effect"], statement["Action"]) == ("Allow", "s3:GetObject")
    assert statement["Resource"] == [
        {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, f":s3:::team-models/models/churn/2.0.0/{name}"]]}
        for name in ("manifest.json", "model.onnx")]
    assert "*" not in json.dumps(statement["Resource"])


def test_a_models_location_is_in_this_bucket_as_the_handler_names_it(stack):
    # Given
    store = make_store(stack)

    # When
    location = store.location(PREFIX, SHA)

    # Then
    assert stack.resolve(location.bucket) == {"Ref": logical_id(store.bucket)}
    assert (location.prefix, location.sha256) == (PREFIX, SHA)
    assert isinstance(location, S3ModelLocation)
