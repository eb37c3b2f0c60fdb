"""Reading what reached the work queue in functional tests."""

from __future__ import annotations

import json
from typing import Any

from sentiment_shared import aws


def drain_topic_messages(queue_url: str) -> list[dict[str, Any]]:
    """Receive and delete everything on the queue; the topic messages inside the SNS envelopes."""
    sqs = aws.client("sqs")
    found: list[dict[str, Any]] = []
    while batch := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
        "Messages", []
    ):
        for message in batch:
            found.append(json.loads(json.loads(message["Body"])["Message"]))  # raw delivery is off
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return found
