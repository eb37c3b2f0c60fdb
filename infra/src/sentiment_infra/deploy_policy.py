"""The deploy roles' permissions as code: what ``pulumi up`` / ``pulumi preview`` need, per resource type.

:data:`REQUIRED` is the one table: every resource type (and invoke) the program declares, the IAM actions
managing it takes (create, read, update, delete, tag), each under the :class:`Scope` it acts in, the ARNs it
can touch: this account and region, the model buckets by their name prefix, and the stack's own IAM roles by
their path (``/<project>/<stack>/``, set on every role by :func:`sentiment_infra.iam.role_path_transformation`),
so ``iam:PassRole`` can only hand over the stack's own roles, and only to Lambda or CodeDeploy.
:data:`STATEMENTS`, the deploy policy, is rendered from it (one statement a scope, the union of the actions the
types need there), so it grants nothing no type needs. ``tests/infra/test_deploy_policy.py`` runs the program
under mocks for both stacks and fails when a declared type has no entry in :data:`REQUIRED` or when the rendered
documents do not grant a type's actions on the ARNs of the resources the program creates; ``.ci/lint-security.sh``
runs parliament (its IAM definitions) over the rendered documents, which fails on an action IAM does not know
or a Resource an action cannot be scoped to (``Resource: *`` appears only for the actions AWS allows nothing
else for, each with its reason).

The preview policy is the read-only subset (``Get*``/``Describe*``/``List*`` on the same scopes, no object or
item reads, plus ``ecr:GetAuthorizationToken``, which the program invokes even in a preview).

``python -m sentiment_infra.deploy_policy deploy|preview|trust`` prints the documents (see docs/DEPLOY.md,
"Create the deploy roles").
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

PROJECT = "sentiment-analyzer"
MODEL_BUCKET_PREFIX = "models-bucket-"
"""Pulumi names the model bucket ``models-bucket-<random>`` (component ``models``, resource ``-bucket``)."""
MAX_MANAGED_POLICY_CHARS = 6144
"""IAM's limit for one managed policy document (characters, whitespace not counted)."""
GITHUB_OIDC = "token.actions.githubusercontent.com"


def role_path(project: str, stack: str) -> str:
    """The IAM path of every role of a stack: ``/<project>/<stack>/``."""
    return f"/{project}/{stack}/"


@dataclass(frozen=True, slots=True, eq=False)
class Scope:
    """Where actions act: one statement of the deploy policy, its ``resources`` (ARN templates) and ``conditions``.

    Templates take ``{partition}``, ``{region}``, ``{account}``, ``{project}``, ``{stack}`` and ``{bucket}``.
    ``why`` gives the reason for a ``Resource: *`` (or a scope's less obvious use). Each scope is one object,
    compared and hashed by identity: :data:`REQUIRED` names it, :data:`STATEMENTS` groups by it.
    """

    sid: str
    resources: tuple[str, ...]
    conditions: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    why: str = ""


_LAMBDA_FN = "arn:{partition}:lambda:{region}:{account}:function:*"
_ROLES = "arn:{partition}:iam::{account}:role/{project}/{stack}/*"

