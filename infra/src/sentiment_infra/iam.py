"""Policy-document building blocks shared by the components.

Every document is rendered by ``aws.iam.get_policy_document_output`` from ARNs of the stack's own
resources; nothing here writes JSON by hand. The few statements whose resource must be ``*`` say why.
Statements take ``pulumi.Input`` values (ARNs not known until deployment) and are resolved before the
invoke, which takes plain strings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pulumi
import pulumi_aws as aws


@dataclass(frozen=True, slots=True)
class Principal:
    type: Literal["AWS", "Service", "*"]
    identifiers: Sequence[pulumi.Input[str]]


@dataclass(frozen=True, slots=True)
class Condition:
    test: str
    variable: str
    values: Sequence[pulumi.Input[str]]


@dataclass(frozen=True, slots=True)
class Statement:
    sid: str
    effect: Literal["Allow", "Deny"]
    actions: Sequence[str]
    resources: Sequence[pulumi.Input[str]]
    principals: Sequence[Principal] = ()
    conditions: Sequence[Condition] = ()

    def resolved(self) -> pulumi.Output[aws.iam.GetPolicyDocumentStatementArgs]:
        def build(parts: list[Any]) -> aws.iam.GetPolicyDocumentStatementArgs:
            resources, identifiers, values = parts
            return aws.iam.GetPolicyDocumentStatementArgs(
                sid=self.sid,
                effect=self.effect,
                actions=list(self.actions),
                resources=list(resources),
                principals=[
                    aws.iam.GetPolicyDocumentStatementPrincipalArgs(type=p.type, identifiers=list(ids))
                    for p, ids in zip(self.principals, identifiers, strict=True)
                ]
                or None,
                conditions=[
                    aws.iam.GetPolicyDocumentStatementConditionArgs(test=c.test, variable=c.variable, values=list(vs))
                    for c, vs in zip(self.conditions, values, strict=True)
                ]
                or None,
            )

        return pulumi.Output.all(
            pulumi.Output.all(*self.resources),
            pulumi.Output.all(*(pulumi.Output.all(*p.identifiers) for p in self.principals)),
            pulumi.Output.all(*(pulumi.Output.all(*c.values) for c in self.conditions)),
        ).apply(build)


def document(statements: Sequence[Statement]) -> pulumi.Output[str]:
    """Render ``statements`` into a policy document (JSON string)."""
    resolved = pulumi.Output.all(*(s.resolved() for s in statements))
    return aws.iam.get_policy_document_output(statements=resolved).json


def allow(sid: str, actions: Sequence[str], resources: Sequence[pulumi.Input[str]]) -> Statement:
    return Statement(sid=sid, effect="Allow", actions=actions, resources=resources)


def service(name: str) -> Principal:
    return Principal(type="Service", identifiers=[name])


def allow_service(
    sid: str,
    service_name: str,
    actions: Sequence[str],
    resources: Sequence[pulumi.Input[str]],
    condition: Condition,
) -> Statement:
    """A resource-policy statement: one AWS service may do ``actions``, only under ``condition`` (on whose behalf)."""
    return Statement(sid, "Allow", actions, resources, principals=[service(service_name)], conditions=[condition])


def service_policy(
    sid: str,
    service_name: str,
    actions: Sequence[str],
    resources: Sequence[pulumi.Input[str]],
    condition: Condition,
) -> pulumi.Output[str]:
    """A resource policy of that one :func:`allow_service` statement."""
    return document([allow_service(sid, service_name, actions, resources, condition)])


def lambda_assume_role_policy(account_id: pulumi.Input[str]) -> pulumi.Output[str]:
    """Trust policy: only the Lambda service, acting for this account, may assume the role."""
    condition = Condition("StringEquals", "aws:SourceAccount", [account_id])
    return service_policy("LambdaAssumeRole", "lambda.amazonaws.com", ["sts:AssumeRole"], [], condition)


def log_statement(log_group_arn: pulumi.Input[str]) -> Statement:
    """Write to the function's own log group only (streams are named by Lambda, hence the stream wildcard)."""
    streams = pulumi.Output.from_input(log_group_arn).apply(lambda arn: f"{arn.removesuffix(':*')}:log-stream:*")
    return allow("WriteOwnLogs", ["logs:CreateLogStream", "logs:PutLogEvents"], [streams])


XRAY_ACTIONS = ("xray:PutTraceSegments", "xray:PutTelemetryRecords")


def xray_statement() -> Statement:
    """X-Ray trace upload. AWS requires ``Resource: *``: these actions support no resource-level scoping."""
    return allow("XRayTraceUpload", XRAY_ACTIONS, ["*"])


def role_path_transformation(project: str, stack: str) -> Callable[[pulumi.ResourceTransformationArgs], Any]:
    """A stack transformation giving every IAM role of the stack the path ``/<project>/<stack>/``.

    The deploy policy (:mod:`sentiment_infra.deploy_policy`) scopes ``iam:*Role*`` and ``iam:PassRole`` to that
    path, so the deploy role can only manage and hand over this stack's own roles.
    """
    from sentiment_infra.deploy_policy import role_path

    path = role_path(project, stack)

    def transform(args: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:
        if args.type_ != "aws:iam/role:Role" or args.props.get("path") == path:
            return None
        return pulumi.ResourceTransformationResult(props={**args.props, "path": path}, opts=args.opts)

    return transform
