"""Settings of a model in S3, and the S3 client's bounds: what the handler reads before it fetches anything."""

from __future__ import annotations

import pytest

import handler.model_source
from handler.config import S3ModelLocation, SettingsError, load_settings

SHA = "0" * 64


def test_the_four_variables_make_one_location():
    # Given / When
    settings = load_settings({"MODEL_S3_BUCKET": "models", "MODEL_S3_PREFIX": "models/churn/2/", "MODEL_SHA256": SHA,
                              "MODEL_MANIFEST_SHA256": "1" * 64})

    # Then
    assert settings.model_s3 == S3ModelLocation("models", "models/churn/2/", SHA, "1" * 64)
    assert settings.model_s3.key("manifest.json") == "models/churn/2/manifest.json"


def test_without_them_the_model_is_the_bundled_one():
    assert load_settings({}).model_s3 is None


@pytest.mark.parametrize(("environ", "named"), [
    ({"MODEL_S3_PREFIX": "models/churn/2/", "MODEL_SHA256": SHA}, "MODEL_S3_BUCKET must be set"),
    ({"MODEL_S3_BUCKET": "models", "MODEL_S3_PREFIX": "models/churn/2", "MODEL_SHA256": SHA},
     "MODEL_S3_PREFIX must be a key prefix ending in '/'"),
    ({"MODEL_S3_BUCKET": "models", "MODEL_S3_PREFIX": "models/churn/2/", "MODEL_SHA256": SHA.upper()[:-1] + "A"},
     "MODEL_SHA256 must be 64 lowercase hex characters"),
    ({"MODEL_S3_BUCKET": "models"}, "MODEL_SHA256 must be 64 lowercase hex characters"),
    ({"MODEL_S3_BUCKET": "models", "MODEL_S3_PREFIX": "models/churn/2/", "MODEL_SHA256": SHA},
     "MODEL_MANIFEST_SHA256 must be 64 lowercase hex characters"),
], ids=["no bucket", "prefix without slash", "sha256 not lowercase hex", "bucket alone", "manifest not pinned"])
def test_an_incomplete_or_wrong_location_names_the_variable(environ, named):
    # Given / When
    with pytest.raises(SettingsError) as raised:
        load_settings(environ)

    # Then
    assert named in str(raised.value)


def test_the_s3_client_has_short_timeouts_and_bounded_attempts(monkeypatch):
    # Given
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")

    # When
    config = handler.model_source.s3_client().meta.config

    # Then: a stalled S3 costs at most MAX_ATTEMPTS x (connect + read) per file, within Lambda's 10 s init
    assert (config.connect_timeout, config.read_timeout) == (1.0, 2.0)
    assert config.retries == {"total_max_attempts": 2, "mode": "standard"}
    assert 2 * config.retries["total_max_attempts"] * (config.connect_timeout + config.read_timeout) < 10 + 3
