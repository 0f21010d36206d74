"""`make bench`: cold start, warm latency and size of the bundle that ships, beside the floors.

Cold starts run interleaved, one of each per round: the naive floor (scikit-learn joblib.load + one
predict from a bundle without bytecode, as a naive template deploys it), the same floor with complete
bytecode, a Powertools hello-world handler with bytecode (the physical floor of any Powertools handler),
then each handler as shipped. Warm latency alternates the handler and the raw scikit-learn model in one
process. Prints a table, writes bench/results.json and draws bench/bench.png.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from builder.sizes import LAMBDA_UNZIPPED_LIMIT, package_sizes
from handler.manifest import read_manifest
from toolkit.budgets import Check, cold_start_checks, load_budgets, report, size_checks, warm_checks
from toolkit.measure import (ColdStart, ColdStarts, WarmLatency, cached_view, floor_cold_start, handler_cold_start,
                             handler_warm_latency, hello_world_cold_start)

OUT_DIR = Path(__file__).resolve().parent.parent / "bench"
LAMBDA_INIT_LIMIT_S = 10.0
# The references every handler is compared with, in the order each round runs them.
FLOORS = {"naive": "naive floor", "bytecode": "floor + pyc", "hello_world": "hello world"}


@dataclass
class Variant:
    """One way of serving the model: a runtime, its host bundle and its Lambda bundle."""

    runtime: str
    host_bundle: Path
    lambda_unzipped: int
    lambda_zipped: int
    lambda_model_unzipped: int  # the model's own files, counted only against Lambda's limit
    lambda_model_zipped: int
    lambda_packages: dict[str, int]
    lambda_bytecode: str  # "<modules> modules by <compiler>"


@dataclass
class Results:
    """Everything one bench run measured."""

    architecture: str
    python_runtime: str
    floors: dict[str, ColdStarts]  # keyed as FLOORS
    cold: dict[str, ColdStarts]
    warm: dict[str, WarmLatency]
    variants: list[Variant]
    checks: list[Check]


def measure(variants: list[Variant], sklearn_bundle: Path, *, runs: int, sizes: tuple[int, ...],
            invocations: int, log: Callable[[str], None] = print
            ) -> tuple[dict[str, ColdStarts], dict[str, ColdStarts], dict[str, WarmLatency]]:
    """Interleaved cold starts (every floor, then every handler, per round), then warm latency per variant."""
    log("preparing views of the bundles: as shipped, without bytecode, with complete bytecode")
    naive, complete = cached_view(sklearn_bundle, "none"), cached_view(sklearn_bundle, "full")
    shipped = {variant.runtime: cached_view(variant.host_bundle, "shipped") for variant in variants}
    probes: dict[str, Callable[[], ColdStart]] = {
        "naive": lambda: floor_cold_start(naive), "bytecode": lambda: floor_cold_start(complete),
        "hello_world": lambda: hello_world_cold_start(complete),
        **{runtime: (lambda view=view: handler_cold_start(view)) for runtime, view in shipped.items()}}
    starts: dict[str, list[ColdStart]] = {name: [] for name in probes}
    for round_number in range(1, runs + 1):
        log(f"cold start round {round_number}/{runs}: {', '.join(probes)}")
        for name, probe in probes.items():
            starts[name].append(probe())
    warm = {}
    for runtime, view in shipped.items():
        log(f"warm latency, {runtime} handler and raw scikit-learn alternated: {invocations} each for {sizes} rows")
        warm[runtime] = handler_warm_latency(view, shipped["sklearn"], sizes, invocations)
    series = {name: ColdStarts(tuple(figures)) for name, figures in starts.items()}
    return ({name: series[name] for name in FLOORS}, {runtime: series[runtime] for runtime in shipped}, warm)


def table(results: Results) -> str:
    """What a person reads first: ours beside the floors and Lambda's limits."""
    labels = [*FLOORS.values(), *(v.runtime for v in results.variants)]
    rows = [f"{'':34}" + "".join(f"{label:>13}" for label in labels) + f"{'Lambda limit':>16}"]
    blanks = [""] * len(FLOORS)

    def row(label: str, values: list[str], limit: str = "") -> None:
        rows.append(f"{label:34}" + "".join(f"{value:>13}" for value in values) + f"{limit:>16}")

    starts = [*results.floors.values(), *(results.cold[v.runtime] for v in results.variants)]
    naive, hello = results.floors["naive"].total, results.floors["hello_world"].total
    row("cold start, median (s)", [f"{start.total:.3f}" for start in starts], f"init {LAMBDA_INIT_LIMIT_S:.0f} s")
    row("  min-max (s)", [f"{start.minimum:.2f}-{start.maximum:.2f}" for start in starts])
    for phase in ("interpreter", "imports", "load", "first_request"):
        row(f"  {phase.replace('_', ' ')}", [f"{start.phase(phase):.3f}" for start in starts])
    row("  ratio to naive floor", [f"{start.total / naive:.3f}" for start in starts])
    row("  ratio to hello world", [f"{start.total / hello:.2f}" for start in starts])
    for size in sorted(results.warm[results.variants[0].runtime].handler):
        for stat in ("p50", "p99"):
            warm = [results.warm[v.runtime] for v in results.variants]
            row(f"warm {size} row(s) {stat} (ms)", blanks + [f"{getattr(w.handler[size], stat):.2f}" for w in warm])
            row("  raw scikit-learn beside it", blanks + [f"{getattr(w.raw[size], stat):.2f}" for w in warm])
    row("bundle unzipped (MB)", blanks + [f"{v.lambda_unzipped / 1e6:.1f}" for v in results.variants],
        f"{LAMBDA_UNZIPPED_LIMIT / 1e6:.1f}")
    row("bundle zipped (MB)", blanks + [f"{v.lambda_zipped / 1e6:.1f}" for v in results.variants])
    row("  of which the model's files", blanks + [f"{v.lambda_model_unzipped / 1e6:.1f}" for v in results.variants])
    rows += [f"bytecode shipped ({v.runtime}): {v.lambda_bytecode}" for v in results.variants]
    return "\n".join(rows)


