"""Batch scoring on AWS: Lambda entries for a Step Functions Distributed Map over byte ranges of S3 objects.

plan_handler lists the input and writes one item per byte range to <output>plan.json; the Distributed Map runs
score_range_handler on each item, which reads its range from S3 and writes an output part, a rejects part and its
counts; summarize_handler sums the counts into <output>summary.json and fails the execution unless every planned
part accounts for every row. All three share the API's init: the same verified model, failing closed.
The scoring itself is handler.batch_scoring, which the local command line runs too.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from handler.batch_scoring import (
    BLOCK_BYTES,
    MAX_LINE_BYTES,
    BatchInputError,
    CountMismatch,
    Counts,
    Layout,
    batch_threads,
    input_format,
    owned_blocks,
    ranges,
    read_header,
    score_blocks,
    split_first_line,
)
from handler.config import log_level, observability_names
from handler.errors import ModelLoadError
from handler.loading import LoadedModel, load_model_from_environment

DEFAULT_PART_MB = 64
# The locations a deployment may read and write; set by the BatchScoring construct.
INPUT_BUCKET, INPUT_PREFIX = "BATCH_INPUT_BUCKET", "BATCH_INPUT_PREFIX"
OUTPUT_BUCKET, OUTPUT_PREFIX = "BATCH_OUTPUT_BUCKET", "BATCH_OUTPUT_PREFIX"
PART_MB = "BATCH_PART_MB"
PLAN_FILE, SUMMARY_FILE = "plan.json", "summary.json"


SERVICE_NAME, METRICS_NAMESPACE = observability_names(os.environ)
logger = Logger(service=SERVICE_NAME, level=log_level(os.environ)[0])  # a mistyped level cannot crash init
metrics = Metrics(service=SERVICE_NAME, namespace=METRICS_NAMESPACE)


class ModelUnavailable(RuntimeError):
    """The model failed to load at init: every invocation fails with this, naming the cause."""


def initialise() -> tuple[LoadedModel | None, ModelLoadError | None]:
    """Load the model as the API does; on failure log the cause and emit ModelLoadFailure so an alarm fires."""
    try:
        model = load_model_from_environment(os.environ)
    except ModelLoadError as error:
        logger.error(f"Model load failed ({error.cause}): {error.detail}", extra={"cause": error.cause})
        metrics.add_metric(name="ModelLoadFailure", unit=MetricUnit.Count, value=1)
        metrics.flush_metrics()
        return None, error
    logger.info("Model loaded", extra={"model_name": model.manifest.name, "model_version": model.manifest.version,
                                       "sha256": model.manifest.sha256})
    return model, None


MODEL, LOAD_ERROR = initialise()


def require_model() -> LoadedModel:
    """The loaded model, or ModelUnavailable: a batch never scores with anything but the verified model."""
    if MODEL is None:
        raise ModelUnavailable(f"model_unavailable: {LOAD_ERROR}")
    return MODEL


def s3_client() -> Any:
    """An S3 client with botocore's standard retries (botocore alone, as the API's model source)."""
    import botocore.session
    from botocore.config import Config

    return botocore.session.get_session().create_client("s3", config=Config(retries={"mode": "standard"}))


def split_s3_url(url: str) -> tuple[str, str]:
    """s3://bucket/key → (bucket, key)."""
    if not isinstance(url, str) or not url.startswith("s3://") or not url[5:].split("/", 1)[0]:
        raise BatchInputError("location_invalid", f"expected an s3://bucket/key URL, got {url!r}")
    bucket, _, key = url[5:].partition("/")
    return bucket, key


def _allowed(url: str, bucket_variable: str, prefix_variable: str) -> tuple[str, str]:
    """The URL's bucket and key, if inside the deployment's bucket and prefix (IAM would refuse the rest)."""
    bucket, key = split_s3_url(url)
    allowed_bucket, allowed_prefix = os.environ.get(bucket_variable, ""), os.environ.get(prefix_variable, "")
    if bucket != allowed_bucket or not key.startswith(allowed_prefix):
        raise BatchInputError("location_not_allowed",
                              f"{url} is outside s3://{allowed_bucket}/{allowed_prefix} that this deployment uses")
    return bucket, key


