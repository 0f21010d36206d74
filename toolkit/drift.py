"""`python -m toolkit.drift` (`make drift`): the drift check from the command line, with plots.

Counts come from one of three sources, compared with the profile in --model-dir exactly as the scheduled
check compares them (handler.drift):
  --log-group NAME --since 7d   the deployed function's capture lines (boto3, your current AWS profile)
  --capture FILE                a JSON-lines file of capture lines (the local API's)
  --current new.csv             a CSV of new data: validated, scored and binned by the handler's own code
Writes drift/report.json and drift/report.html (one self-contained file: plots embedded as PNG).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from botocore.exceptions import BotoCoreError, ClientError

from handler.capture import count_line, parse_capture, read_profile
from handler.config import Settings
from handler.drift import (DEFAULT_MIN_ROWS, ColumnDrift, DriftResult, Profile, bin_codes, compare,
                           prediction_values, render_html)
from handler.drift_check import Collected, collect_counts, report_document, report_title
from handler.errors import ApiError, ModelLoadError
from handler.loading import load_model, manifest_in
from handler.manifest import Manifest

DEFAULT_MODEL_DIR = Path("model_artifacts")
DEFAULT_OUT_DIR = Path("drift")
MODEL_CARD = "model_card.md"
DURATION = re.compile(r"([0-9]+)([dhm])")
DURATION_UNITS = {"d": "days", "h": "hours", "m": "minutes"}
PROBLEMS_SHOWN = 5


class DriftError(Exception):
    """The inputs cannot be compared; the message says why."""


def load_profiled_model(model_dir: Path) -> tuple[Manifest, Profile]:
    """The manifest and its pinned, verified profile."""
    try:
        manifest = manifest_in(model_dir)
        return manifest, read_profile(model_dir, manifest)
    except (ModelLoadError, ValueError) as error:
        raise DriftError(f"{model_dir}: {error}") from None


def counts_from_capture_file(path: Path, profile: Profile) -> Collected:
    """Count the capture lines of a JSON-lines file (other lines are skipped)."""
    collected = Collected()
    with path.open(encoding="utf-8") as lines:
        for text in lines:
            line = parse_capture(text)
            if line is not None and count_line(collected.counts, profile, line):
                collected.lines += 1
            else:
                collected.skipped += 1
    return collected


def counts_from_log_group(log_group: str, since: timedelta, profile: Profile) -> tuple[Collected, dict[str, str]]:
    """Count the capture lines the deployed function logged in the last `since`, with progress on stderr."""
    import boto3  # only this source needs AWS

    end = datetime.now(UTC)
    start = end - since

    def progress(collected: Collected) -> None:
        print(f"\rread {collected.lines} capture lines ({collected.counts.rows} rows)", end="", file=sys.stderr)

    collected = collect_counts(boto3.client("logs"), log_group, start, end, profile, progress=progress)
    print(file=sys.stderr)
    return collected, {"start": start.isoformat(), "end": end.isoformat()}


def counts_from_csv(path: Path, model_dir: Path, profile: Profile) -> Collected:
    """Validate, score and bin a CSV of new data as the API would (columns the model does not take are ignored)."""
    try:
        model = load_model(Settings(model_dir=model_dir))
    except ModelLoadError as error:
        raise DriftError(f"cannot load the model in {model_dir}: {error.detail}") from None
    table = pd.read_csv(path, low_memory=False)
    missing = [name for name in profile.feature_names if name not in table.columns]
    if missing:
        raise DriftError(f"{path} has no column {', '.join(missing)}")
    collected = Collected()
    for start, instances in _chunks(table[profile.feature_names], model.settings.max_instances):
        try:
            batch = model.validator.validate({"instances": instances})
        except ApiError as error:
            shown = "; ".join(f"row {start + _row(item.field)}: {item.field.split('.', 1)[-1]} {item.problem}"
                              for item in error.details[:PROBLEMS_SHOWN])
            raise DriftError(f"{path}: {len(error.details)} value(s) the API would reject, e.g. {shown}") from None
        outputs = prediction_values(model.predictor.predict(batch))
        codes = bin_codes(profile, batch.columns)
        prediction = profile.prediction
        collected.counts.add_rows(profile.feature_names, zip(*codes.values()),
                                  None if prediction is None else [prediction.code(value) for value in outputs])
        collected.lines += 1
    return collected


def _chunks(table: pd.DataFrame, size: int) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    for start in range(0, len(table), size):
        part = table.iloc[start:start + size]
        part = part.astype(object).where(part.notna(), None)  # NaN is a missing value: null in a request
        yield start, [{key: _native(value) for key, value in row.items()} for row in part.to_dict(orient="records")]


def _native(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _row(field: str) -> int:
    return int(field.split("[", 1)[1].split("]", 1)[0])


def png_figures(result: DriftResult) -> dict[str, str]:
    """The report's plots as base64 PNG images: drift per feature sorted, and each column's distributions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = {}
    ranked = sorted((column for column in result.features if column.value is not None),
                    key=lambda column: column.value / column.threshold)
    figure, axes = plt.subplots(figsize=(7, 0.4 * len(ranked) + 1.2))
    axes.barh([column.name for column in ranked], [column.value / column.threshold for column in ranked],
              color=["#c44e52" if column.drifted else "#4c72b0" for column in ranked])
    axes.axvline(1.0, color="#c44e52", linestyle="--", linewidth=1)
    axes.set_xlabel("statistic / threshold (PSI / 0.25, Jensen-Shannon / 0.1): above 1 drifts")
    figures["summary"] = _image(figure, plt)
    for column in [*result.features, *([result.prediction] if result.prediction else [])]:
        figures[column.name] = _image(_distribution_plot(column, plt), plt)
    return figures


