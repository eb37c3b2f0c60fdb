"""The deploy roles' permissions as code: what ``pulumi up`` / ``pulumi preview`` need, per resource type.

:data:`REQUIRED` maps every resource type (and invoke) the program declares to the IAM actions managing it
takes (create, read, update, delete, tag). :data:`STATEMENTS` is the deploy policy, written per service with
each action scoped to the ARNs it can touch: this account and region, the model buckets by their name prefix,
and the stack's own IAM roles by their path (``/<project>/<stack>/``, set on every role by
:func:`sentiment_infra.iam.role_path_transformation`), so ``iam:PassRole`` can only hand over the stack's own
roles, and only to Lambda or CodeDeploy. ``tests/infra/test_deploy_policy.py`` runs the program under mocks for
both stacks and fails when a declared type has no entry in :data:`REQUIRED`, when a required action is not
granted by the rendered documents, or when the documents grant an action no type needs; ``.ci/lint-security.sh``
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
from dataclasses import dataclass, field
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


@dataclass(frozen=True, slots=True)
class Grant:
    """One statement of the deploy policy: ``actions`` on ``resources`` (ARN templates), optionally conditioned.

    Templates take ``{partition}``, ``{region}``, ``{account}``, ``{project}``, ``{stack}`` and ``{bucket}``.
    """

    sid: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    conditions: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    why: str = ""


_LAMBDA_FN = "arn:{partition}:lambda:{region}:{account}:function:*"
_ROLES = "arn:{partition}:iam::{account}:role/{project}/{stack}/*"

STATEMENTS: tuple[Grant, ...] = (
    # ---------------------------------------------------------------- S3: the model bucket and its bundle
    Grant(
        "ModelBucket",
        (
            "s3:CreateBucket",
            "s3:DeleteBucket",
            "s3:ListBucket",
            "s3:ListBucketVersions",
            "s3:GetBucketLocation",
            "s3:GetBucketAcl",
            "s3:GetBucketCORS",
            "s3:GetBucketWebsite",
            "s3:GetBucketVersioning",
            "s3:PutBucketVersioning",
            "s3:GetAccelerateConfiguration",
            "s3:GetBucketRequestPayment",
            "s3:GetBucketLogging",
            "s3:GetLifecycleConfiguration",
            "s3:PutLifecycleConfiguration",
            "s3:GetReplicationConfiguration",
            "s3:GetEncryptionConfiguration",
            "s3:PutEncryptionConfiguration",
            "s3:GetBucketObjectLockConfiguration",
            "s3:GetBucketTagging",
            "s3:PutBucketTagging",
            "s3:GetBucketPolicy",
            "s3:PutBucketPolicy",
            "s3:DeleteBucketPolicy",
            "s3:GetBucketOwnershipControls",
            "s3:PutBucketOwnershipControls",
            "s3:GetBucketPublicAccessBlock",
            "s3:PutBucketPublicAccessBlock",
        ),
        ("arn:{partition}:s3:::{bucket}*",),
    ),
    Grant(
        "ModelBundle",
        (
            "s3:PutObject",
            "s3:GetObject",
            "s3:GetObjectVersion",
            "s3:DeleteObject",
            "s3:DeleteObjectVersion",
            "s3:AbortMultipartUpload",
        ),
        ("arn:{partition}:s3:::{bucket}*/*",),
        why="the model artifact's publish, drift read and delete; force_destroy of a dev bucket",
    ),
    # ---------------------------------------------------------------- DynamoDB
    Grant(
        "ItemsTable",
        (
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
        ("arn:{partition}:dynamodb:{region}:{account}:table/*",),
    ),
    # ---------------------------------------------------------------- SNS, SQS
    Grant(
        "Topics",
        (
            "sns:CreateTopic",
            "sns:DeleteTopic",
            "sns:GetTopicAttributes",
            "sns:SetTopicAttributes",
            "sns:Subscribe",
            "sns:ListSubscriptionsByTopic",
            "sns:ListTagsForResource",
            "sns:TagResource",
            "sns:UntagResource",
        ),
        ("arn:{partition}:sns:{region}:{account}:*",),
    ),
    Grant(
        "Subscriptions",
        ("sns:Unsubscribe", "sns:GetSubscriptionAttributes", "sns:SetSubscriptionAttributes"),
        ("*",),
        why="subscription actions support no resource-level scoping (AWS requires Resource *)",
    ),
    Grant(
        "Queues",
        (
            "sqs:CreateQueue",
            "sqs:DeleteQueue",
            "sqs:GetQueueAttributes",
            "sqs:SetQueueAttributes",
            "sqs:GetQueueUrl",
            "sqs:ListQueueTags",
            "sqs:TagQueue",
            "sqs:UntagQueue",
        ),
        ("arn:{partition}:sqs:{region}:{account}:*",),
    ),
    # ---------------------------------------------------------------- KMS: the alarm topic's key
    Grant(
        "CreateAlarmKey",
        ("kms:CreateKey",),
        ("*",),
        why="CreateKey has no resource to scope to (AWS requires Resource *)",
    ),
    Grant(
        "AlarmKey",
        (
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
        ("arn:{partition}:kms:{region}:{account}:key/*",),
    ),
    # ---------------------------------------------------------------- ECR: repository and image push
    Grant(
        "EcrLogin",
        ("ecr:GetAuthorizationToken",),
        ("*",),
        why="GetAuthorizationToken has no resource to scope to (AWS requires Resource *)",
    ),
    Grant(
        "ImageRepository",
        (
            "ecr:CreateRepository",
            "ecr:DescribeRepositories",
            "ecr:DeleteRepository",
            "ecr:PutImageScanningConfiguration",
            "ecr:PutImageTagMutability",
            "ecr:ListTagsForResource",
            "ecr:TagResource",
            "ecr:UntagResource",
            "ecr:GetLifecyclePolicy",
            "ecr:PutLifecyclePolicy",
            "ecr:DeleteLifecyclePolicy",
            "ecr:GetRepositoryPolicy",
            "ecr:SetRepositoryPolicy",
            "ecr:DeleteRepositoryPolicy",
            "ecr:BatchCheckLayerAvailability",
            "ecr:InitiateLayerUpload",
            "ecr:UploadLayerPart",
            "ecr:CompleteLayerUpload",
            "ecr:PutImage",
            "ecr:BatchGetImage",
            "ecr:GetDownloadUrlForLayer",
            "ecr:DescribeImages",
            "ecr:BatchDeleteImage",
        ),
        ("arn:{partition}:ecr:{region}:{account}:repository/*",),
        why="push (pulumi-docker), and Lambda's CreateFunction/UpdateFunctionCode read the image as the caller",
    ),
    # ---------------------------------------------------------------- IAM: the stack's own roles only
    Grant(
        "StackRoles",
        (
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
            "iam:GetRolePolicy",
            "iam:PutRolePolicy",
            "iam:DeleteRolePolicy",
        ),
        (_ROLES,),
    ),
    Grant(
        "PassStackRoles",
        ("iam:PassRole",),
        (_ROLES,),
        conditions={"StringEquals": {"iam:PassedToService": ["lambda.amazonaws.com", "codedeploy.amazonaws.com"]}},
        why="functions (and CodeDeploy) run as the stack's roles; nothing else can be handed a role",
    ),
    # ---------------------------------------------------------------- Lambda
    Grant(
        "Functions",
        (
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
            "lambda:CreateAlias",
            "lambda:GetAlias",
            "lambda:UpdateAlias",
            "lambda:DeleteAlias",
            "lambda:AddPermission",
            "lambda:RemovePermission",
            "lambda:GetPolicy",
            "lambda:CreateFunctionUrlConfig",
            "lambda:GetFunctionUrlConfig",
            "lambda:UpdateFunctionUrlConfig",
            "lambda:DeleteFunctionUrlConfig",
            "lambda:PutFunctionEventInvokeConfig",
            "lambda:GetFunctionEventInvokeConfig",
            "lambda:UpdateFunctionEventInvokeConfig",
            "lambda:DeleteFunctionEventInvokeConfig",
        ),
        (_LAMBDA_FN, f"{_LAMBDA_FN}:*"),
        why="functions, their published versions (SnapStart) and aliases; qualified ARNs are function:NAME:QUALIFIER",
    ),
    Grant(
        "CreateEventSourceMapping",
        ("lambda:CreateEventSourceMapping",),
        ("*",),
        conditions={"ArnLike": {"lambda:FunctionArn": [_LAMBDA_FN, f"{_LAMBDA_FN}:*"]}},
        why="CreateEventSourceMapping has no resource type; the condition keeps it to this account's functions",
    ),
    Grant(
        "EventSourceMappings",
        (
            "lambda:GetEventSourceMapping",
            "lambda:UpdateEventSourceMapping",
            "lambda:DeleteEventSourceMapping",
            "lambda:ListTags",
            "lambda:TagResource",
            "lambda:UntagResource",
        ),
        ("arn:{partition}:lambda:{region}:{account}:event-source-mapping:*",),
    ),
    Grant(
        "ListEventSourceMappings",
        ("lambda:ListEventSourceMappings",),
        ("*",),
        why="ListEventSourceMappings has no resource type (AWS requires Resource *); it only reads",
    ),
    # ---------------------------------------------------------------- logs, alarms, dashboards, schedule
    Grant(
        "LogGroups",
        (
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
        ("arn:{partition}:logs:{region}:{account}:log-group:*",),
    ),
    Grant(
        "DescribeLogGroups",
        ("logs:DescribeLogGroups",),
        ("*",),
        why="DescribeLogGroups supports no resource-level scoping (AWS requires Resource *); it only lists",
    ),
    Grant(
        "Alarms",
        (
            "cloudwatch:PutMetricAlarm",
            "cloudwatch:DescribeAlarms",
            "cloudwatch:DeleteAlarms",
            "cloudwatch:ListTagsForResource",
            "cloudwatch:TagResource",
            "cloudwatch:UntagResource",
        ),
        ("arn:{partition}:cloudwatch:{region}:{account}:alarm:*",),
    ),
    Grant(
        "OperationsDashboard",
        ("cloudwatch:PutDashboard", "cloudwatch:GetDashboard", "cloudwatch:DeleteDashboards"),
        ("arn:{partition}:cloudwatch::{account}:dashboard/{project}-{stack}-*",),
    ),
    Grant(
        "Schedule",
        (
            "events:PutRule",
            "events:DescribeRule",
            "events:DeleteRule",
            "events:EnableRule",
            "events:DisableRule",
            "events:PutTargets",
            "events:RemoveTargets",
            "events:ListTargetsByRule",
            "events:ListTagsForResource",
            "events:TagResource",
            "events:UntagResource",
        ),
        ("arn:{partition}:events:{region}:{account}:rule/*",),
    ),
    # ---------------------------------------------------------------- CloudFront: the hosted dashboard
    Grant(
        "DashboardDistribution",
        (
            "cloudfront:CreateDistribution",
            "cloudfront:GetDistribution",
            "cloudfront:GetDistributionConfig",
            "cloudfront:UpdateDistribution",
            "cloudfront:DeleteDistribution",
            "cloudfront:ListTagsForResource",
            "cloudfront:TagResource",
            "cloudfront:UntagResource",
        ),
        ("arn:{partition}:cloudfront::{account}:distribution/*",),
    ),
    Grant(
        "DashboardOriginAccess",
        (
            "cloudfront:GetOriginAccessControl",
            "cloudfront:UpdateOriginAccessControl",
            "cloudfront:DeleteOriginAccessControl",
        ),
        ("arn:{partition}:cloudfront::{account}:origin-access-control/*",),
    ),
    Grant(
        "CreateDashboardOriginAccess",
        ("cloudfront:CreateOriginAccessControl",),
        ("*",),
        why="CreateOriginAccessControl has no resource to scope to (AWS requires Resource *)",
    ),
    Grant(
        "DashboardCachePolicy",
        (
            "cloudfront:CreateCachePolicy",
            "cloudfront:GetCachePolicy",
            "cloudfront:UpdateCachePolicy",
            "cloudfront:DeleteCachePolicy",
        ),
        ("arn:{partition}:cloudfront::{account}:cache-policy/*",),
    ),
    # ---------------------------------------------------------------- CodeDeploy: the analysis rollout
    Grant(
        "Rollout",
        (
            "codedeploy:CreateApplication",
            "codedeploy:GetApplication",
            "codedeploy:UpdateApplication",
            "codedeploy:DeleteApplication",
            "codedeploy:CreateDeploymentGroup",
            "codedeploy:GetDeploymentGroup",
            "codedeploy:UpdateDeploymentGroup",
            "codedeploy:DeleteDeploymentGroup",
            "codedeploy:ListTagsForResource",
            "codedeploy:TagResource",
            "codedeploy:UntagResource",
            "codedeploy:CreateDeployment",
            "codedeploy:GetDeployment",
            "codedeploy:RegisterApplicationRevision",
            "codedeploy:GetApplicationRevision",
            "codedeploy:GetDeploymentConfig",
        ),
        (
            "arn:{partition}:codedeploy:{region}:{account}:application:*",
            "arn:{partition}:codedeploy:{region}:{account}:deploymentgroup:*",
            "arn:{partition}:codedeploy:{region}:{account}:deploymentconfig:*",
        ),
    ),
    Grant(
        "StopRollout",
        ("codedeploy:StopDeployment",),
        ("*",),
        why="StopDeployment supports no resource-level scoping (AWS requires Resource *)",
    ),
)

REQUIRED: dict[str, frozenset[str]] = {
    "aws:s3/bucket:Bucket": frozenset(
        {
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
            "s3:DeleteObject",
            "s3:DeleteObjectVersion",
        }
    ),
    "aws:s3/bucketVersioning:BucketVersioning": frozenset({"s3:GetBucketVersioning", "s3:PutBucketVersioning"}),
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": frozenset(
        {"s3:GetEncryptionConfiguration", "s3:PutEncryptionConfiguration"}
    ),
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": frozenset(
        {"s3:GetLifecycleConfiguration", "s3:PutLifecycleConfiguration"}
    ),
    "aws:s3/bucketPolicy:BucketPolicy": frozenset(
        {"s3:GetBucketPolicy", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy"}
    ),
    # DeleteBucketOwnershipControls / DeletePublicAccessBlock are authorized by the Put* actions (S3 API reference)
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": frozenset(
        {"s3:GetBucketOwnershipControls", "s3:PutBucketOwnershipControls"}
    ),
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": frozenset(
        {"s3:GetBucketPublicAccessBlock", "s3:PutBucketPublicAccessBlock"}
    ),
    "pulumi-python:dynamic/model:Artifact": frozenset(
        {
            "s3:PutObject",
            "s3:GetObject",
            "s3:GetObjectVersion",
            "s3:DeleteObject",
            "s3:DeleteObjectVersion",
            "s3:AbortMultipartUpload",
        }
    ),
    "aws:dynamodb/table:Table": frozenset(
        {
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
        }
    ),
    "aws:sns/topic:Topic": frozenset(
        {
            "sns:CreateTopic",
            "sns:DeleteTopic",
            "sns:GetTopicAttributes",
            "sns:SetTopicAttributes",
            "sns:ListTagsForResource",
            "sns:TagResource",
            "sns:UntagResource",
        }
    ),
    "aws:sns/topicPolicy:TopicPolicy": frozenset({"sns:GetTopicAttributes", "sns:SetTopicAttributes"}),
    "aws:sns/topicSubscription:TopicSubscription": frozenset(
        {
            "sns:Subscribe",
            "sns:Unsubscribe",
            "sns:GetSubscriptionAttributes",
            "sns:SetSubscriptionAttributes",
            "sns:ListSubscriptionsByTopic",
        }
    ),
    "aws:sqs/queue:Queue": frozenset(
        {
            "sqs:CreateQueue",
            "sqs:DeleteQueue",
            "sqs:GetQueueAttributes",
            "sqs:SetQueueAttributes",
            "sqs:GetQueueUrl",
            "sqs:ListQueueTags",
            "sqs:TagQueue",
            "sqs:UntagQueue",
        }
    ),
    "aws:sqs/queuePolicy:QueuePolicy": frozenset({"sqs:GetQueueAttributes", "sqs:SetQueueAttributes"}),
    "aws:sqs/redriveAllowPolicy:RedriveAllowPolicy": frozenset({"sqs:GetQueueAttributes", "sqs:SetQueueAttributes"}),
    "aws:kms/key:Key": frozenset(
        {
            "kms:CreateKey",
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
        }
    ),
    "aws:ecr/getAuthorizationToken:getAuthorizationToken": frozenset({"ecr:GetAuthorizationToken"}),
    "aws:ecr/repository:Repository": frozenset(
        {
            "ecr:CreateRepository",
            "ecr:DescribeRepositories",
            "ecr:DeleteRepository",
            "ecr:PutImageScanningConfiguration",
            "ecr:PutImageTagMutability",
            "ecr:ListTagsForResource",
            "ecr:TagResource",
            "ecr:UntagResource",
            "ecr:BatchDeleteImage",
        }
    ),
    "aws:ecr/lifecyclePolicy:LifecyclePolicy": frozenset(
        {"ecr:GetLifecyclePolicy", "ecr:PutLifecyclePolicy", "ecr:DeleteLifecyclePolicy"}
    ),
    "aws:ecr/repositoryPolicy:RepositoryPolicy": frozenset(
        {"ecr:GetRepositoryPolicy", "ecr:SetRepositoryPolicy", "ecr:DeleteRepositoryPolicy"}
    ),
    "docker:index/image:Image": frozenset(
        {
            "ecr:GetAuthorizationToken",
            "ecr:BatchCheckLayerAvailability",
            "ecr:InitiateLayerUpload",
            "ecr:UploadLayerPart",
            "ecr:CompleteLayerUpload",
            "ecr:PutImage",
            "ecr:BatchGetImage",
            "ecr:DescribeImages",
        }
    ),
    "aws:iam/role:Role": frozenset(
        {
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
        }
    ),
    "aws:iam/rolePolicy:RolePolicy": frozenset({"iam:GetRolePolicy", "iam:PutRolePolicy", "iam:DeleteRolePolicy"}),
    "aws:lambda/function:Function": frozenset(
        {
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
            "iam:PassRole",
            # an image function: Lambda reads the image with the caller's permissions
            "ecr:BatchGetImage",
            "ecr:GetDownloadUrlForLayer",
        }
    ),
    "aws:lambda/alias:Alias": frozenset(
        {"lambda:CreateAlias", "lambda:GetAlias", "lambda:UpdateAlias", "lambda:DeleteAlias"}
    ),
    "aws:lambda/permission:Permission": frozenset(
        {"lambda:AddPermission", "lambda:RemovePermission", "lambda:GetPolicy"}
    ),
    "aws:lambda/functionUrl:FunctionUrl": frozenset(
        {
            "lambda:CreateFunctionUrlConfig",
            "lambda:GetFunctionUrlConfig",
            "lambda:UpdateFunctionUrlConfig",
            "lambda:DeleteFunctionUrlConfig",
        }
    ),
    "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig": frozenset(
        {
            "lambda:PutFunctionEventInvokeConfig",
            "lambda:GetFunctionEventInvokeConfig",
            "lambda:UpdateFunctionEventInvokeConfig",
            "lambda:DeleteFunctionEventInvokeConfig",
        }
    ),
    "aws:lambda/eventSourceMapping:EventSourceMapping": frozenset(
        {
            "lambda:CreateEventSourceMapping",
            "lambda:GetEventSourceMapping",
            "lambda:UpdateEventSourceMapping",
            "lambda:DeleteEventSourceMapping",
            "lambda:ListEventSourceMappings",
            "lambda:ListTags",
            "lambda:TagResource",
            "lambda:UntagResource",
        }
    ),
    "aws:cloudwatch/logGroup:LogGroup": frozenset(
        {
            "logs:CreateLogGroup",
            "logs:DeleteLogGroup",
            "logs:DescribeLogGroups",
            "logs:PutRetentionPolicy",
            "logs:DeleteRetentionPolicy",
            "logs:ListTagsForResource",
            "logs:TagResource",
            "logs:UntagResource",
            "logs:ListTagsLogGroup",
            "logs:TagLogGroup",
            "logs:UntagLogGroup",
        }
    ),
    "aws:cloudwatch/metricAlarm:MetricAlarm": frozenset(
        {
            "cloudwatch:PutMetricAlarm",
            "cloudwatch:DescribeAlarms",
            "cloudwatch:DeleteAlarms",
            "cloudwatch:ListTagsForResource",
            "cloudwatch:TagResource",
            "cloudwatch:UntagResource",
        }
    ),
    "aws:cloudwatch/dashboard:Dashboard": frozenset(
        {"cloudwatch:PutDashboard", "cloudwatch:GetDashboard", "cloudwatch:DeleteDashboards"}
    ),
    "aws:cloudwatch/eventRule:EventRule": frozenset(
        {
            "events:PutRule",
            "events:DescribeRule",
            "events:DeleteRule",
            "events:EnableRule",
            "events:DisableRule",
            "events:ListTagsForResource",
            "events:TagResource",
            "events:UntagResource",
        }
    ),
    "aws:cloudwatch/eventTarget:EventTarget": frozenset(
        {"events:PutTargets", "events:RemoveTargets", "events:ListTargetsByRule"}
    ),
    "aws:cloudfront/distribution:Distribution": frozenset(
        {
            "cloudfront:CreateDistribution",
            "cloudfront:GetDistribution",
            "cloudfront:GetDistributionConfig",
            "cloudfront:UpdateDistribution",
            "cloudfront:DeleteDistribution",
            "cloudfront:ListTagsForResource",
            "cloudfront:TagResource",
            "cloudfront:UntagResource",
        }
    ),
    "aws:cloudfront/originAccessControl:OriginAccessControl": frozenset(
        {
            "cloudfront:CreateOriginAccessControl",
            "cloudfront:GetOriginAccessControl",
            "cloudfront:UpdateOriginAccessControl",
            "cloudfront:DeleteOriginAccessControl",
        }
    ),
    "aws:cloudfront/cachePolicy:CachePolicy": frozenset(
        {
            "cloudfront:CreateCachePolicy",
            "cloudfront:GetCachePolicy",
            "cloudfront:UpdateCachePolicy",
            "cloudfront:DeleteCachePolicy",
        }
    ),
    "aws:codedeploy/application:Application": frozenset(
        {
            "codedeploy:CreateApplication",
            "codedeploy:GetApplication",
            "codedeploy:UpdateApplication",
            "codedeploy:DeleteApplication",
            "codedeploy:ListTagsForResource",
            "codedeploy:TagResource",
            "codedeploy:UntagResource",
        }
    ),
    "aws:codedeploy/deploymentGroup:DeploymentGroup": frozenset(
        {
            "codedeploy:CreateDeploymentGroup",
            "codedeploy:GetDeploymentGroup",
            "codedeploy:UpdateDeploymentGroup",
            "codedeploy:DeleteDeploymentGroup",
            "codedeploy:ListTagsForResource",
            "codedeploy:TagResource",
            "codedeploy:UntagResource",
            "iam:PassRole",
        }
    ),
    "pulumi-python:dynamic/release:Rollout": frozenset(
        {
            "codedeploy:CreateDeployment",
            "codedeploy:GetDeployment",
            "codedeploy:StopDeployment",
            "codedeploy:RegisterApplicationRevision",
            "codedeploy:GetApplicationRevision",
            "codedeploy:GetDeploymentConfig",
            "lambda:GetAlias",
            "lambda:GetFunctionConfiguration",
        }
    ),
}
"""Resource type (or invoke token) → the actions managing it takes. Every declared type must be listed."""

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
        return template.format(
            partition=self.partition,
            region=self.region,
            account=self.account,
            project=self.project,
            stack=self.stack,
            bucket=MODEL_BUCKET_PREFIX,
        )


def _statement(grant: Grant, actions: Sequence[str], target: Target) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Sid": grant.sid,
        "Effect": "Allow",
        "Action": sorted(actions),
        "Resource": [target.render(r) for r in grant.resources],
    }
    if grant.conditions:
        statement["Condition"] = {
            test: {key: [target.render(v) for v in values] for key, values in variables.items()}
            for test, variables in grant.conditions.items()
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
    return _pack(_statement(grant, grant.actions, target) for grant in STATEMENTS)


def preview_policy(target: Target) -> list[dict[str, Any]]:
    """The preview role's managed policies: the reads of the deploy policy, on the same scopes."""
    statements = []
    for grant in STATEMENTS:
        reads = [a for a in grant.actions if _READ.match(a) and a not in _DATA_READS]
        if grant.sid == "EcrLogin":
            reads = list(grant.actions)  # the program invokes it in every preview
        if reads:
            statements.append(_statement(grant, reads, target))
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
