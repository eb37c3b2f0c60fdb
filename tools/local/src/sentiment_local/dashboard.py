"""``sentiment-local dashboard``: the dashboard app over the local twin's saved state, on 127.0.0.1.

The saved items table (``items-table.jsonl`` in the state directory, written by ``sentiment-local run``)
is loaded into an embedded moto server, and the same app the Lambda serves reads it through the same
adapters. The state is read again whenever its files change (checked on every request: one ``stat`` per
file), so a run made while the dashboard is open shows on the next reload; with no state yet the server
starts anyway and the page says which command to run. A table saved before the counters existed is
backfilled on load (in the emulator only).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sentiment_local.emulator import aws_environment, embedded_moto
from sentiment_local.state import STATE_FILE, restore_table
from sentiment_shared import aws
from sentiment_shared.dal.backfill import backfill
from sentiment_shared.dal.keys import TOTAL_COUNTER_ID, shard_ids
from sentiment_shared.dynamo import get_items, plain
from sentiment_shared.stack import ResourceNames

if TYPE_CHECKING:
    from sentiment_dashboard.items import ItemFilter, ItemsPage

LAST_RUN_FILE = "last-run.json"
"""The last run's measured cost per 1,000 items and when it was saved (written by ``run``, shown by the dashboard)."""


def save_last_run(state_dir: Path, cost: dict[str, Any] | None) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    saved_at = datetime.now(UTC).isoformat(timespec="seconds")
    (state_dir / LAST_RUN_FILE).write_text(
        json.dumps({"cost_per_1000_items": cost, "saved_at": saved_at}), encoding="utf-8"
    )


def load_last_cost(state_dir: Path) -> dict[str, Any] | None:
    """The last run's cost, with ``covers`` saying which run it was (None if there is none)."""
    try:
        data = json.loads((state_dir / LAST_RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    cost = data.get("cost_per_1000_items") if isinstance(data, dict) else None
    if not isinstance(cost, dict):
        return None
    saved_at = data.get("saved_at")
    covers = "the last local run"
    if isinstance(saved_at, str):
        with contextlib.suppress(ValueError):
            covers += f" ({datetime.fromisoformat(saved_at).astimezone(UTC):%Y-%m-%d %H:%M} UTC)"
    return {**cost, "covers": covers}


def _has_counters(table: str) -> bool:
    return bool(get_items(aws.client("dynamodb"), table, shard_ids(TOTAL_COUNTER_ID), consistent=True))


def _saved_rows(path: Path) -> list[dict[str, Any]]:
    """The saved items as plain values (decoded once per reload, not per request)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    return [plain(json.loads(line)) for line in lines if line]


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class LocalState:
    """The saved state in the emulator's table, loaded again whenever its files change.

    Requests are served one at a time (a lock around the check, the reload and the read), so no request
    reads the table while it is being replaced.
    """

    def __init__(self, state_dir: Path, table: str) -> None:
        self.state_dir = state_dir
        self.table = table
        self.restored = 0
        self.backfilled = False
        self.reloads = 0
        self._cost: dict[str, Any] | None = None
        self._rows: list[dict[str, Any]] = []
        self._seen: object = object()  # never equal to a signature: the first check loads
        self._lock = threading.Lock()

    def _refresh(self) -> None:
        from sentiment_local.provision import create_items_table

        seen = (_signature(self.state_dir / STATE_FILE), _signature(self.state_dir / LAST_RUN_FILE))
        if seen == self._seen:
            return
        ddb = aws.client("dynamodb")
        with contextlib.suppress(ddb.exceptions.ResourceNotFoundException):
            ddb.delete_table(TableName=self.table)
        create_items_table(self.table)
        self.restored = restore_table(self.table, self.state_dir)
        self.backfilled = False
        if self.restored and not _has_counters(self.table):
            backfill(self.table)
            self.backfilled = True
        self._cost = load_last_cost(self.state_dir)
        self._rows = _saved_rows(self.state_dir / STATE_FILE)
        self._seen = seen  # taken before reading: a file replaced meanwhile is read again next time
        self.reloads += 1

    def load(self) -> None:
        with self._lock:
            self._refresh()

    def summary(self) -> dict[str, Any]:
        from sentiment_dashboard.summary import published_days, table_summary

        with self._lock:
            self._refresh()
            cost = self._cost
            body = table_summary(self.table, lambda: cost)
            today = date.fromisoformat(body["days"][-1]["date"]) if body["days"] else None
            body["published_days"] = published_days(self._rows, today=today)  # the same 30 days
            return body

    def items(self, flt: ItemFilter, skip: int, limit: int) -> ItemsPage:
        from sentiment_dashboard.items import list_items

        with self._lock:
            self._refresh()
            return list_items(self.table, flt, skip, limit)

    @property
    def has_state(self) -> bool:
        return (self.state_dir / STATE_FILE).is_file()


@contextlib.contextmanager
def local_state(state_dir: Path, stack: str = "local") -> Iterator[LocalState]:
    """The saved state (loaded now, and again whenever it changes) while the emulator runs."""
    with embedded_moto() as endpoint, aws_environment(endpoint):
        state = LocalState(state_dir, ResourceNames(stack=stack).items_table)
        state.load()
        yield state
