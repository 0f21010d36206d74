"""The full app as deployed: real bundle, cdk-nag clean, cfn-lint clean, and the same template from the CDK CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App
from cfnlint.api import lint_file

from handler.config import MODEL_S3_PREFIX, MODEL_SHA256
from infra.app import build
from tests.helpers import PROJECT_ROOT

STACK_NAME = "model-api-dev"
NAG_PACKS = {"AwsSolutions", "Serverless"}
# CDK makes the function depend on its role's policy as well as the role, which cfn-lint finds redundant.
ALLOWED_LINT_WARNINGS = {"W3005"}

pytestmark = pytest.mark.slow


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def resources(assembly: Path) -> dict[str, tuple[str, Any]]:
    """Type and properties by logical ID; the CLI's version-reporting resource left out."""
    template = read_json(assembly / f"{STACK_NAME}.template.json")
    return {logical_id: (resource["Type"], resource.get("Properties"))
            for logical_id, resource in template["Resources"].items() if resource["Type"] != "AWS::CDK::Metadata"}


def test_cdk_nag_finds_nothing_unacknowledged(synthesized_app: Path):
    # Given / When
    reports = read_json(synthesized_app / "validation-report.json")["pluginReports"]

    # Then
    nag = {report["pluginName"]: report for report in reports if report["pluginName"] in NAG_PACKS}
    assert set(nag) == NAG_PACKS
    assert {name: report["violations"] for name, report in nag.items()} == dict.fromkeys(NAG_PACKS, [])


def test_every_acknowledgment_is_used_and_gives_a_one_line_reason(synthesized_app: Path):
    # Given
    reports = read_json(synthesized_app / "validation-report.json")["pluginReports"]
    suppressed = [violation for report in reports for violation in report.get("suppressedViolations", [])]
    metadata = read_json(synthesized_app / f"{STACK_NAME}.metadata.json")
    acknowledged = {rule: reason for entries in metadata.values() for entry in entries
                    if entry["type"] == "aws:cdk:acknowledged-rules" for rule, reason in entry["data"].items()}

    # Then
    assert acknowledged, "expected the X-Ray wildcard and the DLQ rule to be acknowledged"
    assert {violation["acknowledgedId"] for violation in suppressed} == set(acknowledged)
    for rule, reason in acknowledged.items():
        assert 20 <= len(reason) <= 200 and "\n" not in reason, rule


def test_only_the_xray_statement_has_a_wildcard_resource(synthesized_app: Path):
    # Given
    template = read_json(synthesized_app / f"{STACK_NAME}.template.json")
    statements = [statement for resource in template["Resources"].values() if resource["Type"] == "AWS::IAM::Policy"
                  for statement in resource["Properties"]["PolicyDocument"]["Statement"]]

    # Then
    wildcards = [statement for statement in statements if "*" in json.dumps(statement["Resource"])]
    assert [sorted(statement["Action"]) for statement in wildcards] == [
        ["xray:PutTelemetryRecords", "xray:PutTraceSegments"]]


def test_cfn_lint_finds_no_errors(synthesized_app: Path):
    # Given / When
    matches = lint_file(synthesized_app / f"{STACK_NAME}.template.json")

    # Then
    found = {match.rule.id for match in matches}
    assert not {rule for rule in found if rule.startswith("E")}, [str(match) for match in matches]
    assert found <= ALLOWED_LINT_WARNINGS, [str(match) for match in matches]


def test_the_function_code_is_the_bundle(synthesized_app: Path, lambda_bundle):
    # Given
    assets = read_json(synthesized_app / f"{STACK_NAME}.assets.json")["files"]

    # When
    [staged] = [synthesized_app / asset["source"]["path"] for asset in assets.values()
                if asset["source"].get("packaging") == "zip"]

    # Then
    assert sorted(path.name for path in staged.iterdir()) == sorted(path.name for path in lambda_bundle.path.iterdir())
    assert (staged / "handler" / "app.py").read_bytes() == (lambda_bundle.path / "handler" / "app.py").read_bytes()


def test_a_published_model_ships_only_the_handler_and_its_libraries(cdk_context, shipped_manifest, lambda_bundle,
                                                                    tmp_path):
    # Given the packaged model's keys, as publish prints them
    prefix = f"models/{shipped_manifest['name']}/{shipped_manifest['version']}/"
    published = {"model_source": "s3", "model_s3_key_prefix": prefix, "model_sha256": shipped_manifest["sha256"],
                 "model_manifest_sha256": "b" * 64}
    app = App(context={**cdk_context, **published}, outdir=str(tmp_path / "cdk.out"))

    # When
    build(app)
    app.synth()

    # Then the code asset holds no model, and the function knows where the model is
    assets = read_json(tmp_path / "cdk.out" / f"{STACK_NAME}.assets.json")["files"]
    [staged] = [tmp_path / "cdk.out" / asset["source"]["path"] for asset in assets.values()
                if asset["source"].get("packaging") == "zip"]
    assert not (staged / "model_artifacts").exists()
    assert {path.name for path in staged.iterdir()} == {path.name for path in lambda_bundle.path.iterdir()} - {
        "model_artifacts"}
    variables = [properties["Environment"]["Variables"] for kind, properties in resources(tmp_path / "cdk.out").values()
                 if kind == "AWS::Lambda::Function" and properties["Handler"] == "handler.app.lambda_handler"]
    assert [(found[MODEL_S3_PREFIX], found[MODEL_SHA256]) for found in variables] == [
        (published["model_s3_key_prefix"], shipped_manifest["sha256"])]


def test_the_cdk_cli_synthesizes_the_same_resources_without_credentials(synthesized_app: Path, tmp_path: Path):
    # Given: the pinned CLI, no AWS credentials or metadata service, no network calls of its own
    if shutil.which("npx") is None:
        pytest.skip("npm is not installed: the CDK CLI cannot run here")
    environment = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    environment |= {"AWS_EC2_METADATA_DISABLED": "true", "CDK_DISABLE_VERSION_CHECK": "true",
                    "CDK_DISABLE_CLI_TELEMETRY": "true", "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
                    "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1"}

    # When
    completed = subprocess.run(["npx", "--no-install", "aws-cdk", "synth", "--no-notices", "--quiet",
                                "--output", str(tmp_path / "cdk.out")],
                               cwd=PROJECT_ROOT, env=environment, capture_output=True, text=True, timeout=300,
                               check=False)

    # Then
    assert completed.returncode == 0, (completed.stdout + completed.stderr)[-4000:]
    assert resources(tmp_path / "cdk.out") == resources(synthesized_app)


def test_batch_scoring_and_the_drift_check_synthesize_clean(cdk_context, lambda_bundle, tmp_path):
    # Given the app with both optional units switched on
    outdir = tmp_path / "cdk.out"
    app = App(context={**cdk_context, "batch": True, "drift_check": True}, outdir=str(outdir))
    build(app)
    # When (cdk-nag runs in synth: an unacknowledged finding fails it)
    app.synth()
    # Then cfn-lint finds nothing either, and both units are there
    template_path = outdir / f"{STACK_NAME}.template.json"
    matches = lint_file(template_path)
    assert {match.rule.id for match in matches} <= ALLOWED_LINT_WARNINGS, [str(match) for match in matches]
    resources = read_json(template_path)["Resources"].values()
    assert {"AWS::StepFunctions::StateMachine", "AWS::Events::Rule"} <= {resource["Type"] for resource in resources}
