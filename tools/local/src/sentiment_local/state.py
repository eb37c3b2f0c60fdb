"""Local state that outlives the embedded emulator: the items table, saved after a run, restored before the next.

moto keeps everything in memory, so without this every run of ``sentiment-local run`` would see an
empty table and re-ingest the same feed. Saving the table (items and the per-feed ETag state) makes a
second run on the same feed behave as in AWS: nothing new is ingested. ``--fresh`` starts over.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from sentiment_shared import aws
from sentiment_shared.dal.keys import is_bookkeeping
from sentiment_shared.dynamo import MAX_WRITES_PER_BATCH, batch_write, plain
from sentiment_shared.stack import ITEMS_TABLE_HASH_KEY

STATE_FILE = "items-table.jsonl"


def default_state_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sentiment-analyzer" / "local"


def save_table(table_name: str, state_dir: Path) -> int:
    """Write every item of the table as one JSON line (DynamoDB attribute-value form); returns the count."""
    ddb = aws.client("dynamodb")
    state_dir.mkdir(parents=True, exist_ok=True)
    count = 0
    fd, tmp = tempfile.mkstemp(dir=state_dir, prefix=".items-", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        for page in ddb.get_paginator("scan").paginate(TableName=table_name, ConsistentRead=True):
            for item in page.get("Items", []):
                out.write(json.dumps(item, sort_keys=True) + "\n")
                count += 1
    Path(tmp).replace(state_dir / STATE_FILE)
    return count


def restore_table(table_name: str, state_dir: Path) -> int:
    """Load a saved table into the (empty) emulator table, streaming the file 25 items at a time; returns
    the count of items restored (the bookkeeping rows that ride along in the same table — counters, feed
    state, run markers — are restored but not counted)."""
    path = state_dir / STATE_FILE
    if not path.is_file():
        return 0
    ddb = aws.client("dynamodb")
    restored = 0

    def put(chunk: list[dict[str, Any]]) -> None:
        batch_write(ddb, {table_name: [{"PutRequest": {"Item": i}} for i in chunk]})

    chunk: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if not line.strip():
                continue
            item = json.loads(line)
            chunk.append(item)
            restored += not is_bookkeeping(plain(item)[ITEMS_TABLE_HASH_KEY])
            if len(chunk) == MAX_WRITES_PER_BATCH:
                put(chunk)
                chunk = []
    if chunk:
        put(chunk)
    return restored


def clear_state(state_dir: Path) -> None:
    (state_dir / STATE_FILE).unlink(missing_ok=True)
