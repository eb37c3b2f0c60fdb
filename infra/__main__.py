"""Pulumi program entry point: read the stack config once, wire the components, export the outputs."""

from __future__ import annotations

import os
from pathlib import Path

import pulumi
import pulumi_aws as aws

from sentiment_infra.components.alarms import Alarms, AlarmsArgs
from sentiment_infra.components.analysis_function import AnalysisFunction, AnalysisFunctionArgs
from sentiment_infra.components.analysis_image import AnalysisImage, AnalysisImageArgs
from sentiment_infra.components.dashboard import Dashboard, DashboardArgs
from sentiment_infra.components.ingestion_function import IngestionFunction, IngestionFunctionArgs
from sentiment_infra.components.items_table import ItemsTable, ItemsTableArgs
from sentiment_infra.components.messaging import Messaging, MessagingArgs
from sentiment_infra.components.model_store import ModelStore, ModelStoreArgs
from sentiment_infra.components.operations_dashboard import OperationsDashboard, OperationsDashboardArgs
from sentiment_infra.config import load_stack_config
from sentiment_infra.function_parts import FunctionDefaults
from sentiment_infra.model_artifact import PROVIDER_VERSION
from sentiment_infra.packaging import (
    analysis_image_tag,
    build_dashboard_zip,
    build_ingestion_zip,
    stage_image_context,
)
from sentiment_shared.model_bundle import BUNDLE_FILE_NAME
from sentiment_shared.stack import model_key

REPO_ROOT = Path(__file__).resolve().parent.parent
# Paths handed to resources are relative to the working directory, so stack state is the same on every
# machine (CI runners and laptops check the repository out in different places).

config = load_stack_config()
identity = aws.get_caller_identity_output()
partition = aws.get_partition_output()
region = aws.get_region_output()

model_store = ModelStore(
    "models",
    ModelStoreArgs(
        key=model_key(config.model_prefix, config.model_version, BUNDLE_FILE_NAME),
        model_id=config.model_source_id,
        revision=config.model_source_revision,
        model_dir=config.model_dir,
        provider_version=PROVIDER_VERSION,
        noncurrent_days=config.model_noncurrent_days,
        retain_on_delete=config.model_retain_on_delete,
    ),
)
items = ItemsTable("items", ItemsTableArgs(deletion_protection=config.deletion_protection))
messaging = Messaging(
    "messaging",
    MessagingArgs(
        visibility_timeout_s=config.queue_visibility_timeout_s,
        retention_s=config.queue_retention_s,
        dlq_retention_s=config.dlq_retention_s,
        max_receive_count=config.max_receive_count,
        raw_message_delivery=config.raw_message_delivery,
    ),
)
image_context = stage_image_context(REPO_ROOT, REPO_ROOT / "build" / "image-context")
image = AnalysisImage(
    "analysis",
    AnalysisImageArgs(
        context=os.path.relpath(image_context),
        dockerfile=os.path.relpath(image_context / "services" / "analysis" / "Dockerfile"),
        tag=analysis_image_tag(image_context),
        keep_images=config.image_keep_count,
        force_delete=not config.deletion_protection,
        account_id=identity.account_id,
        region=region.region,
        partition=partition.partition,
    ),
)
function_defaults = FunctionDefaults(
    account_id=identity.account_id,
    log_retention_days=config.log_retention_days,
    log_level=config.log_level,
    tracing=config.tracing,
)
analysis = AnalysisFunction(
    "analysis",
    AnalysisFunctionArgs(
        image_uri=image.repo_digest,
        memory_mb=config.analysis_memory_mb,
        ephemeral_storage_mb=config.analysis_ephemeral_storage_mb,
        timeout_s=config.analysis_timeout_s,
        reserved_concurrency=config.analysis_reserved_concurrency,
        maximum_concurrency=config.analysis_maximum_concurrency,
        batch_size=config.batch_size,
        batching_window_s=config.batching_window_s,
        neutral_threshold=config.neutral_threshold,
        model_bucket=model_store.bucket_name,
        model_key=model_store.key,
        model_object_arn=model_store.object_arn,
        model_sha256=model_store.sha256,
        model_version_id=model_store.version_id,
        table_name=items.name,
        table_arn=items.arn,
        queue_arn=messaging.queue_arn,
        defaults=function_defaults,
    ),
)
ingestion_zip = build_ingestion_zip(REPO_ROOT, REPO_ROOT / "build" / "lambda")
ingestion = IngestionFunction(
    "ingestion",
    IngestionFunctionArgs(
        archive=pulumi.FileArchive(os.path.relpath(ingestion_zip.path)),
        memory_mb=config.ingestion_memory_mb,
        timeout_s=config.ingestion_timeout_s,
        table_name=items.name,
        table_arn=items.arn,
        pending_index_arn=items.pending_index_arn,
        topic_arn=messaging.topic_arn,
        feeds=config.feeds,
        schedule=config.ingestion_schedule,
        defaults=function_defaults,
    ),
)
alarms = Alarms(
    "alarms",
    AlarmsArgs(
        account_id=identity.account_id,
        partition=partition.partition,
        analysis_function_name=analysis.function_name,
        analysis_timeout_s=config.analysis_timeout_s,
        ingestion_function_name=ingestion.function_name,
        queue_name=messaging.queue_name,
        dlq_name=messaging.dlq_name,
        ingestion_failures_queue_name=ingestion.failures_queue_name,
        queue_age_threshold_s=config.queue_age_alarm_s,
        email=config.alarm_email,
    ),
)

dashboard: Dashboard | None = None
if config.dashboard:
    dashboard_zip = build_dashboard_zip(REPO_ROOT, REPO_ROOT / "build" / "lambda")
    dashboard = Dashboard(
        "dashboard",
        DashboardArgs(
            archive=pulumi.FileArchive(os.path.relpath(dashboard_zip.path)),
            memory_mb=config.dashboard_memory_mb,
            table_name=items.name,
            table_arn=items.arn,
            index_arns=(items.pending_index_arn, items.recent_index_arn),
            analysis_function_name=analysis.function_name,
            analysis_memory_mb=config.analysis_memory_mb,
            ingestion_function_name=ingestion.function_name,
            ingestion_memory_mb=config.ingestion_memory_mb,
            defaults=function_defaults,
            price_class=config.dashboard_price_class,
        ),
    )
    pulumi.export("dashboardUrl", dashboard.url)
    pulumi.export("dashboardPackageSha256", dashboard_zip.sha256)
operations = OperationsDashboard(
    "operations",
    OperationsDashboardArgs(
        region=region.region,
        analysis_function_name=analysis.function_name,
        ingestion_function_name=ingestion.function_name,
        dashboard_function_name=dashboard.function_name if dashboard else None,
        queue_name=messaging.queue_name,
        dlq_name=messaging.dlq_name,
    ),
)

pulumi.export("operationsDashboardName", operations.dashboard.dashboard_name)
pulumi.export("analysisFunctionName", analysis.function_name)
pulumi.export("analysisFunctionArn", analysis.function_arn)
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
