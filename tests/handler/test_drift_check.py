"""The scheduled drift check on moto: capture lines from CloudWatch Logs, metrics, and reports in S3."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pandas as pd
import pytest
from moto import mock_aws

from handler.capture import Capture, read_profile
from handler.config import Settings
from handler.drift_check import DriftCheckFailed, lambda_handler
from handler.loading import LoadedModel, load_model
from tests.drift_samples import (SHIFTED_FEATURES, fresh_customers, instances, profiled_model_dir,
                                 shifted_customers, unprofiled_model_dir)

REGION, LOG_GROUP, BUCKET, NAMESPACE = "eu-west-1", "/aws/lambda/churn-api", "drift-reports-test", "ChurnModels"
NOW = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
ROWS_PER_REQUEST = 50


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    return load_model(Settings(model_dir=profiled_model_dir(tmp_path_factory.mktemp("check") / "model")))


@pytest.fixture
def aws(model: LoadedModel, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": REGION, "CAPTURE_LOG_GROUP": LOG_GROUP, "REPORT_BUCKET": BUCKET,
                        "REPORT_PREFIX": "drift-reports/", "MIN_ROWS": "200", "WINDOW_HOURS": "24",
                        "POWERTOOLS_METRICS_NAMESPACE": NAMESPACE, "POWERTOOLS_SERVICE_NAME": "churn-api",
                        "MODEL_DIR": str(model.settings.model_dir)}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        clients = {name: boto3.client(name, region_name=REGION) for name in ("logs", "s3", "cloudwatch")}
        clients["logs"].create_log_group(logGroupName=LOG_GROUP)
        clients["logs"].create_log_stream(logGroupName=LOG_GROUP, logStreamName="2026/12/01/[1]abc")
        clients["s3"].create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        yield clients


def log_requests(aws: dict[str, Any], model: LoadedModel, frame: pd.DataFrame, *, at: datetime = NOW) -> None:
    """Score frame in requests of ROWS_PER_REQUEST rows and log each capture line as the API's logger would."""
    capture = Capture(read_profile(model.settings.model_dir, model.manifest), model.manifest)
    rows = instances(frame)
    messages = ['{"level":"INFO","message":"Model loaded"}', "START RequestId: 1 model-input"]
    for start in range(0, len(rows), ROWS_PER_REQUEST):
        batch = model.validator.validate({"instances": rows[start:start + ROWS_PER_REQUEST]})
        line = capture.line(batch.columns, model.predictor.predict(batch))
        messages.append(json.dumps({"level": "INFO", "message": line, "service": "churn-api"}))
    moment = int((at - timedelta(hours=1)).timestamp() * 1000)
    aws["logs"].put_log_events(logGroupName=LOG_GROUP, logStreamName="2026/12/01/[1]abc",
                               logEvents=[{"timestamp": moment + index, "message": message}
                                          for index, message in enumerate(messages)])


def run(lambda_context) -> dict[str, Any]:
    return lambda_handler({"time": NOW.strftime("%Y-%m-%dT%H:%M:%SZ"), "source": "aws.events"}, lambda_context)


def metric_values(aws: dict[str, Any]) -> dict[str, float]:
    names = [metric["MetricName"] for metric in aws["cloudwatch"].list_metrics(Namespace=NAMESPACE)["Metrics"]]
    published = datetime.now(UTC)  # the check publishes without a timestamp: CloudWatch stamps the real time
    values = {}
    for name in names:
        points = aws["cloudwatch"].get_metric_statistics(
            Namespace=NAMESPACE, MetricName=name, Dimensions=[{"Name": "service", "Value": "churn-api"}],
            StartTime=published - timedelta(days=1), EndTime=published + timedelta(days=1), Period=86400,
            Statistics=["Maximum"])["Datapoints"]
        values[name] = points[0]["Maximum"]
    return values


