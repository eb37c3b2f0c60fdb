"""A local stand-in for Lambda's SQS event source mapping with ``ReportBatchItemFailures``.

It receives batches from the work queue, calls the handler with a real SQS event, deletes the records
that succeeded, and makes the failed ones visible again (at once, rather than after the visibility
timeout, so a local run finishes quickly); the queue's redrive policy then moves a record that keeps
failing to the DLQ after ``maxReceiveCount`` receives — exactly as in AWS. A handler that raises fails
the whole batch, as Lambda does.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sentiment_shared import aws

if TYPE_CHECKING:
    from mypy_boto3_sqs.type_defs import MessageTypeDef

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass
class LocalLambdaContext:
    """The subset of the Lambda context object handlers and Powertools read."""

    function_name: str = "sentiment-analysis-local"
    memory_limit_in_mb: int = 2048
    timeout_s: float = 120.0
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/sentiment-analysis-local"
    log_stream_name: str = "local"
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_s

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass
class DrainStats:
    batches: int = 0
    invocations_failed: int = 0
    records_succeeded: int = 0
    record_failures: int = 0
    """Failed deliveries (a record retried N times counts N)."""
    handler_seconds: float = 0.0
    first_batch_seconds: float = 0.0
    """Handler time of the first invocation: the cold start's (imports, model fetch and load) plus its batch."""
    first_batch_records: int = 0
    timed_out: bool = False


def _lambda_message_attributes(attrs: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in attrs.items():
        out[name] = {
            "stringValue": value.get("StringValue"),
            "binaryValue": value.get("BinaryValue"),
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": value.get("DataType", "String"),
        }
    return out


def sqs_event(messages: list[MessageTypeDef], queue_arn: str, region: str) -> dict[str, Any]:
    """The event Lambda passes for a batch of SQS messages."""
    records = []
    for m in messages:
        attributes = dict(m.get("Attributes", {}))
        attributes.setdefault("ApproximateReceiveCount", "1")
        attributes.setdefault("SentTimestamp", str(int(time.time() * 1000)))
        attributes.setdefault("SenderId", "AIDAIENQZJOLO23YVJ4VO")
        attributes.setdefault("ApproximateFirstReceiveTimestamp", str(int(time.time() * 1000)))
        records.append(
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": attributes,
                "messageAttributes": _lambda_message_attributes(m.get("MessageAttributes", {})),
                "md5OfBody": m.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
        )
    return {"Records": records}


@dataclass
class EventSourceMapping:
    queue_url: str
    queue_arn: str
    handler: Handler
    batch_size: int = 10
    region: str = "us-east-1"
    function_timeout_s: float = 120.0
    on_batch: Callable[[int, int], None] | None = None
    """Called after each batch with (records in the batch, records that failed)."""

    def _queue_depth(self) -> int:
        attrs = aws.client("sqs").get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attrs.get("ApproximateNumberOfMessages", 0)) + int(
            attrs.get("ApproximateNumberOfMessagesNotVisible", 0)
        )

    def poll_once(self, stats: DrainStats) -> int:
        """Receive one batch and process it; the number of records received."""
        sqs = aws.client("sqs")
        messages = sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=min(self.batch_size, 10),
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            WaitTimeSeconds=0,
        ).get("Messages", [])
        if not messages:
            return 0
        stats.batches += 1
        event = sqs_event(messages, self.queue_arn, self.region)
        started = time.perf_counter()
        failed_ids: set[str]
        try:
            response = self.handler(event, LocalLambdaContext(timeout_s=self.function_timeout_s))
            failed_ids = self._failed_ids(response, {m["MessageId"] for m in messages})
        except Exception:
            log.exception("analysis handler raised: the whole batch of %d will be retried", len(messages))
            stats.invocations_failed += 1
            failed_ids = {m["MessageId"] for m in messages}
        elapsed = time.perf_counter() - started
        stats.handler_seconds += elapsed
        if stats.batches == 1:
            stats.first_batch_seconds, stats.first_batch_records = elapsed, len(messages)
        for m in messages:
            if m["MessageId"] in failed_ids:
                sqs.change_message_visibility(
                    QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
                )
            else:
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"])
        stats.records_succeeded += len(messages) - len(failed_ids)
        stats.record_failures += len(failed_ids)
        if self.on_batch is not None:
            self.on_batch(len(messages), len(failed_ids))
        return len(messages)

    @staticmethod
    def _failed_ids(response: Any, batch_ids: set[str]) -> set[str]:
        """Lambda's reading of a partial batch response: anything malformed fails the whole batch."""
        if response is None:
            return set()
        if not isinstance(response, dict):
            return set(batch_ids)
        failures = response.get("batchItemFailures")
        if not failures:
            return set()
        ids = set()
        for failure in failures:
            ident = failure.get("itemIdentifier") if isinstance(failure, dict) else None
            if not ident or ident not in batch_ids:
                return set(batch_ids)
            ids.add(ident)
        return ids

    def drain(self, *, timeout_s: float = 600.0) -> DrainStats:
        """Poll until the queue is empty (in flight included) or ``timeout_s`` passes."""
        stats = DrainStats()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.poll_once(stats) == 0 and self._queue_depth() == 0:
                return stats
        stats.timed_out = True
        return stats