def _distribution_plot(column: ColumnDrift, plt: Any) -> Any:
    positions = np.arange(len(column.labels))
    figure, axes = plt.subplots(figsize=(max(4.0, 0.5 * len(positions) + 1.5), 2.8))
    axes.bar(positions - 0.2, column.training_fractions, width=0.4, label="training", color="#4c72b0")
    axes.bar(positions + 0.2, column.current_fractions, width=0.4, label="current", color="#dd8452")
    axes.set_xticks(positions, column.labels, rotation=45, ha="right", fontsize=7)
    axes.set_ylabel("share of non-null values")
    axes.set_title(f"{column.name}: {column.statistic} {column.value if column.value is not None else 'n/a'}",
                   fontsize=9)
    axes.legend(fontsize=7)
    return figure


def _image(figure: Any, plt: Any) -> str:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=90, metadata={"Software": None})
    plt.close(figure)
    return f'<img alt="" src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'


def write_report(result: DriftResult, manifest: Manifest, out_dir: Path, *, context: dict[str, Any],
                 card: Path | None) -> tuple[Path, Path]:
    """drift/report.json and drift/report.html; the HTML links the model card when there is one."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out_dir / "report.json", out_dir / "report.html"
    json_path.write_text(json.dumps(report_document(result, manifest, **context), indent=1) + "\n",
                         encoding="utf-8")
    link = os.path.relpath(card, out_dir) if card is not None and card.exists() else None
    shown = {key: json.dumps(value) if isinstance(value, dict) else value for key, value in context.items()}
    html_path.write_text(render_html(result, title=report_title(manifest), context=shown,
                                     figures=png_figures(result), card_link=link), encoding="utf-8")
    return json_path, html_path


def duration(text: str) -> timedelta:
    """An --since value: 7d, 24h or 90m."""
    match = DURATION.fullmatch(text.strip())
    if match is None or int(match[1]) == 0:
        raise argparse.ArgumentTypeError(f"expected a duration such as 7d, 24h or 90m, not {text!r}")
    return timedelta(**{DURATION_UNITS[match[2]]: int(match[1])})


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m toolkit.drift",
                                     description="Compare served or new data with the model's training profile; "
                                                 "write drift/report.json and drift/report.html.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--log-group", help="the deployed function's log group (stack output FunctionLogGroupName)")
    source.add_argument("--capture", type=Path, help="a JSON-lines file of capture lines")
    source.add_argument("--current", type=Path, help="a CSV of new data with the model's input columns")
    parser.add_argument("--since", type=duration, default=timedelta(days=7),
                        help="with --log-group: how far back to read (default: 7d)")
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR,
                        help="packaged model with its profile (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT_DIR, help="report directory (default: %(default)s)")
    parser.add_argument("--min-rows", type=int, default=DEFAULT_MIN_ROWS,
                        help="no verdict below this many rows (default: %(default)s)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        manifest, profile = load_profiled_model(args.model_dir)
        context: dict[str, Any]
        if args.log_group:
            collected, window = counts_from_log_group(args.log_group, args.since, profile)
            context = {"source": {"log_group": args.log_group}, "window": window}
        elif args.capture:
            collected = counts_from_capture_file(args.capture, profile)
            context = {"source": {"capture": str(args.capture)}}
        else:
            collected = counts_from_csv(args.current, args.model_dir, profile)
            context = {"source": {"current": str(args.current)}}
        result = compare(profile, collected.counts, args.min_rows)
        context |= {"lines": collected.lines, "skipped_lines": collected.skipped, "truncated": collected.truncated}
        json_path, html_path = write_report(result, manifest, args.out, context=context,
                                            card=args.model_dir / MODEL_CARD)
    except (DriftError, OSError, ValueError, BotoCoreError, ClientError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    drifted = ", ".join(result.drifted_features) or "none"
    prediction = " (and the prediction)" if result.prediction and result.prediction.drifted else ""
    print(f"{result.verdict}: {result.rows} rows; drifted features: {drifted}{prediction}; "
          f"wrote {json_path} and {html_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
