"""Drift of served inputs and predictions against the training profile: binning, statistics, verdict, report.

Runtime code (ships in the Lambda bundle): numpy and the standard library only.

The profile (profile.json, written at package time, pinned by sha256 in the manifest) holds, per feature,
the training distribution over fixed bins: numeric features over training-quantile bins, categorical
(string and boolean) features over their most frequent categories plus one "other" bin. Capture turns every
served value into a bin code with `bin_codes`, so drift is computed from counts of codes and raw values
never need to be kept.

Codes: 0..n-1 are the profile's bins (numeric) or categories (the last code, n, is "other"); negative codes
mark what falls outside the distribution: NULL_CODE, and for numbers BELOW_CODE / ABOVE_CODE for values
outside the training range (counted in the first / last bin for PSI and in `out_of_range_share`).
"""

from __future__ import annotations

import hashlib
import html
import json
import math
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from itertools import pairwise
from typing import Any

import numpy as np

PROFILE_FILE = "profile.json"
PROFILE_VERSION = 1
NULL_CODE, BELOW_CODE, ABOVE_CODE = -1, -2, -3
PREDICTION = "prediction"  # the prediction's entry in a report, beside the features
# An empty bin would make PSI infinite: its share is raised to this floor, 1e-4 being 1/10 of a bin holding
# 0.1 % of rows, small enough not to mask a real shift and large enough to keep one empty bin near PSI 1.
PSI_EPSILON = 1e-4
# PSI convention (credit scoring, Siddiqi 2006; Yurdakul 2018): < 0.1 stable, 0.1-0.25 moderate, > 0.25 significant.
PSI_MODERATE, PSI_THRESHOLD = 0.1, 0.25
# Evidently's default for categorical features with more than 1,000 reference rows: Jensen-Shannon distance 0.1.
JS_THRESHOLD = 0.1
# Below this many captured rows no verdict is given (the top complaint about drift tools: 8 rows flagged as drift).
DEFAULT_MIN_ROWS = 200
# Evidently's dataset drift rule: at least half of the features drift.
DATASET_DRIFT_SHARE = 0.5
VERDICTS = ("drift", "no_drift", "not_enough_data")


class ProfileError(ValueError):
    """The profile is unreadable, does not match its pin, or does not describe the model's features."""


@dataclass(frozen=True)
class Distribution:
    """One column's training distribution over its bins (numeric) or categories plus "other" (categorical)."""

    name: str
    kind: str  # "numeric" or "categorical"
    fractions: list[float]  # over the non-null values; one more than edges (numeric) or categories (categorical)
    null_rate: float = 0.0
    edges: list[float] = field(default_factory=list)  # numeric: interior cut points, ascending
    minimum: float | None = None
    maximum: float | None = None
    categories: list[Any] = field(default_factory=list)  # categorical: the top categories, "other" last

    @property
    def labels(self) -> list[str]:
        """A short name for every bin, for tables and plots."""
        if self.kind == "categorical":
            return [str(category) for category in self.categories] + ["other"]
        bounds = [_short(self.minimum)] + [_short(edge) for edge in self.edges] + [_short(self.maximum)]
        labels = [f"[{low}, {high})" for low, high in pairwise(bounds)]
        return labels[:-1] + [labels[-1][:-1] + "]"]  # the last bin holds the maximum

    def code(self, value: Any) -> int:
        """The bin code of one validated value (None for missing)."""
        if value is None:
            return NULL_CODE
        if self.kind == "categorical":
            return self._category_codes.get(_category_key(value), len(self.categories))
        if value < self.minimum:
            return BELOW_CODE
        if value > self.maximum:
            return ABOVE_CODE
        return bisect_right(self.edges, value)

    @cached_property
    def _category_codes(self) -> dict[Any, int]:
        return {_category_key(category): index for index, category in enumerate(self.categories)}


def _category_key(value: Any) -> Any:
    # True == 1 in a dict: a boolean is keyed apart from numbers so it never takes a number's code.
    return ("bool", value) if isinstance(value, bool) else value


def _short(number: float | None) -> str:
    return "?" if number is None else f"{number:.4g}"


@dataclass(frozen=True)
class Profile:
    """The training profile: one Distribution per feature, in the manifest's order, and one for the prediction."""

    features: list[Distribution]
    prediction: Distribution | None
    rows: int
    sha256: str = ""

    @property
    def feature_names(self) -> list[str]:
        return [feature.name for feature in self.features]