def report(aws: dict[str, Any], summary: dict[str, Any]) -> tuple[dict[str, Any], str]:
    html_key = summary["report"].removeprefix(f"s3://{BUCKET}/")
    json_key = html_key.replace("report.html", "report.json")
    def read(key: str) -> str:
        return aws["s3"].get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()

    return json.loads(read(json_key)), read(html_key)


def test_a_shifted_sample_gives_a_drift_verdict_metrics_and_reports(aws, model, lambda_context):
    # Given: 1,000 captured rows with two features shifted
    log_requests(aws, model, shifted_customers(1000))

    # When
    summary = run(lambda_context)

    # Then
    assert summary["verdict"] == "drift" and summary["rows"] == 1000
    assert summary["drifted_features"] == SHIFTED_FEATURES
    metrics = metric_values(aws)
    assert metrics["CapturedRows"] == 1000 and metrics["DriftedFeatures"] == 2 and metrics["MaxPSI"] > 0.25
    document, page = report(aws, summary)
    assert document["window"] == {"start": "2026-11-30T06:00:00+00:00", "end": "2026-12-01T06:00:00+00:00"}
    assert document["lines"] == 20 and document["skipped_lines"] == 1  # the START line matches the term too
    assert document["features"]["monthly_charges"]["drifted"] is True
    assert summary["report"].startswith(f"s3://{BUCKET}/drift-reports/2026-12-01/")
    assert "Drift detected" in page and "<svg" in page and "http://" not in page and "https://" not in page


def test_a_sample_from_the_training_distribution_gives_no_drift(aws, model, lambda_context):
    # Given
    log_requests(aws, model, fresh_customers(1000))

    # When
    summary = run(lambda_context)

    # Then
    assert summary["verdict"] == "no_drift" and summary["drifted_features"] == []
    assert metric_values(aws)["DriftedFeatures"] == 0


def test_below_the_minimum_sample_size_there_is_no_verdict_and_no_drift_metric(aws, model, lambda_context):
    # Given: 150 shifted rows, fewer than MIN_ROWS
    log_requests(aws, model, shifted_customers(150))

    # When
    summary = run(lambda_context)

    # Then
    assert summary["verdict"] == "not_enough_data" and summary["drifted_features"] == []
    assert metric_values(aws) == {"CapturedRows": 150}  # the alarm sees no data, not a breach
    document, page = report(aws, summary)
    assert document["verdict"] == "not_enough_data" and "Not enough data" in page


def test_lines_outside_the_window_are_not_read(aws, model, lambda_context):
    # Given: shifted rows two days before the run
    log_requests(aws, model, shifted_customers(1000), at=NOW - timedelta(days=2))

    # When / Then
    assert run(lambda_context)["rows"] == 0


def test_an_aws_error_fails_the_run_with_one_clear_log_line(aws, model, lambda_context, caplog):
    # Given: the report bucket is gone
    aws["s3"].delete_bucket(Bucket=BUCKET)
    log_requests(aws, model, fresh_customers(250))

    # When / Then
    with pytest.raises(DriftCheckFailed, match="writing the report failed: .*NoSuchBucket"):
        run(lambda_context)
    assert [record.levelname for record in caplog.records] == ["ERROR"]
    assert caplog.records[0].getMessage().startswith("Drift check failed: writing the report failed")


def test_missing_settings_are_named(aws, lambda_context, monkeypatch):
    monkeypatch.delenv("REPORT_BUCKET")
    monkeypatch.setenv("MIN_ROWS", "zero")
    with pytest.raises(DriftCheckFailed, match="REPORT_BUCKET must be set; MIN_ROWS must be an integer"):
        run(lambda_context)


def test_a_model_without_a_profile_fails_the_run(aws, lambda_context, monkeypatch, tmp_path):
    monkeypatch.setenv("MODEL_DIR", str(unprofiled_model_dir(tmp_path / "model")))
    with pytest.raises(DriftCheckFailed, match="pins no profile"):
        run(lambda_context)
