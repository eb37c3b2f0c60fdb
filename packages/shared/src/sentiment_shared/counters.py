"""The dashboard's exact counters in the items table: how they are keyed, written, read and rebuilt.

The analysis writes a batch's first results and their counts in ONE DynamoDB transaction
(:meth:`sentiment_shared.adapters.DynamoItemsTable.set_sentiments`): each item's update carries the
condition "this item has no sentiment yet", and the batch's counter deltas ride in the same transaction,
so SQS redelivery, a duplicate message, two concurrent first writes or a later re-analysis count once,
and a write that fails counts nothing. Each counter is split into :data:`COUNTER_SHARDS` shard items
(``<counter id>#<shard>``); a transaction adds its deltas to one shard chosen at random, so no single
item takes more than a small share of the writes (and concurrent batches rarely collide), and a reader
sums the shards (and the unsharded id, the layout before the shards, so an older table reads right).
Counter items (``item_id`` prefix ``counter#``):

==========================================  ====================================================
``counter#all#<shard>``                     ``total``, ``positive``, ``negative``, ``neutral``;
                                            ``sources`` (string set of the per-source counter ids)
``counter#day#<YYYY-MM-DD>#<shard>``        the same counts for the items analyzed that UTC day, ``date``
``counter#source#<sha256[:32]>#<shard>``    the same counts for one source, ``source`` (its name)
==========================================  ====================================================

Pending items need no counter: ingestion's sparse pending index (``pending-by-age``) holds exactly the
items stored and not analyzed yet, so :func:`read_summary` counts it (``Select=COUNT``).

:func:`backfill` recomputes every counter from the items (an existing table, or after a bug) into shard 0
and deletes the other shards and the unsharded counters; run it while no analysis is writing (for
example with the queue's event source mapping disabled).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sentiment_shared import aws
from sentiment_shared.dynamo import batch_get, batch_write, plain
from sentiment_shared.schemas import SENTIMENTS
from sentiment_shared.stack import (
    BOOKKEEPING_PREFIXES,
    COUNTER_PREFIX,
    ITEMS_TABLE_HASH_KEY,
    PENDING_INDEX,
    PENDING_INDEX_HASH_KEY,
    PENDING_SHARD_VALUE,
    RECENT_INDEX,
    RECENT_INDEX_HASH_KEY,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

TOTAL_COUNTER_ID = f"{COUNTER_PREFIX}all"
DAY_COUNTER_PREFIX = f"{COUNTER_PREFIX}day#"
SOURCE_COUNTER_PREFIX = f"{COUNTER_PREFIX}source#"
SUMMARY_DAYS = 30
RECENT_ITEMS = 12
MAX_SOURCES_READ = 500
"""The dashboard reads at most this many per-source counters (top sources; the rest are summed as "other")."""
COUNTER_SHARDS = 8
"""Shard items per counter. A batch's transaction writes one shard of each counter it touches, so a shard
takes about 1/8 of the batches (with batches of one item, 1 in 8 analysed items; of ten, 1 in 80)."""


def day_of(moment: datetime) -> str:
    """The UTC day (``YYYY-MM-DD``) a moment falls on; naive moments are taken as UTC."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).date().isoformat()


def day_counter_id(day: str) -> str:
    return DAY_COUNTER_PREFIX + day


def source_counter_id(source: str) -> str:
    """Sources are free text (feed URLs, up to 1 KiB): the key is a digest, the name an attribute."""
    return SOURCE_COUNTER_PREFIX + hashlib.sha256(source.encode("utf-8")).hexdigest()[:32]


def is_bookkeeping(item_id: str) -> bool:
    return item_id.startswith(BOOKKEEPING_PREFIXES)


def shard_id(counter_id: str, shard: int) -> str:
    """The item holding one shard of a counter."""
    return f"{counter_id}#{shard}"


def shard_ids(counter_id: str) -> list[str]:
    """Every item a reader sums for one counter: its shards, and the unsharded id of the earlier layout."""
    return [counter_id, *(shard_id(counter_id, n) for n in range(COUNTER_SHARDS))]


@dataclass(frozen=True, slots=True)
class Counted:
    """One item counted by a first write: its sentiment, the UTC day it was analyzed, its source."""

    sentiment: str
    day: str
    source: str