MODEL_BUCKET = Scope("ModelBucket", ("arn:{partition}:s3:::{bucket}*",))
MODEL_BUNDLE = Scope(
    "ModelBundle",
    ("arn:{partition}:s3:::{bucket}*/*",),
    why="the model artifact's publish, drift read and delete; force_destroy of a dev bucket",
)
ITEMS_TABLE = Scope("ItemsTable", ("arn:{partition}:dynamodb:{region}:{account}:table/*",))
TOPICS = Scope("Topics", ("arn:{partition}:sns:{region}:{account}:*",))
SUBSCRIPTIONS = Scope(
    "Subscriptions", ("*",), why="subscription actions support no resource-level scoping (AWS requires Resource *)"
)
QUEUES = Scope("Queues", ("arn:{partition}:sqs:{region}:{account}:*",))
CREATE_ALARM_KEY = Scope(
    "CreateAlarmKey", ("*",), why="CreateKey has no resource to scope to (AWS requires Resource *)"
)
ALARM_KEY = Scope("AlarmKey", ("arn:{partition}:kms:{region}:{account}:key/*",))
ECR_LOGIN = Scope("EcrLogin", ("*",), why="GetAuthorizationToken has no resource to scope to (AWS requires Resource *)")
IMAGE_REPOSITORY = Scope(
    "ImageRepository",
    ("arn:{partition}:ecr:{region}:{account}:repository/*",),
    why="push (pulumi-docker), and Lambda's CreateFunction/UpdateFunctionCode read the image as the caller",
)
STACK_ROLES = Scope("StackRoles", (_ROLES,))
PASS_STACK_ROLES = Scope(
    "PassStackRoles",
    (_ROLES,),
    conditions={"StringEquals": {"iam:PassedToService": ["lambda.amazonaws.com", "codedeploy.amazonaws.com"]}},
    why="functions (and CodeDeploy) run as the stack's roles; nothing else can be handed a role",
)
FUNCTIONS = Scope(
    "Functions",
    (_LAMBDA_FN, f"{_LAMBDA_FN}:*"),
    why="functions, their published versions (SnapStart) and aliases; qualified ARNs are function:NAME:QUALIFIER",
)
CREATE_EVENT_SOURCE_MAPPING = Scope(
    "CreateEventSourceMapping",
    ("*",),
    conditions={"ArnLike": {"lambda:FunctionArn": [_LAMBDA_FN, f"{_LAMBDA_FN}:*"]}},
    why="CreateEventSourceMapping has no resource type; the condition keeps it to this account's functions",
)
EVENT_SOURCE_MAPPINGS = Scope(
    "EventSourceMappings", ("arn:{partition}:lambda:{region}:{account}:event-source-mapping:*",)
)
LIST_EVENT_SOURCE_MAPPINGS = Scope(
    "ListEventSourceMappings",
    ("*",),
    why="ListEventSourceMappings has no resource type (AWS requires Resource *); it only reads",
)
LOG_GROUPS = Scope("LogGroups", ("arn:{partition}:logs:{region}:{account}:log-group:*",))
DESCRIBE_LOG_GROUPS = Scope(
    "DescribeLogGroups",
    ("*",),
    why="DescribeLogGroups supports no resource-level scoping (AWS requires Resource *); it only lists",
)
ALARMS = Scope("Alarms", ("arn:{partition}:cloudwatch:{region}:{account}:alarm:*",))
OPERATIONS_DASHBOARD = Scope(
    "OperationsDashboard", ("arn:{partition}:cloudwatch::{account}:dashboard/{project}-{stack}-*",)
)
SCHEDULE = Scope("Schedule", ("arn:{partition}:events:{region}:{account}:rule/*",))
DASHBOARD_DISTRIBUTION = Scope("DashboardDistribution", ("arn:{partition}:cloudfront::{account}:distribution/*",))
DASHBOARD_ORIGIN_ACCESS = Scope(
    "DashboardOriginAccess", ("arn:{partition}:cloudfront::{account}:origin-access-control/*",)
)
CREATE_DASHBOARD_ORIGIN_ACCESS = Scope(
    "CreateDashboardOriginAccess",
    ("*",),
    why="CreateOriginAccessControl has no resource to scope to (AWS requires Resource *)",
)
DASHBOARD_CACHE_POLICY = Scope("DashboardCachePolicy", ("arn:{partition}:cloudfront::{account}:cache-policy/*",))
ROLLOUT = Scope(
    "Rollout",
    (
        "arn:{partition}:codedeploy:{region}:{account}:application:*",
        "arn:{partition}:codedeploy:{region}:{account}:deploymentgroup:*",
        "arn:{partition}:codedeploy:{region}:{account}:deploymentconfig:*",
    ),
)
STOP_ROLLOUT = Scope(
    "StopRollout", ("*",), why="StopDeployment supports no resource-level scoping (AWS requires Resource *)"
)

