"""Log groups with a retention period in days, as cdk.json states it."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_logs as logs
from constructs import Construct


def retained_log_group(scope: Construct, construct_id: str, *, retention_days: int) -> logs.LogGroup:
    """A log group kept `retention_days` days and deleted with the stack, so `destroy` leaves nothing billing."""
    log_group = logs.LogGroup(scope, construct_id, removal_policy=RemovalPolicy.DESTROY)
    # The L2 takes a RetentionDays enum that Python cannot build from a number; config.py checks the value.
    log_group.node.default_child.retention_in_days = retention_days
    return log_group
