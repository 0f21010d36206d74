"""`make bench`: cold start, warm latency and size of the bundle that ships, against the naive floor.

Prints a table, writes bench/results.json and draws bench/bench.png.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from handler.manifest import read_manifest
from builder.sizes import LAMBDA_UNZIPPED_LIMIT, package_sizes
from toolkit.budgets import Check, cold_start_checks, load_budgets, report, size_checks, warm_checks
from toolkit.measure import (ColdStart, Percentiles, floor_cold_start, handler_cold_start, handler_warm_latency,
                             median_cold_start, raw_model_latency)

OUT_DIR = Path(__file__).resolve().parent.parent / "bench"
LAMBDA_INIT_LIMIT_S = 10.0


@dataclass
class Variant:
    """One way of serving the model: a runtime, its host bundle and its Lambda bundle."""

    runtime: str
    host_bundle: Path
    lambda_unzipped: int
    lambda_zipped: int
    lambda_packages: dict[str, int]


@dataclass
class Results:
    """Everything one bench run measured."""

    architecture: str
    python_runtime: str
    floor: ColdStart
    raw: dict[int, Percentiles]
    cold: dict[str, ColdStart]
    warm: dict[str, dict[int, Percentiles]]
    variants: list[Variant]
    checks: list[Check]


def measure(variants: list[Variant], reference: tuple[Path, Path], *, runs: int, sizes: tuple[int, ...],
            invocations: int, log=print) -> tuple[ColdStart, dict[str, ColdStart], dict[int, Percentiles],
                                                  dict[str, dict[int, Percentiles]]]:
    """Cold starts (interleaved with the floor), then warm latency per variant and for the raw model."""
    floor_runs: list[ColdStart] = []
    cold_runs: dict[str, list[ColdStart]] = {variant.runtime: [] for variant in variants}
    for run in range(runs):
        log(f"cold start run {run + 1}/{runs}")
        floor_runs.append(floor_cold_start(*reference))
        for variant in variants:
            cold_runs[variant.runtime].append(handler_cold_start(variant.host_bundle))
    warm = {}
    for variant in variants:
        log(f"warm latency, {variant.runtime}: {invocations} invocations for each of {sizes} instances")
        warm[variant.runtime] = handler_warm_latency(variant.host_bundle, sizes, invocations)
    log(f"raw scikit-learn model: {invocations} calls for each of {sizes} rows")
    raw = raw_model_latency(*reference, sizes, invocations)
    return (median_cold_start(floor_runs), {name: median_cold_start(runs) for name, runs in cold_runs.items()},
            raw, warm)


def table(results: Results) -> str:
    """What a person reads first: ours vs the floor vs Lambda's limits."""
    rows = [f"{'':34}{'floor':>12}" + "".join(f"{v.runtime:>12}" for v in results.variants) + f"{'Lambda limit':>16}"]

    def row(label: str, floor: str, values: list[str], limit: str = "") -> None:
        rows.append(f"{label:34}{floor:>12}" + "".join(f"{value:>12}" for value in values) + f"{limit:>16}")

    cold = [results.cold[v.runtime] for v in results.variants]
    row("cold start, median (s)", f"{results.floor.total:.3f}", [f"{c.total:.3f}" for c in cold],
        f"init {LAMBDA_INIT_LIMIT_S:.0f} s")
    for phase in ("interpreter", "imports", "load", "first_request"):
        row(f"  {phase.replace('_', ' ')}", f"{getattr(results.floor, phase):.3f}",
            [f"{getattr(c, phase):.3f}" for c in cold])
    row("  ratio to floor", "1.00", [f"{c.total / results.floor.total:.2f}" for c in cold])
    for size, raw in sorted(results.raw.items()):
        for stat in ("p50", "p99"):
            row(f"warm {size} row(s) {stat} (ms)", f"{getattr(raw, stat):.2f}",
                [f"{getattr(results.warm[v.runtime][size], stat):.2f}" for v in results.variants])
    row("bundle unzipped (MB)", "", [f"{v.lambda_unzipped / 1e6:.1f}" for v in results.variants],
        f"{LAMBDA_UNZIPPED_LIMIT / 1e6:.1f}")
    row("bundle zipped (MB)", "", [f"{v.lambda_zipped / 1e6:.1f}" for v in results.variants])
    return "\n".join(rows)


