"""Budgets measured on the bundle that ships: exact bytes for size, same-run ratios for time."""

from __future__ import annotations

import pytest

from toolkit.budgets import cold_start_checks, load_budgets, report, size_checks, warm_checks
from builder.sizes import package_sizes
from toolkit.measure import (floor_cold_start, handler_cold_start, handler_warm_latency, median_cold_start,
                             raw_model_latency, slowest_imports)

BUDGETS = load_budgets()
WARM_INVOCATIONS = 300  # enough for a stable median; `make bench` runs the full count


def assert_within(checks, contributors):
    assert all(check.ok for check in checks), "\n" + report(checks, contributors)


@pytest.mark.slow
def test_the_lambda_bundle_fits_its_size_budget(lambda_bundle, default_config, served_runtime):
    # Given the bundle cdk.json describes (default architecture and Python runtime)
    checks = size_checks(BUDGETS, served_runtime, default_config.architecture,
                         lambda_bundle.unzipped_bytes, lambda_bundle.zipped_bytes)
    # Then its exact byte counts are within budget; otherwise the largest packages are named
    largest = [f"{name} {size:,} bytes" for name, size in list(package_sizes(lambda_bundle.path).items())[:5]]
    assert_within(checks, largest)


@pytest.mark.slow
def test_cold_start_against_the_naive_floor(host_bundle, sklearn_reference, served_runtime):
    # Given fresh processes, alternating so that drift on this machine hits both alike
    handler_runs, floor_runs = [], []
    for _ in range(BUDGETS["measurement"]["cold_start_runs"]):
        handler_runs.append(handler_cold_start(host_bundle.path))
        floor_runs.append(floor_cold_start(*sklearn_reference))
    # Then the median cold start is within its ratio to the floor, and under the safety net
    checks = cold_start_checks(BUDGETS, served_runtime, median_cold_start(handler_runs),
                               median_cold_start(floor_runs))
    slowest = [f"import {name}: {ms:.0f} ms" for name, ms in slowest_imports(host_bundle.path)]
    assert_within(checks, slowest)


@pytest.mark.slow
def test_warm_one_row_against_the_raw_scikit_learn_model(host_bundle, sklearn_reference, served_runtime):
    # Given one warm container answering single rows, and the raw model on the same row
    handler = handler_warm_latency(host_bundle.path, (1,), WARM_INVOCATIONS)
    raw = raw_model_latency(*sklearn_reference, (1,), WARM_INVOCATIONS)
    # Then the handler's time stays within its budgeted ratio to the raw model
    assert_within(warm_checks(BUDGETS, served_runtime, handler, raw), [f"handler p50 {handler[1].p50:.2f} ms",
                                                       f"raw model p50 {raw[1].p50:.2f} ms"])
