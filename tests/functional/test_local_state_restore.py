"""``sentiment-local dashboard`` over the saved state: items restored (not counter rows), read again after a run."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sentiment_dashboard.items import ItemFilter
from sentiment_local.dashboard import LAST_RUN_FILE, local_state
from sentiment_local.state import STATE_FILE

pytestmark = pytest.mark.functional


def test_restored_count_is_items_only(tmp_path: Path) -> None:
    # Given a saved table of two items and the counter row the analysis wrote for them
    rows = [
        {"item_id": {"S": "item-1"}, "text": {"S": "Great."}, "sentiment": {"S": "positive"}},
        {"item_id": {"S": "item-2"}, "text": {"S": "Awful."}, "sentiment": {"S": "negative"}},
        {"item_id": {"S": "counter#all"}, "total": {"N": "2"}, "positive": {"N": "1"}, "negative": {"N": "1"}},
        {"item_id": {"S": "feed-state#https://example.com/feed"}, "etag": {"S": '"abc"'}},
        {"item_id": {"S": "publish-run#0123"}, "failed": {"SS": ["x"]}},
    ]
    (tmp_path / STATE_FILE).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    # When the dashboard loads it
    with local_state(tmp_path) as state:
        summary = state.summary()
    # Then it says two items (the counter, feed-state and run-marker rows are restored, but are not items)
    assert state.restored == 2
    assert not state.backfilled
    assert (summary["analyzed"], summary["positive"], summary["negative"]) == (2, 1, 1)  # from the counter row


def _row(n: int, sentiment: str, source: str) -> dict[str, object]:
    at = (datetime.now(UTC) - timedelta(seconds=n)).isoformat()  # today: the item lists read the last 30 days
    return {
        "item_id": {"S": f"item-{n}"},
        "text": {"S": f"text {n}"},
        "sentiment": {"S": sentiment},
        "score": {"N": "0.9"},
        "source": {"S": source},
        "analyzed_at": {"S": at},
        "analyzed_day": {"S": at[:10]},
        "url": {"S": f"https://example.com/{n}"},
        "title": {"S": f"Title {n}"},
    }


def test_a_run_saved_while_the_dashboard_is_open_shows_on_the_next_read(tmp_path: Path) -> None:
    # Given a dashboard started before any run (no state: it starts, and shows nothing)
    with local_state(tmp_path) as state:
        assert not state.has_state
        assert state.summary()["total"] == 0
        # When a run saves its table (items without counters: an old run) and its cost
        rows = [_row(1, "positive", "https://a.example/feed?utm_source=x"), _row(2, "negative", "/tmp/b.xml")]
        (tmp_path / STATE_FILE).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        (tmp_path / LAST_RUN_FILE).write_text(
            json.dumps({"cost_per_1000_items": {"total_usd": 0.04}, "saved_at": "2026-12-01T10:01:00+00:00"}),
            encoding="utf-8",
        )
        # Then the next read shows it, without a restart (counters rebuilt in the emulator)
        summary = state.summary()
        assert (summary["total"], summary["positive"], summary["negative"]) == (2, 1, 1)
        assert state.backfilled
        assert summary["cost_per_1000_items"]["covers"] == "the last local run (2026-12-01 10:01 UTC)"
        # (the saved items have no publication date: the per-publication-day chart counts them as undated)
        assert summary["published_days"]["undated"] == {"positive": 1, "negative": 1, "neutral": 0}
        reloads = state.reloads
        state.summary()
        assert state.reloads == reloads  # unchanged files are not read again
        # And the item lists filter by sentiment and by short source name
        by_source = state.items(ItemFilter(source="a.example"), 0, 12)
        assert [i.item_id for i in by_source.items] == ["item-1"]
        assert by_source.items[0].url == "https://example.com/1"
        assert [i.item_id for i in state.items(ItemFilter(sentiment="negative"), 0, 12).items] == ["item-2"]
