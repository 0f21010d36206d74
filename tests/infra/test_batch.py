"""The batch construct: a Distributed Map over the plan, narrow S3 grants, logging, tracing, an alarm, nag-clean."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Duration, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Match, Template

from infra.app import add_nag_checks
from infra.constructs.batch import HANDLERS, STATE_MACHINE_OUTPUT, BatchScoring
from tests.infra.conftest import FEATURE_FLAGS


def build(stack: Stack, code: lambda_.Code, **changes: Any) -> BatchScoring:
    options: dict[str, Any] = dict(
        code=code, runtime="python3.13", architecture="arm64", memory_mb=1769,
        timeout=Duration.minutes(15), log_retention_days=30, service_name="model-api",
        metrics_namespace="SklearnModelApi", max_concurrency=20, reserved_concurrency=20)
    return BatchScoring(stack, "Batch", **(options | changes))


def definition(template: Template) -> dict[str, Any]:
    """The state machine's ASL with CloudFormation functions reduced to placeholders."""
    (machine,) = template.find_resources("AWS::StepFunctions::StateMachine").values()
    parts = machine["Properties"]["DefinitionString"]["Fn::Join"][1]
    return json.loads("".join(part if isinstance(part, str) else "X" for part in parts))


@pytest.fixture
def template(flagged_stack: Stack, tiny_code: lambda_.Code) -> Template:
    build(flagged_stack, tiny_code)
    return Template.from_stack(flagged_stack)


def test_the_map_reads_the_plan_and_runs_one_child_per_range(template: Template) -> None:
    states = definition(template)["States"]
    assert definition(template)["StartAt"] == "Plan"
    score_map = states["ScoreRanges"]
    assert score_map["ItemProcessor"]["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
    assert score_map["ItemReader"]["ReaderConfig"] == {"InputType": "JSON"}
    assert score_map["ItemReader"]["Parameters"]["Key.$"] == "$.plan.plan_key"
    assert score_map["MaxConcurrency"] == 20
    assert "ToleratedFailurePercentage" not in score_map  # 0: any failed range fails the run
    assert "ItemBatcher" not in score_map and score_map["ResultPath"] is None
    assert states["Plan"]["Next"] == "ScoreRanges" and score_map["Next"] == "Summarize"
    child = score_map["ItemProcessor"]["States"]["ScoreRange"]
    assert child["Retry"][0]["ErrorEquals"][0] == "Lambda.ServiceException"


def test_functions_share_one_bundle_and_only_children_are_reserved(template: Template) -> None:
    functions = template.find_resources("AWS::Lambda::Function")
    assert sorted(f["Properties"]["Handler"] for f in functions.values()) == sorted(HANDLERS.values())
    reserved = {f["Properties"]["Handler"]: f["Properties"].get("ReservedConcurrentExecutions")
                for f in functions.values()}
    assert reserved == {HANDLERS["Plan"]: None, HANDLERS["Score"]: 20, HANDLERS["Summarize"]: None}
    assert all(f["Properties"]["TracingConfig"] == {"Mode": "Active"} for f in functions.values())


def test_s3_access_stops_at_the_prefixes(template: Template) -> None:
    statements = [statement for policy in template.find_resources("AWS::IAM::Policy").values()
                  for statement in policy["Properties"]["PolicyDocument"]["Statement"]
                  if any(str(action).startswith("s3:") for action in _list(statement["Action"]))]
    resources = json.dumps([statement["Resource"] for statement in statements])
    assert "/input/*" in resources and "/output/*" in resources
    for statement in statements:
        for resource in _list(statement["Resource"]):
            text = json.dumps(resource)
            assert text.endswith('/input/*"]]}') or text.endswith('/output/*"]]}') or "Arn" in text, text
    puts = [s for s in statements if "s3:PutObject" in _list(s["Action"])]
    assert all("/output/*" in json.dumps(s["Resource"]) for s in puts)


def test_logging_tracing_alarm_and_outputs(template: Template) -> None:
    template.has_resource_properties("AWS::StepFunctions::StateMachine", {
        "LoggingConfiguration": {"Level": "ALL", "IncludeExecutionData": False, "Destinations": Match.any_value()},
        "TracingConfiguration": {"Enabled": True}})
    template.has_resource_properties("AWS::CloudWatch::Alarm", {"MetricName": "ExecutionsFailed", "Threshold": 1})
    template.has_output(STATE_MACHINE_OUTPUT, {})
    template.has_resource_properties("AWS::S3::Bucket", {"VersioningConfiguration": {"Status": "Enabled"},
                                                         "LoggingConfiguration": Match.any_value()})


def test_existing_buckets_are_used_by_name(flagged_stack: Stack, tiny_code: lambda_.Code) -> None:
    build(flagged_stack, tiny_code, input_bucket_name="team-in", output_bucket_name="team-out")
    template = Template.from_stack(flagged_stack)
    assert not template.find_resources("AWS::S3::Bucket")
    assert "team-out" in json.dumps(template.find_resources("AWS::IAM::Policy"))


EXISTING_BUCKETS = {"input_bucket_name": "team-in", "output_bucket_name": "team-out"}


@pytest.mark.parametrize("changes", [{}, EXISTING_BUCKETS], ids=["created-buckets", "existing-buckets"])
def test_cdk_nag_passes(tiny_code: lambda_.Code, tmp_path: Path, changes: dict[str, Any]) -> None:
    app = App(context=FEATURE_FLAGS, outdir=str(tmp_path / "cdk.out"))
    build(Stack(app, "Under-Test"), tiny_code, **changes)
    add_nag_checks(app)
    app.synth()  # raises on any unacknowledged finding
    reports = json.loads((tmp_path / "cdk.out" / "validation-report.json").read_text(encoding="utf-8"))["pluginReports"]
    assert {report["pluginName"]: report["conclusion"] for report in reports} == {
        "AwsSolutions": "success", "Serverless": "success"}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]