REQUIRED: dict[str, dict[Scope, tuple[str, ...]]] = {
    "aws:s3/bucket:Bucket": {
        MODEL_BUCKET: (
            "s3:CreateBucket",
            "s3:DeleteBucket",
            "s3:ListBucket",
            "s3:ListBucketVersions",
            "s3:GetBucketLocation",
            "s3:GetBucketAcl",
            "s3:GetBucketCORS",
            "s3:GetBucketWebsite",
            "s3:GetBucketVersioning",
            "s3:GetAccelerateConfiguration",
            "s3:GetBucketRequestPayment",
            "s3:GetBucketLogging",
            "s3:GetLifecycleConfiguration",
            "s3:GetReplicationConfiguration",
            "s3:GetEncryptionConfiguration",
            "s3:GetBucketObjectLockConfiguration",
            "s3:GetBucketTagging",
            "s3:PutBucketTagging",
            "s3:GetBucketPolicy",
        ),
        MODEL_BUNDLE: ("s3:DeleteObject", "s3:DeleteObjectVersion"),  # force_destroy empties a dev bucket
    },
    "aws:s3/bucketVersioning:BucketVersioning": {
        MODEL_BUCKET: ("s3:GetBucketVersioning", "s3:PutBucketVersioning"),
    },
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": {
        MODEL_BUCKET: ("s3:GetEncryptionConfiguration", "s3:PutEncryptionConfiguration"),
    },
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": {
        MODEL_BUCKET: ("s3:GetLifecycleConfiguration", "s3:PutLifecycleConfiguration"),
    },
    "aws:s3/bucketPolicy:BucketPolicy": {
        MODEL_BUCKET: ("s3:GetBucketPolicy", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy"),
    },
    # DeleteBucketOwnershipControls / DeletePublicAccessBlock are authorized by the Put* actions (S3 API reference)
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": {
        MODEL_BUCKET: ("s3:GetBucketOwnershipControls", "s3:PutBucketOwnershipControls"),
    },
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": {
        MODEL_BUCKET: ("s3:GetBucketPublicAccessBlock", "s3:PutBucketPublicAccessBlock"),
    },
    "pulumi-python:dynamic/model:Artifact": {
        MODEL_BUNDLE: (
            "s3:PutObject",
            "s3:GetObject",
            "s3:GetObjectVersion",
            "s3:DeleteObject",
            "s3:DeleteObjectVersion",
            "s3:AbortMultipartUpload",
        ),
    },
    "aws:dynamodb/table:Table": {
        ITEMS_TABLE: (
            "dynamodb:CreateTable",
            "dynamodb:DescribeTable",
            "dynamodb:UpdateTable",
            "dynamodb:DeleteTable",
            "dynamodb:DescribeContinuousBackups",
            "dynamodb:UpdateContinuousBackups",
            "dynamodb:DescribeTimeToLive",
            "dynamodb:UpdateTimeToLive",
            "dynamodb:DescribeKinesisStreamingDestination",
            "dynamodb:GetResourcePolicy",
            "dynamodb:ListTagsOfResource",
            "dynamodb:TagResource",
            "dynamodb:UntagResource",
        ),
    },
    "aws:sns/topic:Topic": {
        TOPICS: (
            "sns:CreateTopic",
            "sns:DeleteTopic",
            "sns:GetTopicAttributes",
            "sns:SetTopicAttributes",
            "sns:ListTagsForResource",
            "sns:TagResource",
            "sns:UntagResource",
        ),
    },
    "aws:sns/topicPolicy:TopicPolicy": {
        TOPICS: ("sns:GetTopicAttributes", "sns:SetTopicAttributes"),
    },
    "aws:sns/topicSubscription:TopicSubscription": {
        TOPICS: ("sns:Subscribe", "sns:ListSubscriptionsByTopic"),
        SUBSCRIPTIONS: ("sns:Unsubscribe", "sns:GetSubscriptionAttributes", "sns:SetSubscriptionAttributes"),
    },
    "aws:sqs/queue:Queue": {
        QUEUES: (
            "sqs:CreateQueue",
            "sqs:DeleteQueue",
            "sqs:GetQueueAttributes",
            "sqs:SetQueueAttributes",
            "sqs:GetQueueUrl",
            "sqs:ListQueueTags",
            "sqs:TagQueue",
            "sqs:UntagQueue",
        ),
    },
    "aws:sqs/queuePolicy:QueuePolicy": {
        QUEUES: ("sqs:GetQueueAttributes", "sqs:SetQueueAttributes"),
    },
    "aws:sqs/redriveAllowPolicy:RedriveAllowPolicy": {
        QUEUES: ("sqs:GetQueueAttributes", "sqs:SetQueueAttributes"),
    },
    "aws:kms/key:Key": {
        CREATE_ALARM_KEY: ("kms:CreateKey",),
        ALARM_KEY: (
            "kms:DescribeKey",
            "kms:GetKeyPolicy",
            "kms:PutKeyPolicy",
            "kms:GetKeyRotationStatus",
            "kms:EnableKeyRotation",
            "kms:DisableKeyRotation",
            "kms:UpdateKeyDescription",
            "kms:ScheduleKeyDeletion",
            "kms:ListResourceTags",
            "kms:TagResource",
            "kms:UntagResource",
        ),
    },
    "aws:ecr/getAuthorizationToken:getAuthorizationToken": {
        ECR_LOGIN: ("ecr:GetAuthorizationToken",),
    },
    "aws:ecr/repository:Repository": {
        IMAGE_REPOSITORY: (
            "ecr:CreateRepository",
            "ecr:DescribeRepositories",
            "ecr:DeleteRepository",
            "ecr:PutImageScanningConfiguration",
            "ecr:PutImageTagMutability",
            "ecr:ListTagsForResource",
            "ecr:TagResource",
            "ecr:UntagResource",
            "ecr:BatchDeleteImage",
        ),
    },
    "aws:ecr/lifecyclePolicy:LifecyclePolicy": {
        IMAGE_REPOSITORY: ("ecr:GetLifecyclePolicy", "ecr:PutLifecyclePolicy", "ecr:DeleteLifecyclePolicy"),
    },
    "aws:ecr/repositoryPolicy:RepositoryPolicy": {
        IMAGE_REPOSITORY: ("ecr:GetRepositoryPolicy", "ecr:SetRepositoryPolicy", "ecr:DeleteRepositoryPolicy"),
    },
    "docker:index/image:Image": {
        ECR_LOGIN: ("ecr:GetAuthorizationToken",),
        IMAGE_REPOSITORY: (
            "ecr:BatchCheckLayerAvailability",
            "ecr:InitiateLayerUpload",
            "ecr:UploadLayerPart",
            "ecr:CompleteLayerUpload",
            "ecr:PutImage",
            "ecr:BatchGetImage",
            "ecr:DescribeImages",
        ),
    },
    "aws:iam/role:Role": {
        STACK_ROLES: (
            "iam:CreateRole",
            "iam:GetRole",
            "iam:DeleteRole",
            "iam:UpdateRole",
            "iam:UpdateAssumeRolePolicy",
            "iam:TagRole",
            "iam:UntagRole",
            "iam:ListRoleTags",
            "iam:ListRolePolicies",
            "iam:ListAttachedRolePolicies",
            "iam:ListInstanceProfilesForRole",
        ),
    },
    "aws:iam/rolePolicy:RolePolicy": {
        STACK_ROLES: ("iam:GetRolePolicy", "iam:PutRolePolicy", "iam:DeleteRolePolicy"),
    },
    "aws:lambda/function:Function": {
        # an image function: Lambda reads the image with the caller's permissions
        IMAGE_REPOSITORY: ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"),
        PASS_STACK_ROLES: ("iam:PassRole",),
        FUNCTIONS: (
            "lambda:CreateFunction",
            "lambda:GetFunction",
            "lambda:GetFunctionConfiguration",
            "lambda:UpdateFunctionCode",
            "lambda:UpdateFunctionConfiguration",
            "lambda:DeleteFunction",
            "lambda:PublishVersion",
            "lambda:ListVersionsByFunction",
            "lambda:GetFunctionCodeSigningConfig",
            "lambda:GetRuntimeManagementConfig",
            "lambda:PutFunctionConcurrency",
            "lambda:DeleteFunctionConcurrency",
            "lambda:GetFunctionConcurrency",
            "lambda:ListTags",
            "lambda:TagResource",
            "lambda:UntagResource",
        ),
    },
    "aws:lambda/alias:Alias": {
        FUNCTIONS: ("lambda:CreateAlias", "lambda:GetAlias", "lambda:UpdateAlias", "lambda:DeleteAlias"),
    },
    "aws:lambda/permission:Permission": {
        FUNCTIONS: ("lambda:AddPermission", "lambda:RemovePermission", "lambda:GetPolicy"),
    },
    "aws:lambda/functionUrl:FunctionUrl": {
        FUNCTIONS: (
            "lambda:CreateFunctionUrlConfig",
            "lambda:GetFunctionUrlConfig",
            "lambda:UpdateFunctionUrlConfig",
            "lambda:DeleteFunctionUrlConfig",
        ),
    },
    "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig": {
        FUNCTIONS: (
            "lambda:PutFunctionEventInvokeConfig",
            "lambda:GetFunctionEventInvokeConfig",
            "lambda:UpdateFunctionEventInvokeConfig",
            "lambda:DeleteFunctionEventInvokeConfig",
        ),
    },
    "aws:lambda/eventSourceMapping:EventSourceMapping": {
        CREATE_EVENT_SOURCE_MAPPING: ("lambda:CreateEventSourceMapping",),
        EVENT_SOURCE_MAPPINGS: (
            "lambda:ListTags",
            "lambda:TagResource",
            "lambda:UntagResource",
            "lambda:GetEventSourceMapping",
            "lambda:UpdateEventSourceMapping",
            "lambda:DeleteEventSourceMapping",
        ),
        LIST_EVENT_SOURCE_MAPPINGS: ("lambda:ListEventSourceMappings",),
    },
    "aws:cloudwatch/logGroup:LogGroup": {
        LOG_GROUPS: (
            "logs:CreateLogGroup",
            "logs:DeleteLogGroup",
            "logs:PutRetentionPolicy",
            "logs:DeleteRetentionPolicy",
            "logs:ListTagsForResource",
            "logs:TagResource",
            "logs:UntagResource",
            "logs:ListTagsLogGroup",
            "logs:TagLogGroup",
            "logs:UntagLogGroup",
        ),
        DESCRIBE_LOG_GROUPS: ("logs:DescribeLogGroups",),
    },
    "aws:cloudwatch/metricAlarm:MetricAlarm": {
        ALARMS: (
            "cloudwatch:PutMetricAlarm",
            "cloudwatch:DescribeAlarms",
            "cloudwatch:DeleteAlarms",
            "cloudwatch:ListTagsForResource",
            "cloudwatch:TagResource",
            "cloudwatch:UntagResource",
        ),
    },
    "aws:cloudwatch/dashboard:Dashboard": {
        OPERATIONS_DASHBOARD: ("cloudwatch:PutDashboard", "cloudwatch:GetDashboard", "cloudwatch:DeleteDashboards"),
    },
    "aws:cloudwatch/eventRule:EventRule": {
        SCHEDULE: (
            "events:PutRule",
            "events:DescribeRule",
            "events:DeleteRule",
            "events:EnableRule",
            "events:DisableRule",
            "events:ListTagsForResource",
            "events:TagResource",
            "events:UntagResource",
        ),
    },
    "aws:cloudwatch/eventTarget:EventTarget": {
        SCHEDULE: ("events:PutTargets", "events:RemoveTargets", "events:ListTargetsByRule"),
    },
    "aws:cloudfront/distribution:Distribution": {
        DASHBOARD_DISTRIBUTION: (
            "cloudfront:CreateDistribution",
            "cloudfront:GetDistribution",
            "cloudfront:GetDistributionConfig",
            "cloudfront:UpdateDistribution",
            "cloudfront:DeleteDistribution",
            "cloudfront:ListTagsForResource",
            "cloudfront:TagResource",
            "cloudfront:UntagResource",
        ),
    },
    "aws:cloudfront/originAccessControl:OriginAccessControl": {
        DASHBOARD_ORIGIN_ACCESS: (
            "cloudfront:GetOriginAccessControl",
            "cloudfront:UpdateOriginAccessControl",
            "cloudfront:DeleteOriginAccessControl",
        ),
        CREATE_DASHBOARD_ORIGIN_ACCESS: ("cloudfront:CreateOriginAccessControl",),
    },
    "aws:cloudfront/cachePolicy:CachePolicy": {
        DASHBOARD_CACHE_POLICY: (
            "cloudfront:CreateCachePolicy",
            "cloudfront:GetCachePolicy",
            "cloudfront:UpdateCachePolicy",
            "cloudfront:DeleteCachePolicy",
        ),
    },
    "aws:codedeploy/application:Application": {
        ROLLOUT: (
            "codedeploy:CreateApplication",
            "codedeploy:GetApplication",
            "codedeploy:UpdateApplication",
            "codedeploy:DeleteApplication",
            "codedeploy:ListTagsForResource",
            "codedeploy:TagResource",
            "codedeploy:UntagResource",
        ),
    },
    "aws:codedeploy/deploymentGroup:DeploymentGroup": {
        PASS_STACK_ROLES: ("iam:PassRole",),
        ROLLOUT: (
            "codedeploy:CreateDeploymentGroup",
            "codedeploy:GetDeploymentGroup",
            "codedeploy:UpdateDeploymentGroup",
            "codedeploy:DeleteDeploymentGroup",
            "codedeploy:ListTagsForResource",
            "codedeploy:TagResource",
            "codedeploy:UntagResource",
        ),
    },
    "pulumi-python:dynamic/release:Rollout": {
        FUNCTIONS: ("lambda:GetFunctionConfiguration", "lambda:GetAlias"),
        ROLLOUT: (
            "codedeploy:CreateDeployment",
            "codedeploy:GetDeployment",
            "codedeploy:RegisterApplicationRevision",
            "codedeploy:GetApplicationRevision",
            "codedeploy:GetDeploymentConfig",
        ),
        STOP_ROLLOUT: ("codedeploy:StopDeployment",),
    },
}
"""Resource type (or invoke token) → the scopes it acts in → the actions managing it takes there.

Every declared type must be listed; the deploy policy is rendered from this table alone."""


