"""The deploy and preview roles' policies (sentiment_infra.deploy_policy) against what the program declares.

The program runs under the mocks for both stacks; every resource type it declares (and every invoke it makes)
must have its actions in ``REQUIRED``, and the rendered documents must grant each of them on the ARN of the
resource the program created. The documents are rendered from ``REQUIRED``: each statement grants exactly what
the types need in its scope, and every entry is a type some stack declares.
"""

from __future__ import annotations

import fnmatch
import json
import re
from typing import Any

import pytest
from infra_mocks import ACCOUNT, PROJECT, STACKS, ProgramRun

from sentiment_infra import deploy_policy
from sentiment_infra.deploy_policy import (
    MAX_MANAGED_POLICY_CHARS,
    NO_AWS_ACTIONS,
    REQUIRED,
    STATEMENTS,
    Target,
    role_path,
)

pytestmark = pytest.mark.infra

STAR_ONLY = frozenset(
    {
        # actions AWS's Service Authorization Reference lists without a resource type (parliament agrees)
        "CreateAlarmKey",
        "EcrLogin",
        "CreateEventSourceMapping",
        "ListEventSourceMappings",
        "Subscriptions",
        "DescribeLogGroups",
        "CreateDashboardOriginAccess",
        "StopRollout",
    }
)


def _target(run: ProgramRun) -> Target:
    return Target(account=ACCOUNT, region=run.config.get("aws:region", "us-east-1"), stack=run.stack)


def declared_types(run: ProgramRun) -> set[str]:
    """Every custom resource type (components are the program's own, not AWS's) and every invoke token."""
    types = {r.type for r in run.resources if not r.type.startswith(("sentiment:", "pulumi:"))}
    return types | {token for token, _args in run.calls}


