"""The two analysis write paths the write benchmarks compare, and a recorder of DynamoDB writes as sent.

* ``new``: :class:`sentiment_shared.adapters.DynamoItemsTable` — a batch's results and its counter deltas
  in ONE transaction, the counters on one of 8 random shards.
* ``today``: :class:`TodaysWritePath` — the path before it (up to 92333f7): one transaction per record,
  the item update and its 3 counters (total, day, source) on the unsharded counter ids.

:class:`WriteRecorder` hooks every DynamoDB client the code makes (``sentiment_shared.aws.client``) and
records each write request as sent (``before-send``: retries and refused transactions included), then
estimates its write units from DynamoDB's rules: 1 unit per KB of the item written (an update: of the
item's size after the run, never smaller than before), 2 per action in a transaction.
"""

from __future__ import annotations

import json
import math
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sentiment_shared import aws
from sentiment_shared.adapters import DynamoItemsTable
from sentiment_shared.dynamo import plain
from sentiment_shared.ports import SentimentWrite, WriteOutcome
from sentiment_shared.stack import ITEMS_TABLE_HASH_KEY

PATHS = ("today", "new")


class TodaysWritePath(DynamoItemsTable):
    """One TransactWriteItems per record: the item's update + total, day and source counters, unsharded."""

    def _pick_shard(self) -> int | None:
        return None

    def set_sentiments(self, writes: Sequence[SentimentWrite]) -> list[WriteOutcome]:
        return [super(TodaysWritePath, self).set_sentiments([w])[0] for w in writes]


def items_table(path: str, table_name: str, **kwargs: Any) -> DynamoItemsTable:
    if path not in PATHS:
        raise ValueError(f"unknown write path {path!r}: one of {PATHS}")
    return TodaysWritePath(table_name, **kwargs) if path == "today" else DynamoItemsTable(table_name, **kwargs)


def attribute_size(value: dict[str, Any]) -> int:  # noqa: PLR0911 - one return per type
    """DynamoDB's size of one attribute value (bytes), as its documentation counts them."""
    kind, raw = next(iter(value.items()))
    if kind == "S":
        return len(str(raw).encode("utf-8"))
    if kind == "N":
        digits = str(raw).lstrip("-").replace(".", "").lstrip("0")
        return math.ceil(len(digits) / 2) + 1
    if kind == "B":
        return len(raw)
    if kind in ("SS",):
        return sum(len(str(v).encode("utf-8")) for v in raw)
    if kind == "NS":
        return sum(attribute_size({"N": v}) for v in raw)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(len(k.encode("utf-8")) + attribute_size(v) + 1 for k, v in raw.items())
    if kind == "L":
        return 3 + sum(attribute_size(v) + 1 for v in raw)
    return 0


def item_size(item: dict[str, Any]) -> int:
    return sum(len(name.encode("utf-8")) + attribute_size(value) for name, value in item.items())


@dataclass
class Write:
    operation: str
    key: str
    transactional: bool
    sent_item: dict[str, Any] | None = None
    """The item a put sends (its size is known from the request)."""


@dataclass
class WriteRecorder:
    writes: list[Write] = field(default_factory=list)
    requests: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _on_send(self, request: Any, model: Any = None, **_: Any) -> None:
        operation = request.headers.get("X-Amz-Target", b"")
        operation = (operation.decode() if isinstance(operation, bytes) else str(operation)).rpartition(".")[2]
        if operation not in ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"):
            return
        body = json.loads(request.body or b"{}")
        found: list[Write] = []
        if operation in ("PutItem", "UpdateItem", "DeleteItem"):
            item = body.get("Item")
            key = plain(item or body.get("Key", {}))[ITEMS_TABLE_HASH_KEY]
            found.append(Write(operation, key, False, item))
        elif operation == "BatchWriteItem":
            for requests in body.get("RequestItems", {}).values():
                for r in requests:
                    if "PutRequest" in r:
                        item = r["PutRequest"]["Item"]
                        found.append(Write("PutItem", plain(item)[ITEMS_TABLE_HASH_KEY], False, item))
                    else:
                        found.append(Write("DeleteItem", plain(r["DeleteRequest"]["Key"])[ITEMS_TABLE_HASH_KEY], False))
        else:
            for action in body.get("TransactItems", []):
                kind, op = next(iter(action.items()))
                item = op.get("Item")
                key = plain(item or op.get("Key", {}))[ITEMS_TABLE_HASH_KEY]
                found.append(Write(kind, key, True, item))
        with self._lock:
            self.requests[operation] += 1
            self.writes.extend(found)

    @contextmanager
    def installed(self) -> Iterator[WriteRecorder]:
        """Record the writes of every DynamoDB client ``sentiment_shared.aws.client`` makes in the block."""
        real = aws._cached_client

        def recording(service: str, env: Any, config: Any) -> Any:
            made = real(service, env, config)
            if service == "dynamodb" and not getattr(made, "_write_recorder", False):
                made.meta.events.register("before-send.dynamodb", self._on_send)
                made._write_recorder = True
            return made

        recording.cache_clear = real.cache_clear  # type: ignore[attr-defined]
        aws._cached_client = recording  # type: ignore[assignment]
        aws.reset_clients()
        try:
            yield self
        finally:
            aws._cached_client = real
            aws.reset_clients()

    def units(self, final_sizes: dict[str, int]) -> float:
        """Estimated write units of every recorded write (a refused or retried one costs as if it wrote)."""
        total = 0.0
        for w in self.writes:
            if w.operation == "ConditionCheck":
                size = final_sizes.get(w.key, 1)
            elif w.sent_item is not None:
                size = item_size(w.sent_item)
            else:
                size = final_sizes.get(w.key, 1)
            total += max(1, math.ceil(size / 1024)) * (2 if w.transactional else 1)
        return total

    def per_key(self) -> Counter[str]:
        return Counter(w.key for w in self.writes)


def table_sizes(table_name: str) -> dict[str, int]:
    """item_id → DynamoDB size of every item in the table now."""
    sizes: dict[str, int] = {}
    for page in aws.client("dynamodb").get_paginator("scan").paginate(TableName=table_name, ConsistentRead=True):
        for raw in page.get("Items", []):
            sizes[plain(raw)[ITEMS_TABLE_HASH_KEY]] = item_size(dict(raw))
    return sizes
