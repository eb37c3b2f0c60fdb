"""Pulumi program entry point: read the stack config once, wire the components, export the outputs."""

from __future__ import annotations

import os
from pathlib import Path

import pulumi
import pulumi_aws as aws

from sentiment_infra import iam, snapstart
from sentiment_infra.components.alarms import Alarms, WatchedArgs
from sentiment_infra.components.analysis_function import AnalysisFunction, AnalysisFunctionArgs
from sentiment_infra.components.analysis_image import AnalysisImage, AnalysisImageArgs
from sentiment_infra.components.dashboard import Dashboard, DashboardArgs
from sentiment_infra.components.ingestion_function import IngestionFunction, IngestionFunctionArgs
from sentiment_infra.components.items_table import ItemsTable, ItemsTableArgs
from sentiment_infra.components.messaging import Messaging, MessagingArgs
from sentiment_infra.components.model_store import ModelStore, ModelStoreArgs
from sentiment_infra.components.operations_dashboard import OperationsDashboard
from sentiment_infra.components.release import Release, ReleaseArgs
from sentiment_infra.config import Deployment, load_stack_config
from sentiment_infra.packaging import (
    DASHBOARD,
    INGESTION,
    analysis_image_tag,
    build_function_zip,
    build_release_check_zip,
    stage_image_context,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
# Paths handed to resources are relative to the working directory, so stack state is the same on every
# machine (CI runners and laptops check the repository out in different places).

config = load_stack_config()
# Before any resource: what Lambda would refuse next to SnapStart stops the preview.
pulumi.runtime.register_stack_transformation(snapstart.guard(config.analysis_snap_start))
# Every role under /<project>/<stack>/: the shipped deploy policy (deploy_policy.py) manages only those.
pulumi.runtime.register_stack_transformation(iam.role_path_transformation(pulumi.get_project(), pulumi.get_stack()))
stack = Deployment(
    config=config,
    account_id=aws.get_caller_identity_output().account_id,
    region=aws.get_region_output().region,
    partition=aws.get_partition_output().partition,
)

model_store = ModelStore("models", ModelStoreArgs(stack))
items = ItemsTable("items", ItemsTableArgs(stack))
messaging = Messaging("messaging", MessagingArgs(stack))
image_context = stage_image_context(REPO_ROOT, REPO_ROOT / "build" / "image-context")
image = AnalysisImage(
    "analysis",
    AnalysisImageArgs(
        stack,
        context=os.path.relpath(image_context),
        dockerfile=os.path.relpath(image_context / "services" / "analysis" / "Dockerfile"),
        tag=analysis_image_tag(image_context),
    ),
)
analysis = AnalysisFunction(
    "analysis",
    AnalysisFunctionArgs(
        stack, image_uri=image.repo_digest, model=model_store, table=items, queue_arn=messaging.queue_arn
    ),
)
ingestion_zip = build_function_zip(INGESTION, REPO_ROOT, REPO_ROOT / "build" / "lambda")
ingestion = IngestionFunction(
    "ingestion",
    IngestionFunctionArgs(stack, package=ingestion_zip, table=items, topic_arn=messaging.topic_arn),
)
dashboard: Dashboard | None = None
if config.dashboard:
    dashboard_zip = build_function_zip(DASHBOARD, REPO_ROOT, REPO_ROOT / "build" / "lambda")
    dashboard = Dashboard(
        "dashboard",
        DashboardArgs(stack, package=dashboard_zip, table=items, analysis=analysis, ingestion=ingestion),
    )
    pulumi.export("dashboardUrl", dashboard.url)
    pulumi.export("dashboardPackageSha256", dashboard_zip.sha256)
watched = WatchedArgs(stack, analysis=analysis, ingestion=ingestion, messaging=messaging, dashboard=dashboard)
alarms = Alarms("alarms", watched)
operations = OperationsDashboard("operations", watched)
# CodeDeploy moves `live` to the version this up published (canary per stack); the up fails on a rollback.
release = Release(
    "release",
    ReleaseArgs(
        stack,
        analysis=analysis,
        messaging=messaging,
        alarm_topic_arn=alarms.topic_arn,
        hook_package=build_release_check_zip(REPO_ROOT, REPO_ROOT / "build" / "lambda"),
    ),
)

pulumi.export("operationsDashboardName", operations.dashboard.dashboard_name)
pulumi.export("analysisFunctionName", analysis.function_name)
pulumi.export("analysisFunctionArn", analysis.function_arn)
pulumi.export("analysisAliasArn", analysis.alias_arn)
pulumi.export("analysisPublishedVersion", analysis.published_version)
pulumi.export("analysisLiveVersion", release.live_version)
pulumi.export("analysisDeploymentConfig", config.analysis_deployment_config)
pulumi.export("codedeployApplicationName", release.application.name)
pulumi.export("codedeployDeploymentGroupName", release.deployment_group.deployment_group_name)
pulumi.export("releaseCheckFunctionName", release.hook_function.name)
pulumi.export("analysisSnapStart", config.analysis_snap_start)
pulumi.export("ingestionFunctionName", ingestion.function_name)
pulumi.export("itemsTableName", items.name)
pulumi.export("topicArn", messaging.topic_arn)
pulumi.export("queueUrl", messaging.queue_url)
pulumi.export("deadLetterQueueUrl", messaging.dlq_url)
pulumi.export("ingestionFailuresQueueUrl", ingestion.failures_queue_url)
pulumi.export("modelBucket", model_store.bucket_name)
pulumi.export("modelS3Uri", model_store.s3_uri)
pulumi.export("modelSha256", model_store.sha256)
pulumi.export("imageDigest", image.repo_digest)
pulumi.export("imageRepositoryUrl", image.repository_url)
pulumi.export("ingestionPackageSha256", ingestion_zip.sha256)
pulumi.export("alarmTopicArn", alarms.topic_arn)
