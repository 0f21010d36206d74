"""The error catalogue: one home for every code, its status and meaning, equal to the README's table."""

from __future__ import annotations

import re

import pytest

from handler.errors import ERRORS, ApiError
from handler.openapi import error_descriptions
from tests.helpers import PROJECT_ROOT

README_ROW = re.compile(r"^\| (\d{3}) \| `([a-z_]+)` \| (.+) \|$")


def readme_error_table() -> dict[str, tuple[int, str]]:
    text = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("### Errors"):text.index("### Configuration")]
    return {match[2]: (int(match[1]), match[3]) for line in section.splitlines() if (match := README_ROW.match(line))}


def test_the_readme_error_table_is_the_catalogue():
    assert readme_error_table() == {code: (kind.status, kind.meaning) for code, kind in ERRORS.items()}


def test_an_error_answers_with_its_codes_status():
    assert ApiError("too_many_instances", "At most 3.").status == 413


def test_a_code_outside_the_catalogue_cannot_be_raised():
    with pytest.raises(ValueError, match="not in the error catalogue"):
        ApiError("teapot", "I am one.")


def test_the_openapi_descriptions_name_every_code_of_a_status():
    assert error_descriptions((413,))["413"].startswith("payload_too_large: ")
    assert "too_many_instances: " in error_descriptions((413,))["413"]
