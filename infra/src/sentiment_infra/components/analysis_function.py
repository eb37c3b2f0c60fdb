"""The analysis function: container image, least-privilege role, log group, published versions, the ``live``
alias in service and the queue's event source on that alias.

Every ``pulumi up`` that changes the function's code or configuration (a new image digest, a new model's
``MODEL_*`` environment) publishes a new version; nothing invokes ``$LATEST``. With ``analysisSnapStart``
Lambda snapshots each published version after its INIT.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pulumi
import pulumi_aws as aws

from sentiment_infra import iam
from sentiment_infra.components.lambda_function import LambdaFunction, LambdaFunctionArgs
from sentiment_infra.config import Deployment
from sentiment_shared.settings import AnalysisSettings, environment
from sentiment_shared.stack import ANALYSIS_SERVICE

if TYPE_CHECKING:
    from sentiment_infra.components.items_table import ItemsTable
    from sentiment_infra.components.model_store import ModelStore

BATCH_FAILURE_REPORTING = "ReportBatchItemFailures"
LIVE_ALIAS = "live"
"""The alias every caller invokes (the queue's event source mapping included): the version in service."""


@dataclass(frozen=True, slots=True)
class AnalysisFunctionArgs:
    stack: Deployment
    image_uri: pulumi.Input[str]
    """``repository@sha256:…`` — the image digest, never a tag."""
    model: ModelStore
    """The published bundle; the function fetches exactly its S3 object version and verifies its digest."""
    table: ItemsTable
    queue_arn: pulumi.Input[str]


class AnalysisFunction(pulumi.ComponentResource):
    """Image function draining the work queue with partial batch responses and a concurrency cap."""

    function: aws.lambda_.Function
    alias: aws.lambda_.Alias
    event_source: aws.lambda_.EventSourceMapping

    def __init__(self, name: str, args: AnalysisFunctionArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("sentiment:analysis_function:AnalysisFunction", name, None, opts)
        config, model = args.stack.config, args.model

        parts = LambdaFunction(
            name,
            LambdaFunctionArgs(
                stack=args.stack,
                service=ANALYSIS_SERVICE,
                statements=[
                    # GetObjectVersion: the function reads its pinned version (GetObject allows the current one only).
                    iam.allow("ReadModelBundle", ["s3:GetObject", "s3:GetObjectVersion"], [model.object_arn]),
                    # TransactWriteItems (a batch's results + counters in one) needs UpdateItem on each item.
                    iam.allow("UpdateItems", ["dynamodb:GetItem", "dynamodb:UpdateItem"], [args.table.arn]),
                    # GetQueueAttributes is needed by the event source mapping itself.
                    iam.allow(
                        "ConsumeWorkQueue",
                        ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"],
                        [args.queue_arn],
                    ),
                ],
                environment=environment(
                    AnalysisSettings,
                    model_bucket=model.bucket_name,
                    model_key=model.key,
                    model_sha256=model.sha256,
                    model_version_id=model.version_id,
                    items_table=args.table.name,
                    neutral_threshold=str(config.neutral_threshold),
                    model_cache_dir=str(AnalysisSettings.model_fields["model_cache_dir"].default),
                ),
                memory_mb=config.analysis_memory_mb,
                timeout_s=config.analysis_timeout_s,
                code={
                    "package_type": "Image",
                    "image_uri": args.image_uri,
                    "ephemeral_storage": aws.lambda_.FunctionEphemeralStorageArgs(
                        size=config.analysis_ephemeral_storage_mb
                    ),
                    "reserved_concurrent_executions": config.analysis_reserved_concurrency,
                    # Every change publishes a version; SnapStart (per stack) snapshots each one after its INIT.
                    "publish": True,
                    "snap_start": (
                        aws.lambda_.FunctionSnapStartArgs(apply_on="PublishedVersions")
                        if config.analysis_snap_start
                        else None
                    ),
                },
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.role, self.log_group, self.function = parts.role, parts.log_group, parts.function
        self.alias = aws.lambda_.Alias(
            f"{name}-live",
            name=LIVE_ALIAS,
            description="The analysis version in service",
            function_name=self.function.name,
            # Only where it starts: CodeDeploy moves it from then on (sentiment_infra.components.release), and
            # an `up` that set it here would switch all traffic at once and undo a rollback.
            function_version=self.function.version,
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["function_version", "routing_config"]),
        )
        self.event_source = aws.lambda_.EventSourceMapping(
            f"{name}-queue-source",
            event_source_arn=args.queue_arn,
            # The alias, never $LATEST: SnapStart runs published versions only, and the alias is what moves.
            function_name=self.alias.arn,
            batch_size=config.batch_size,
            maximum_batching_window_in_seconds=config.batching_window_s,
            # Without this flag Lambda ignores `batchItemFailures` and deletes the whole batch.
            function_response_types=[BATCH_FAILURE_REPORTING],
            # Cap concurrency here rather than with reserved concurrency, whose throttles feed the DLQ.
            scaling_config=aws.lambda_.EventSourceMappingScalingConfigArgs(
                maximum_concurrency=config.analysis_maximum_concurrency
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[parts.policy]),
        )

        self.function_name = self.function.name
        self.function_arn = self.function.arn
        self.alias_arn = self.alias.arn
        self.published_version = self.function.version
        """The version this ``pulumi up`` published (the latest one); CodeDeploy moves ``live`` to it."""
        self.register_outputs(
            {
                "function_name": self.function_name,
                "function_arn": self.function_arn,
                "alias_arn": self.alias_arn,
                "published_version": self.published_version,
                "log_group": self.log_group.name,
                "event_source_uuid": self.event_source.uuid,
            }
        )
