"""The budget checker itself: figures in, verdicts and a readable report out."""

from __future__ import annotations

import pytest

from builder.sizes import LAMBDA_UNZIPPED_LIMIT
from toolkit.budgets import cold_start_checks, load_budgets, report, size_checks, warm_checks
from toolkit.measure import ColdStart, ColdStarts, Percentiles, WarmLatency, percentiles

BUDGETS = load_budgets()


def test_every_budget_has_a_limit_and_a_reason():
    def leaves(node):
        for key, value in node.items():
            if isinstance(value, dict) and "limit" not in value:
                yield from leaves(value)
            elif isinstance(value, dict):
                yield key, value

    budgets = {key: value for key, value in BUDGETS.items() if key != "measurement"}
    found = list(leaves(budgets))
    assert len(found) >= 10
    assert all(isinstance(b["limit"], (int, float)) and len(b["reason"]) > 20 for _, b in found)


def starts(interpreter: float, imports: float, load: float, first_request: float) -> ColdStarts:
    return ColdStarts((ColdStart(interpreter, imports, load, first_request),))


def test_a_deliberately_broken_budget_reports_figures_reason_and_contributors():
    # Given a scikit-learn cold start as slow as the naive floor
    handler = starts(interpreter=0.02, imports=2.2, load=3.7, first_request=0.08)
    naive_floor = starts(interpreter=0.02, imports=4.4, load=1.5, first_request=0.08)
    hello_world = starts(interpreter=0.02, imports=0.2, load=0.0, first_request=0.01)
    # When it is checked and reported with the slowest imports
    checks = cold_start_checks(BUDGETS, "sklearn", handler, naive_floor, hello_world)
    text = report(checks, ["sklearn import 1442 ms", "pandas import 228 ms"])
    # Then the ratio is over, and the report says by how much, why the budget exists, and who is to blame
    assert [check.ok for check in checks] == [False, True]
    assert "OVER sklearn cold start / naive floor: 1× (budget 0.5×)" in text
    assert "why sklearn cold start / naive floor has a budget: the same model and libraries" in text
    assert "biggest contributors:\n  sklearn import 1442 ms" in text


def test_the_compact_runtime_is_held_to_both_floors():
    # Given an ONNX cold start at 5% of the naive floor but four times the Powertools hello-world
    handler = starts(interpreter=0.02, imports=0.2, load=0.06, first_request=0.02)
    naive_floor = starts(interpreter=0.02, imports=4.0, load=1.5, first_request=0.08)
    hello_world = starts(interpreter=0.02, imports=0.04, load=0.0, first_request=0.015)
    # When
    checks = {check.name: check for check in cold_start_checks(BUDGETS, "onnx", handler, naive_floor, hello_world)}
    # Then the first holds, the second does not
    assert checks["onnx cold start / naive floor"].ok
    assert checks["onnx cold start / Powertools hello-world"].measured == pytest.approx(4.0)
    assert not checks["onnx cold start / Powertools hello-world"].ok and checks["onnx cold start"].ok


def test_a_report_without_broken_budgets_names_no_contributors():
    checks = size_checks(BUDGETS, "sklearn", "arm64", unzipped_bytes=100_000_000, zipped_bytes=30_000_000,
                         model_unzipped=0, model_zipped=0)
    text = report(checks, ["scipy 101 MB"])
    assert all(check.ok for check in checks)
    assert "ok   sklearn arm64 bundle unzipped, model aside: 100,000,000 bytes (budget 252,144,000 bytes)" in text
    assert "contributors" not in text


def test_the_models_own_files_count_only_against_lambdas_limit():
    # Given a bundle whose template part fits its budget, with a 40 MB forest beside it
    checks = {check.name: check for check in size_checks(
        BUDGETS, "onnx", "arm64", unzipped_bytes=130_000_000, zipped_bytes=50_000_000,
        model_unzipped=40_000_000, model_zipped=20_000_000)}
    # Then the budget sees the template's 90 MB, and Lambda's limit the whole bundle
    assert checks["onnx arm64 bundle unzipped, model aside"].measured == 90_000_000
    assert checks["onnx arm64 bundle zipped, model aside"].measured == 30_000_000
    whole = checks["onnx arm64 whole bundle unzipped, model included"]
    assert (whole.measured, whole.limit) == (130_000_000, LAMBDA_UNZIPPED_LIMIT) and whole.ok


def test_warm_checks_cover_overhead_and_every_batch_size():
    handler = {size: Percentiles(p50=size * 0.5 + 6, p99=size * 0.6 + 9, max=50, count=10) for size in (1, 100, 1000)}
    raw = {1: Percentiles(p50=4.0, p99=6.0, max=7.0, count=10)}
    checks = {check.name: check for check in warm_checks(BUDGETS, "sklearn", WarmLatency(handler, raw))}
    ratio = checks["sklearn warm 1-row p50 / raw scikit-learn p50"]
    assert ratio.measured == (1 * 0.5 + 6) / 4.0 and not ratio.ok
    assert set(checks) >= {"sklearn warm 1000-row p50", "sklearn warm 1000-row p99", "sklearn warm 100-row p50",
                           "sklearn warm 1-row p99"}


def test_the_compact_runtime_is_held_to_its_median_against_scikit_learn():
    handler = {1: Percentiles(p50=0.2, p99=0.3, max=1.0, count=10)}
    raw = {1: Percentiles(p50=10.0, p99=14.0, max=16.0, count=10)}
    (ratio, *_) = warm_checks(BUDGETS, "onnx", WarmLatency(handler, raw))
    assert (ratio.name, ratio.measured) == ("onnx warm 1-row p50 / raw scikit-learn p50", 0.2 / 10.0)


@pytest.mark.parametrize("runtime", ["sklearn", "onnx"])
def test_a_model_predicting_in_microseconds_counts_as_the_raw_floor(runtime):
    # Given a tiny linear model scikit-learn predicts in 0.1 ms
    floor = BUDGETS["warm"]["ratio_to_raw_sklearn"][runtime]["raw_floor_ms"]
    handler = {1: Percentiles(p50=floor / 10, p99=floor / 5, max=floor, count=10)}
    raw = {1: Percentiles(p50=0.1, p99=0.2, max=0.3, count=10)}
    # Then the handler's time is held against the floor, not against the 0.1 ms
    (ratio, *_) = warm_checks(BUDGETS, runtime, WarmLatency(handler, raw))
    assert ratio.measured == pytest.approx(0.1) and ratio.ok


def test_percentiles_are_in_milliseconds():
    figures = percentiles([i / 1000 for i in range(1, 101)])
    assert (figures.p50, figures.p99, figures.max, figures.count) == (51.0, 100.0, 100.0, 100)


def test_scikit_learn_bundles_are_held_at_least_10_mb_under_lambdas_limit_on_both_architectures():
    limits = {arch: BUDGETS["size"]["sklearn"][arch]["unzipped_bytes"]["limit"] for arch in ("arm64", "x86_64")}
    assert all(limit <= LAMBDA_UNZIPPED_LIMIT - 10_000_000 for limit in limits.values()), limits
