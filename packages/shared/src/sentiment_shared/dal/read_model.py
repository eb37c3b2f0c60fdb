"""What the dashboard reads: the counters (every shard summed), the pending count and the newest items.

:func:`read_summary` is a handful of reads whatever the table's size; ``Summary.as_dict`` is the
``GET /api/summary`` body. Items are decoded once, as they arrive (:func:`sentiment_shared.dynamo.plain`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import islice
from typing import TYPE_CHECKING, Any

from sentiment_shared import aws
from sentiment_shared.dal.keys import TOTAL_COUNTER_ID, day_counter_id, shard_ids
from sentiment_shared.dynamo import attr, get_items, plain
from sentiment_shared.schemas import SENTIMENTS
from sentiment_shared.stack import (
    ITEMS_TABLE_HASH_KEY,
    PENDING_INDEX,
    PENDING_INDEX_HASH_KEY,
    PENDING_SHARD_VALUE,
    RECENT_INDEX,
    RECENT_INDEX_HASH_KEY,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

SUMMARY_DAYS = 30
RECENT_ITEMS = 12
MAX_SOURCES_READ = 500
"""The dashboard reads at most this many per-source counters (top sources; the rest are summed as "other")."""


@dataclass(frozen=True, slots=True)
class Counts:
    positive: int = 0
    negative: int = 0
    neutral: int = 0

    @property
    def total(self) -> int:
        return self.positive + self.negative + self.neutral

    @classmethod
    def from_row(cls, row: Mapping[str, Any] | None) -> Counts:
        """One counter item's counts (an item as plain values; None or a missing count is 0)."""
        if not row:
            return cls()
        return cls(**{s: int(row.get(s, 0)) for s in SENTIMENTS})

    @classmethod
    def summed(cls, found: Mapping[str, Mapping[str, Any]], counter_id: str) -> Counts:
        """One counter's counts: the sum of its shard items (and unsharded item) among ``found`` (plain rows)."""
        parts = [cls.from_row(found.get(i)) for i in shard_ids(counter_id)]
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


def count_pending(ddb: DynamoDBClient, table_name: str) -> int:
    """Items stored and not analyzed yet: the size of ingestion's sparse pending index."""
    count = 0
    paginator = ddb.get_paginator("query")
    for page in paginator.paginate(
        TableName=table_name,
        IndexName=PENDING_INDEX,
        KeyConditionExpression="#shard = :shard",
        ExpressionAttributeNames={"#shard": PENDING_INDEX_HASH_KEY},
        ExpressionAttributeValues={":shard": attr(PENDING_SHARD_VALUE)},
        Select="COUNT",
    ):
        count += int(page.get("Count", 0))
    return count


def recent_rows(
    ddb: DynamoDBClient, table_name: str, today: date, *, page_size: int, sentiment: str | None = None
) -> Iterator[dict[str, Any]]:
    """Analyzed items (plain values), newest first, from the recent-by-day index: today, then each earlier
    day of the last :data:`SUMMARY_DAYS`, ``page_size`` per query (before ``sentiment``'s filter), read
    only as far as the caller takes them."""
    for back in range(SUMMARY_DAYS):
        day = (today - timedelta(days=back)).isoformat()
        request: dict[str, Any] = {
            "TableName": table_name,
            "IndexName": RECENT_INDEX,
            "KeyConditionExpression": "#day = :day",
            "ExpressionAttributeNames": {"#day": RECENT_INDEX_HASH_KEY},
            "ExpressionAttributeValues": {":day": attr(day)},
            "ScanIndexForward": False,
            "Limit": page_size,
        }
        if sentiment is not None:
            request["FilterExpression"] = "#sentiment = :sentiment"
            request["ExpressionAttributeNames"]["#sentiment"] = "sentiment"
            request["ExpressionAttributeValues"][":sentiment"] = attr(sentiment)
        while True:
            resp = ddb.query(**request)
            yield from map(plain, resp.get("Items", []))
            last = resp.get("LastEvaluatedKey")
            if not last:
                break
            request["ExclusiveStartKey"] = last


def recent_items(ddb: DynamoDBClient, table_name: str, today: date, limit: int = RECENT_ITEMS) -> list[RecentItem]:
    """The newest analyzed items, newest first, from the recent-by-day index (today, then earlier days)."""
    return [
        RecentItem(
            item_id=row[ITEMS_TABLE_HASH_KEY],
            text=row.get("text", ""),
            sentiment=row.get("sentiment", ""),
            score=float(row.get("score", 0)),
            analyzed_at=row.get("analyzed_at", ""),
            source=row.get("source", ""),
            model_version=row.get("model_version", ""),
        )
        for row in islice(recent_rows(ddb, table_name, today, page_size=limit), limit)
    ]


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
    totals = get_items(ddb, table_name, wanted, consistent=True)
    known: set[str] = set()
    for counter_shard in shard_ids(TOTAL_COUNTER_ID):
        known.update(totals.get(counter_shard, {}).get("sources", set()))
    source_ids = sorted(known)[:MAX_SOURCES_READ]
    found = get_items(ddb, table_name, [i for s in source_ids for i in shard_ids(s)], consistent=True)
    sources = []
    for source_id in source_ids:
        names = [found[i]["source"] for i in shard_ids(source_id) if "source" in found.get(i, {})]
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
