"""Every dashboard counter recomputed from the items (an existing table, or after a bug).

:func:`backfill` writes the counts into shard 0 and deletes the other shards and the unsharded counters;
run it while no analysis is writing (for example with the queue's event source mapping disabled).
``sentiment-dashboard backfill`` runs it on a table.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sentiment_shared import aws
from sentiment_shared.dal.keys import (
    TOTAL_COUNTER_ID,
    day_counter_id,
    day_of,
    is_bookkeeping,
    shard_id,
    source_counter_id,
)
from sentiment_shared.dal.read_model import Counts
from sentiment_shared.dynamo import MAX_WRITES_PER_BATCH, attr, batch_write, encode, plain
from sentiment_shared.schemas import SENTIMENTS
from sentiment_shared.stack import COUNTER_PREFIX, ITEMS_TABLE_HASH_KEY, RECENT_INDEX_HASH_KEY

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


@dataclass(frozen=True, slots=True)
class BackfillReport:
    items: int
    analyzed: int
    counts: Counts
    days: int
    sources: int
    indexed: int
    """Analyzed items that lacked ``analyzed_day`` (written before the recent index existed) and got it."""
    removed: int
    """Counter items deleted: the other shards, the unsharded layout, a day or source no item has any more."""

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        counts: dict[str, int] = out.pop("counts")
        return out | counts


def _counter_row(counts: Counter[str], **extra: Any) -> dict[str, Any]:
    """A counter item's attributes (plain values): ``total``, one count per sentiment, then ``extra``."""
    return {"total": sum(counts.values()), **{s: counts.get(s, 0) for s in SENTIMENTS}, **extra}


def backfill(table_name: str, *, client: DynamoDBClient | None = None) -> BackfillReport:
    """Recompute every counter from the items (one consistent scan) into shard 0; delete every other counter item."""
    ddb = client or aws.client("dynamodb")
    total: Counter[str] = Counter()
    per_day: dict[str, Counter[str]] = {}
    per_source: dict[str, Counter[str]] = {}
    existing_counters: set[str] = set()
    items = indexed = 0
    for page in ddb.get_paginator("scan").paginate(TableName=table_name, ConsistentRead=True):
        for row in map(plain, page.get("Items", [])):
            item_id = row[ITEMS_TABLE_HASH_KEY]
            if item_id.startswith(COUNTER_PREFIX):
                existing_counters.add(item_id)
                continue
            if is_bookkeeping(item_id):
                continue
            items += 1
            sentiment = row.get("sentiment")
            analyzed_at = row.get("analyzed_at")
            if sentiment not in SENTIMENTS or not analyzed_at:
                continue
            day = day_of(datetime.fromisoformat(analyzed_at))
            source = row.get("source", "direct")
            total[sentiment] += 1
            per_day.setdefault(day, Counter())[sentiment] += 1
            per_source.setdefault(source, Counter())[sentiment] += 1
            if RECENT_INDEX_HASH_KEY not in row:
                ddb.update_item(
                    TableName=table_name,
                    Key={ITEMS_TABLE_HASH_KEY: attr(item_id)},
                    UpdateExpression="SET #day = :day",
                    ConditionExpression="attribute_exists(#sentiment)",
                    ExpressionAttributeNames={"#day": RECENT_INDEX_HASH_KEY, "#sentiment": "sentiment"},
                    ExpressionAttributeValues={":day": attr(day)},
                )
                indexed += 1
    source_ids = {source_counter_id(s) for s in per_source}
    rows = {shard_id(TOTAL_COUNTER_ID, 0): _counter_row(total, **({"sources": source_ids} if source_ids else {}))}
    rows |= {shard_id(day_counter_id(d), 0): _counter_row(c, date=d) for d, c in per_day.items()}
    rows |= {shard_id(source_counter_id(s), 0): _counter_row(c, source=s) for s, c in per_source.items()}
    stale = sorted(existing_counters - rows.keys())
    requests: list[Any] = [{"PutRequest": {"Item": encode({ITEMS_TABLE_HASH_KEY: i, **c})}} for i, c in rows.items()]
    requests += [{"DeleteRequest": {"Key": {ITEMS_TABLE_HASH_KEY: attr(i)}}} for i in stale]
    for start in range(0, len(requests), MAX_WRITES_PER_BATCH):
        batch_write(ddb, {table_name: requests[start : start + MAX_WRITES_PER_BATCH]})
    return BackfillReport(
        items=items,
        analyzed=sum(total.values()),
        counts=Counts(**{s: total.get(s, 0) for s in SENTIMENTS}),
        days=len(per_day),
        sources=len(per_source),
        indexed=indexed,
        removed=len(stale),
    )