def profile_from_json(data: bytes, expected_sha256: str | None = None) -> Profile:
    """Parse profile.json bytes, checking them against the manifest's pin when one is given."""
    digest = hashlib.sha256(data).hexdigest()
    if expected_sha256 is not None and digest != expected_sha256:
        raise ProfileError(f"{PROFILE_FILE} has sha256 {digest}, the manifest pins {expected_sha256}")
    try:
        raw = json.loads(data)
        if raw.get("profile_version") != PROFILE_VERSION:
            raise ProfileError(f"profile_version must be {PROFILE_VERSION}")
        prediction = raw.get("prediction")
        return Profile(features=[_distribution(item) for item in raw["features"]],
                       prediction=None if prediction is None else _distribution(prediction),
                       rows=int(raw["rows"]), sha256=digest)
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ProfileError(f"{PROFILE_FILE} is not a valid profile ({type(error).__name__}: {error})") from None


def _distribution(raw: Mapping[str, Any]) -> Distribution:
    distribution = Distribution(**raw)
    expected = len(distribution.edges if distribution.kind == "numeric" else distribution.categories) + 1
    if distribution.kind not in ("numeric", "categorical") or len(distribution.fractions) != expected:
        raise ValueError(f"{distribution.name}: kind or number of fractions is wrong")
    if distribution.kind == "numeric" and (distribution.minimum is None or distribution.maximum is None):
        raise ValueError(f"{distribution.name}: a numeric distribution needs its minimum and maximum")
    return distribution


def bin_codes(profile: Profile, columns: Mapping[str, Sequence[Any]]) -> dict[str, list[int]]:
    """Every feature's validated values (ValidatedBatch.columns) as bin codes, in the profile's feature order."""
    return {feature.name: [feature.code(value) for value in columns[feature.name]] for feature in profile.features}


def prediction_values(predictions: Sequence[Mapping[str, Any]]) -> list[Any]:
    """The label (classification) or value (regression) of each prediction the API returns."""
    return [prediction["label"] if "label" in prediction else prediction["value"] for prediction in predictions]


@dataclass
class Counts:
    """Captured rows as counts of bin codes per feature and for the prediction."""

    rows: int = 0
    features: dict[str, Counter[int]] = field(default_factory=dict)
    prediction: Counter[int] = field(default_factory=Counter)

    def add_rows(self, names: Sequence[str], rows: Iterable[Sequence[int]],
                 predictions: Sequence[int] | None = None) -> None:
        """Count rows of codes (one code per name, in order) and, when captured, their prediction codes."""
        for row in rows:
            self.rows += 1
            for name, code in zip(names, row):
                self.features.setdefault(name, Counter())[code] += 1
        if predictions is not None:
            self.prediction.update(predictions)


@dataclass(frozen=True)
class ColumnDrift:
    """Drift of one feature (or the prediction): its statistic, the verdict and the shares behind it."""

    name: str
    kind: str
    statistic: str  # "psi" (numeric) or "js" (Jensen-Shannon distance, categorical)
    value: float | None  # None without current values
    threshold: float
    drifted: bool
    rows: int  # current non-null values
    null_rate: float | None
    training_null_rate: float
    unseen_share: float | None  # categorical: share of non-null values in "other"
    out_of_range_share: float | None  # numeric: share of non-null values outside the training range
    labels: list[str]
    training_fractions: list[float]
    current_fractions: list[float]

    def summary(self) -> dict[str, Any]:
        """What report.json holds per feature."""
        data = asdict(self)
        data[self.statistic] = data.pop("value")
        return data


@dataclass(frozen=True)
class DriftResult:
    """The comparison of captured rows with the training profile."""

    verdict: str
    rows: int
    min_rows: int
    features: list[ColumnDrift]
    prediction: ColumnDrift | None

    @property
    def drifted_features(self) -> list[str]:
        return [column.name for column in self.features if column.drifted]

    @property
    def dataset_drift(self) -> bool:
        """At least half of the features drifted (Evidently's rule)."""
        return bool(self.features) and len(self.drifted_features) / len(self.features) >= DATASET_DRIFT_SHARE

    @property
    def max_psi(self) -> float:
        return max((column.value for column in self.features if column.statistic == "psi"
                    and column.value is not None), default=0.0)

    def to_dict(self) -> dict[str, Any]:
        """report.json's body (the caller adds the window and model)."""
        return {"verdict": self.verdict, "rows": self.rows, "min_rows": self.min_rows,
                "drifted_features": self.drifted_features, "n_drifted": len(self.drifted_features),
                "dataset_drift": self.dataset_drift, "max_psi": self.max_psi,
                "prediction_drifted": bool(self.prediction and self.prediction.drifted),
                "features": {column.name: column.summary() for column in self.features},
                PREDICTION: None if self.prediction is None else self.prediction.summary()}


def psi(expected: Sequence[float], actual: Sequence[float], epsilon: float = PSI_EPSILON) -> float:
    """Population stability index: sum over bins of (actual - expected) * ln(actual / expected).

    Both are shares over the same bins; a share below `epsilon` is raised to it (not renormalised),
    so an empty bin adds a large but finite term.
    """
    expected_share = np.maximum(np.asarray(expected, dtype=np.float64), epsilon)
    actual_share = np.maximum(np.asarray(actual, dtype=np.float64), epsilon)
    return float(np.sum((actual_share - expected_share) * np.log(actual_share / expected_share)))