def _grouped(required: Mapping[str, Mapping[Scope, Sequence[str]]]) -> dict[Scope, frozenset[str]]:
    statements: dict[Scope, set[str]] = {}
    for scopes in required.values():
        for scope, actions in scopes.items():
            statements.setdefault(scope, set()).update(actions)
    return {scope: frozenset(actions) for scope, actions in statements.items()}


STATEMENTS = _grouped(REQUIRED)
"""The deploy policy: each scope with every action some type needs in it (in the order the scopes first appear)."""

NO_AWS_ACTIONS = frozenset(
    {
        "aws:index/getCallerIdentity:getCallerIdentity",  # sts:GetCallerIdentity needs no permission
        "aws:index/getRegion:getRegion",  # the provider's configured region, no call
        "aws:index/getPartition:getPartition",  # likewise
        "aws:iam/getPolicyDocument:getPolicyDocument",  # rendered locally
    }
)
"""Invokes the program makes that call no AWS API needing a permission."""

_READ = re.compile(r"^[a-z0-9-]+:(Get|Describe|List)[A-Za-z]*$")
_DATA_READS = frozenset(
    {"s3:GetObject", "s3:GetObjectVersion", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "kms:GetKeyPolicy"}
)
"""Reads of content (bundles, image layers) or of a key policy: not for previews."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where the roles act: the values of the ARN templates."""

    account: str
    region: str
    stack: str
    partition: str = "aws"
    project: str = PROJECT

    def render(self, template: str) -> str:
        return template.format(**asdict(self), bucket=MODEL_BUCKET_PREFIX)


