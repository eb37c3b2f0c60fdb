"""``sentiment-local dashboard``: the dashboard app over the local twin's saved state, on 127.0.0.1.

The saved items table (``items-table.jsonl`` in the state directory, written by ``sentiment-local run``)
is loaded into an embedded moto server, and the same app the Lambda serves reads it through the same
adapters. A table saved before the counters existed is backfilled on load (in the emulator only).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sentiment_local.emulator import aws_environment, embedded_moto
from sentiment_local.state import STATE_FILE, restore_table
from sentiment_shared import aws, counters
from sentiment_shared.stack import ITEMS_TABLE_HASH_KEY, ResourceNames

LAST_RUN_FILE = "last-run.json"
"""The last run's measured cost per 1,000 items (written by ``run``, shown by the dashboard)."""


class NoStateError(RuntimeError):
    """Nothing to show: no saved table in the state directory."""


def save_last_run(state_dir: Path, cost: dict[str, Any] | None) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / LAST_RUN_FILE).write_text(json.dumps({"cost_per_1000_items": cost}), encoding="utf-8")


def load_last_cost(state_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((state_dir / LAST_RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    cost = data.get("cost_per_1000_items") if isinstance(data, dict) else None
    return cost if isinstance(cost, dict) else None


def _has_counters(table: str) -> bool:
    resp = aws.client("dynamodb").get_item(
        TableName=table, Key={ITEMS_TABLE_HASH_KEY: {"S": counters.TOTAL_COUNTER_ID}}, ConsistentRead=True
    )
    return "Item" in resp


@contextlib.contextmanager
def local_summary(state_dir: Path, stack: str = "local") -> Iterator[tuple[Callable[[], dict[str, Any]], int, bool]]:
    """(summary loader, items restored, backfilled?) over the saved state, while the emulator runs."""
    from sentiment_dashboard.summary import table_summary
    from sentiment_local.provision import create_items_table

    if not (state_dir / STATE_FILE).is_file():
        raise NoStateError(
            f"no saved pipeline state in {state_dir}: run `sentiment-local run` first (or pass --state-dir)"
        )
    table = ResourceNames(stack=stack).items_table
    cost = load_last_cost(state_dir)
    with embedded_moto() as endpoint, aws_environment(endpoint):
        create_items_table(table)
        restored = restore_table(table, state_dir)
        backfilled = False
        if restored and not _has_counters(table):
            counters.backfill(table)
            backfilled = True
        yield (lambda: table_summary(table, lambda: cost)), restored, backfilled