def js_distance(expected: Sequence[float], actual: Sequence[float]) -> float:
    """Jensen-Shannon distance with base-2 logarithms (the square root of the divergence): 0 same, 1 disjoint."""
    p = _normalised(expected)
    q = _normalised(actual)
    middle = (p + q) / 2
    divergence = (_kl_base2(p, middle) + _kl_base2(q, middle)) / 2
    return float(math.sqrt(max(divergence, 0.0)))  # rounding may leave -1e-17


def _normalised(shares: Sequence[float]) -> np.ndarray:
    array = np.asarray(shares, dtype=np.float64)
    return array / array.sum()


def _kl_base2(p: np.ndarray, q: np.ndarray) -> float:
    present = p > 0  # 0 * log 0 is 0
    return float(np.sum(p[present] * np.log2(p[present] / q[present])))


def compare(profile: Profile, counts: Counts, min_rows: int = DEFAULT_MIN_ROWS) -> DriftResult:
    """Each feature's and the prediction's drift; no verdict (and no drifted column) below min_rows rows.

    A column drifts when it has at least min_rows non-null values and its PSI exceeds PSI_THRESHOLD (numeric)
    or its Jensen-Shannon distance exceeds JS_THRESHOLD (categorical).
    """
    features = [_column_drift(distribution, counts.features.get(distribution.name, Counter()), min_rows)
                for distribution in profile.features]
    prediction = None if profile.prediction is None else _column_drift(profile.prediction, counts.prediction,
                                                                       min_rows)
    if counts.rows < min_rows:
        verdict = "not_enough_data"
    elif any(column.drifted for column in features) or (prediction is not None and prediction.drifted):
        verdict = "drift"
    else:
        verdict = "no_drift"
    return DriftResult(verdict=verdict, rows=counts.rows, min_rows=min_rows, features=features, prediction=prediction)


def _column_drift(distribution: Distribution, codes: Counter[int], min_rows: int) -> ColumnDrift:
    numeric = distribution.kind == "numeric"
    bins = len(distribution.fractions)
    below, above = codes.get(BELOW_CODE, 0), codes.get(ABOVE_CODE, 0)
    per_bin = np.zeros(bins, dtype=np.float64)
    for code, count in codes.items():
        if 0 <= code < bins:
            per_bin[code] += count
    per_bin[0] += below  # the end bins are open: beyond the training range still counts in them
    per_bin[-1] += above
    present = int(per_bin.sum())
    total = present + codes.get(NULL_CODE, 0)
    current = (per_bin / present) if present else np.zeros(bins)
    if present:
        value = psi(distribution.fractions, current) if numeric else js_distance(distribution.fractions, current)
    else:
        value = None
    threshold = PSI_THRESHOLD if numeric else JS_THRESHOLD
    return ColumnDrift(
        name=distribution.name, kind=distribution.kind, statistic="psi" if numeric else "js",
        value=None if value is None else round(value, 6), threshold=threshold,
        drifted=value is not None and present >= min_rows and value > threshold,
        rows=present, null_rate=_share(total - present, total), training_null_rate=distribution.null_rate,
        unseen_share=None if numeric else _share(int(per_bin[-1]), present),
        out_of_range_share=_share(below + above, present) if numeric else None,
        labels=distribution.labels, training_fractions=list(distribution.fractions),
        current_fractions=[round(float(share), 6) for share in current],
    )


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 6) if whole else None


# --- the HTML report: one self-contained page; the Lambda draws SVG bars, the CLI passes matplotlib images ---

VERDICT_TEXT = {"drift": "Drift detected", "no_drift": "No drift detected",
                "not_enough_data": "Not enough data for a verdict"}
_BAR_WIDTH, _BAR_HEIGHT = 360, 16