def _add(counts: Counter[str]) -> tuple[str, dict[str, str], dict[str, Any]]:
    """``ADD #total :total, #<sentiment> :<sentiment> ...`` for the non-zero counts."""
    names = {"#total": "total"}
    values: dict[str, Any] = {":total": {"N": str(sum(counts.values()))}}
    parts = ["#total :total"]
    for sentiment in SENTIMENTS:
        if counts.get(sentiment):
            names[f"#{sentiment}"] = sentiment
            values[f":{sentiment}"] = {"N": str(counts[sentiment])}
            parts.append(f"#{sentiment} :{sentiment}")
    return "ADD " + ", ".join(parts), names, values


def counter_deltas(table_name: str, counted: Iterable[Counted], shard: int | None) -> list[TransactWriteItemTypeDef]:
    """The counter increments of a batch's first writes, on one shard: total, per day, per source.

    One action per counter touched (1 + days + sources), whatever the number of items counted. ``shard``
    None writes the unsharded ids (the layout before the shards: the benchmarks' "today's path")."""
    total: Counter[str] = Counter()
    per_day: dict[str, Counter[str]] = {}
    per_source: dict[str, Counter[str]] = {}
    for c in counted:
        if c.sentiment not in SENTIMENTS:
            raise ValueError(f"unknown sentiment {c.sentiment!r}")
        total[c.sentiment] += 1
        per_day.setdefault(c.day, Counter())[c.sentiment] += 1
        per_source.setdefault(c.source, Counter())[c.sentiment] += 1
    if not total:
        return []
    actions: list[TransactWriteItemTypeDef] = []

    def update(counter_id: str, counts: Counter[str], sets: dict[str, Any], add: dict[str, Any] | None = None) -> None:
        expression, names, values = _add(counts)
        for attr, value in (add or {}).items():
            names[f"#{attr}"], values[f":{attr}"] = attr, value
            expression += f", #{attr} :{attr}"
        for n, (attr, value) in enumerate(sets.items()):
            names[f"#{attr}"], values[f":{attr}"] = attr, value
            expression += (" SET " if n == 0 else ", ") + f"#{attr} = :{attr}"
        actions.append(
            {
                "Update": {
                    "TableName": table_name,
                    "Key": {ITEMS_TABLE_HASH_KEY: {"S": counter_id if shard is None else shard_id(counter_id, shard)}},
                    "UpdateExpression": expression,
                    "ExpressionAttributeNames": names,
                    "ExpressionAttributeValues": values,
                }
            }
        )

    source_ids = sorted({source_counter_id(s) for s in per_source})
    update(TOTAL_COUNTER_ID, total, {}, {"sources": {"SS": source_ids}})
    for day, counts in sorted(per_day.items()):
        update(day_counter_id(day), counts, {"date": {"S": day}})
    for source, counts in sorted(per_source.items()):
        update(source_counter_id(source), counts, {"source": {"S": source}})
    return actions


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True, slots=True)
class Counts:
    positive: int = 0
    negative: int = 0
    neutral: int = 0

    @property
    def total(self) -> int:
        return self.positive + self.negative + self.neutral

    @classmethod
    def from_raw(cls, raw: Mapping[str, Any] | None) -> Counts:
        if not raw:
            return cls()
        row = plain(raw)
        return cls(**{s: int(row.get(s, 0)) for s in SENTIMENTS})

    @classmethod
    def summed(cls, found: Mapping[str, Mapping[str, Any]], counter_id: str) -> Counts:
        """One counter's counts: the sum of its shard items (and unsharded item) among ``found``."""
        parts = [cls.from_raw(found.get(i)) for i in shard_ids(counter_id)]
        return cls(**{s: sum(getattr(p, s) for p in parts) for s in SENTIMENTS})

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class RecentItem:
    item_id: str
    text: str
    sentiment: str
    score: float
    analyzed_at: str
    source: str
    model_version: str


@dataclass(frozen=True, slots=True)
class SourceCounts:
    source: str
    counts: Counts

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "total": self.counts.total, **self.counts.as_dict()}


