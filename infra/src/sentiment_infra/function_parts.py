"""What every function of the stack has: its own role with one inline policy, its own log group, JSON logs,
tracing and Powertools' environment. Each component adds only what is its own (code, permissions, settings)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from sentiment_infra import iam
from sentiment_infra.config import Deployment
from sentiment_infra.packaging import LAMBDA_PYTHON, ZipBuild
from sentiment_shared.stack import METRICS_NAMESPACE

_LAMBDA_LOG_LEVELS = {"DEBUG": "DEBUG", "INFO": "INFO", "WARNING": "WARN", "ERROR": "ERROR"}


@dataclass(frozen=True, slots=True)
class LambdaFunction:
    role: aws.iam.Role
    policy: aws.iam.RolePolicy
    log_group: aws.cloudwatch.LogGroup
    function: aws.lambda_.Function


def zip_code(handler: str, package: ZipBuild) -> dict[str, Any]:
    """The code arguments of a ZIP function, on the Python its ZIP is built for.

    The archive's path is relative to the working directory, so stack state is the same on every machine.
    """
    archive = pulumi.FileArchive(os.path.relpath(package.path))
    return {"package_type": "Zip", "runtime": f"python{LAMBDA_PYTHON}", "handler": handler, "code": archive}


def lambda_function(
    name: str,
    *,
    parent: pulumi.Resource,
    stack: Deployment,
    service: str,
    statements: Sequence[iam.Statement],
    environment: Mapping[str, pulumi.Input[str]],
    memory_mb: int,
    timeout_s: int,
    **code: Any,
) -> LambdaFunction:
    """An x86_64 function with ``code`` (:func:`zip_code`, or an image) and its role, policy and log group.

    The role trusts Lambda only (for this account); its inline policy is ``statements`` plus writing its own
    log group (and X-Ray when tracing). The function waits for both, so its first cold start has them.
    """
    config = stack.config
    child = pulumi.ResourceOptions(parent=parent)
    log_group = aws.cloudwatch.LogGroup(f"{name}-logs", retention_in_days=config.log_retention_days, opts=child)
    assume = iam.lambda_assume_role_policy(stack.account_id)
    role = aws.iam.Role(f"{name}-role", assume_role_policy=assume, opts=child)
    all_statements = [*statements, iam.log_statement(log_group.arn)]
    if config.tracing:
        all_statements.append(iam.xray_statement())
    policy = aws.iam.RolePolicy(f"{name}-policy", role=role.id, policy=iam.document(all_statements), opts=child)
    powertools = {
        "POWERTOOLS_SERVICE_NAME": service,
        "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
        "POWERTOOLS_LOG_LEVEL": config.log_level,
    }
    function = aws.lambda_.Function(
        f"{name}-function",
        architectures=["x86_64"],
        role=role.arn,
        memory_size=memory_mb,
        timeout=timeout_s,
        environment=aws.lambda_.FunctionEnvironmentArgs(variables={**environment, **powertools}),
        # JSON logs into the function's own group; Powertools follows the application log level.
        logging_config=aws.lambda_.FunctionLoggingConfigArgs(
            log_format="JSON",
            log_group=log_group.name,
            application_log_level=_LAMBDA_LOG_LEVELS[config.log_level],
            system_log_level="INFO" if config.log_level != "DEBUG" else "DEBUG",
        ),
        tracing_config=aws.lambda_.FunctionTracingConfigArgs(mode="Active" if config.tracing else "PassThrough"),
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[policy, log_group]),
        **code,
    )
    return LambdaFunction(role=role, policy=policy, log_group=log_group, function=function)