def _statements(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [statement for document in documents for statement in document["Statement"]]


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def missing_grants(run: ProgramRun, documents: list[dict[str, Any]]) -> list[str]:
    """``type: action`` for each action a declared type needs and no statement grants; ``... on ARN`` when the
    action is granted, but not on the ARN of a resource the program declares (for actions of that ARN's service)."""
    statements = _statements(documents)
    problems = []
    for typ in sorted(declared_types(run) - NO_AWS_ACTIONS):
        if typ not in REQUIRED:
            problems.append(f"{typ}: no entry in deploy_policy.REQUIRED")
            continue
        arns = [_arn(r) for r in run.resources if r.type == typ]
        for action in sorted({a for actions in REQUIRED[typ].values() for a in actions}):
            granting = [s for s in statements if action in _as_list(s["Action"])]
            if not granting:
                problems.append(f"{typ}: {action}")
                continue
            service = action.split(":")[0]
            for arn in arns:
                if arn is None or arn.split(":")[2] != service:
                    continue
                # an object action on a bucket (emptying it on destroy) acts on the bucket's objects
                on = (
                    f"{arn}/some/key"
                    if typ == "aws:s3/bucket:Bucket" and re.search("Object|Multipart", action)
                    else arn
                )
                patterns = [p for s in granting for p in _as_list(s["Resource"])]
                if not any(fnmatch.fnmatchcase(on, p) for p in patterns):
                    problems.append(f"{typ}: {action} on {on}")
    return problems


def _arn(resource: Any) -> str | None:
    outputs = resource.outputs
    if resource.type == "pulumi-python:dynamic/model:Artifact":
        return f"arn:aws:s3:::{outputs['bucket']}/{outputs['key']}"
    if resource.type == "aws:cloudwatch/dashboard:Dashboard":
        return str(outputs["dashboardArn"])
    arn = outputs.get("arn")
    return arn if isinstance(arn, str) and arn.startswith("arn:") else None


@pytest.mark.parametrize("stack", STACKS)
def test_every_declared_type_has_its_actions_granted_on_its_own_resources(
    programs: dict[str, ProgramRun], stack: str
) -> None:
    run = programs[stack]
    assert missing_grants(run, deploy_policy.deploy_policy(_target(run))) == []


def test_the_check_fails_when_the_policy_lacks_what_a_declared_type_needs(programs: dict[str, ProgramRun]) -> None:
    # Given the deploy policy the issue found in DEPLOY.md's prose: no CloudFront, no PutDashboard, no PassRole
    run = programs["dev"]
    prose = [
        {
            **document,
            "Statement": [
                s for s in document["Statement"] if not ("Dashboard" in s["Sid"] or s["Sid"] == "PassStackRoles")
            ],
        }
        for document in deploy_policy.deploy_policy(_target(run))
    ]
    # Then the check names each type and action it misses
    problems = missing_grants(run, prose)
    assert "aws:cloudfront/distribution:Distribution: cloudfront:CreateDistribution" in problems
    assert "aws:cloudfront/originAccessControl:OriginAccessControl: cloudfront:CreateOriginAccessControl" in problems
    assert "aws:cloudfront/cachePolicy:CachePolicy: cloudfront:CreateCachePolicy" in problems
    assert "aws:cloudwatch/dashboard:Dashboard: cloudwatch:PutDashboard" in problems
    assert "aws:lambda/function:Function: iam:PassRole" in problems
    # and a type with no entry at all
    run_with_new_type = ProgramRun(
        stack=run.stack, config=run.config, resources=run.resources, outputs=run.outputs, calls=[("aws:new/x:X", {})]
    )
    assert "aws:new/x:X: no entry in deploy_policy.REQUIRED" in missing_grants(
        run_with_new_type, deploy_policy.deploy_policy(_target(run))
    )


def test_each_scope_renders_its_actions_on_its_resources_and_every_required_type_is_declared(
    programs: dict[str, ProgramRun],
) -> None:
    # each rendered statement grants exactly the actions the types need in its scope, on its scope's resources
    needed: dict[str, set[str]] = {}
    for scopes in REQUIRED.values():
        for scope, actions in scopes.items():
            needed.setdefault(scope.sid, set()).update(actions)
    target = Target(account=ACCOUNT, region="us-east-1", stack="dev")
    statements = _statements(deploy_policy.deploy_policy(target))
    assert {s["Sid"]: set(s["Action"]) for s in statements} == needed
    scopes = {scope.sid: scope for scope in STATEMENTS}
    for statement in statements:
        assert statement["Resource"] == [target.render(r) for r in scopes[statement["Sid"]].resources]
    # and every entry of REQUIRED is a type some stack declares
    declared = set().union(*(declared_types(run) for run in programs.values()))
    assert set(REQUIRED) - declared == set()


def test_no_wildcard_actions_and_resource_star_only_where_aws_allows_nothing_else() -> None:
    for scope, actions in STATEMENTS.items():
        for action in actions:
            assert re.fullmatch(r"[a-z0-9-]+:[A-Z][A-Za-z0-9]+", action), action
        if "*" in scope.resources:
            assert scope.resources == ("*",)
            assert scope.why, f"{scope.sid}: Resource * needs its reason"
            assert scope.sid in STAR_ONLY


def test_each_action_is_scoped_to_its_own_services_resources() -> None:
    # a type's action filed under another service's scope (ecr:BatchGetImage on KMS keys) would be denied in AWS
    for scope, actions in STATEMENTS.items():
        services = {r.split(":")[2] for r in scope.resources if r != "*"}
        assert services <= {a.split(":")[0] for a in actions}, scope.sid
        assert {a.split(":")[0] for a in actions} <= services or scope.resources == ("*",), scope.sid


@pytest.mark.parametrize("stack", STACKS)
def test_the_stack_roles_live_under_the_stack_path_and_only_they_can_be_passed(
    programs: dict[str, ProgramRun], stack: str
) -> None:
    run = programs[stack]
    path = role_path(PROJECT, stack)
    roles = run.of_type("aws:iam/role:Role")
    assert roles
    assert {r.name: r.inputs.get("path") for r in roles} == {r.name: path for r in roles}
    (passrole,) = [s for s in _statements(deploy_policy.deploy_policy(_target(run))) if s["Sid"] == "PassStackRoles"]
    assert passrole["Resource"] == [f"arn:aws:iam::{ACCOUNT}:role{path}*"]
    assert passrole["Condition"] == {
        "StringEquals": {"iam:PassedToService": ["lambda.amazonaws.com", "codedeploy.amazonaws.com"]}
    }
    # the other stack's roles are out of reach
    other = next(s for s in STACKS if s != stack)
    assert not fnmatch.fnmatchcase(f"arn:aws:iam::{ACCOUNT}:role{role_path(PROJECT, other)}x", passrole["Resource"][0])


@pytest.mark.parametrize("kind", ["deploy", "preview"])
def test_documents_fit_iam_limits(kind: str) -> None:
    build = deploy_policy.deploy_policy if kind == "deploy" else deploy_policy.preview_policy
    documents = build(Target(account=ACCOUNT, region="us-east-1", stack="prod"))
    # IAM: at most 6,144 characters per managed policy (whitespace not counted); 10 managed policies per role
    assert 1 <= len(documents) <= 10
    for document in documents:
        assert len(re.sub(r"\s", "", json.dumps(document))) <= MAX_MANAGED_POLICY_CHARS
        sids = [s["Sid"] for s in document["Statement"]]
        assert len(sids) == len(set(sids))


def test_the_preview_policy_only_reads_and_reads_no_content() -> None:
    statements = _statements(deploy_policy.preview_policy(Target(account=ACCOUNT, region="us-east-1", stack="dev")))
    actions = {a for s in statements for a in s["Action"]}
    assert actions
    writes = {a for a in actions if not re.match(r"^[a-z0-9-]+:(Get|Describe|List)", a)}
    assert writes == set()
    assert actions.isdisjoint(
        {"s3:GetObject", "s3:GetObjectVersion", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"}
    )
    assert "ecr:GetAuthorizationToken" in actions  # the program invokes it in every preview
    assert "iam:PassRole" not in actions


def test_trust_policies_name_the_repository_and_the_subjects() -> None:
    trust = deploy_policy.trust_policy(ACCOUNT, "acme/sentiment", ["environment:dev", "environment:prod"])
    (statement,) = trust["Statement"]
    assert statement["Principal"]["Federated"].endswith(":oidc-provider/token.actions.githubusercontent.com")
    assert statement["Condition"]["StringEquals"] == {
        "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
        "token.actions.githubusercontent.com:sub": [
            "repo:acme/sentiment:environment:dev",
            "repo:acme/sentiment:environment:prod",
        ],
    }
    with pytest.raises(ValueError, match="not an owner/repository"):
        deploy_policy.trust_policy(ACCOUNT, "acme/*", ["pull_request"])


def test_the_command_prints_one_role_for_both_stacks(capsys: pytest.CaptureFixture[str]) -> None:
    assert deploy_policy.main(["deploy", "--account", ACCOUNT, "--region", "eu-west-1"]) == 0
    documents = json.loads(capsys.readouterr().out)
    (passrole,) = [s for s in _statements(documents) if s["Sid"] == "PassStackRoles"]
    assert passrole["Resource"] == [
        f"arn:aws:iam::{ACCOUNT}:role/{PROJECT}/dev/*",
        f"arn:aws:iam::{ACCOUNT}:role/{PROJECT}/prod/*",
    ]
    assert all(len(re.sub(r"\s", "", json.dumps(d))) <= MAX_MANAGED_POLICY_CHARS for d in documents)


def test_the_command_refuses_a_bad_account_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        deploy_policy.main(["deploy", "--account", "12345"])
    assert exited.value.code == 2
    assert "--account must be a 12-digit AWS account id" in capsys.readouterr().err
