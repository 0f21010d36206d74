"""The API's capture lines: one per sampled request, binned by default, and a model that serves without them
when its profile is unusable (monitoring fails open, with a named cause and a metric)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handler.capture import CAPTURE_TYPE, count_line, parse_capture, read_profile
from handler.drift import Counts
from handler.manifest import read_manifest
from tests.helpers import response_json

MARKER = "zq"  # starts every generated string, so a raw value is recognisable in any log line


def capture_lines(records: list[dict]) -> list[dict]:
    return [line for record in records if (line := parse_capture(json.dumps(record))) is not None]


def edit_manifest(model_dir: Path, **changes) -> None:
    path = model_dir / "manifest.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def test_a_prediction_logs_one_binned_capture_line_the_drift_check_counts(
        handler_app, api_event, lambda_context, demo_dir, demo_manifest, handler_logs):
    # Given the demo model, whose manifest pins its profile
    instances = demo_manifest["example"]["instances"]

    # When the example is predicted
    status, _ = response_json(handler_app.lambda_handler(api_event(body={"instances": instances}), lambda_context))

    # Then one INFO record holds the capture line, with the documented shape and one row of codes per instance
    (line,) = capture_lines(handler_logs())
    assert status == 200
    assert (line["capture"], line["mode"], line["model"]) == (CAPTURE_TYPE, "binned",
                                                              {"name": "customer-churn", "version": "1.0.0"})
    assert len(line["rows"]) == len(instances) and len(line["predictions"]) == len(instances)
    # And the drift check counts it against the same profile
    counts = Counts()
    assert count_line(counts, read_profile(demo_dir, read_manifest(demo_dir)), line)
    assert counts.rows == len(instances)


def test_a_rejected_request_logs_no_capture_line(handler_app, api_event, lambda_context, handler_logs):
    status, _ = response_json(handler_app.lambda_handler(api_event(body={"instances": [{}]}), lambda_context))
    assert status == 422 and capture_lines(handler_logs()) == []


numbers = st.one_of(st.integers(-10**6, 10**6), st.floats(-1e9, 1e9, allow_nan=False))
strings = st.text(max_size=20).map(lambda text: MARKER + text)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.fixed_dictionaries({
    "tenure_months": st.integers(-10**6, 10**6), "monthly_charges": numbers, "total_charges": st.none() | numbers,
    "support_calls": st.integers(0, 10**6), "contract": strings, "payment_method": strings,
    "internet_service": st.none() | strings}), min_size=1, max_size=5))
def test_binned_capture_puts_no_raw_value_in_any_log_line(handler_app, api_event, lambda_context, handler_logs,
                                                          capsys, rows):
    # When any valid request, with unseen categories and values far outside the training range, is predicted
    result = handler_app.lambda_handler(api_event(body={"instances": rows}), lambda_context)

    # Then no string it sent appears in any log or metric line, and its capture line holds only bin codes
    output = capsys.readouterr().out + json.dumps(handler_logs())
    assert result["statusCode"] == 200 and MARKER not in output
    line = capture_lines(handler_logs())[-1]
    assert all(type(code) is int and -3 <= code <= 20 for row in line["rows"] for code in row)


def test_raw_capture_logs_the_validated_values(model_copy, reinitialised_handler, api_event, lambda_context,
                                               demo_manifest, handler_logs):
    app = reinitialised_handler(MODEL_DIR=str(model_copy), CAPTURE_MODE="raw")
    instance = demo_manifest["example"]["instances"][0]
    app.lambda_handler(api_event(body={"instances": [instance]}), lambda_context)
    (line,) = capture_lines(handler_logs())
    assert line["mode"] == "raw" and line["rows"] == [list(instance.values())]


@pytest.mark.parametrize("environ", [{"CAPTURE_MODE": "off"}, {"CAPTURE_SAMPLE_RATE": "0"}])
def test_capture_off_or_never_sampled_logs_nothing(environ, reinitialised_handler, api_event, lambda_context,
                                                   demo_manifest, handler_logs):
    app = reinitialised_handler(**environ)
    status, _ = response_json(app.lambda_handler(api_event(body=demo_manifest["example"]), lambda_context))
    assert status == 200 and capture_lines(handler_logs()) == []


def tamper_profile(model_dir: Path) -> None:
    (model_dir / "profile.json").write_text("{}", encoding="utf-8")


def unpin_profile(model_dir: Path) -> None:
    data = json.loads((model_dir / "manifest.json").read_text())
    del data["profile"], data["profile_sha256"]
    (model_dir / "manifest.json").write_text(json.dumps(data))


def remove_profile(model_dir: Path) -> None:
    (model_dir / "profile.json").unlink()


@pytest.fixture
def warning_level(handler_app) -> Iterator[None]:
    """The handler's log level at WARNING, as POWERTOOLS_LOG_LEVEL=WARNING sets it in a new container."""
    level = handler_app.logger.log_level
    handler_app.logger.setLevel("WARNING")
    yield
    handler_app.logger.setLevel(level)


def log_level_warning(model_dir: Path, request: pytest.FixtureRequest) -> None:
    request.getfixturevalue("warning_level")


@pytest.mark.parametrize(("fault", "cause"), [
    (lambda model_dir, request: tamper_profile(model_dir), "profile_invalid"),
    (lambda model_dir, request: remove_profile(model_dir), "profile_invalid"),
    (lambda model_dir, request: unpin_profile(model_dir), "profile_missing"),
    (log_level_warning, "log_level"),
], ids=["altered profile", "missing profile", "manifest pins no profile", "log level above INFO"])
def test_an_unusable_profile_disables_capture_but_the_model_serves(
        fault, cause, request, model_copy, reinitialised_handler, api_event, lambda_context, demo_manifest,
        handler_logs, capsys):
    # Given a model directory whose profile cannot be used (or a log level that would drop capture lines)
    fault(model_copy, request)

    # When a new container initialises on it
    app = reinitialised_handler(MODEL_DIR=str(model_copy))

    # Then one warning names the cause and CaptureDisabled is emitted at init
    (warning,) = [record for record in handler_logs() if record["level"] == "WARNING"]
    assert warning["cause"] == cause and warning["message"].startswith(f"Capture disabled ({cause})")
    assert '"CaptureDisabled":[1.0]' in capsys.readouterr().out
    # And the model answers, without capture lines
    status, _ = response_json(app.lambda_handler(api_event(body=demo_manifest["example"]), lambda_context))
    assert status == 200 and app.CAPTURE is None and capture_lines(handler_logs()) == []


def test_a_wrong_capture_setting_fails_init_like_any_setting(reinitialised_handler, api_event, lambda_context,
                                                             handler_logs):
    app = reinitialised_handler(CAPTURE_MODE="everything")
    (error,) = [record for record in handler_logs() if record["level"] == "ERROR"]
    assert error["cause"] == "settings_invalid" and "CAPTURE_MODE" in error["message"]
    assert response_json(app.lambda_handler(api_event("health"), lambda_context))[0] == 503
