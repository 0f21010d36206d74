"""budgets.toml, and figures checked against it.

Pure functions: measurements come in, `Check`s come out; a broken budget reads as the
figure, the limit, the reason for the limit and what contributed most.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder.sizes import LAMBDA_UNZIPPED_LIMIT
from toolkit.measure import ColdStarts, WarmLatency

BUDGETS_FILE = Path(__file__).resolve().parent.parent / "budgets.toml"


@dataclass(frozen=True)
class Check:
    """One figure against one budget."""

    name: str
    measured: float
    limit: float
    unit: str
    reason: str

    @property
    def ok(self) -> bool:
        return self.measured <= self.limit

    def line(self) -> str:
        verdict = "ok  " if self.ok else "OVER"
        return f"{verdict} {self.name}: {_figure(self.measured, self.unit)} (budget {_figure(self.limit, self.unit)})"


def _figure(value: float, unit: str) -> str:
    if unit == "bytes":
        return f"{value:,.0f} bytes"
    return f"{value:.3g}{unit}"


def load_budgets(path: Path = BUDGETS_FILE) -> dict[str, Any]:
    """The budgets file as nested dicts."""
    return tomllib.loads(path.read_text(encoding="utf-8"))


def _check(name: str, measured: float, budget: dict[str, Any], unit: str) -> Check:
    return Check(name=name, measured=measured, limit=budget["limit"], unit=unit, reason=budget["reason"])


def size_checks(budgets: dict[str, Any], runtime: str, architecture: str, *, unzipped_bytes: int,
                zipped_bytes: int, model_unzipped: int, model_zipped: int) -> list[Check]:
    """Bundle bytes without the model's own files against the budget for this runtime and architecture (a big
    forest is the user's choice, not the template's weight); the whole bundle against Lambda's own limit."""
    limits = budgets["size"][runtime][architecture]
    return [_check(f"{runtime} {architecture} bundle unzipped, model aside", unzipped_bytes - model_unzipped,
                   limits["unzipped_bytes"], "bytes"),
            _check(f"{runtime} {architecture} bundle zipped, model aside", zipped_bytes - model_zipped,
                   limits["zipped_bytes"], "bytes"),
            Check(f"{runtime} {architecture} whole bundle unzipped, model included", unzipped_bytes,
                  LAMBDA_UNZIPPED_LIMIT, "bytes", "Lambda refuses a function whose unzipped code is larger")]


def cold_start_checks(budgets: dict[str, Any], runtime: str, handler: ColdStarts, naive_floor: ColdStarts,
                      hello_world: ColdStarts) -> list[Check]:
    """Median cold start as ratios to the naive floor and to the Powertools hello-world, plus the safety net."""
    cold = budgets["cold_start"]
    checks = [_check(f"{runtime} cold start / naive floor", handler.total / naive_floor.total,
                     cold["ratio_to_naive_floor"][runtime], "×")]
    if runtime in cold["ratio_to_hello_world"]:
        checks.append(_check(f"{runtime} cold start / Powertools hello-world", handler.total / hello_world.total,
                             cold["ratio_to_hello_world"][runtime], "×"))
    return checks + [_check(f"{runtime} cold start", handler.total, cold["ceiling_seconds"], " s")]


def warm_checks(budgets: dict[str, Any], runtime: str, latency: WarmLatency) -> list[Check]:
    """Warm percentiles per batch size, and one row through the handler against the raw model beside it.

    The raw figure counts as at least the budget's raw_floor_ms: a tiny model predicts in microseconds, and
    the handler's fixed work (routing, validation, logging) would otherwise read as a huge ratio.
    """
    warm = budgets["warm"]
    checks = []
    ratio = warm["ratio_to_raw_sklearn"][runtime]
    if 1 in latency.handler and 1 in latency.raw:
        stat = ratio["statistic"]
        raw = max(getattr(latency.raw[1], stat), ratio.get("raw_floor_ms", 0.0))
        checks.append(_check(f"{runtime} warm 1-row {stat} / raw scikit-learn {stat}",
                             getattr(latency.handler[1], stat) / raw, ratio, "×"))
    for size, figures in sorted(latency.handler.items()):
        for stat in ("p50", "p99"):
            budget = warm[f"{stat}_ms"].get(str(size))
            if budget:
                checks.append(_check(f"{runtime} warm {size}-row {stat}", getattr(figures, stat), budget, " ms"))
    return checks


def report(checks: list[Check], contributors: list[str] = ()) -> str:
    """Every check on a line; for each broken one its reason; then the biggest contributors."""
    lines = [check.line() for check in checks]
    broken = [check for check in checks if not check.ok]
    lines += [f"  why {check.name} has a budget: {check.reason}" for check in broken]
    if broken and contributors:
        lines += ["biggest contributors:", *(f"  {item}" for item in contributors)]
    return "\n".join(lines)