def _statement(scope: Scope, actions: Iterable[str], target: Target) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Sid": scope.sid,
        "Effect": "Allow",
        "Action": sorted(actions),
        "Resource": [target.render(r) for r in scope.resources],
    }
    if scope.conditions:
        statement["Condition"] = {
            test: {key: [target.render(v) for v in values] for key, values in variables.items()}
            for test, variables in scope.conditions.items()
        }
    return statement


def _size(document: Mapping[str, Any]) -> int:
    return len(re.sub(r"\s", "", json.dumps(document)))


def _pack(statements: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Statements into as few documents as fit IAM's managed-policy size limit each."""
    documents: list[dict[str, Any]] = []
    for statement in statements:
        if documents and _size({**documents[-1], "Statement": [*documents[-1]["Statement"], statement]}) <= (
            MAX_MANAGED_POLICY_CHARS
        ):
            documents[-1]["Statement"].append(statement)
        else:
            documents.append({"Version": "2012-10-17", "Statement": [statement]})
    return documents


def deploy_policy(target: Target) -> list[dict[str, Any]]:
    """The deploy role's managed policies (``pulumi up`` and ``destroy`` of ``target.stack``)."""
    return _pack(_statement(scope, actions, target) for scope, actions in STATEMENTS.items())


def preview_policy(target: Target) -> list[dict[str, Any]]:
    """The preview role's managed policies: the reads of the deploy policy, on the same scopes."""
    statements = []
    for scope, actions in STATEMENTS.items():
        reads = [a for a in actions if _READ.match(a) and a not in _DATA_READS]
        if scope is ECR_LOGIN:
            reads = list(actions)  # the program invokes it in every preview
        if reads:
            statements.append(_statement(scope, reads, target))
    return _pack(statements)


def trust_policy(account: str, repository: str, subjects: Sequence[str]) -> dict[str, Any]:
    """Trust of a role assumed by GitHub Actions through OIDC, for the given ``sub`` claims of ``repository``.

    ``subjects`` are the claim's tail: ``environment:dev``, ``environment:preview``, ``pull_request``, ...
    """
    if not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", repository):
        raise ValueError(f"not an owner/repository: {repository!r}")
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "GitHubActions",
                "Effect": "Allow",
                "Principal": {"Federated": f"arn:aws:iam::{account}:oidc-provider/{GITHUB_OIDC}"},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        f"{GITHUB_OIDC}:aud": "sts.amazonaws.com",
                        f"{GITHUB_OIDC}:sub": [f"repo:{repository}:{s}" for s in subjects],
                    }
                },
            }
        ],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sentiment_infra.deploy_policy",
        description="Print the deploy or preview role's IAM policies (JSON list of documents) or a GitHub OIDC trust.",
    )
    parser.add_argument("kind", choices=["deploy", "preview", "trust"])
    parser.add_argument("--account", required=True, help="12-digit AWS account id")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--partition", default="aws")
    parser.add_argument("--stack", action="append", help="stack(s) the role deploys (repeat; default dev and prod)")
    parser.add_argument("--repository", help="owner/name (trust only)")
    parser.add_argument("--subject", action="append", help="sub claim tail, e.g. environment:dev (trust only)")
    args = parser.parse_args(argv)
    if not re.fullmatch(r"\d{12}", args.account):
        parser.error(f"--account must be a 12-digit AWS account id, not {args.account!r}")
    if args.kind == "trust":
        if not args.repository or not args.subject:
            parser.error("trust needs --repository OWNER/NAME and at least one --subject")
        try:
            document: Any = trust_policy(args.account, args.repository, args.subject)
        except ValueError as exc:
            parser.error(str(exc))
    else:
        build = deploy_policy if args.kind == "deploy" else preview_policy
        document = []
        for stack in args.stack or ["dev", "prod"]:
            target = Target(account=args.account, region=args.region, stack=stack, partition=args.partition)
            document.extend(build(target))
        document = _merge_stacks(document)
    sys.stdout.write(json.dumps(document, indent=2) + "\n")
    return 0


def _merge_stacks(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One role for several stacks: statements with the same Sid are merged (resources unioned), then packed."""
    merged: dict[str, dict[str, Any]] = {}
    for document in documents:
        for statement in document["Statement"]:
            kept = merged.setdefault(statement["Sid"], {**statement, "Resource": []})
            kept["Resource"] = sorted({*kept["Resource"], *statement["Resource"]})
            if "Condition" in statement:
                for test, variables in statement["Condition"].items():
                    for key, values in variables.items():
                        old = kept["Condition"][test][key]
                        kept["Condition"][test][key] = sorted({*old, *values})
    return _pack(merged.values())


if __name__ == "__main__":
    raise SystemExit(main())
