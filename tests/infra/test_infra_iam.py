"""Least privilege, checked on the policy documents AWS would receive for both stacks.

Every policy the program writes is parsed. Identity policies may grant only the listed actions on the
stack's own ARNs; ``*`` (or any wildcard) in an action or resource fails, except the allow-list below,
each entry with the reason AWS gives no narrower form. Resource policies may name a wildcard principal
only to deny, and every service principal they allow is pinned to this stack's source.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import pytest
from infra_mocks import ACCOUNT, MODEL_ARTIFACT, ProgramRun

from sentiment_infra.iam import XRAY_ACTIONS

pytestmark = pytest.mark.infra

POLICY_INPUTS = {
    "aws:iam/rolePolicy:RolePolicy": "policy",
    "aws:iam/role:Role": "assumeRolePolicy",
    "aws:sqs/queuePolicy:QueuePolicy": "policy",
    "aws:s3/bucketPolicy:BucketPolicy": "policy",
    "aws:sns/topicPolicy:TopicPolicy": "policy",
    "aws:kms/key:Key": "policy",
    "aws:ecr/repositoryPolicy:RepositoryPolicy": "policy",
}
"""Every resource type that carries a policy document, and the input that holds it."""


@dataclass(frozen=True)
class AllowedWildcard:
    sid: str
    actions: frozenset[str]
    reason: str


WILDCARD_RESOURCE_ALLOWED = (
    AllowedWildcard(
        "XRayTraceUpload",
        frozenset(XRAY_ACTIONS),
        "X-Ray's PutTraceSegments/PutTelemetryRecords support no resource-level permissions",
    ),
    AllowedWildcard(
        "ReadCostMetrics",
        frozenset({"cloudwatch:GetMetricData"}),
        "CloudWatch's GetMetricData supports no resource-level permissions (read-only: the dashboard's cost)",
    ),
)
LOG_STREAM_SUFFIX = ":log-stream:*"
"""Log streams are created and named by Lambda; the grant stays inside the function's own log group."""
VERSIONS_SUFFIX = ":*"
"""Versions of a function of this stack (``<function arn>:*``): they are published by each deploy, so they
cannot be named in advance; only ``lambda:InvokeFunction`` (the release check) may be granted on them."""

ARN = re.compile(r"^arn:aws:(?P<service>[a-z0-9-]+):(?P<region>[^:]*):(?P<account>[^:]*):(?P<resource>.+)$")


