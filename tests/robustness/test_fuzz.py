"""schemathesis against the local API: no 5xx, every answer as the OpenAPI document says."""

from __future__ import annotations

import pytest

from toolkit.fuzz import fuzz, local_api

CASES = 2000


@pytest.mark.slow
def test_generated_requests_never_break_the_contract(shipped_app):
    # Given the local API serving the shipped model
    with local_api() as base_url:
        # When schemathesis sends valid and invalid requests built from /openapi.json
        report = fuzz(base_url, CASES)
    # Then enough were sent, and none failed a check
    assert report.total >= CASES, report.cases
    assert report.failures == []