@dataclass(frozen=True, slots=True)
class Summary:
    """What the dashboard shows; ``as_dict`` is the ``GET /api/summary`` body (README.md "Dashboard")."""

    counts: Counts
    pending: int
    days: list[tuple[str, Counts]]
    recent: list[RecentItem]
    sources: list[SourceCounts]
    generated_at: datetime
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def analyzed(self) -> int:
        return self.counts.total

    @property
    def total(self) -> int:
        return self.analyzed + self.pending

    @property
    def model_version(self) -> str | None:
        return self.recent[0].model_version if self.recent else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "analyzed": self.analyzed,
            "pending": self.pending,
            **self.counts.as_dict(),
            "days": [{"date": d, **c.as_dict()} for d, c in self.days],
            "recent": [asdict(r) for r in self.recent],
            "sources": [s.as_dict() for s in self.sources],
            "model_version": self.model_version,
            "generated_at": self.generated_at.isoformat(timespec="seconds"),
            **self.extra,
        }


def _batch_get(ddb: DynamoDBClient, table_name: str, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """item_id → raw item for those of ``ids`` that exist (BatchGetItem in chunks of 100, unprocessed retried)."""
    found: dict[str, dict[str, Any]] = {}
    wanted = list(dict.fromkeys(ids))
    for start in range(0, len(wanted), 100):
        keys: list[Any] = [{ITEMS_TABLE_HASH_KEY: {"S": i}} for i in wanted[start : start + 100]]
        request: dict[str, Any] = {table_name: {"Keys": keys, "ConsistentRead": True}}
        for raw in batch_get(ddb, request).get(table_name, []):
            found[plain(raw)[ITEMS_TABLE_HASH_KEY]] = raw
    return found


def count_pending(ddb: DynamoDBClient, table_name: str) -> int:
    """Items stored and not analyzed yet: the size of ingestion's sparse pending index."""
    count = 0
    paginator = ddb.get_paginator("query")
    for page in paginator.paginate(
        TableName=table_name,
        IndexName=PENDING_INDEX,
        KeyConditionExpression="#shard = :shard",
        ExpressionAttributeNames={"#shard": PENDING_INDEX_HASH_KEY},
        ExpressionAttributeValues={":shard": {"S": PENDING_SHARD_VALUE}},
        Select="COUNT",
    ):
        count += int(page.get("Count", 0))
    return count


def recent_items(ddb: DynamoDBClient, table_name: str, today: date, limit: int = RECENT_ITEMS) -> list[RecentItem]:
    """The newest analyzed items, newest first, from the recent-by-day index (today, then earlier days)."""
    found: list[RecentItem] = []
    for back in range(SUMMARY_DAYS):
        if len(found) >= limit:
            break
        day = (today - timedelta(days=back)).isoformat()
        resp = ddb.query(
            TableName=table_name,
            IndexName=RECENT_INDEX,
            KeyConditionExpression="#day = :day",
            ExpressionAttributeNames={"#day": RECENT_INDEX_HASH_KEY},
            ExpressionAttributeValues={":day": {"S": day}},
            ScanIndexForward=False,
            Limit=limit - len(found),
        )
        for row in map(plain, resp.get("Items", [])):
            found.append(
                RecentItem(
                    item_id=row[ITEMS_TABLE_HASH_KEY],
                    text=row.get("text", ""),
                    sentiment=row.get("sentiment", ""),
                    score=float(row.get("score", 0)),
                    analyzed_at=row.get("analyzed_at", ""),
                    source=row.get("source", ""),
                    model_version=row.get("model_version", ""),
                )
            )
    return found


def read_summary(
    table_name: str,
    *,
    now: datetime | None = None,
    days: int = SUMMARY_DAYS,
    recent: int = RECENT_ITEMS,
    top_sources: int = 10,
    client: DynamoDBClient | None = None,
) -> Summary:
    """Read the counters, the pending count and the newest items: a handful of reads, whatever the table's size."""
    ddb = client or aws.client("dynamodb")
    moment = now or datetime.now(UTC)
    today = moment.astimezone(UTC).date()
    day_list = [(today - timedelta(days=back)).isoformat() for back in range(days - 1, -1, -1)]
    wanted = shard_ids(TOTAL_COUNTER_ID) + [i for d in day_list for i in shard_ids(day_counter_id(d))]
    totals = _batch_get(ddb, table_name, wanted)
    all_shards = [totals.get(i, {}) for i in shard_ids(TOTAL_COUNTER_ID)]
    known: set[str] = set()
    for raw in all_shards:
        known.update(plain(raw).get("sources", set()))
    source_ids = sorted(known)[:MAX_SOURCES_READ]
    found = _batch_get(ddb, table_name, [i for s in source_ids for i in shard_ids(s)])
    sources = []
    for source_id in source_ids:
        names = [plain(found[i])["source"] for i in shard_ids(source_id) if "source" in found.get(i, {})]
        counts = Counts.summed(found, source_id)
        if names or counts.total:
            sources.append(SourceCounts(source=names[0] if names else "?", counts=counts))
    sources.sort(key=lambda s: (-s.counts.total, s.source))
    return Summary(
        counts=Counts.summed(totals, TOTAL_COUNTER_ID),
        pending=count_pending(ddb, table_name),
        days=[(d, Counts.summed(totals, day_counter_id(d))) for d in day_list],
        recent=recent_items(ddb, table_name, today, recent),
        sources=sources[:top_sources],
        generated_at=moment,
    )


# --------------------------------------------------------------------------- backfill


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


def _counter_item(item_id: str, counts: Counter[str], **extra: Any) -> dict[str, Any]:
    item: dict[str, Any] = {ITEMS_TABLE_HASH_KEY: {"S": item_id}, "total": {"N": str(sum(counts.values()))}}
    item.update({s: {"N": str(counts.get(s, 0))} for s in SENTIMENTS})
    item.update(extra)
    return item


def backfill(table_name: str, *, client: DynamoDBClient | None = None) -> BackfillReport:
    """Recompute every counter from the items (one consistent scan) into shard 0; delete every other counter item."""
    ddb = client or aws.client("dynamodb")
    total: Counter[str] = Counter()
    per_day: dict[str, Counter[str]] = {}
    per_source: dict[str, Counter[str]] = {}
    existing_counters: set[str] = set()
    items = indexed = 0
    for page in ddb.get_paginator("scan").paginate(TableName=table_name, ConsistentRead=True):
        for raw in page.get("Items", []):
            row = plain(raw)
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
            if RECENT_INDEX_HASH_KEY not in raw:
                ddb.update_item(
                    TableName=table_name,
                    Key={ITEMS_TABLE_HASH_KEY: {"S": item_id}},
                    UpdateExpression="SET #day = :day",
                    ConditionExpression="attribute_exists(#sentiment)",
                    ExpressionAttributeNames={"#day": RECENT_INDEX_HASH_KEY, "#sentiment": "sentiment"},
                    ExpressionAttributeValues={":day": {"S": day}},
                )
                indexed += 1
    source_ids = {source_counter_id(s): s for s in per_source}
    sources_set = {"sources": {"SS": sorted(source_ids)}} if source_ids else {}
    writes: list[dict[str, Any]] = [_counter_item(shard_id(TOTAL_COUNTER_ID, 0), total, **sources_set)]
    writes += [_counter_item(shard_id(day_counter_id(d), 0), c, date={"S": d}) for d, c in per_day.items()]
    writes += [_counter_item(shard_id(source_counter_id(s), 0), c, source={"S": s}) for s, c in per_source.items()]
    wanted = {w[ITEMS_TABLE_HASH_KEY]["S"] for w in writes}
    stale = sorted(existing_counters - wanted)
    requests: list[Any] = [{"PutRequest": {"Item": w}} for w in writes]
    requests += [{"DeleteRequest": {"Key": {ITEMS_TABLE_HASH_KEY: {"S": i}}}} for i in stale]
    for start in range(0, len(requests), 25):
        batch_write(ddb, {table_name: requests[start : start + 25]})
    return BackfillReport(
        items=items,
        analyzed=sum(total.values()),
        counts=Counts(**{s: total.get(s, 0) for s in SENTIMENTS}),
        days=len(per_day),
        sources=len(per_source),
        indexed=indexed,
        removed=len(stale),
    )
