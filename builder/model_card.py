"""The model card: a short Markdown page beside the manifest saying what the model is, what it was trained on,
how well it scored, and what it is for (a section the analyst fills in), with the training profile's plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from handler.drift import JS_THRESHOLD, PSI_THRESHOLD, Distribution, Profile
from handler.manifest import Manifest

MODEL_CARD_FILE = "model_card.md"
PROFILE_PLOT_FILE = "profile.png"
PLOT_COLUMNS = 3


def write_model_card(manifest: Manifest, profile: Profile, out_dir: Path) -> Path:
    """Write model_card.md and profile.png (training distributions) into out_dir; the card's path."""
    write_profile_plot(profile, out_dir / PROFILE_PLOT_FILE)
    path = out_dir / MODEL_CARD_FILE
    path.write_text(model_card(manifest, profile), encoding="utf-8")
    return path


def model_card(manifest: Manifest, profile: Profile) -> str:
    """The card's Markdown."""
    distributions = {distribution.name: distribution for distribution in profile.features}
    features = "\n".join(
        f"| {feature.name} | {feature.type} | {'yes' if feature.nullable else 'no'} | "
        f"{_observed(feature.minimum, feature.maximum, feature.categories, distributions.get(feature.name))} | "
        f"{_percent(distributions[feature.name].null_rate) if feature.name in distributions else ''} |"
        for feature in manifest.features)
    metrics = "\n".join(f"| {key} | {value} |" for key, value in (manifest.metrics or {}).items()) or "| none | |"
    versions = ", ".join(f"{name} {version}" for name, version in manifest.versions.items())
    return f"""# Model card: {manifest.name} {manifest.version}

A {manifest.task} model served by {manifest.runtime} (packaged {manifest.created_at}).

## Intended use

_To fill in: what the model predicts and for whom, decisions it may and may not inform, known limitations,
who to ask._

## Training data

Profile of {profile.rows} sample rows ({PROFILE_PLOT_FILE} shows each feature's distribution).

![Training distributions]({PROFILE_PLOT_FILE})

| feature | type | nullable | observed | missing |
|---|---|---|---|---|
{features}

{_outputs(manifest, profile)}

## Hold-out metrics

| metric | value |
|---|---|
{metrics}

## Runtime

{_parity(manifest)}
Library versions: {versions}.

## Monitoring

The drift check compares served inputs with this profile: a numeric feature drifts when its PSI exceeds
{PSI_THRESHOLD}, a categorical one when its Jensen-Shannon distance exceeds {JS_THRESHOLD}.
"""


def _observed(minimum: Any, maximum: Any, categories: list[Any] | None, distribution: Distribution | None) -> str:
    if categories:
        return ", ".join(map(str, categories))
    if minimum is not None:
        return f"{minimum} to {maximum}"
    if distribution is not None and distribution.kind == "categorical":
        return ", ".join(map(str, distribution.categories)) + " (most frequent)"
    return ""


def _outputs(manifest: Manifest, profile: Profile) -> str:
    prediction = profile.prediction
    if prediction is None:
        return ""
    if prediction.kind == "categorical":
        shares = ", ".join(f"{label} {_percent(share)}" for label, share in zip(prediction.labels, prediction.fractions)
                           if label != "other" or share)
        return f"Predicted classes on the sample: {shares}."
    return f"Predicted values on the sample: {prediction.minimum:.4g} to {prediction.maximum:.4g}."


def _parity(manifest: Manifest) -> str:
    if manifest.parity is None:
        return f"Served by {manifest.runtime}" + (f" ({manifest.runtime_fallback})." if manifest.runtime_fallback
                                                   else ".")
    parity = manifest.parity
    return (f"ONNX parity with scikit-learn on {parity.rows} rows: largest difference {parity.max_abs_difference:.3g}"
            f"{'' if parity.max_scaled_difference is None else f', scaled {parity.max_scaled_difference:.3g}'} "
            f"(tolerance {parity.tolerance:g}){', labels identical' if parity.labels_identical else ''}.")


def _percent(share: float) -> str:
    return f"{share:.1%}"


def write_profile_plot(profile: Profile, path: Path) -> Path:
    """One small bar chart per feature (and the prediction) of its training shares, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = [*profile.features, *([profile.prediction] if profile.prediction else [])]
    rows = -(-len(columns) // PLOT_COLUMNS)
    figure, axes = plt.subplots(rows, PLOT_COLUMNS, figsize=(4 * PLOT_COLUMNS, 2.6 * rows), squeeze=False)
    for axis, distribution in zip(axes.flat, columns):
        axis.bar(range(len(distribution.fractions)), distribution.fractions, color="#4c72b0")
        axis.set_xticks(range(len(distribution.labels)), distribution.labels, rotation=45, ha="right", fontsize=6)
        axis.set_title(f"{distribution.name} (missing {_percent(distribution.null_rate)})", fontsize=9)
    for axis in list(axes.flat)[len(columns):]:
        axis.set_visible(False)
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=80, metadata={"Software": None})
    plt.close(figure)
    return path
