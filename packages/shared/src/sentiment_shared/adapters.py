"""boto3 adapters of the ports: the DynamoDB items table and the SNS publisher.

Clients come from :mod:`sentiment_shared.aws` on first use (never at import or construction time),
so constructing an adapter is free and honours ``AWS_ENDPOINT_URL[_<SERVICE>]``.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from sentiment_shared import aws
from sentiment_shared.dal.keys import COUNTER_SHARDS, day_of
from sentiment_shared.dal.writes import Counted, counter_deltas
from sentiment_shared.dynamo import attr, encode, plain
from sentiment_shared.ports import ItemNotFoundError, PublishReport, SentimentWrite, WriteOutcome
from sentiment_shared.schemas import Item, SentimentResult, TopicMessage
from sentiment_shared.stack import (
    ITEMS_TABLE_HASH_KEY,
    PENDING_INDEX,
    PENDING_INDEX_HASH_KEY,
    PENDING_INDEX_RANGE_KEY,
    PENDING_SHARD_VALUE,
    RECENT_INDEX_HASH_KEY,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sns.type_defs import PublishBatchRequestEntryTypeDef

log = logging.getLogger(__name__)


def item_from_raw(raw: Mapping[str, Any]) -> Item:
    """An item from its DynamoDB attribute-value form (a scan's or a get's)."""
    return Item.model_validate(plain(raw))


MAX_TRANSACTION_ACTIONS = 100
"""TransactWriteItems takes at most 100 actions (and 4 MB): a batch's items plus its counter actions."""
_RETRIED_REASONS = frozenset({"TransactionConflict", "ThrottlingError"})
"""Cancellation reasons retried with jitter: a concurrent transaction on an item, a throttled item."""


MAX_ITEMS_PER_TRANSACTION = (MAX_TRANSACTION_ACTIONS - 1) // 3
"""33: n item updates + the total + at most n day and n source counters always fit in 100 actions."""


