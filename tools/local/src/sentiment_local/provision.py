"""Create the stack's data-plane resources on an AWS emulator (moto server, LocalStack) or in tests.

The Pulumi program is the production definition; this is its local twin for ``sentiment-local`` and the
functional tests. Both take names and settings from :mod:`sentiment_shared.stack`, so the queue's
visibility timeout, the redrive policy and the table's keys and index are the same in both places.
Every call is idempotent: it reuses what already exists.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from sentiment_shared import aws
from sentiment_shared.stack import (
    DEFAULT_ANALYSIS_FUNCTION,
    DEFAULT_QUEUE,
    ITEMS_TABLE_HASH_KEY,
    ITEMS_TABLE_INDEXES,
    ITEMS_TABLE_KEY_ATTRIBUTES,
    ITEMS_TABLE_TTL_ATTRIBUTE,
    QueueSettings,
    ResourceNames,
    TableIndex,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import GlobalSecondaryIndexTypeDef, KeySchemaElementTypeDef, ProjectionTypeDef


@dataclass(frozen=True, slots=True)
class StackResources:
    """Identifiers of the provisioned resources."""

    names: ResourceNames
    bucket: str
    items_table: str
    topic_arn: str
    queue_url: str
    queue_arn: str
    dlq_url: str
    dlq_arn: str
    subscription_arn: str


def _index(index: TableIndex) -> GlobalSecondaryIndexTypeDef:
    projection: ProjectionTypeDef = {"ProjectionType": index.projection_type}
    if index.non_key_attributes is not None:
        projection["NonKeyAttributes"] = list(index.non_key_attributes)
    key_schema: list[KeySchemaElementTypeDef] = [{"AttributeName": a, "KeyType": t} for a, t in index.key_schema]
    return {"IndexName": index.name, "KeySchema": key_schema, "Projection": projection}


def create_items_table(table_name: str) -> None:
    """The items table: ``item_id`` hash key, on-demand, plus the sparse pending-items and recent-items indexes."""
    ddb = aws.client("dynamodb")
    try:
        ddb.create_table(
            TableName=table_name,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": name, "AttributeType": "S"} for name in ITEMS_TABLE_KEY_ATTRIBUTES],
            KeySchema=[{"AttributeName": ITEMS_TABLE_HASH_KEY, "KeyType": "HASH"}],
            GlobalSecondaryIndexes=[_index(index) for index in ITEMS_TABLE_INDEXES],
        )
    except ClientError as exc:
        if aws.error_code(exc) != "ResourceInUseException":
            raise
    ddb.get_waiter("table_exists").wait(TableName=table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    ttl = ddb.describe_time_to_live(TableName=table_name)["TimeToLiveDescription"]
    if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
        ddb.update_time_to_live(
            TableName=table_name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": ITEMS_TABLE_TTL_ATTRIBUTE},
        )


def create_bucket(bucket: str) -> None:
    s3 = aws.client("s3")
    region = s3.meta.region_name
    try:
        if region in (None, "us-east-1"):
            s3.create_bucket(Bucket=bucket)
        else:
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})  # type: ignore[typeddict-item]
    except ClientError as exc:
        if aws.error_code(exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})


def create_queues(names: ResourceNames, queue: QueueSettings, function_timeout_s: int) -> tuple[str, str, str, str]:
    """Work queue + DLQ with the production redrive and visibility settings: (url, arn, dlq_url, dlq_arn)."""
    sqs = aws.client("sqs")
    dlq_url = sqs.create_queue(
        QueueName=names.dead_letter_queue,
        Attributes={"MessageRetentionPeriod": str(queue.dlq_retention_s), "SqsManagedSseEnabled": "true"},
    )["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.create_queue(
        QueueName=names.work_queue,
        Attributes={
            "VisibilityTimeout": str(queue.visibility_timeout_s(function_timeout_s)),
            "MessageRetentionPeriod": str(queue.retention_s),
            "SqsManagedSseEnabled": "true",
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(queue.max_receive_count)}
            ),
        },
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn, dlq_url, dlq_arn


def provision(
    names: ResourceNames | None = None,
    *,
    queue: QueueSettings = DEFAULT_QUEUE,
    function_timeout_s: int = DEFAULT_ANALYSIS_FUNCTION.timeout_s,
    raw_message_delivery: bool = False,
) -> StackResources:
    """Create (or reuse) bucket, items table, topic, work queue + DLQ and the topic → queue subscription."""
    names = names or ResourceNames()
    create_bucket(names.model_bucket)
    create_items_table(names.items_table)
    sns = aws.client("sns")
    topic_arn = sns.create_topic(Name=names.topic)["TopicArn"]
    url, arn, dlq_url, dlq_arn = create_queues(names, queue, function_timeout_s)
    aws.client("sqs").set_queue_attributes(
        QueueUrl=url,
        Attributes={
            "Policy": json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "sns.amazonaws.com"},
                            "Action": "sqs:SendMessage",
                            "Resource": arn,
                            "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
                        }
                    ],
                }
            )
        },
    )
    subscription_arn = sns.subscribe(
        TopicArn=topic_arn,
        Protocol="sqs",
        Endpoint=arn,
        Attributes={"RawMessageDelivery": "true" if raw_message_delivery else "false"},
        ReturnSubscriptionArn=True,
    )["SubscriptionArn"]
    return StackResources(
        names=names,
        bucket=names.model_bucket,
        items_table=names.items_table,
        topic_arn=topic_arn,
        queue_url=url,
        queue_arn=arn,
        dlq_url=dlq_url,
        dlq_arn=dlq_arn,
        subscription_arn=subscription_arn,
    )
