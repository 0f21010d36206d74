"""The users' GitHub workflows: triggers, least permissions, OIDC deploy, and only real Makefile targets."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.helpers import PROJECT_ROOT

WORKFLOWS = PROJECT_ROOT / ".github" / "workflows"


def load(name: str) -> dict[str, Any]:
    workflow = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    workflow["on"] = workflow.pop(True, workflow.get("on"))  # YAML 1.1 reads a bare `on` key as True
    return workflow


def steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def run_lines(workflow: dict[str, Any]) -> list[str]:
    return [line.strip() for step in steps(workflow) for line in step.get("run", "").splitlines() if line.strip()]


def makefile_targets() -> set[str]:
    text = (PROJECT_ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([A-Za-z0-9_-]+):", text, flags=re.MULTILINE))


def test_ci_runs_make_test_on_every_pull_request_with_python_and_node():
    # Given / When
    ci = load("ci.yml")

    # Then
    assert "pull_request" in ci["on"]
    assert ci["permissions"] == {"contents": "read"}
    used = [step.get("uses", "").split("@")[0] for step in steps(ci)]
    assert {"actions/checkout", "actions/setup-python", "actions/setup-node"} <= set(used)
    assert "make test" in run_lines(ci)


def test_deploy_runs_on_main_with_oidc_and_smoke_tests_after_deploying():
    # Given / When
    deploy = load("deploy.yml")

    # Then
    assert deploy["on"]["push"]["branches"] == ["main"]
    assert deploy["permissions"] == {"id-token": "write", "contents": "read"}
    [credentials] = [step for step in steps(deploy)
                     if step.get("uses", "").startswith("aws-actions/configure-aws-credentials@")]
    assert re.fullmatch(r"\$\{\{ vars\.[A-Z_]+ \}\}", credentials["with"]["role-to-assume"])
    assert "aws-access-key-id" not in credentials["with"]
    lines = run_lines(deploy)
    deploy_line = next(index for index, line in enumerate(lines) if line.startswith("make deploy"))
    assert any("toolkit.invoke" in line for line in lines[deploy_line + 1:])


@pytest.mark.parametrize("name", ["ci.yml", "deploy.yml"])
def test_every_make_command_is_a_makefile_target(name: str):
    # Given
    called = {target for line in run_lines(load(name)) for target in re.findall(r"\bmake ([a-z][\w-]*)", line)}

    # Then
    assert called
    assert called <= makefile_targets()