class DynamoItemsTable:
    """:class:`~sentiment_shared.ports.ItemsTable` on a DynamoDB table keyed by ``item_id``."""

    client: aws.LazyClient[DynamoDBClient] = aws.LazyClient("dynamodb")

    def __init__(
        self,
        table_name: str,
        *,
        client: DynamoDBClient | None = None,
        conflict_attempts: int = 8,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.table_name = table_name
        self._client = client
        self.conflict_attempts = conflict_attempts
        """Attempts of a batch's transaction that conflicts with another (on a counter shard or an item)."""
        self.conflicts = 0
        """Transactions of this adapter cancelled by a conflict and retried (the load rehearsal reads it)."""
        self._sleep = sleep
        self._random = rng or random.Random()  # noqa: S311 - shard choice and jitter, not crypto

    def create(self, item: Item) -> bool:
        attrs = item.model_dump(exclude_none=True)
        if item.status == "pending":
            attrs[PENDING_INDEX_HASH_KEY] = PENDING_SHARD_VALUE
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item=encode(attrs),
                ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": ITEMS_TABLE_HASH_KEY},
            )
        except ClientError as exc:
            if aws.error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def get(self, item_id: str) -> Item | None:
        resp = self.client.get_item(
            TableName=self.table_name, Key={ITEMS_TABLE_HASH_KEY: attr(item_id)}, ConsistentRead=True
        )
        raw = resp.get("Item")
        return None if raw is None else item_from_raw(raw)

    def set_sentiment(self, item_id: str, result: SentimentResult, *, source: str = "direct") -> bool:
        """One first write (see :meth:`set_sentiments`): True if counted, False if the item already had one."""
        (outcome,) = self.set_sentiments([SentimentWrite(item_id, result, source)])
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def set_sentiments(self, writes: Sequence[SentimentWrite]) -> list[WriteOutcome]:
        """Write a batch's results and count them, in ONE transaction (per :data:`MAX_TRANSACTION_ACTIONS`).

        Each item's update is conditioned on "exists, has no sentiment yet, is from the source counted";
        the batch's counter deltas (one action per counter: total, each day, each source) go in the same
        transaction on a random shard (:mod:`sentiment_shared.dal`). So the counts are exact: a
        write lands with its count or neither does.

        * An item that already had a sentiment (redelivery, duplicate, a concurrent first write that won,
          re-analysis) is False: dropped from the transaction, which is sent again without it.
        * A missing item is :class:`ItemNotFoundError` (dropped the same way; the analysis never creates
          items). A message naming another source than its item's is counted for the item's own.
        * A conflict with a concurrent transaction (or a throttled item) is retried with jitter on
          another shard, up to ``conflict_attempts``.
        * Any other failure (after botocore's retries) is bisected, so only the writes that fail on
          their own fail (their outcome is the exception), each counting nothing.
        Two writes of one item in the batch: the first is written, the second is False.
        """
        outcomes: list[WriteOutcome | None] = [None] * len(writes)
        first: dict[str, int] = {}
        for index, write in enumerate(writes):
            first.setdefault(write.item_id, index)
        unique = sorted(first.values())
        for start in range(0, len(unique), MAX_ITEMS_PER_TRANSACTION):
            self._write_group(writes, unique[start : start + MAX_ITEMS_PER_TRANSACTION], outcomes)
        done: list[WriteOutcome] = []
        for index, write in enumerate(writes):
            if first[write.item_id] == index:
                outcome = outcomes[index]
                assert outcome is not None
                done.append(outcome)
            else:  # a duplicate in the batch: the first's write is the item's; counted once
                earlier = outcomes[first[write.item_id]]
                done.append(False if earlier is True or earlier is None else earlier)
        return done

    def _write_group(
        self, writes: Sequence[SentimentWrite], group: list[int], outcomes: list[WriteOutcome | None]
    ) -> None:
        sources = {i: writes[i].source for i in group}
        attempt = 0
        while group:
            shard = self._pick_shard()
            actions = [self._item_update(writes[i], sources[i]) for i in group]
            counted = [
                Counted(writes[i].result.sentiment, day_of(writes[i].result.analyzed_at), sources[i]) for i in group
            ]
            actions += counter_deltas(self.table_name, counted, shard)
            try:
                self.client.transact_write_items(TransactItems=actions)
            except ClientError as exc:
                if aws.error_code(exc) == "TransactionCanceledException":
                    raw_reasons: Any = exc.response.get("CancellationReasons", [])
                    reasons: list[dict[str, Any]] = list(raw_reasons)
                    refused = self._settle_refused(
                        [writes[i] for i in group],
                        reasons=reasons,
                        exc=exc,
                        sources=sources,
                        outcomes=outcomes,
                        group=group,
                    )
                    if refused:
                        group = [i for i in group if outcomes[i] is None]
                        continue
                    codes = {r.get("Code") for r in reasons} - {None, "None"}
                    attempt += 1
                    if codes and codes <= _RETRIED_REASONS and attempt < self.conflict_attempts:
                        self.conflicts += "TransactionConflict" in codes
                        self._sleep(aws.backoff_delay(attempt, base_s=0.02, cap_s=1.0, rng=self._random))
                        continue
                self._bisect(writes, group, outcomes, exc)
                return
            except (BotoCoreError, OSError) as exc:  # no answer (after botocore's retries)
                self._bisect(writes, group, outcomes, exc)
                return
            for i in group:
                outcomes[i] = True
            return

    def _pick_shard(self) -> int | None:
        """The counter shard a transaction writes (chosen again on every attempt)."""
        return self._random.randrange(COUNTER_SHARDS)

    def _bisect(
        self, writes: Sequence[SentimentWrite], group: list[int], outcomes: list[WriteOutcome | None], exc: Exception
    ) -> None:
        """A transaction failed as a whole: a single write fails with it, a larger group is tried in halves."""
        if len(group) == 1:
            outcomes[group[0]] = exc
            return
        half = len(group) // 2
        self._write_group(writes, group[:half], outcomes)
        self._write_group(writes, group[half:], outcomes)

    def _settle_refused(
        self,
        group_writes: list[SentimentWrite],
        *,
        reasons: list[dict[str, Any]],
        exc: ClientError,
        sources: dict[int, str],
        outcomes: list[WriteOutcome | None],
        group: list[int],
    ) -> bool:
        """Settle the writes whose condition failed (the item updates come first); True if any did."""
        refused = False
        for position, (index, write) in enumerate(zip(group, group_writes, strict=True)):
            reason = reasons[position] if position < len(reasons) else {}
            if reason.get("Code") != "ConditionalCheckFailed":
                continue
            refused = True
            old = reason.get("Item")
            if old is None:
                outcomes[index] = ItemNotFoundError(f"item {write.item_id!r} does not exist in {self.table_name}")
            elif "sentiment" in old:
                outcomes[index] = False  # already analyzed: its first write was counted
            else:
                stored = str(plain(old).get("source", "direct"))
                if stored == sources[index]:
                    outcomes[index] = exc
                else:  # the message named another source than the item has: count the item's own
                    sources[index] = stored
        return refused

    def _item_update(self, write: SentimentWrite, source: str) -> TransactWriteItemTypeDef:
        """The item's update: only if it exists, has no sentiment yet and is from ``source``."""
        result = write.result
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": {ITEMS_TABLE_HASH_KEY: attr(write.item_id)},
                "UpdateExpression": (
                    "SET #sentiment = :sentiment, #score = :score, #label = :label, "
                    "#model_version = :model_version, #analyzed_at = :analyzed_at, #status = :analyzed, "
                    "#day = :day REMOVE #pending"
                ),
                "ConditionExpression": (
                    "attribute_exists(#pk) AND attribute_not_exists(#sentiment) AND #source = :source"
                ),
                "ExpressionAttributeNames": {
                    "#pk": ITEMS_TABLE_HASH_KEY,
                    "#sentiment": "sentiment",
                    "#score": "score",
                    "#label": "label",
                    "#model_version": "model_version",
                    "#analyzed_at": "analyzed_at",
                    "#status": "status",
                    "#day": RECENT_INDEX_HASH_KEY,
                    "#pending": PENDING_INDEX_HASH_KEY,
                    "#source": "source",
                },
                "ExpressionAttributeValues": {
                    ":sentiment": attr(result.sentiment),
                    ":score": attr(result.score),
                    ":label": attr(result.label),
                    ":model_version": attr(result.model_version),
                    ":analyzed_at": attr(result.analyzed_at),
                    ":analyzed": attr("analyzed"),
                    ":day": attr(day_of(result.analyzed_at)),
                    ":source": attr(source),
                },
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }

    def mark_published(self, item_id: str) -> None:
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key={ITEMS_TABLE_HASH_KEY: attr(item_id)},
                UpdateExpression="SET #status = :published REMOVE #pending",
                ConditionExpression="#status = :pending",
                ExpressionAttributeNames={"#status": "status", "#pending": PENDING_INDEX_HASH_KEY},
                ExpressionAttributeValues={":published": attr("published"), ":pending": attr("pending")},
            )
        except ClientError as exc:
            # Not pending any more: the analysis already wrote its result (it is that fast), or the
            # item was published by a concurrent run. Either way there is nothing to do.
            if aws.error_code(exc) != "ConditionalCheckFailedException":
                raise

    def pending_items(self, older_than: datetime, limit: int) -> list[Item]:
        if limit <= 0:
            return []
        resp = self.client.query(
            TableName=self.table_name,
            IndexName=PENDING_INDEX,
            KeyConditionExpression="#shard = :shard AND #ingested < :cutoff",
            ExpressionAttributeNames={"#shard": PENDING_INDEX_HASH_KEY, "#ingested": PENDING_INDEX_RANGE_KEY},
            ExpressionAttributeValues={
                ":shard": attr(PENDING_SHARD_VALUE),
                ":cutoff": attr(older_than),
            },
            Limit=limit,
            ScanIndexForward=True,
        )
        return [item_from_raw(raw) for raw in resp.get("Items", [])]