def _part_bytes(event: Mapping[str, Any]) -> int:
    part_mb = event.get("part_mb") or os.environ.get(PART_MB) or DEFAULT_PART_MB
    try:
        value = int(part_mb)
    except (TypeError, ValueError):
        value = 0
    if value < 1:
        raise BatchInputError("part_mb_invalid", f"part_mb must be an integer >= 1, got {part_mb!r}")
    return value << 20


def _input_objects(client: Any, bucket: str, key: str) -> list[tuple[str, int]]:
    """(key, size) of the one object, or of every object under the prefix (a key ending in / or empty)."""
    if key and not key.endswith("/"):
        try:
            return [(key, client.head_object(Bucket=bucket, Key=key)["ContentLength"])]
        except client.exceptions.ClientError as error:
            raise BatchInputError("input_missing", f"s3://{bucket}/{key} cannot be read "
                                                   f"({error.response['Error']['Code']})") from None
    found = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key):
        found += [(item["Key"], item["Size"]) for item in page.get("Contents", []) if not item["Key"].endswith("/")]
    if not found:
        raise BatchInputError("input_missing", f"no objects under s3://{bucket}/{key}")
    return found


def _read_header(client: Any, bucket: str, key: str) -> list[str]:
    body = client.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{MAX_LINE_BYTES}")["Body"]
    try:
        return read_header(body.iter_chunks(BLOCK_BYTES))
    finally:
        body.close()


def plan(client: Any, model: LoadedModel, event: Mapping[str, Any], *, part_bytes: int | None = None,
         ) -> dict[str, Any]:
    """List the input, check each CSV header, write the items (one per byte range) to <output>plan.json."""
    in_bucket, in_key = _allowed(event.get("input"), INPUT_BUCKET, INPUT_PREFIX)
    out_bucket, out_prefix = _allowed(event.get("output"), OUTPUT_BUCKET, OUTPUT_PREFIX)
    if out_prefix and not out_prefix.endswith("/"):
        out_prefix += "/"
    id_column = event.get("id_column") or None
    part_bytes = part_bytes or _part_bytes(event)
    items = []
    for key, size in _input_objects(client, in_bucket, in_key):
        file_format = input_format(key)
        header = _read_header(client, in_bucket, key) if file_format == "csv" and size else None
        if header is not None:
            try:
                Layout.of(model.manifest, header, id_column)
            except BatchInputError as error:
                raise BatchInputError(error.cause, f"s3://{in_bucket}/{key}: {error.detail}") from None
        for start, end in ranges(size, part_bytes):
            items.append({"bucket": in_bucket, "key": key, "format": file_format, "start": start, "end": end,
                          "part": len(items), "header": header, "id_column": id_column,
                          "output_bucket": out_bucket, "output_prefix": out_prefix})
    plan_key = out_prefix + PLAN_FILE
    client.put_object(Bucket=out_bucket, Key=plan_key, Body=json.dumps(items).encode(),
                      ContentType="application/json")
    logger.info("Planned", extra={"parts": len(items), "plan": f"s3://{out_bucket}/{plan_key}"})
    return {"plan_key": plan_key, "output_bucket": out_bucket, "output_prefix": out_prefix, "parts": len(items)}


def part_keys(output_prefix: str, part: int) -> dict[str, str]:
    """Where one part writes its output, rejects and counts."""
    name = f"part-{part:05d}"
    return {"output": f"{output_prefix}output/{name}.csv", "rejects": f"{output_prefix}rejects/{name}.csv",
            "counts": f"{output_prefix}parts/{name}.json"}


@contextmanager
def _range_body(client: Any, item: Mapping[str, Any]) -> Iterator[Any]:
    """The streaming body of the object from the byte before the range on (None for an empty range), closed after."""
    if item["end"] <= item["start"]:
        yield None
        return
    offset = max(item["start"] - 1, 0)
    body = client.get_object(Bucket=item["bucket"], Key=item["key"], Range=f"bytes={offset}-")["Body"]
    try:
        yield body
    finally:
        body.close()


