"""`python -m toolkit.drift`: new data or capture files against the profile, reports in drift/."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from handler.capture import Capture, capture_text, read_profile
from handler.config import Settings
from handler.loading import load_model
from tests.drift_samples import (SHIFTED_FEATURES, fresh_customers, instances, profiled_model_dir,
                                 shifted_customers, unprofiled_model_dir)
from toolkit.drift import main


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = profiled_model_dir(tmp_path_factory.mktemp("cli") / "model_artifacts")
    (directory / "model_card.md").write_text("# card\n", encoding="utf-8")
    return directory


def drift(model_dir: Path, out: Path, *source: str) -> tuple[int, dict]:
    code = main([*source, "--model-dir", str(model_dir), "--out", str(out)])
    return code, json.loads((out / "report.json").read_text(encoding="utf-8")) if code == 0 else {}


def test_a_csv_with_two_shifted_features_flags_exactly_those_and_the_prediction(model_dir, tmp_path, capsys):
    # Given
    shifted_customers(1000).to_csv(tmp_path / "new.csv", index=False)

    # When
    code, report = drift(model_dir, tmp_path / "drift", "--current", str(tmp_path / "new.csv"))

    # Then
    assert code == 0
    assert report["verdict"] == "drift" and report["drifted_features"] == SHIFTED_FEATURES
    assert report["prediction_drifted"] is True
    assert [name for name, column in report["features"].items() if column["drifted"]] == SHIFTED_FEATURES
    assert {"psi", "drifted", "unseen_share", "null_rate", "out_of_range_share", "rows"} <= set(
        report["features"]["monthly_charges"])
    assert "drifted features: monthly_charges, payment_method (and the prediction)" in capsys.readouterr().out


def test_a_fresh_sample_from_the_training_distribution_flags_nothing(model_dir, tmp_path):
    # Given: new customers with their target column, which the model does not take
    fresh_customers(1000).assign(churn="no").to_csv(tmp_path / "new.csv", index=False)

    # When
    code, report = drift(model_dir, tmp_path / "drift", "--current", str(tmp_path / "new.csv"))

    # Then
    assert code == 0 and report["verdict"] == "no_drift" and report["drifted_features"] == []
    assert not report["prediction_drifted"]


def test_the_html_report_is_self_contained_with_summary_plots_table_and_card_link(model_dir, tmp_path):
    # Given
    shifted_customers(300).to_csv(tmp_path / "new.csv", index=False)

    # When
    drift(model_dir, tmp_path / "drift", "--current", str(tmp_path / "new.csv"))

    # Then
    page = (tmp_path / "drift" / "report.html").read_text(encoding="utf-8")
    assert not re.search(r"https?://", page)
    assert not re.search(r'(src|href)="(?!data:)(?!\.\./)', page)  # nothing fetched; only the card is linked
    assert page.index("Drift detected") < page.index("Drift per feature") < page.index("<h2>Numbers</h2>")
    assert page.count('src="data:image/png;base64,') == 1 + 7 + 1  # summary, features, prediction
    assert re.search(r'href="(\.\./)+[^"]*model_artifacts/model_card\.md"', page)


def test_a_capture_file_is_read_like_the_logs(model_dir, tmp_path):
    # Given: the local API's capture lines, and a line that is not one
    model = load_model(Settings(model_dir=model_dir))
    capture = Capture(read_profile(model_dir, model.manifest), model.manifest)
    lines = ["not json"]
    rows = instances(shifted_customers(400))
    for start in range(0, len(rows), 100):
        batch = model.validator.validate({"instances": rows[start:start + 100]})
        lines.append(capture_text(capture.line(batch.columns, model.predictor.predict(batch))))
    (tmp_path / "capture.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")

    # When
    code, report = drift(model_dir, tmp_path / "drift", "--capture", str(tmp_path / "capture.jsonl"))

    # Then
    assert code == 0 and report["rows"] == 400 and report["drifted_features"] == SHIFTED_FEATURES
    assert (report["lines"], report["skipped_lines"]) == (4, 1)


def test_rows_the_api_would_reject_are_named(model_dir, tmp_path, capsys):
    # Given
    fresh_customers(5).assign(tenure_months="long").to_csv(tmp_path / "new.csv", index=False)

    # When
    code = main(["--current", str(tmp_path / "new.csv"), "--model-dir", str(model_dir), "--out", str(tmp_path)])

    # Then
    assert code == 2
    assert "5 value(s) the API would reject, e.g. row 0: tenure_months expected an integer" in capsys.readouterr().err


def test_a_model_without_a_profile_is_refused(tmp_path, capsys):
    model_dir = unprofiled_model_dir(tmp_path / "model")
    assert main(["--capture", str(tmp_path / "x.jsonl"), "--model-dir", str(model_dir)]) == 2
    assert "pins no profile" in capsys.readouterr().err
