"""What every function of the stack has, as one component (:class:`LambdaFunction`): its own role with one inline
policy, its own log group, JSON logs, tracing and Powertools' environment. Each function's component adds only
what is its own (code, permissions, settings)."""

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


def zip_code(handler: str, package: ZipBuild) -> dict[str, Any]:
    """The code arguments of a ZIP function, on the Python its ZIP is built for.

    The archive's path is relative to the working directory, so stack state is the same on every machine.
    """
    archive = pulumi.FileArchive(os.path.relpath(package.path))
    return {"package_type": "Zip", "runtime": f"python{LAMBDA_PYTHON}", "handler": handler, "code": archive}


@dataclass(frozen=True, slots=True)
class LambdaFunctionArgs:
    stack: Deployment
    service: str
    """``POWERTOOLS_SERVICE_NAME``: the function's logger and its metrics' ``service`` dimension."""
    statements: Sequence[iam.Statement]
    """What the function may do, beyond writing its own log group (and X-Ray when tracing)."""
    environment: Mapping[str, pulumi.Input[str]]
    memory_mb: int
    timeout_s: int
    code: Mapping[str, Any]
    """The function's code and anything else of its own: :func:`zip_code`, or an image's arguments."""


class LambdaFunction(pulumi.ComponentResource):
    """An x86_64 function with its own role, inline policy and log group, JSON logs, tracing and Powertools'
    environment.

    The role trusts Lambda only (for this account); its inline policy is the statements plus writing its own
    log group (and X-Ray when tracing). The function waits for both, so its first cold start has them. The
    children keep the names the components gave them before this component existed (``<name>-role``, ...), and
    ``aliases=[Alias(parent=<the component it is built in>)]`` tells the engine they are the resources it
    already has there, so moving them here replaced nothing (tests/infra/test_infra_functions.py).
    """

    role: aws.iam.Role
    policy: aws.iam.RolePolicy
    log_group: aws.cloudwatch.LogGroup
    function: aws.lambda_.Function

    def __init__(self, name: str, args: LambdaFunctionArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("sentiment:lambda_function:LambdaFunction", name, None, opts)
        config = args.stack.config
        previous_parent = opts.parent if opts is not None and opts.parent is not None else None
        moved = [pulumi.Alias(parent=previous_parent)] if previous_parent is not None else []
        child = pulumi.ResourceOptions(parent=self, aliases=moved)
        self.log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs", retention_in_days=config.log_retention_days, opts=child
        )
        assume = iam.lambda_assume_role_policy(args.stack.account_id)
        self.role = aws.iam.Role(f"{name}-role", assume_role_policy=assume, opts=child)
        statements = [*args.statements, iam.log_statement(self.log_group.arn)]
        if config.tracing:
            statements.append(iam.xray_statement())
        self.policy = aws.iam.RolePolicy(
            f"{name}-policy", role=self.role.id, policy=iam.document(statements), opts=child
        )
        powertools = {
            "POWERTOOLS_SERVICE_NAME": args.service,
            "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
            "POWERTOOLS_LOG_LEVEL": config.log_level,
        }
        self.function = aws.lambda_.Function(
            f"{name}-function",
            architectures=["x86_64"],
            role=self.role.arn,
            memory_size=args.memory_mb,
            timeout=args.timeout_s,
            environment=aws.lambda_.FunctionEnvironmentArgs(variables={**args.environment, **powertools}),
            # JSON logs into the function's own group; Powertools follows the application log level.
            logging_config=aws.lambda_.FunctionLoggingConfigArgs(
                log_format="JSON",
                log_group=self.log_group.name,
                application_log_level=_LAMBDA_LOG_LEVELS[config.log_level],
                system_log_level="INFO" if config.log_level != "DEBUG" else "DEBUG",
            ),
            tracing_config=aws.lambda_.FunctionTracingConfigArgs(mode="Active" if config.tracing else "PassThrough"),
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[self.policy, self.log_group])),
            **args.code,
        )
        self.function_name = self.function.name
        self.function_arn = self.function.arn
        self.register_outputs(
            {"function_name": self.function_name, "function_arn": self.function_arn, "log_group": self.log_group.name}
        )
