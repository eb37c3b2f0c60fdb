"""How the dashboard's counter items are keyed: counter ids, their shards, the UTC day, bookkeeping rows."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from sentiment_shared.stack import BOOKKEEPING_PREFIXES, COUNTER_PREFIX

TOTAL_COUNTER_ID = f"{COUNTER_PREFIX}all"
DAY_COUNTER_PREFIX = f"{COUNTER_PREFIX}day#"
SOURCE_COUNTER_PREFIX = f"{COUNTER_PREFIX}source#"
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
    """True for the table's non-item rows: counters, feed state, run markers."""
    return item_id.startswith(BOOKKEEPING_PREFIXES)


def shard_id(counter_id: str, shard: int) -> str:
    """The item holding one shard of a counter."""
    return f"{counter_id}#{shard}"


def shard_ids(counter_id: str) -> list[str]:
    """Every item a reader sums for one counter: its shards, and the unsharded id of the earlier layout."""
    return [counter_id, *(shard_id(counter_id, n) for n in range(COUNTER_SHARDS))]
