"""The DynamoDB items table: one item per ingested text, updated in place by the analysis."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from sentiment_infra.config import Deployment
from sentiment_shared.stack import (
    ITEMS_TABLE_HASH_KEY,
    ITEMS_TABLE_INDEXES,
    ITEMS_TABLE_KEY_ATTRIBUTES,
    ITEMS_TABLE_TTL_ATTRIBUTE,
    PENDING_INDEX,
    RECENT_INDEX,
)


@dataclass(frozen=True, slots=True)
class ItemsTableArgs:
    stack: Deployment


class ItemsTable(pulumi.ComponentResource):
    """On-demand table keyed by ``item_id`` with PITR, encryption and the sparse pending-items index."""

    table: aws.dynamodb.Table
    name: pulumi.Output[str]
    arn: pulumi.Output[str]
    pending_index_arn: pulumi.Output[str]
    recent_index_arn: pulumi.Output[str]

    def __init__(self, name: str, args: ItemsTableArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("sentiment:items_table:ItemsTable", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        self.table = aws.dynamodb.Table(
            f"{name}-table",
            billing_mode="PAY_PER_REQUEST",
            hash_key=ITEMS_TABLE_HASH_KEY,
            attributes=[aws.dynamodb.TableAttributeArgs(name=name, type="S") for name in ITEMS_TABLE_KEY_ATTRIBUTES],
            # Both indexes are sparse. Pending: only items stored but not yet published carry `pending_shard`, so
            # ingestion finds and re-publishes them oldest first after a crash between storing and publishing.
            # Recent: only analyzed items carry `analyzed_day`; the dashboard reads the newest items of today
            # (then earlier days) newest first. Partitioned by day, so no hot key.
            global_secondary_indexes=[
                aws.dynamodb.TableGlobalSecondaryIndexArgs(
                    name=index.name,
                    key_schemas=[
                        aws.dynamodb.TableGlobalSecondaryIndexKeySchemaArgs(attribute_name=key, key_type=key_type)
                        for key, key_type in index.key_schema
                    ],
                    projection_type=index.projection_type,
                    non_key_attributes=index.non_key_attributes and list(index.non_key_attributes),
                )
                for index in ITEMS_TABLE_INDEXES
            ],
            # Ingestion's run markers carry an expiry; items never do, so TTL deletes only bookkeeping.
            ttl=aws.dynamodb.TableTtlArgs(attribute_name=ITEMS_TABLE_TTL_ATTRIBUTE, enabled=True),
            point_in_time_recovery=aws.dynamodb.TablePointInTimeRecoveryArgs(enabled=True),
            # The AWS-managed aws/dynamodb key: encrypted at rest, usable through DynamoDB by the roles.
            server_side_encryption=aws.dynamodb.TableServerSideEncryptionArgs(enabled=True),
            # On for prod: a `pulumi destroy` or a replacement cannot drop the data.
            deletion_protection_enabled=args.stack.config.deletion_protection,
            opts=child,
        )
        self.name = self.table.name
        self.arn = self.table.arn
        self.pending_index_arn = self.table.arn.apply(lambda arn: f"{arn}/index/{PENDING_INDEX}")
        self.recent_index_arn = self.table.arn.apply(lambda arn: f"{arn}/index/{RECENT_INDEX}")
        self.register_outputs(
            {
                "name": self.name,
                "arn": self.arn,
                "pending_index_arn": self.pending_index_arn,
                "recent_index_arn": self.recent_index_arn,
            }
        )
