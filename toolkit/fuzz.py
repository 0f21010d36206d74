"""Fuzz the local API from its own OpenAPI document with schemathesis: `python -m toolkit.fuzz`.

Valid requests must be answered 2xx, invalid ones 4xx; nothing may be a 5xx, and every
answer must match the document (status, content type, body schema). Then schemathesis' own runner
sends its examples, coverage and fuzzing phases with every check (`--checks all`: unsupported methods
among them) against the same server.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, field
from typing import Any

# Statuses the API documents for a request that breaks the schema.
REJECTION_STATUSES = [400, 413, 415, 422]
FAILURE_TEXT_SHOWN = 1500
CLI_CONFIG = ("[checks.negative_data_rejection]\n"
              f"expected-statuses = {REJECTION_STATUSES}\n")


@dataclass
class FuzzReport:
    """How many generated requests each operation got, and what failed."""

    cases: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.cases.values())


def fuzz(base_url: str, cases: int) -> FuzzReport:
    """Send about `cases` generated requests, split over the operations and both modes."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis import GenerationMode
    from schemathesis.config import SchemathesisConfig

    config = SchemathesisConfig.from_dict(
        {"checks": {"negative_data_rejection": {"expected-statuses": REJECTION_STATUSES}}})
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json", config=config)
    report = FuzzReport()
    started = time.perf_counter()
    runs = [(operation.ok(), mode) for operation in schema.get_all_operations()
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)]
    # Operations without a body have nothing to break: they get one positive run.
    runs = [(op, mode) for op, mode in runs if op.body or mode is GenerationMode.POSITIVE]
    per_run = max(1, cases // sum(1 for op, _ in runs if op.body))
    for operation, mode in runs:
        label = f"{operation.label} ({mode.value})"
        report.cases[label] = 0

        run = settings(max_examples=per_run if operation.body else 20, deadline=None, database=None,
                       suppress_health_check=list(HealthCheck))(
            given(case=operation.as_strategy(generation_mode=mode))(_sender(report, label, base_url)))
        try:
            run()
        except Exception as failure:  # schemathesis raises a group naming each distinct failure
            report.failures.append(f"{label}: {str(failure)[:FAILURE_TEXT_SHOWN]}")
    report.seconds = time.perf_counter() - started
    return report


def _sender(report: FuzzReport, label: str, base_url: str) -> Callable[[Any], None]:
    """The property: send one generated case and run every schemathesis check on the answer."""

    def send(case: Any) -> None:
        report.cases[label] += 1
        case.call_and_validate(base_url=base_url)

    return send


@dataclass
class CliReport:
    """What schemathesis' runner with every check generated, and whether anything failed."""

    generated: int
    passed: bool
    output: str


def run_all_checks(base_url: str, max_examples: int) -> CliReport:
    """`schemathesis run --checks all` against base_url, with the rejection statuses the API documents."""
    with tempfile.TemporaryDirectory() as directory:
        config = os.path.join(directory, "schemathesis.toml")
        with open(config, "w", encoding="utf-8") as stream:
            stream.write(CLI_CONFIG)
        done = subprocess.run(
            [os.path.join(os.path.dirname(sys.executable), "schemathesis"), "--no-color", "--config-file", config,
             "run", "--checks", "all", "--max-examples", str(max_examples), f"{base_url}/openapi.json"],
            capture_output=True, text=True, cwd=directory, check=False)
    generated = re.search(r"(\d+) generated", done.stdout)
    return CliReport(int(generated.group(1)) if generated else 0, done.returncode == 0, done.stdout)


@contextmanager
def local_api() -> Iterator[str]:
    """The handler served on a free loopback port, as `make run` serves it."""
    from handler.app import lambda_handler
    from toolkit.local_api import make_server

    server = make_server("127.0.0.1", 0, lambda_handler, quiet=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m toolkit.fuzz", description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000, help="requests to generate (default: %(default)s)")
    args = parser.parse_args(argv)
    os.environ.setdefault("DOCS_ENABLED", "true")  # fuzz the docs route too, as `make run` serves it
    # Thousands of requests: the handler's logs and metrics (stdout, as in Lambda) go to a sink, not the terminal.
    with open(os.devnull, "w") as sink, redirect_stdout(sink), local_api() as base_url:
        report = fuzz(base_url, args.cases)
        all_checks = run_all_checks(base_url, max(1, args.cases // 20))
    for label, count in report.cases.items():
        print(f"{count:>7}  {label}")
    print(f"{report.total:>7}  requests in {report.seconds:.0f} s, {len(report.failures)} failure(s)")
    for failure in report.failures:
        print(f"\nFAILED {failure}")
    print(f"{all_checks.generated:>7}  cases from schemathesis run --checks all: "
          f"{'passed' if all_checks.passed else 'FAILED'}")
    if not all_checks.passed:
        print(all_checks.output[-FAILURE_TEXT_SHOWN * 4:])
    return 1 if report.failures or not all_checks.passed else 0


if __name__ == "__main__":
    sys.exit(main())