def as_list(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def wildcard_violations(
    policy: dict[str, Any], *, own_log_groups: set[str], own_functions: frozenset[str] = frozenset()
) -> list[str]:
    """Problems of an identity policy: wildcard actions, unscoped or foreign resources, NotAction/NotResource."""
    problems = []
    for statement in policy["Statement"]:
        sid = statement.get("Sid", "<no sid>")
        if statement.get("Effect") != "Allow":
            problems.append(f"{sid}: identity policies here only allow")
        if "NotAction" in statement or "NotResource" in statement:
            problems.append(f"{sid}: NotAction/NotResource grant everything else")
        actions = as_list(statement.get("Action"))
        resources = as_list(statement.get("Resource"))
        if not actions or not resources:
            problems.append(f"{sid}: unscoped statement (no Action or no Resource)")
        problems += [f"{sid}: wildcard action {a}" for a in actions if "*" in a or "?" in a]
        allowed = next((w for w in WILDCARD_RESOURCE_ALLOWED if w.sid == sid), None)
        for resource in resources:
            if resource == "*":
                if allowed is None or not set(actions) <= allowed.actions:
                    problems.append(f"{sid}: Resource * for {actions}")
                continue
            match = ARN.match(resource)
            if match is None:
                problems.append(f"{sid}: {resource} is not an ARN")
                continue
            if match["service"] != "s3" and (
                match["account"] != ACCOUNT or not re.fullmatch(r"[a-z0-9-]+", match["region"])
            ):
                problems.append(f"{sid}: {resource} is not scoped to this account and region")
            body = resource
            if resource.endswith(LOG_STREAM_SUFFIX) and resource.removesuffix(LOG_STREAM_SUFFIX) in own_log_groups:
                body = resource.removesuffix(LOG_STREAM_SUFFIX)
            elif (
                resource.endswith(VERSIONS_SUFFIX)
                and resource.removesuffix(VERSIONS_SUFFIX) in own_functions
                and actions == ["lambda:InvokeFunction"]
            ):
                body = resource.removesuffix(VERSIONS_SUFFIX)
            if "*" in body or "?" in body:
                problems.append(f"{sid}: wildcard resource {resource}")
    return problems


def resource_policy_violations(policy: dict[str, Any], *, key_policy: bool = False) -> list[str]:
    """Problems of a resource policy: wildcard principals that allow, service principals without a source pin."""
    problems = []
    for statement in policy["Statement"]:
        sid = statement.get("Sid", "<no sid>")
        principal = statement.get("Principal")
        if statement["Effect"] == "Deny":
            continue
        if principal in ("*", {"AWS": "*"}):
            problems.append(f"{sid}: allows anyone")
            continue
        actions = as_list(statement.get("Action"))
        if "Service" in (principal or {}):
            conditions = statement.get("Condition", {})
            pinned = {var for test in conditions.values() for var in test}
            if not pinned & {"aws:SourceArn", "aws:SourceAccount"}:
                problems.append(f"{sid}: service principal without aws:SourceArn/aws:SourceAccount")
            problems += [f"{sid}: wildcard action {a}" for a in actions if "*" in a]
        resources = as_list(statement.get("Resource"))
        # A key policy's Resource "*" means "this key". Only the account root may administer it (kms:*),
        # the default statement AWS writes so the key stays manageable through IAM.
        if key_policy:
            account_root = {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}
            if any("*" in a for a in actions) and not (principal == account_root and actions == ["kms:*"]):
                problems.append(f"{sid}: wildcard key action for {principal}")
        elif "*" in resources:
            problems.append(f"{sid}: Resource *")
    return problems


def policies(run: ProgramRun) -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for typ, field in POLICY_INPUTS.items():
        for record in run.of_type(typ):
            found.append((typ, record.name, json.loads(record.inputs[field])))
    return found


def grants(run: ProgramRun, role_name: str) -> set[tuple[str, str]]:
    """(action, resource) pairs the function's role grants beyond what every function's role has (checked here):
    writing its own log group's streams, and uploading traces."""
    policy = json.loads(run.one("aws:iam/rolePolicy:RolePolicy", role_name).inputs["policy"])
    found = {
        (action, resource)
        for statement in policy["Statement"]
        for action in as_list(statement["Action"])
        for resource in as_list(statement["Resource"])
    }
    log_streams = run.one("aws:cloudwatch/logGroup:LogGroup", role_name).outputs["arn"] + LOG_STREAM_SUFFIX
    every_function = {
        ("logs:CreateLogStream", log_streams),
        ("logs:PutLogEvents", log_streams),
        *((action, "*") for action in XRAY_ACTIONS),
    }
    assert every_function <= found, every_function - found
    return found - every_function


def test_every_policy_document_is_well_formed_and_found(program: ProgramRun) -> None:
    found = policies(program)
    # 5 roles x (trust + inline): 4 functions and CodeDeploy's; the queue, bucket, alarm topic, key and image
    # repository policies
    assert len(found) == 15
    for typ, name, policy in found:
        assert policy["Version"] == "2012-10-17", (typ, name)
        assert policy["Statement"], (typ, name)
        assert all(s["Effect"] in {"Allow", "Deny"} for s in policy["Statement"])


@pytest.mark.reliability(
    area="security: IAM least privilege (Pulumi mocks)",
    case="every identity policy of both stacks",
    expected="no wildcard action; no wildcard resource beyond the AWS-required allow-list",
)
def test_identity_policies_have_no_wildcard_action_or_resource_beyond_the_allow_list(program: ProgramRun) -> None:
    log_groups = {r.outputs["arn"] for r in program.of_type("aws:cloudwatch/logGroup:LogGroup")}
    functions = frozenset(r.outputs["arn"] for r in program.of_type("aws:lambda/function:Function"))
    for record in program.of_type("aws:iam/rolePolicy:RolePolicy"):
        policy = json.loads(record.inputs["policy"])
        assert wildcard_violations(policy, own_log_groups=log_groups, own_functions=functions) == [], record.name


@pytest.mark.reliability(
    area="security: IAM least privilege (Pulumi mocks)",
    case="every resource policy (bucket, queue, topic, key, repository)",
    expected="no Allow for anyone; every service principal pinned to this stack's source",
)
def test_resource_policies_never_allow_anyone_and_pin_every_service_principal(program: ProgramRun) -> None:
    for typ, name, policy in policies(program):
        if typ in {"aws:iam/rolePolicy:RolePolicy"}:
            continue
        assert resource_policy_violations(policy, key_policy=typ == "aws:kms/key:Key") == [], (typ, name)


@pytest.mark.reliability(
    area="security: IAM least privilege (Pulumi mocks)",
    case="role trust policies",
    expected="only lambda.amazonaws.com (CodeDeploy's role: codedeploy.amazonaws.com), for this account",
)
def test_roles_trust_only_lambda_for_this_account(program: ProgramRun) -> None:
    for role in program.of_type("aws:iam/role:Role"):
        (statement,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
        # The functions' roles trust Lambda; the release's deployment group role trusts CodeDeploy
        service = (
            "codedeploy.amazonaws.com"
            if role.parent_type == "sentiment:release:Release" and "codedeploy" in role.name
            else "lambda.amazonaws.com"
        )
        assert statement["Principal"] == {"Service": service}
        assert statement["Action"] == "sts:AssumeRole"
        assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}


@pytest.mark.reliability(
    area="security: IAM least privilege (Pulumi mocks)",
    case="the analysis function's grants",
    expected="read the model object, update items, drain its queue: nothing else",
)
def test_analysis_may_read_the_model_object_update_items_and_drain_its_queue_only(program: ProgramRun) -> None:
    bucket = program.one("aws:s3/bucket:Bucket").outputs["bucket"]
    key = program.one(MODEL_ARTIFACT).inputs["key"]
    table = program.one("aws:dynamodb/table:Table").outputs["arn"]
    queue = program.one("aws:sqs/queue:Queue", "queue").outputs["arn"]
    expected = {
        ("s3:GetObject", f"arn:aws:s3:::{bucket}/{key}"),
        ("s3:GetObjectVersion", f"arn:aws:s3:::{bucket}/{key}"),  # its pinned version of the bundle
        ("dynamodb:GetItem", table),
        ("dynamodb:UpdateItem", table),
        ("sqs:ReceiveMessage", queue),
        ("sqs:DeleteMessage", queue),
        ("sqs:GetQueueAttributes", queue),
    }
    assert grants(program, "analysis") == expected


@pytest.mark.reliability(
    area="security: IAM least privilege (Pulumi mocks)",
    case="the ingestion function's grants",
    expected="store/read items, query the pending index, publish: nothing else",
)
def test_ingestion_may_store_items_query_the_pending_index_and_publish_only(program: ProgramRun) -> None:
    table = program.one("aws:dynamodb/table:Table").outputs["arn"]
    topic = program.one("aws:sns/topic:Topic", "messaging").outputs["arn"]
    failures = program.one("aws:sqs/queue:Queue", "ingestion-failures").outputs["arn"]
    expected = {
        ("dynamodb:PutItem", table),
        ("dynamodb:UpdateItem", table),
        ("dynamodb:GetItem", table),
        ("dynamodb:Query", f"{table}/index/pending-by-age"),
        ("sns:Publish", topic),
        ("sqs:SendMessage", failures),
    }
    assert grants(program, "ingestion") == expected


@pytest.mark.parametrize(
    ("statement", "problem"),
    [
        ({"Sid": "A", "Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b/k"}, "wildcard action"),
        ({"Sid": "B", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}, "Resource *"),
        (
            {"Sid": "C", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"},
            "wildcard resource",
        ),
        ({"Sid": "D", "Effect": "Allow", "Action": "sqs:ReceiveMessage"}, "unscoped"),
        (
            {"Sid": "E", "Effect": "Allow", "Action": "dynamodb:Query", "Resource": "arn:aws:dynamodb:*:*:table/t"},
            "not scoped to this account",
        ),
        ({"Sid": "F", "Effect": "Allow", "NotAction": "iam:*", "Resource": "arn:aws:s3:::b"}, "NotAction"),
        (
            {"Sid": "XRayTraceUpload", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"},
            "Resource *",
        ),
        (
            {
                "Sid": "G",
                "Effect": "Allow",
                "Action": "logs:PutLogEvents",
                "Resource": "arn:aws:logs:us-east-1:123456789012:log-group:other:log-stream:*",
            },
            "wildcard resource",
        ),
    ],
)
def test_the_identity_checker_catches_each_kind_of_overgrant(statement: dict[str, Any], problem: str) -> None:
    # Given a policy with one over-broad statement
    policy = {"Version": "2012-10-17", "Statement": [statement]}
    # When it is checked
    problems = wildcard_violations(policy, own_log_groups={"arn:aws:logs:us-east-1:123456789012:log-group:own"})
    # Then the checker names the problem
    assert any(problem in p for p in problems), problems


@pytest.mark.parametrize(
    ("statement", "key_policy", "problem"),
    [
        ({"Sid": "A", "Effect": "Allow", "Principal": "*", "Action": "sqs:SendMessage"}, False, "allows anyone"),
        (
            {"Sid": "B", "Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"}, "Action": "sqs:SendMessage"},
            False,
            "without aws:SourceArn",
        ),
        (
            {"Sid": "C", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::999999999999:root"}, "Action": "kms:*"},
            True,
            "wildcard key action",
        ),
    ],
)
def test_the_resource_policy_checker_catches_open_or_unpinned_grants(
    statement: dict[str, Any], key_policy: bool, problem: str
) -> None:
    policy = {"Version": "2012-10-17", "Statement": [statement | {"Resource": "*"}]}
    problems = resource_policy_violations(policy, key_policy=key_policy)
    assert any(problem in p for p in problems), problems
