"""What every function of the stack has: its own role with one inline policy, and its own log group."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from sentiment_infra import iam
from sentiment_shared.stack import METRICS_NAMESPACE

_LAMBDA_LOG_LEVELS = {"DEBUG": "DEBUG", "INFO": "INFO", "WARNING": "WARN", "ERROR": "ERROR"}


@dataclass(frozen=True, slots=True)
class FunctionParts:
    role: aws.iam.Role
    policy: aws.iam.RolePolicy
    log_group: aws.cloudwatch.LogGroup


def function_parts(
    name: str,
    *,
    parent: pulumi.Resource,
    account_id: pulumi.Input[str],
    statements: Sequence[iam.Statement],
    log_retention_days: int,
    tracing: bool,
) -> FunctionParts:
    """Role (Lambda-only trust), log group with retention, and an inline policy of ``statements`` + logs."""
    child = pulumi.ResourceOptions(parent=parent)
    log_group = aws.cloudwatch.LogGroup(f"{name}-logs", retention_in_days=log_retention_days, opts=child)
    role = aws.iam.Role(f"{name}-role", assume_role_policy=iam.lambda_assume_role_policy(account_id), opts=child)
    all_statements = [*statements, iam.log_statement(log_group.arn)]
    if tracing:
        all_statements.append(iam.xray_statement())
    policy = aws.iam.RolePolicy(f"{name}-policy", role=role.id, policy=iam.document(all_statements), opts=child)
    return FunctionParts(role=role, policy=policy, log_group=log_group)


def logging_config(log_group: aws.cloudwatch.LogGroup, log_level: str) -> aws.lambda_.FunctionLoggingConfigArgs:
    """JSON logs into the function's own group; Powertools follows the application log level."""
    return aws.lambda_.FunctionLoggingConfigArgs(
        log_format="JSON",
        log_group=log_group.name,
        application_log_level=_LAMBDA_LOG_LEVELS[log_level],
        system_log_level="INFO" if log_level != "DEBUG" else "DEBUG",
    )


def tracing_config(tracing: bool) -> aws.lambda_.FunctionTracingConfigArgs:
    return aws.lambda_.FunctionTracingConfigArgs(mode="Active" if tracing else "PassThrough")


def powertools_environment(service: str, log_level: str) -> dict[str, str]:
    return {
        "POWERTOOLS_SERVICE_NAME": service,
        "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
        "POWERTOOLS_LOG_LEVEL": log_level,
    }