# --------------------------------------------------------------------------- SNS publisher

SNS_BATCH_MAX_ENTRIES = 10
SNS_BATCH_MAX_BYTES = 256 * 1024
"""PublishBatch caps the *total* payload of a batch (all messages and attributes) at 256 KiB."""


def chunk_messages(
    messages: Sequence[TopicMessage], too_big: dict[str, str] | None = None
) -> list[list[tuple[TopicMessage, str]]]:
    """Split into PublishBatch-sized chunks: ≤ 10 entries and ≤ 256 KiB of UTF-8 bodies each.

    A message over the limit by itself is left out and named in ``too_big`` (``ValueError`` without it).
    """
    chunks: list[list[tuple[TopicMessage, str]]] = []
    current: list[tuple[TopicMessage, str]] = []
    size = 0
    for message in messages:
        body = message.to_json()
        body_size = len(body.encode())
        if body_size > SNS_BATCH_MAX_BYTES:
            error = f"message for item {message.item_id!r} is {body_size} bytes, over the SNS limit"
            if too_big is None:
                raise ValueError(error)
            too_big[message.item_id] = error
            continue
        if current and (len(current) == SNS_BATCH_MAX_ENTRIES or size + body_size > SNS_BATCH_MAX_BYTES):
            chunks.append(current)
            current, size = [], 0
        current.append((message, body))
        size += body_size
    if current:
        chunks.append(current)
    return chunks


