"""Capture lines: their documented shape, no raw value in binned mode, sampling, and counting them back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handler.capture import (CAPTURE_TYPE, Capture, capture_text, count_line, parse_capture, read_profile)
from handler.config import Settings
from handler.drift import ABOVE_CODE, Counts, ProfileError
from handler.loading import LoadedModel, load_model
from tests.drift_samples import fresh_customers, instances, profiled_model_dir

MARKERS = {"tenure_months": 71, "monthly_charges": 104.25, "total_charges": 9876.54, "support_calls": 7,
           "contract": "one-year", "payment_method": "secret-pay-4111", "internet_service": None}


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    return load_model(Settings(model_dir=profiled_model_dir(tmp_path_factory.mktemp("capture") / "model")))


@pytest.fixture(scope="module")
def profile(model: LoadedModel):
    return read_profile(model.settings.model_dir, model.manifest)


def scored(model: LoadedModel, rows: list[dict]) -> tuple[dict, list]:
    batch = model.validator.validate({"instances": rows})
    return batch.columns, model.predictor.predict(batch)


def test_a_binned_line_has_the_documented_shape(model, profile):
    # Given
    columns, predictions = scored(model, instances(fresh_customers(3)))

    # When
    line = Capture(profile, model.manifest).line(columns, predictions)

    # Then
    assert list(line) == ["capture", "v", "mode", "model", "profile", "rows", "predictions"]
    assert (line["capture"], line["v"], line["mode"]) == (CAPTURE_TYPE, 1, "binned")
    assert line["model"] == {"name": "customer-churn", "version": "1.0.0"}
    assert line["profile"] == profile.sha256[:12]
    assert len(line["rows"]) == 3 and all(len(row) == len(profile.features) for row in line["rows"])
    assert all(code in (0, 1) for code in line["predictions"])  # the classes' indexes
    assert parse_capture(capture_text(line)) == line


def test_binned_mode_logs_no_raw_value(model, profile):
    # Given: values that would be recognisable in a log line
    columns, predictions = scored(model, [MARKERS])

    # When
    text = capture_text(Capture(profile, model.manifest).line(columns, predictions))

    # Then
    for value in ("104.25", "9876.54", "secret-pay", "one-year", '"no"', '"yes"', "probabilities"):
        assert value not in text
    assert json.loads(text)["rows"][0][2] == ABOVE_CODE  # 9876.54 is a code: above the training range


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_rows=st.integers(1, 20),
       odd=st.sampled_from(["", "x" * 50, "émoji 🙂", "1e308", "one-year ", "mailed check"]))
def test_any_binned_line_holds_only_small_integer_codes(model, profile, seed, n_rows, odd):
    # Given: customers with one odd category and values beyond the training range
    frame = fresh_customers(200).sample(n_rows, random_state=seed % 1000, replace=True)
    frame["payment_method"] = odd
    frame["monthly_charges"] = frame["monthly_charges"] * (1 + seed % 7)
    columns, predictions = scored(model, instances(frame))

    # When
    line = Capture(profile, model.manifest).line(columns, predictions)

    # Then
    codes = [code for row in line["rows"] for code in row] + line["predictions"]
    assert all(type(code) is int and -3 <= code <= 20 for code in codes)
    assert odd == "" or odd not in capture_text(line).replace('"capture":"model-input"', "")


def test_raw_mode_logs_the_validated_values_and_counts_like_binned(model, profile):
    # Given
    columns, predictions = scored(model, instances(fresh_customers(50)))

    # When
    raw = Capture(profile, model.manifest, mode="raw").line(columns, predictions)
    binned = Capture(profile, model.manifest).line(columns, predictions)

    # Then
    assert raw["mode"] == "raw" and raw["rows"][0] == [columns[name][0] for name in profile.feature_names]
    assert set(raw["predictions"]) <= {"no", "yes"}
    from_raw, from_binned = Counts(), Counts()
    assert count_line(from_raw, profile, parse_capture(capture_text(raw)))
    assert count_line(from_binned, profile, parse_capture(capture_text(binned)))
    assert from_raw == from_binned


def test_off_and_sampling_decide_whether_a_request_is_captured(model, profile):
    columns, predictions = scored(model, instances(fresh_customers(1)))
    assert Capture(profile, model.manifest, mode="off").line(columns, predictions) is None
    assert Capture(profile, model.manifest, sample_rate=0.25, draw=lambda: 0.3).line(columns, predictions) is None
    assert Capture(profile, model.manifest, sample_rate=0.25, draw=lambda: 0.2).line(columns, predictions)
    with pytest.raises(ValueError, match="mode"):
        Capture(profile, model.manifest, mode="full")
    with pytest.raises(ValueError, match="sample rate"):
        Capture(profile, model.manifest, sample_rate=1.5)


def test_a_line_of_another_profile_is_not_counted(model, profile):
    columns, predictions = scored(model, instances(fresh_customers(2)))
    line = {**Capture(profile, model.manifest).line(columns, predictions), "profile": "0" * 12}
    counts = Counts()
    assert not count_line(counts, profile, line) and counts.rows == 0


def test_a_logger_wrapped_line_is_found_and_other_lines_are_not():
    line = {"capture": CAPTURE_TYPE, "v": 1}
    assert parse_capture(json.dumps({"level": "INFO", "message": line})) == line
    assert parse_capture('{"level":"INFO","message":"model-input"}') is None
    assert parse_capture("START RequestId: 1") is None


def test_an_altered_profile_is_refused(model, tmp_path: Path):
    # Given
    model_dir = profiled_model_dir(tmp_path / "model")
    (model_dir / "profile.json").write_text("{}", encoding="utf-8")

    # When / Then
    with pytest.raises(ProfileError, match="sha256"):
        read_profile(model_dir, model.manifest)
