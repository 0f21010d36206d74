"""The synthesized batch state machine executed by moto's Step Functions interpreter, with the real batch code.

moto runs the Lambda tasks through its simple (no Docker) backend, whose invoke is patched here to call the
handlers in this process. What moto cannot execute, the design avoids: ItemBatcher, EXPRESS children, the JSON Lines
and Parquet readers, WriterConfig, and an integer ToleratedFailurePercentage (left out: 0 is the default).
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_cdk import Duration, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Template
from moto import mock_aws
from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.stepfunctions.parser.models import StepFunctionsParserBackend

import handler.batch as batch
from builder.demo_model import split_customers
from handler.config import Settings
from handler.loading import load_model
from infra.constructs.batch import BatchScoring
from tests.handler.test_batch import csv_bytes
from tests.helpers import REGION
from toolkit.batch import start
from toolkit.events import LambdaContext

IN_BUCKET, OUT_BUCKET = "batch-in", "batch-out"
HANDLERS = {"handler.batch.plan_handler": batch.plan_handler,
            "handler.batch.score_range_handler": batch.score_range_handler,
            "handler.batch.summarize_handler": batch.summarize_handler}


def asl(tiny_code: Any, function_arns: dict[str, str]) -> str:
    """The construct's state machine definition, its CloudFormation references resolved to moto's functions."""
    stack = Stack()
    BatchScoring(stack, "Batch", code=tiny_code, runtime="python3.13", architecture="arm64",
                 memory_mb=1769, timeout=Duration.minutes(15), log_retention_days=30,
                 service_name="model-api", metrics_namespace="SklearnModelApi",
                 max_concurrency=4, reserved_concurrency=4)
    resources = Template.from_stack(stack).to_json()["Resources"]
    handler_of = {name: resource["Properties"]["Handler"] for name, resource in resources.items()
                  if resource["Type"] == "AWS::Lambda::Function"}
    (machine,) = (r for r in resources.values() if r["Type"] == "AWS::StepFunctions::StateMachine")

    def resolve(part: Any) -> str:
        if isinstance(part, str):
            return part
        if part == {"Ref": "AWS::Partition"}:
            return "aws"
        return function_arns[handler_of[part["Fn::GetAtt"][0]]]

    return "".join(resolve(part) for part in machine["Properties"]["DefinitionString"]["Fn::Join"][1])


@pytest.fixture
def tiny_code(tmp_path: Path) -> lambda_.Code:
    """A one-file asset: the definition is what is under test, not the bundle."""
    (tmp_path / "index.py").write_text("", encoding="utf-8")
    return lambda_.Code.from_asset(str(tmp_path))


@pytest.fixture
def aws(aws_environment: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {batch.INPUT_BUCKET: IN_BUCKET, batch.INPUT_PREFIX: "input/",
                        batch.OUTPUT_BUCKET: OUT_BUCKET, batch.OUTPUT_PREFIX: "output/", batch.PART_MB: "1"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}):
        yield


@pytest.fixture
def state_machine(aws: None, tiny_code: Any, demo_dir: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The batch state machine in moto, its three Lambda tasks served by the real handlers in this process."""
    monkeypatch.setattr(batch, "MODEL", load_model(Settings(model_dir=demo_dir)))  # their init on the demo model
    role = boto3.client("iam").create_role(RoleName="batch", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("index.py", "")
    lambda_client = boto3.client("lambda")
    arns, handler_of_arn = {}, {}
    for index, name in enumerate(HANDLERS):
        arn = lambda_client.create_function(FunctionName=f"batch-{index}", Runtime="python3.13", Role=role,
                                            Handler=name, Code={"ZipFile": code.getvalue()})["FunctionArn"]
        arns[name], handler_of_arn[f"batch-{index}"] = arn, HANDLERS[name]

    def invoke(backend: Any, function_name: str, qualifier: Any, body: Any, headers: Any,
               response_headers: Any) -> bytes:
        entry = handler_of_arn[function_name.rsplit(":", 1)[-1]]
        try:
            return json.dumps(entry(json.loads(body or "{}"), LambdaContext())).encode()
        except Exception as error:  # as Lambda reports an unhandled error to Step Functions
            response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps({"errorType": type(error).__name__, "errorMessage": str(error)}).encode()

    monkeypatch.setattr(LambdaSimpleBackend, "invoke", invoke)
    # moto's list_map_runs fails while its execution thread has not started yet; AWS answers no map runs then.
    list_map_runs = StepFunctionsParserBackend.list_map_runs

    def list_map_runs_once_started(backend: Any, execution_arn: str) -> dict[str, Any]:
        if backend.describe_execution(execution_arn=execution_arn).exec_worker.env is None:
            return {"mapRuns": []}
        return list_map_runs(backend, execution_arn)

    monkeypatch.setattr(StepFunctionsParserBackend, "list_map_runs", list_map_runs_once_started)
    s3 = boto3.client("s3")
    for bucket in (IN_BUCKET, OUT_BUCKET):
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    return boto3.client("stepfunctions").create_state_machine(
        name="batch", definition=asl(tiny_code, arns), roleArn=role)["stateMachineArn"]


@pytest.fixture(scope="module")
def customers_csv() -> bytes:
    _, holdout = split_customers()
    rows = holdout.drop(columns=["churn"]).to_dict("records")
    return csv_bytes([{"customer_id": f"c{index}", **row} for index, row in enumerate(rows)] * 40)


def test_a_multi_part_input_is_scored_end_to_end(state_machine: str, customers_csv: bytes) -> None:
    # Given two files under the input prefix, one over 1 MiB so it is cut into two ranges
    s3 = boto3.client("s3")
    s3.put_object(Bucket=IN_BUCKET, Key="input/day/a.csv", Body=customers_csv)
    s3.put_object(Bucket=IN_BUCKET, Key="input/day/b.csv", Body=customers_csv[:50_000].rsplit(b"\n", 1)[0])
    # When toolkit.batch starts the deployed machine on the prefix
    status, result = start(boto3.client("stepfunctions"), state_machine, source=f"s3://{IN_BUCKET}/input/day/",
                           destination=f"s3://{OUT_BUCKET}/output/run-1", id_column="customer_id",
                           poll_seconds=0.2, stream=io.StringIO())
    # Then every row of every part is accounted for in the summary
    assert status == "SUCCEEDED", result
    summary = json.loads(s3.get_object(Bucket=OUT_BUCKET, Key="output/run-1/summary.json")["Body"].read())
    rows_b = customers_csv[:50_000].rsplit(b"\n", 1)[0].count(b"\n")
    assert len(summary["parts"]) == len(customers_csv) // (1 << 20) + 2  # a.csv in 1 MiB ranges, b.csv whole
    assert (summary["rows_in"], summary["scored"], summary["rejected"]) == (40_000 + rows_b, 40_000 + rows_b, 0)
    assert result["status"] == "succeeded" and result["model"]["name"] == "customer-churn"


def test_a_bad_header_fails_the_execution_by_name(state_machine: str, customers_csv: bytes) -> None:
    boto3.client("s3").put_object(Bucket=IN_BUCKET, Key="input/narrow.csv", Body=b"customer_id,contract\nc1,one-year\n")
    status, result = start(boto3.client("stepfunctions"), state_machine, source=f"s3://{IN_BUCKET}/input/narrow.csv",
                           destination=f"s3://{OUT_BUCKET}/output/run-2/", poll_seconds=0.2, stream=io.StringIO())
    assert status == "FAILED"
    assert "header_missing_features" in json.dumps(result)
