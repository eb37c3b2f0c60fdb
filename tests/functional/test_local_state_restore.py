"""``sentiment-local dashboard`` reports the items it restored from a saved run, not the counter rows beside them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sentiment_local.dashboard import local_summary
from sentiment_local.state import STATE_FILE

pytestmark = pytest.mark.functional


def test_restored_count_is_items_only(tmp_path: Path) -> None:
    # Given a saved table of two items and the counter row the analysis wrote for them
    rows = [
        {"item_id": {"S": "item-1"}, "text": {"S": "Great."}, "sentiment": {"S": "positive"}},
        {"item_id": {"S": "item-2"}, "text": {"S": "Awful."}, "sentiment": {"S": "negative"}},
        {"item_id": {"S": "counter#all"}, "total": {"N": "2"}, "positive": {"N": "1"}, "negative": {"N": "1"}},
    ]
    (tmp_path / STATE_FILE).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    # When the dashboard loads it
    with local_summary(tmp_path) as (load, restored, backfilled):
        summary = load()
    # Then it says two items (the counter row is restored, and read, but is not an item)
    assert restored == 2
    assert not backfilled
    assert (summary["analyzed"], summary["positive"], summary["negative"]) == (2, 1, 1)  # from the counter row