def svg_bars(labels: Sequence[str], series: Mapping[str, Sequence[float]], *, limit: float | None = None) -> str:
    """Horizontal bars, one group per label and one bar per series, as inline SVG (no xmlns, no URL)."""
    colours = ("#4c72b0", "#dd8452")
    largest = max([limit or 0.0] + [value for values in series.values() for value in values]) or 1.0
    group = _BAR_HEIGHT * len(series) + 6
    parts = []
    for row, label in enumerate(labels):
        top = row * group
        parts.append(f'<text x="0" y="{top + _BAR_HEIGHT}" font-size="11">{html.escape(label[:28])}</text>')
        for index, (name, values) in enumerate(series.items()):
            width = _BAR_WIDTH * values[row] / largest
            y = top + index * _BAR_HEIGHT
            parts.append(f'<rect x="170" y="{y + 2}" width="{width:.1f}" height="{_BAR_HEIGHT - 4}" '
                         f'fill="{colours[index % 2]}"><title>{html.escape(name)}: {values[row]:.4g}</title></rect>'
                         f'<text x="{174 + width:.1f}" y="{y + _BAR_HEIGHT - 4}" font-size="10">{values[row]:.3g}'
                         '</text>')
    if limit is not None:
        x = 170 + _BAR_WIDTH * limit / largest
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="0" y2="{group * len(labels)}" stroke="#c44" '
                     'stroke-dasharray="4 3"/>')
    legend = " ".join(f'<span style="color:{colours[index % 2]}">&#9632; {html.escape(name)}</span>'
                      for index, name in enumerate(series))
    return (f'<div class="legend">{legend}</div><svg width="{_BAR_WIDTH + 220}" '
            f'height="{group * len(labels) + 4}" role="img">{"".join(parts)}</svg>')


def svg_figures(result: DriftResult) -> dict[str, str]:
    """The report's plots as inline SVG: the drift summary, then one distribution plot per column."""
    columns = [column for column in result.features if column.value is not None]
    ranked = sorted(columns, key=lambda column: column.value / column.threshold, reverse=True)
    figures = {"summary": svg_bars([column.name for column in ranked],
                                   {"drift / threshold": [column.value / column.threshold for column in ranked]},
                                   limit=1.0)}
    for column in [*result.features, *([result.prediction] if result.prediction else [])]:
        figures[column.name] = svg_bars(column.labels, {"training": column.training_fractions,
                                                        "current": column.current_fractions})
    return figures


def render_html(result: DriftResult, *, title: str, context: Mapping[str, Any], figures: Mapping[str, str],
                card_link: str | None = None) -> str:
    """The drift report as one HTML page: summary, drift per feature, distributions, a table of the numbers.

    `figures` maps "summary" and column names to HTML (inline SVG or a data-URI image); nothing is fetched.
    """
    escape = html.escape
    facts = "".join(f"<tr><th>{escape(str(key))}</th><td>{escape(str(value))}</td></tr>"
                    for key, value in {"verdict": VERDICT_TEXT[result.verdict], "rows": result.rows,
                                       "minimum rows": result.min_rows,
                                       "drifted features": ", ".join(result.drifted_features) or "none",
                                       "prediction drifted": bool(result.prediction and result.prediction.drifted),
                                       **context}.items())
    columns = [*result.features, *([result.prediction] if result.prediction else [])]
    rows = "".join(
        f"<tr{' class=drifted' if column.drifted else ''}><td>{escape(column.name)}</td><td>{column.statistic}</td>"
        f"<td>{_cell(column.value)}</td><td>{column.threshold}</td><td>{'yes' if column.drifted else 'no'}</td>"
        f"<td>{column.rows}</td><td>{_cell(column.training_null_rate)}</td><td>{_cell(column.null_rate)}</td>"
        f"<td>{_cell(column.unseen_share)}</td><td>{_cell(column.out_of_range_share)}</td></tr>"
        for column in columns)
    plots = "".join(f"<section><h3>{escape(column.name)} ({column.statistic} {_cell(column.value)})</h3>"
                    f"{figures.get(column.name, '')}</section>" for column in columns)
    card = f'<p>Model card: <a href="{escape(card_link)}">{escape(card_link)}</a></p>' if card_link else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:70em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 8px;text-align:left}} tr.drifted{{background:#fde2e2}}
.verdict-drift{{color:#b00}} .verdict-no_drift{{color:#070}} .verdict-not_enough_data{{color:#a60}}
section{{display:inline-block;vertical-align:top;margin:0 2em 1em 0}} .legend{{font-size:12px}}</style></head>
<body><h1>{escape(title)}</h1>
<h2 class="verdict-{result.verdict}">{VERDICT_TEXT[result.verdict]}</h2>
<table>{facts}</table>{card}
<h2>Drift per feature (statistic / threshold; above 1 drifts)</h2>{figures.get("summary", "")}
<h2>Training and current distributions</h2>{plots}
<h2>Numbers</h2>
<table><tr><th>column</th><th>statistic</th><th>value</th><th>threshold</th><th>drifted</th><th>rows</th>
<th>training null rate</th><th>null rate</th><th>unseen share</th><th>out-of-range share</th></tr>{rows}</table>
<p>PSI: below {PSI_MODERATE} stable, {PSI_MODERATE} to {PSI_THRESHOLD} moderate, above {PSI_THRESHOLD} significant.
Jensen-Shannon distance (base 2) drifts above {JS_THRESHOLD}. No verdict below {result.min_rows} rows.</p>
</body></html>
"""


def _cell(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"
