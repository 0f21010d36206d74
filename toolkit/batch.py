"""Run the deployed batch scoring state machine on files in S3, with progress, and print the summary.

    python -m toolkit.batch start --input s3://bucket/input/file.csv --output s3://bucket/output/run-1/ \
        [--id-column id] [--state-machine ARN | --stack-name NAME] [--region REGION]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, TextIO

import boto3

from infra.constructs.batch import STATE_MACHINE_OUTPUT

POLL_SECONDS = 5.0
RUNNING = "RUNNING"


def state_machine_from_stack(session: boto3.Session, stack_name: str) -> str:
    """The batch state machine's ARN from the stack's outputs."""
    stack = session.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"][0]
    for output in stack.get("Outputs", []):
        if output["OutputKey"] == STATE_MACHINE_OUTPUT:
            return output["OutputValue"]
    raise SystemExit(f"error: stack {stack_name} has no {STATE_MACHINE_OUTPUT} output (is cdk.json batch true?)")


def map_run_progress(client: Any, execution_arn: str) -> dict[str, int] | None:
    """The Distributed Map's item counts (total, succeeded, failed, running, pending), once its run exists."""
    runs = client.list_map_runs(executionArn=execution_arn).get("mapRuns", [])
    if not runs:
        return None
    return client.describe_map_run(mapRunArn=runs[0]["mapRunArn"])["itemCounts"]


def start(client: Any, state_machine_arn: str, *, source: str, destination: str, id_column: str | None = None,
          poll_seconds: float = POLL_SECONDS, stream: TextIO = sys.stderr) -> tuple[str, dict[str, Any]]:
    """Start an execution, report the map's progress until it ends; its status and output (or error)."""
    payload = {"input": source, "output": destination if destination.endswith("/") else destination + "/"}
    if id_column:
        payload["id_column"] = id_column
    execution_arn = client.start_execution(stateMachineArn=state_machine_arn, input=json.dumps(payload))["executionArn"]
    stream.write(f"started {execution_arn}\n")
    while True:
        execution = client.describe_execution(executionArn=execution_arn)
        counts = map_run_progress(client, execution_arn)
        if counts:
            stream.write(f"\rparts: {counts['succeeded']}/{counts['total']} done, {counts['running']} running, "
                         f"{counts['failed']} failed")
            stream.flush()
        if execution["status"] != RUNNING:
            stream.write("\n")
            if execution["status"] == "SUCCEEDED":
                return execution["status"], json.loads(execution.get("output") or "{}")
            return execution["status"], {"error": execution.get("error"), "cause": execution.get("cause")}
        time.sleep(poll_seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m toolkit.batch", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("start", help="score s3:// input into an s3:// output prefix")
    run.add_argument("--input", required=True, help="s3://bucket/key, or s3://bucket/prefix/ for every file under it")
    run.add_argument("--output", required=True, help="s3://bucket/prefix/ for the parts and summary.json")
    run.add_argument("--id-column")
    target = run.add_mutually_exclusive_group(required=True)
    target.add_argument("--state-machine", help="the state machine ARN")
    target.add_argument("--stack-name", help=f"read the ARN from this stack's {STATE_MACHINE_OUTPUT} output")
    run.add_argument("--region")
    args = parser.parse_args(argv)
    session = boto3.Session(region_name=args.region)
    arn = args.state_machine or state_machine_from_stack(session, args.stack_name)
    status, result = start(session.client("stepfunctions"), arn, source=args.input, destination=args.output,
                           id_column=args.id_column)
    print(json.dumps(result, indent=1))
    return 0 if status == "SUCCEEDED" else 1


if __name__ == "__main__":
    sys.exit(main())