class SnsPublisher:
    """:class:`~sentiment_shared.ports.Publisher` over SNS ``PublishBatch``: the messages are sliced into
    batches (≤ 10 entries, ≤ 256 KiB), ``concurrency`` of them in flight.

    botocore's standard retry mode already retries a whole call (throttling, 5xx, connection errors);
    a call that still fails fails its entries. On top of it only what botocore cannot see is retried:
    entries SNS reports as failed inside a successful response (not sender faults: the entry itself is
    invalid), at most ``max_attempts`` calls per batch with jittered backoff. Whatever still fails is
    reported in :attr:`PublishReport.failed`, never dropped.
    """

    client: aws.LazyClient[SNSClient] = aws.LazyClient("sns")

    def __init__(
        self,
        topic_arn: str,
        *,
        client: SNSClient | None = None,
        concurrency: int = 4,
        max_attempts: int = 3,
        base_delay_s: float = 0.1,
        max_delay_s: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.topic_arn = topic_arn
        self._client = client
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self._sleep = sleep

    def publish(self, messages: Sequence[TopicMessage]) -> PublishReport:
        merged = PublishReport()
        chunks = chunk_messages(messages, too_big=merged.failed)
        _ = self.client  # created once, before the threads share it
        workers = max(1, min(self.concurrency, len(chunks)))
        if workers == 1:
            reports = [self._publish_chunk(chunk) for chunk in chunks]
        else:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="publish") as pool:
                reports = list(pool.map(self._publish_chunk, chunks))
        for report in reports:
            merged.published.extend(report.published)
            merged.failed.update(report.failed)
        return merged

    def _publish_chunk(self, chunk: list[tuple[TopicMessage, str]]) -> PublishReport:
        report = PublishReport()
        pending = {str(i): (msg, body) for i, (msg, body) in enumerate(chunk)}
        last_error: dict[str, str] = {}
        for attempt in range(1, self.max_attempts + 1):
            if attempt > 1:
                self._sleep(aws.backoff_delay(attempt - 1, base_s=self.base_delay_s, cap_s=self.max_delay_s))
            entries: list[PublishBatchRequestEntryTypeDef] = [
                {"Id": entry_id, "Message": body} for entry_id, (_, body) in pending.items()
            ]
            try:
                resp = self.client.publish_batch(TopicArn=self.topic_arn, PublishBatchRequestEntries=entries)
            except ClientError as exc:  # botocore has retried it already
                last_error = dict.fromkeys(pending, aws.error_code(exc) or "ClientError")
                break
            except BotoCoreError as exc:  # likewise (connection errors, timeouts)
                last_error = dict.fromkeys(pending, f"{type(exc).__name__}: {exc}")
                break
            for ok in resp.get("Successful", []):
                msg, _ = pending.pop(ok["Id"])
                report.published.append(msg.item_id)
            for bad in resp.get("Failed", []):
                entry_id = bad["Id"]
                last_error[entry_id] = f"{bad.get('Code', '?')}: {bad.get('Message', '')}".strip()
                if bad.get("SenderFault"):
                    msg, _ = pending.pop(entry_id)
                    report.failed[msg.item_id] = last_error[entry_id]
            if not pending:
                return report
        for entry_id, (msg, _) in pending.items():
            report.failed[msg.item_id] = last_error.get(entry_id, "unknown")
            log.error("publish failed: %s (%s)", msg.item_id, report.failed[msg.item_id])
        return report