def score_range(client: Any, model: LoadedModel, item: Mapping[str, Any]) -> dict[str, Any]:
    """Score one planned range: output and rejects parts to S3, then its counts (written last: proof of done)."""
    start, end, header = item["start"], item["end"], item["header"]
    keys = part_keys(item["output_prefix"], item["part"])
    with tempfile.TemporaryFile() as output, tempfile.TemporaryFile() as rejects, \
            _range_body(client, item) as body:
        output_text = io.TextIOWrapper(output, encoding="utf-8", newline="")
        rejects_text = io.TextIOWrapper(rejects, encoding="utf-8", newline="")
        blocks = iter(()) if body is None else owned_blocks(body.iter_chunks(BLOCK_BYTES), offset=max(start - 1, 0),
                                                             start=start, end=end)
        if header is not None and start == 0:
            _, blocks = split_first_line(blocks)  # the header line: part 0 owns it, and it is not a row
        counts = score_blocks(model, header, blocks, output_text, rejects_text, id_column=item["id_column"],
                              threads=batch_threads(os.environ))
        for text, file, key in ((output_text, output, keys["output"]), (rejects_text, rejects, keys["rejects"])):
            text.flush()
            file.seek(0)
            client.put_object(Bucket=item["output_bucket"], Key=key, Body=file, ContentType="text/csv")
    if not counts.balanced:
        raise CountMismatch(f"part {item['part']}: {counts.rows_in} rows in, {counts.scored} scored, "
                            f"{counts.rejected} rejected")
    result = {"part": item["part"], "key": item["key"], "start": start, "end": end, **asdict(counts)}
    client.put_object(Bucket=item["output_bucket"], Key=keys["counts"], Body=json.dumps(result).encode(),
                      ContentType="application/json")
    metrics.add_metric(name="BatchRowsScored", unit=MetricUnit.Count, value=counts.scored)
    metrics.add_metric(name="BatchRowsRejected", unit=MetricUnit.Count, value=counts.rejected)
    return result


def summarize(client: Any, model: LoadedModel, event: Mapping[str, Any]) -> dict[str, Any]:
    """Sum every planned part's counts into <output>summary.json; fail if a part is missing or any count disagrees."""
    bucket, prefix = event["output_bucket"], event["output_prefix"]
    items = json.loads(client.get_object(Bucket=bucket, Key=prefix + PLAN_FILE)["Body"].read())
    total, parts, problems = Counts(), [], []
    next_row: dict[str, int] = {}
    for item in items:
        try:
            body = client.get_object(Bucket=bucket, Key=part_keys(prefix, item["part"])["counts"])["Body"]
        except client.exceptions.NoSuchKey:
            problems.append(f"part {item['part']} ({item['key']} bytes {item['start']}-{item['end']}) wrote no counts")
            continue
        part = json.loads(body.read())
        counts = Counts(**{name: part[name] for name in Counts.__dataclass_fields__})
        if not counts.balanced:
            problems.append(f"part {item['part']}: {counts.rows_in} rows in != {counts.scored} scored + "
                            f"{counts.rejected} rejected")
        # Parts of one object are contiguous and in order: the object's row number of this part's row 1.
        part["first_row"] = next_row.get(item["key"], 1)
        next_row[item["key"]] = part["first_row"] + counts.rows_in
        total.add(counts)
        parts.append(part)
    manifest = model.manifest
    summary = {"status": "failed" if problems else "succeeded", "problems": problems,
               "model": {"name": manifest.name, "version": manifest.version, "sha256": manifest.sha256,
                         "runtime": manifest.runtime},
               **asdict(total), "parts": parts}
    client.put_object(Bucket=bucket, Key=prefix + SUMMARY_FILE, Body=json.dumps(summary, indent=1).encode(),
                      ContentType="application/json")
    if problems or not total.balanced:
        raise CountMismatch("; ".join(problems) or "the totals do not balance")
    return {key: value for key, value in summary.items() if key != "parts"} | {
        "summary": f"s3://{bucket}/{prefix}{SUMMARY_FILE}", "parts": len(parts)}


@logger.inject_lambda_context
def plan_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Step Functions task: {"input": "s3://...", "output": "s3://.../", "id_column"?, "part_mb"?} → plan."""
    return plan(s3_client(), require_model(), event)


@logger.inject_lambda_context
@metrics.log_metrics
def score_range_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Distributed Map child: one planned range → output part, rejects part, counts."""
    return score_range(s3_client(), require_model(), event)


@logger.inject_lambda_context
def summarize_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Final task: {"output_bucket", "output_prefix"} (the plan's result) → summary.json, or a failed execution."""
    return summarize(s3_client(), require_model(), event)