def chart(results: Results, path: Path) -> Path:
    """Cold-start breakdown (with the spread of totals) and warm percentiles side by side, one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, (left, right) = pyplot.subplots(1, 2, figsize=(14, 5))
    labels = [*FLOORS.values(), *(f"handler ({v.runtime})" for v in results.variants)]
    starts = [*results.floors.values(), *(results.cold[v.runtime] for v in results.variants)]
    bottom = [0.0] * len(starts)
    for phase, colour in (("interpreter", "#bbbbbb"), ("imports", "#4c72b0"), ("load", "#dd8452"),
                          ("first_request", "#55a868")):
        values = [start.phase(phase) for start in starts]
        left.bar(labels, values, bottom=bottom, label=phase.replace("_", " "), color=colour)
        bottom = [b + v for b, v in zip(bottom, values)]
    left.errorbar(labels, [start.total for start in starts], fmt="none", ecolor="black", capsize=4,
                  yerr=[[start.total - start.minimum for start in starts],
                        [start.maximum - start.total for start in starts]])
    left.set_ylabel("seconds, median of fresh processes (bars: min-max)")
    left.set_title("Cold start: process start to first answer")
    left.tick_params(axis="x", labelsize=8)
    left.legend()
    sizes = sorted(results.warm[results.variants[0].runtime].handler)
    series = {"raw scikit-learn": results.warm["sklearn"].raw if "sklearn" in results.warm else {},
              **{f"handler ({v.runtime})": results.warm[v.runtime].handler for v in results.variants}}
    series = {name: figures for name, figures in series.items() if figures}
    width = 0.8 / (2 * len(series))
    for index, (name, figures) in enumerate(series.items()):
        for offset, stat in enumerate(("p50", "p99")):
            positions = [i + (2 * index + offset) * width for i in range(len(sizes))]
            right.bar(positions, [getattr(figures[size], stat) for size in sizes], width,
                      label=f"{name} {stat}", alpha=1.0 if stat == "p50" else 0.55)
    right.set_xticks([i + 0.4 - width / 2 for i in range(len(sizes))], [f"{size} row(s)" for size in sizes])
    right.set_yscale("log")
    right.set_ylabel("milliseconds per request (log scale)")
    right.set_title("Warm latency per batch size (handler and raw model alternated)")
    right.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)
    return path


def to_json(results: Results) -> dict[str, Any]:
    """The results as JSON-ready data, each cold-start series with its median total and spread."""
    data = asdict(results)
    for group in ("floors", "cold"):
        for name, starts in getattr(results, group).items():
            data[group][name].update(total=starts.total, minimum=starts.minimum, maximum=starts.maximum)
    return data


def run(variants: list[Variant], sklearn_bundle: Path, *, architecture: str, python_runtime: str,
        invocations: int | None = None, out_dir: Path = OUT_DIR) -> Results:
    """Measure, check against budgets.toml, print, and write the JSON and the chart."""
    budgets = load_budgets()
    settings = budgets["measurement"]
    floors, cold, warm = measure(variants, sklearn_bundle, runs=settings["cold_start_runs"],
                                 sizes=tuple(settings["batch_sizes"]),
                                 invocations=invocations or settings["warm_invocations"])
    checks: list[Check] = []
    for variant in variants:
        if variant.runtime in budgets["size"]:
            checks += size_checks(budgets, variant.runtime, architecture, unzipped_bytes=variant.lambda_unzipped,
                                  zipped_bytes=variant.lambda_zipped, model_unzipped=variant.lambda_model_unzipped,
                                  model_zipped=variant.lambda_model_zipped)
        checks += cold_start_checks(budgets, variant.runtime, cold[variant.runtime], floors["naive"],
                                    floors["hello_world"])
        checks += warm_checks(budgets, variant.runtime, warm[variant.runtime])
    results = Results(architecture, python_runtime, floors, cold, warm, variants, checks)
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


def build_variants(architecture: str, python_version: str) -> list[Variant]:
    """The scikit-learn runtime first (the floors and the raw model run on its bundle), then the served one."""
    from builder.bundler import BundleSpec, build_bundle, host_target, lambda_target
    from toolkit.reference import PROJECT_ROOT, sklearn_twin_project

    served = read_manifest(PROJECT_ROOT / "model_artifacts").runtime
    roots = {"sklearn": PROJECT_ROOT if served == "sklearn" else sklearn_twin_project(), served: PROJECT_ROOT}
    variants = []
    for runtime, root in roots.items():
        host = build_bundle(BundleSpec.for_project(host_target(), root))
        target = build_bundle(BundleSpec.for_project(lambda_target(architecture, python_version), root))
        variants.append(Variant(runtime, host.path, target.unzipped_bytes, target.zipped_bytes, *target.model_bytes(),
                                package_sizes(target.path),
                                f"{target.bytecode_modules} modules by {target.bytecode_compiler}"))
    return variants


def main(argv: list[str] | None = None) -> int:
    from infra.config import project_config

    parser = argparse.ArgumentParser(prog="python -m toolkit.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--invocations", type=int, help="warm invocations per batch size (default: budgets.toml)")
    args = parser.parse_args(argv)
    config = project_config()
    variants = build_variants(config.architecture, config.python_version)
    results = run(variants, variants[0].host_bundle, architecture=config.architecture,
                  python_runtime=config.python_version, invocations=args.invocations)
    return 0 if all(check.ok for check in results.checks) else 1


if __name__ == "__main__":
    sys.exit(main())
