"""Capture: one compact structured log line per sampled request, for the drift check to count.

Binned (the default) logs only each value's bin code from the training profile, so no raw input or
prediction leaves the request. Raw logs the validated values and the predictions themselves: a privacy
decision the deployer makes in cdk.json (`capture: raw`), since the log group then holds personal data
as long as its retention. The line's `capture` field holds the plain term "model-input", which a
CloudWatch Logs filter pattern '"model-input"' finds.

    {"capture": "model-input", "v": 1, "mode": "binned", "model": {"name": ..., "version": ...},
     "profile": "<first 12 hex of the profile's sha256>", "rows": [[code, ...], ...], "predictions": [code, ...]}

`rows` hold one list per instance, one entry per feature in the profile's order.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from handler.config import CAPTURE_MODES
from handler.drift import PROFILE_FILE, Counts, Profile, ProfileError, bin_codes, prediction_values, profile_from_json
from handler.manifest import Manifest

CAPTURE_TYPE = "model-input"
CAPTURE_VERSION = 1
PROFILE_ID_LENGTH = 12  # enough of the sha256 to tell two profiles apart in a log line


class Capture:
    """Builds capture lines for one model and profile; built once at init."""

    def __init__(self, profile: Profile, manifest: Manifest, *, mode: str = "binned", sample_rate: float = 1.0,
                 draw: Callable[[], float] = random.random) -> None:
        if mode not in CAPTURE_MODES:
            raise ValueError(f"capture mode must be one of {CAPTURE_MODES}, not {mode!r}")
        if not 0.0 <= sample_rate <= 1.0:
            raise ValueError(f"capture sample rate must be from 0 to 1, not {sample_rate}")
        self._profile = profile
        self._mode = mode
        self._sample_rate = sample_rate
        self._draw = draw
        self._header = {"capture": CAPTURE_TYPE, "v": CAPTURE_VERSION, "mode": mode,
                        "model": {"name": manifest.name, "version": manifest.version},
                        "profile": profile.sha256[:PROFILE_ID_LENGTH]}

    def line(self, columns: Mapping[str, Sequence[Any]],
             predictions: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
        """The capture line of one scored request (ValidatedBatch.columns and the API's predictions), or None
        when capture is off or the request is not sampled."""
        if self._mode == "off" or self._draw() >= self._sample_rate:
            return None
        outputs = prediction_values(predictions)
        if self._mode == "raw":
            values = [columns[name] for name in self._profile.feature_names]
            return {**self._header, "rows": [list(row) for row in zip(*values)], "predictions": outputs}
        codes = bin_codes(self._profile, columns).values()
        prediction = self._profile.prediction
        return {**self._header, "rows": [list(row) for row in zip(*codes)],
                "predictions": None if prediction is None else [prediction.code(value) for value in outputs]}


def capture_text(line: Mapping[str, Any]) -> str:
    """A capture line as compact JSON, for a JSON-lines capture file."""
    return json.dumps(line, separators=(",", ":"))


def parse_capture(message: str) -> dict[str, Any] | None:
    """The capture line in a log message: the whole JSON object, or its `message` when a logger wrapped it."""
    try:
        data = json.loads(message)
    except ValueError:
        return None
    for candidate in (data, data.get("message") if isinstance(data, dict) else None):
        if isinstance(candidate, dict) and candidate.get("capture") == CAPTURE_TYPE:
            return candidate
    return None


def count_line(counts: Counts, profile: Profile, line: Mapping[str, Any]) -> bool:
    """Add a capture line's rows to counts; False (nothing added) for a line of another profile or version."""
    if line.get("v") != CAPTURE_VERSION:
        return False
    names = profile.feature_names
    rows = line.get("rows") or []
    outputs = line.get("predictions")
    if line.get("mode") == "raw":
        codes = bin_codes(profile, dict(zip(names, zip(*rows)))) if rows else {}
        rows = list(zip(*codes.values()))
        if outputs is not None and profile.prediction is not None:
            outputs = [profile.prediction.code(value) for value in outputs]
    elif line.get("profile") != profile.sha256[:PROFILE_ID_LENGTH]:
        return False  # codes of another profile's bins mean nothing against this one
    counts.add_rows(names, rows, outputs if profile.prediction is not None else None)
    return True


def read_profile(model_dir: Path, manifest: Manifest) -> Profile:
    """The profile beside the manifest, verified against its pin; ProfileError when missing or altered."""
    if manifest.profile is None:
        raise ProfileError(f"the manifest pins no profile (package the model again to write {PROFILE_FILE})")
    try:
        data = (model_dir / manifest.profile).read_bytes()
    except OSError as error:
        raise ProfileError(f"{manifest.profile} unreadable ({error.strerror})") from None
    return profile_from_json(data, manifest.profile_sha256)