def chart(results: Results, path: Path) -> Path:
    """Cold-start breakdown and warm percentiles side by side, one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, (left, right) = pyplot.subplots(1, 2, figsize=(13, 5))
    labels = ["naive floor"] + [f"handler ({v.runtime})" for v in results.variants]
    starts = [results.floor] + [results.cold[v.runtime] for v in results.variants]
    bottom = [0.0] * len(starts)
    for phase, colour in (("interpreter", "#bbbbbb"), ("imports", "#4c72b0"), ("load", "#dd8452"),
                          ("first_request", "#55a868")):
        values = [getattr(start, phase) for start in starts]
        left.bar(labels, values, bottom=bottom, label=phase.replace("_", " "), color=colour)
        bottom = [b + v for b, v in zip(bottom, values)]
    left.set_ylabel("seconds, median of fresh processes")
    left.set_title("Cold start: process start to first answer")
    left.legend()
    sizes = sorted(results.raw)
    series = {"raw scikit-learn": results.raw, **{f"handler ({v.runtime})": results.warm[v.runtime]
                                                  for v in results.variants}}
    width = 0.8 / (2 * len(series))
    for index, (name, figures) in enumerate(series.items()):
        for offset, stat in enumerate(("p50", "p99")):
            positions = [i + (2 * index + offset) * width for i in range(len(sizes))]
            right.bar(positions, [getattr(figures[size], stat) for size in sizes], width,
                      label=f"{name} {stat}", alpha=1.0 if stat == "p50" else 0.55)
    right.set_xticks([i + 0.4 - width / 2 for i in range(len(sizes))], [f"{size} row(s)" for size in sizes])
    right.set_yscale("log")
    right.set_ylabel("milliseconds per request (log scale)")
    right.set_title("Warm latency per batch size")
    right.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)
    return path


def to_json(results: Results) -> dict[str, Any]:
    data = asdict(results)
    data["floor"]["total"] = results.floor.total
    for name, start in results.cold.items():
        data["cold"][name]["total"] = start.total
    return data


def run(variants: list[Variant], reference: tuple[Path, Path], *, architecture: str, python_runtime: str,
        invocations: int | None = None, out_dir: Path = OUT_DIR) -> Results:
    """Measure, check against budgets.toml, print, and write the JSON and the chart."""
    budgets = load_budgets()
    settings = budgets["measurement"]
    sizes = tuple(settings["batch_sizes"])
    floor, cold, raw, warm = measure(variants, reference, runs=settings["cold_start_runs"], sizes=sizes,
                                     invocations=invocations or settings["warm_invocations"])
    checks: list[Check] = []
    for variant in variants:
        if variant.runtime in budgets["size"]:
            checks += size_checks(budgets, variant.runtime, architecture, variant.lambda_unzipped,
                                  variant.lambda_zipped)
        checks += cold_start_checks(budgets, variant.runtime, cold[variant.runtime], floor)
        checks += warm_checks(budgets, variant.runtime, warm[variant.runtime], raw)
    results = Results(architecture, python_runtime, floor, raw, cold, warm, variants, checks)
    json_path, png_path = write_outputs(results, out_dir)
    print("\n" + table(results) + "\n")
    print(report(checks))
    print(f"\nfigures: {json_path}\nchart:   {png_path}")
    return results


def write_outputs(results: Results, out_dir: Path) -> tuple[Path, Path]:
    """The figures as JSON and the chart as PNG, in out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "results.json"
    json_path.write_text(json.dumps(to_json(results), indent=2, default=str) + "\n", encoding="utf-8")
    return json_path, chart(results, out_dir / "bench.png")


def build_variants(architecture: str, python_version: str) -> tuple[list[Variant], tuple[Path, Path]]:
    """The served runtime and, when it is not scikit-learn, its scikit-learn twin; plus the floor's inputs."""
    from builder.bundler import BundleSpec, build_bundle, host_target, lambda_target
    from toolkit.reference import PROJECT_ROOT, sklearn_twin_project

    served = read_manifest(PROJECT_ROOT / "model_artifacts").runtime
    roots = {"sklearn": PROJECT_ROOT if served == "sklearn" else sklearn_twin_project(), served: PROJECT_ROOT}
    variants = []
    for runtime, root in roots.items():
        host = build_bundle(BundleSpec.for_project(host_target(), root))
        target = build_bundle(BundleSpec.for_project(lambda_target(architecture, python_version), root))
        variants.append(Variant(runtime, host.path, target.unzipped_bytes, target.zipped_bytes,
                                package_sizes(target.path)))
    sklearn_host = variants[0].host_bundle
    artifact = read_manifest(sklearn_host / "model_artifacts").artifact
    return variants, (sklearn_host, sklearn_host / "model_artifacts" / artifact)


def main(argv: list[str] | None = None) -> int:
    from infra.config import project_config

    parser = argparse.ArgumentParser(prog="python -m toolkit.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--invocations", type=int, help="warm invocations per batch size (default: budgets.toml)")
    args = parser.parse_args(argv)
    config = project_config()
    variants, reference = build_variants(config.architecture, config.python_version)
    results = run(variants, reference, architecture=config.architecture, python_runtime=config.python_version,
                  invocations=args.invocations)
    return 0 if all(check.ok for check in results.checks) else 1


if __name__ == "__main__":
    sys.exit(main())
