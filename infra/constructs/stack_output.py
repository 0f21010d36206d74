"""Stack outputs under the exact names infra/outputs.py gives, whichever construct declares them."""

from __future__ import annotations

from aws_cdk import CfnOutput
from constructs import Construct


def stable_output(scope: Construct, name: str, *, value: str, description: str) -> CfnOutput:
    """An output keyed `name`, not `name` prefixed by the construct path, so the operating tools find it."""
    output = CfnOutput(scope, name, value=value, description=description)
    output.override_logical_id(name)
    return output
