"""Budgets measured on the bundle that ships: exact bytes for size, same-run ratios for time.

Ratio budgets are checked here with a safety net (SAFETY_NET times the limit) over fewer runs than
`make bench`, which holds the exact limits: the tests catch regressions, not noise on a shared machine.
They hold for any shipped model: every reference is that model's own (its naive floor, its raw predict), and
where a figure grows with the model, budgets.toml says how the limit scales (the model's own files are not
counted in the size budget; a raw predict under raw_floor_ms counts as raw_floor_ms).
"""

from __future__ import annotations

import dataclasses

import pytest

from builder.sizes import package_sizes
from toolkit.budgets import Check, cold_start_checks, load_budgets, report, size_checks, warm_checks
from toolkit.measure import (ColdStarts, cached_view, floor_cold_start, handler_cold_start,
                             handler_warm_latency, hello_world_cold_start, slowest_imports)

BUDGETS = load_budgets()
SAFETY_NET = 2.5  # times each ratio budget: catches regressions (say scikit-learn imported by the ONNX handler), not noise
COLD_START_ROUNDS = 5
WARM_INVOCATIONS = 300  # enough for a stable median; `make bench` runs the full count


def with_safety_net(checks: list[Check]) -> list[Check]:
    """Ratios get the net; absolute ceilings (Lambda's own limits in sight) stay as they are."""
    return [dataclasses.replace(check, limit=check.limit * SAFETY_NET) if check.unit == "×" else check
            for check in checks]


def assert_within(checks, contributors):
    assert all(check.ok for check in checks), "\n" + report(checks, contributors)


@pytest.mark.slow
def test_the_lambda_bundle_fits_its_size_budget(lambda_bundle, default_config, served_runtime):
    # Given the bundle cdk.json describes (default architecture and Python runtime), bytecode included
    model_unzipped, model_zipped = lambda_bundle.model_bytes()
    # When the model's own files are set aside, the rest is within budget, and the whole bundle within Lambda's
    # limit; otherwise the largest are named
    checks = size_checks(BUDGETS, served_runtime, default_config.architecture,
                         unzipped_bytes=lambda_bundle.unzipped_bytes, zipped_bytes=lambda_bundle.zipped_bytes,
                         model_unzipped=model_unzipped, model_zipped=model_zipped)
    largest = [f"{name} {size:,} bytes" for name, size in list(package_sizes(lambda_bundle.path).items())[:5]]
    assert_within(checks, [f"the model's files {model_unzipped:,} bytes", *largest])


@pytest.mark.slow
def test_cold_starts_as_shipped_against_the_naive_floor_and_the_powertools_hello_world(
        host_bundle, sklearn_host_bundle, served_runtime):
    # Given: the naive floor without bytecode, a hello-world with bytecode, and each handler as shipped
    naive, complete = cached_view(sklearn_host_bundle.path, "none"), cached_view(sklearn_host_bundle.path, "full")
    handlers = {"sklearn": cached_view(sklearn_host_bundle.path, "shipped"),
                served_runtime: cached_view(host_bundle.path, "shipped")}
    runs: dict[str, list] = {name: [] for name in ("naive", "hello_world", *handlers)}
    # When they run interleaved, one of each per round, so drift on this machine hits all alike
    for _ in range(COLD_START_ROUNDS):
        runs["naive"].append(floor_cold_start(naive))
        runs["hello_world"].append(hello_world_cold_start(complete))
        for runtime, view in handlers.items():
            runs[runtime].append(handler_cold_start(view))
    starts = {name: ColdStarts(tuple(figures)) for name, figures in runs.items()}
    # Then each median is within its ratios (with the safety net) and under the ceiling
    checks = [check for runtime in handlers for check in with_safety_net(
        cold_start_checks(BUDGETS, runtime, starts[runtime], starts["naive"], starts["hello_world"]))]
    slowest = [f"import {name}: {ms:.0f} ms" for name, ms in slowest_imports(handlers[served_runtime])]
    assert_within(checks, slowest)


@pytest.mark.slow
def test_warm_one_row_against_the_raw_scikit_learn_model_beside_it(host_bundle, sklearn_host_bundle,
                                                                   served_runtime):
    # Given one warm container alternating the handler and the raw model on the same single row
    latency = handler_warm_latency(cached_view(host_bundle.path, "shipped"),
                                   cached_view(sklearn_host_bundle.path, "shipped"), (1,), WARM_INVOCATIONS)
    # Then the handler's time stays within its budgeted ratio to the raw model (with the safety net)
    assert_within(with_safety_net(warm_checks(BUDGETS, served_runtime, latency)),
                  [f"handler p50 {latency.handler[1].p50:.2f} ms", f"raw model p50 {latency.raw[1].p50:.2f} ms"])
