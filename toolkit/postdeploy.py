"""After a deploy: call the API, then read Lambda's own REPORT lines and check them against budgets.toml.

    python -m toolkit.postdeploy [--calls 20] [--url URL] [--profile P] [--region R] [--stack NAME]

Lambda writes one REPORT line per invocation to the function's log group: `Duration` (the
handler's time), `Max Memory Used`, and `Init Duration` on the first request of a new
container (a cold start), or `Restore Duration` when SnapStart resumed a snapshot. This
command prints cold and warm percentiles from those lines.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from infra.outputs import FUNCTION_LOG_GROUP
from toolkit.budgets import Check, load_budgets, report
from toolkit.invoke import add_api_arguments, deployed_api, example_body, send, signed_request, stack_output
from toolkit.measure import Percentiles, percentiles

REPORT_PATTERN = re.compile(
    r"REPORT RequestId: (?P<request_id>\S+)\s+Duration: (?P<duration>[\d.]+) ms\s+"
    r"Billed Duration: [\d.]+ ms\s+Memory Size: (?P<memory_size>\d+) MB\s+"
    r"Max Memory Used: (?P<max_memory>\d+) MB(?:\s+(?:Init|Restore) Duration: (?P<init>[\d.]+) ms)?")


@dataclass(frozen=True)
class Invocation:
    """One REPORT line."""

    request_id: str
    duration_ms: float
    memory_size_mb: int
    max_memory_mb: int
    init_ms: float | None

    @property
    def cold(self) -> bool:
        return self.init_ms is not None


def parse_reports(messages: Iterable[str]) -> list[Invocation]:
    """The REPORT lines among log messages, parsed."""
    found = []
    for message in messages:
        match = REPORT_PATTERN.search(message)
        if match:
            init = match.group("init")
            found.append(Invocation(match.group("request_id"), float(match.group("duration")),
                                    int(match.group("memory_size")), int(match.group("max_memory")),
                                    float(init) if init else None))
    return found


def fetch_reports(logs_client, log_group: str, since_ms: int, *, expected: int, wait_s: float = 60) -> list[Invocation]:
    """REPORT lines written to log_group since since_ms, waiting for CloudWatch Logs to catch up."""
    deadline = time.monotonic() + wait_s
    while True:
        messages = []
        paginator = logs_client.get_paginator("filter_log_events")
        for page in paginator.paginate(logGroupName=log_group, startTime=since_ms, filterPattern='"REPORT RequestId"'):
            messages += [event["message"] for event in page["events"]]
        invocations = parse_reports(messages)
        if len(invocations) >= expected or time.monotonic() > deadline:
            return invocations
        time.sleep(5)


@dataclass(frozen=True)
class Summary:
    """Cold and warm figures from REPORT lines."""

    cold_total: Percentiles | None  # Init Duration + Duration
    warm: Percentiles | None
    max_memory_mb: int
    memory_size_mb: int


def summarise(invocations: list[Invocation]) -> Summary:
    cold = [(i.init_ms + i.duration_ms) / 1000 for i in invocations if i.cold]
    warm = [i.duration_ms / 1000 for i in invocations if not i.cold]
    return Summary(cold_total=percentiles(cold) if cold else None, warm=percentiles(warm) if warm else None,
                   max_memory_mb=max(i.max_memory_mb for i in invocations),
                   memory_size_mb=invocations[0].memory_size_mb)


def checks(summary: Summary, budgets: dict) -> list[Check]:
    """The deployed figures against the same budgets the local measurements meet."""
    found = []
    if summary.cold_total:
        ceiling = budgets["cold_start"]["ceiling_seconds"]
        found.append(Check("deployed cold start p50 (Init + Duration)", summary.cold_total.p50 / 1000,
                           ceiling["limit"], " s", ceiling["reason"]))
    if summary.warm:
        for stat in ("p50", "p99"):
            budget = budgets["warm"][f"{stat}_ms"]["1"]
            found.append(Check(f"deployed warm 1-row {stat} (Duration)", getattr(summary.warm, stat),
                               budget["limit"], " ms", budget["reason"]))
    return found


def describe(summary: Summary) -> str:
    lines = []
    if summary.cold_total:
        c = summary.cold_total
        lines.append(f"cold starts: {c.count}, Init Duration + Duration p50 {c.p50 / 1000:.3f} s, max {c.max / 1000:.3f} s")
    if summary.warm:
        w = summary.warm
        lines.append(f"warm: {w.count}, Duration p50 {w.p50:.1f} ms, p99 {w.p99:.1f} ms, max {w.max:.1f} ms")
    lines.append(f"memory: max used {summary.max_memory_mb} MB of {summary.memory_size_mb} MB")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m toolkit.postdeploy", description=__doc__.splitlines()[0])
    add_api_arguments(parser)
    parser.add_argument("--calls", type=int, default=20, help="signed /predict calls to make (default: 20)")
    parser.add_argument("--log-group", help="the function's log group (default: the stack's output)")
    args = parser.parse_args(argv)
    api = deployed_api(parser, args)
    log_group = args.log_group or stack_output(api.session, api.region, api.stack, FUNCTION_LOG_GROUP)
    since_ms = int(time.time() * 1000) - 1000
    body = example_body(rows=1)  # the budgets it is checked against are for one row
    statuses = [send(signed_request(f"{api.url}/predict", body=body, credentials=api.credentials,
                                    region=api.region))[0] for _ in range(args.calls)]
    print(f"{args.calls} calls to {api.url}/predict: "
          + ", ".join(f"{s}×{statuses.count(s)}" for s in sorted(set(statuses))))
    invocations = fetch_reports(api.session.create_client("logs", region_name=api.region), log_group, since_ms,
                                expected=args.calls)
    if not invocations:
        print(f"no REPORT lines in {log_group} yet; try again in a minute", file=sys.stderr)
        return 1
    summary = summarise(invocations)
    found = checks(summary, load_budgets())
    print(describe(summary))
    print(report(found))
    return 0 if all(check.ok for check in found) and set(statuses) == {200} else 1


if __name__ == "__main__":
    sys.exit(main())
