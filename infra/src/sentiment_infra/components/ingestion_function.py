"""The ingestion function: reproducible ZIP, least-privilege role, log group and its schedule."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pulumi
import pulumi_aws as aws

from sentiment_infra import iam
from sentiment_infra.components.lambda_function import LambdaFunction, LambdaFunctionArgs, zip_code
from sentiment_infra.config import Deployment
from sentiment_infra.packaging import INGESTION, ZipBuild
from sentiment_shared.schemas import feed_urls_json
from sentiment_shared.settings import IngestionSettings, environment
from sentiment_shared.stack import INGESTION_SERVICE

if TYPE_CHECKING:
    from sentiment_infra.components.items_table import ItemsTable

ASYNC_RETRY_ATTEMPTS = 2
ASYNC_MAX_EVENT_AGE_S = 6 * 3600
FAILURE_RETENTION_S = 14 * 24 * 3600


@dataclass(frozen=True, slots=True)
class IngestionFunctionArgs:
    stack: Deployment
    package: ZipBuild
    table: ItemsTable
    topic_arn: pulumi.Input[str]


class IngestionFunction(pulumi.ComponentResource):
    """ZIP function run on a schedule (and by direct invoke) that stores items and publishes them."""

    function: aws.lambda_.Function
    schedule: aws.cloudwatch.EventRule

    def __init__(self, name: str, args: IngestionFunctionArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("sentiment:ingestion_function:IngestionFunction", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        config = args.stack.config

        # Asynchronous invocations (the schedule, or an `InvocationType=Event` payload) that still fail
        # after Lambda's retries are parked here with their event, instead of being dropped.
        self.failures = aws.sqs.Queue(
            f"{name}-failures",
            message_retention_seconds=FAILURE_RETENTION_S,
            sqs_managed_sse_enabled=True,
            opts=child,
        )

        parts = LambdaFunction(
            name,
            LambdaFunctionArgs(
                stack=args.stack,
                service=INGESTION_SERVICE,
                statements=[
                    iam.allow(
                        "StoreItems",
                        ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:GetItem"],
                        [args.table.arn],
                    ),
                    # The sparse pending index: items stored but not yet published, re-published by age.
                    iam.allow("FindPendingItems", ["dynamodb:Query"], [args.table.pending_index_arn]),
                    iam.allow("PublishItems", ["sns:Publish"], [args.topic_arn]),
                    # Lambda delivers the on-failure destination with the function's own role.
                    iam.allow("ParkFailedInvocations", ["sqs:SendMessage"], [self.failures.arn]),
                ],
                environment=environment(
                    IngestionSettings,
                    items_table=args.table.name,
                    topic_arn=args.topic_arn,
                    feeds=feed_urls_json(config.feeds),
                ),
                memory_mb=config.ingestion_memory_mb,
                timeout_s=config.ingestion_timeout_s,
                code=zip_code(INGESTION.handler, args.package),
            ),
            opts=child,
        )
        self.role, self.log_group, self.function = parts.role, parts.log_group, parts.function

        self.async_config = aws.lambda_.FunctionEventInvokeConfig(
            f"{name}-async",
            function_name=self.function.name,
            maximum_retry_attempts=ASYNC_RETRY_ATTEMPTS,
            maximum_event_age_in_seconds=ASYNC_MAX_EVENT_AGE_S,
            destination_config=aws.lambda_.FunctionEventInvokeConfigDestinationConfigArgs(
                on_failure=aws.lambda_.FunctionEventInvokeConfigDestinationConfigOnFailureArgs(
                    destination=self.failures.arn
                )
            ),
            opts=child,
        )

        self.schedule = aws.cloudwatch.EventRule(
            f"{name}-schedule",
            description="Poll the configured feeds and re-publish pending items",
            schedule_expression=config.ingestion_schedule,
            opts=child,
        )
        self.invoke_permission = aws.lambda_.Permission(
            f"{name}-schedule-invoke",
            action="lambda:InvokeFunction",
            function=self.function.name,
            principal="events.amazonaws.com",
            source_arn=self.schedule.arn,
            opts=child,
        )
        self.schedule_target = aws.cloudwatch.EventTarget(
            f"{name}-schedule-target",
            rule=self.schedule.name,
            arn=self.function.arn,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.invoke_permission]),
        )

        self.function_name = self.function.name
        self.function_arn = self.function.arn
        self.failures_queue_name = self.failures.name
        self.failures_queue_url = self.failures.url
        self.register_outputs(
            {
                "function_name": self.function_name,
                "function_arn": self.function_arn,
                "failures_queue_url": self.failures_queue_url,
                "log_group": self.log_group.name,
                "schedule_arn": self.schedule.arn,
            }
        )
