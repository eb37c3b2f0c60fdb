"""Ingestion's own bookkeeping in the items table: per-feed HTTP validators and per-run publish markers.

Two kinds of small items share the items table (no item id can clash with them: item ids are hex):

* ``feed-state#<sha256(url)>``: the feed's last ETag / Last-Modified, for conditional GETs;
* ``publish-run#<run id>``: written once by a run *after* it published its new items, listing the ids
  whose publish failed. Items carry their ``run_id``; an item still in the pending index whose run has a
  marker not naming it was published, so a successful publish costs one write per run, not per item.

The ports are Protocols so the core runs on the tests' in-memory fake; the DynamoDB adapter builds its client
lazily through :mod:`sentiment_shared.aws` (never at import time).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Collection
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from sentiment_ingestion.feeds import FeedState
from sentiment_shared import aws
from sentiment_shared.dynamo import attr, encode, plain
from sentiment_shared.stack import (
    FEED_STATE_PREFIX,
    ITEMS_TABLE_HASH_KEY,
    ITEMS_TABLE_TTL_ATTRIBUTE,
    PUBLISH_RUN_PREFIX,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

RUN_MARKER_TTL_S = 14 * 24 * 3600
"""``expires_at`` of a run marker: long after any pending item of that run was re-published or analyzed
(honoured if the table's TTL is enabled on ``expires_at``; harmless otherwise)."""


class FeedStateStore(Protocol):
    def get_feed_state(self, url: str) -> FeedState | None: ...

    def put_feed_state(self, url: str, state: FeedState) -> None: ...


class PublishRunLog(Protocol):
    def record_run(self, run_id: str, failed: Collection[str]) -> None:
        """The run finished publishing; ``failed`` are the ids it stored but could not publish."""
        ...

    def failed_in_runs(self, run_ids: Collection[str]) -> dict[str, frozenset[str]]:
        """For each run that recorded a marker: the ids that failed. Runs without a marker are absent."""
        ...


class IngestionStore(FeedStateStore, PublishRunLog, Protocol):
    """Both bookkeeping ports (one table holds both)."""


def feed_state_key(url: str) -> str:
    return FEED_STATE_PREFIX + hashlib.sha256(url.encode("utf-8")).hexdigest()


def run_marker_key(run_id: str) -> str:
    return PUBLISH_RUN_PREFIX + run_id


class DynamoIngestionStore:
    """:class:`IngestionStore` on the items table."""

    client: aws.LazyClient[DynamoDBClient] = aws.LazyClient("dynamodb")

    def __init__(self, table_name: str, *, client: DynamoDBClient | None = None) -> None:
        self.table_name = table_name
        self._client = client

    def get_feed_state(self, url: str) -> FeedState | None:
        resp = self.client.get_item(
            TableName=self.table_name,
            Key={ITEMS_TABLE_HASH_KEY: attr(feed_state_key(url))},
            ProjectionExpression="#etag, #last_modified",
            ExpressionAttributeNames={"#etag": "etag", "#last_modified": "last_modified"},
        )
        raw = resp.get("Item")
        if raw is None:
            return None
        row = plain(raw)
        return FeedState(etag=row.get("etag"), last_modified=row.get("last_modified"))

    def put_feed_state(self, url: str, state: FeedState) -> None:
        row = {ITEMS_TABLE_HASH_KEY: feed_state_key(url), "url": url, "updated_at": datetime.now(UTC)}
        if state.etag:
            row["etag"] = state.etag
        if state.last_modified:
            row["last_modified"] = state.last_modified
        self.client.put_item(TableName=self.table_name, Item=encode(row))

    def record_run(self, run_id: str, failed: Collection[str]) -> None:
        self.client.put_item(
            TableName=self.table_name,
            Item=encode(
                {
                    ITEMS_TABLE_HASH_KEY: run_marker_key(run_id),
                    "failed": sorted(failed),
                    "recorded_at": datetime.now(UTC),
                    ITEMS_TABLE_TTL_ATTRIBUTE: int(time.time()) + RUN_MARKER_TTL_S,
                }
            ),
        )

    def failed_in_runs(self, run_ids: Collection[str]) -> dict[str, frozenset[str]]:
        # One GetItem per distinct run: a sweep's candidates come from a handful of runs, and GetItem is
        # already in the function's policy (BatchGetItem would need another grant for no real saving).
        found: dict[str, frozenset[str]] = {}
        for run_id in sorted(set(run_ids)):
            resp = self.client.get_item(
                TableName=self.table_name,
                Key={ITEMS_TABLE_HASH_KEY: attr(run_marker_key(run_id))},
                ProjectionExpression="#failed",
                ExpressionAttributeNames={"#failed": "failed"},
                ConsistentRead=True,
            )
            raw = resp.get("Item")
            if raw is not None:
                found[run_id] = frozenset(v for v in plain(raw).get("failed", []) if isinstance(v, str))
        return found
