"""SNS topic → SQS work queue (→ dead-letter queue): the controllable, at-least-once path to the analysis."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from sentiment_infra import iam
from sentiment_infra.config import Deployment


@dataclass(frozen=True, slots=True)
class MessagingArgs:
    stack: Deployment


class Messaging(pulumi.ComponentResource):
    """Encrypted topic and queues; the queue policy lets only this topic send."""

    topic: aws.sns.Topic
    queue: aws.sqs.Queue
    dead_letter_queue: aws.sqs.Queue

    def __init__(self, name: str, args: MessagingArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("sentiment:messaging:Messaging", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        config = args.stack.config

        # SSE with the AWS-managed SNS key: publishers in the account need no KMS grant of their own.
        self.topic = aws.sns.Topic(f"{name}-topic", kms_master_key_id="alias/aws/sns", opts=child)

        # SQS-managed SSE on both queues: a queue under the AWS-managed aws/sqs KMS key cannot receive from
        # SNS (SNS cannot use that key), and SSE-SQS needs no key policy at all.
        self.dead_letter_queue = aws.sqs.Queue(
            f"{name}-dlq",
            # Longer than the queue's retention: a standard queue's DLQ keeps the original enqueue time.
            message_retention_seconds=config.dlq_retention_s,
            sqs_managed_sse_enabled=True,
            opts=child,
        )
        self.queue = aws.sqs.Queue(
            f"{name}-queue",
            # At least 6 x the consuming function's timeout (AWS rejects a mapping otherwise).
            visibility_timeout_seconds=config.queue_visibility_timeout_s,
            message_retention_seconds=config.queue_retention_s,
            sqs_managed_sse_enabled=True,
            redrive_policy=self.dead_letter_queue.arn.apply(
                lambda arn: json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": config.max_receive_count})
            ),
            opts=child,
        )
        # Only the work queue may use the DLQ (a separate resource: the queue already depends on the DLQ).
        self.redrive_allow = aws.sqs.RedriveAllowPolicy(
            f"{name}-dlq-redrive-allow",
            queue_url=self.dead_letter_queue.url,
            redrive_allow_policy=self.queue.arn.apply(
                lambda arn: json.dumps({"redrivePermission": "byQueue", "sourceQueueArns": [arn]})
            ),
            opts=child,
        )
        self.queue_policy = aws.sqs.QueuePolicy(
            f"{name}-queue-policy",
            queue_url=self.queue.url,
            policy=iam.service_policy(
                "OnlyThisTopicSends",
                "sns.amazonaws.com",
                ["sqs:SendMessage"],
                [self.queue.arn],
                iam.Condition("ArnEquals", "aws:SourceArn", [self.topic.arn]),
            ),
            opts=child,
        )
        self.subscription = aws.sns.TopicSubscription(
            f"{name}-subscription",
            topic=self.topic.arn,
            protocol="sqs",
            endpoint=self.queue.arn,
            raw_message_delivery=config.raw_message_delivery,
            # The queue must accept the topic's messages before the first one arrives.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.queue_policy]),
        )

        self.topic_arn = self.topic.arn
        self.queue_arn = self.queue.arn
        self.queue_url = self.queue.url
        self.queue_name = self.queue.name
        self.dlq_arn = self.dead_letter_queue.arn
        self.dlq_url = self.dead_letter_queue.url
        self.dlq_name = self.dead_letter_queue.name
        self.register_outputs(
            {
                "topic_arn": self.topic_arn,
                "queue_arn": self.queue_arn,
                "queue_url": self.queue_url,
                "dlq_arn": self.dlq_arn,
                "dlq_url": self.dlq_url,
            }
        )
