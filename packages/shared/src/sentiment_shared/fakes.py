"""In-memory fakes of the ports, for unit tests of the services' cores ("prefer fakes over mocks")."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from datetime import datetime

from sentiment_shared.ports import ItemNotFoundError, PublishReport
from sentiment_shared.schemas import Item, SentimentResult, TopicMessage


class InMemoryItemsTable:
    def __init__(self) -> None:
        self.items: dict[str, Item] = {}
        self.counts: Counter[str] = Counter()
        """Sentiment → items counted by their first write (the dashboard's counters)."""
        self.counts_by_source: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def create(self, item: Item) -> bool:
        if item.item_id in self.items:
            return False
        self.items[item.item_id] = item
        return True

    def get(self, item_id: str) -> Item | None:
        return self.items.get(item_id)

    def set_sentiment(self, item_id: str, result: SentimentResult, *, source: str = "direct") -> bool:
        with self._lock:  # DynamoDB's transactions are serializable
            item = self.items.get(item_id)
            if item is None:
                raise ItemNotFoundError(item_id)
            if item.sentiment is not None:
                return False
            self.items[item_id] = item.model_copy(update={**result.model_dump(), "status": "analyzed"})
            self.counts[result.sentiment] += 1
            self.counts_by_source[(source, result.sentiment)] += 1
            return True

    def mark_published(self, item_id: str) -> None:
        item = self.items.get(item_id)
        if item is not None and item.status == "pending":
            self.items[item_id] = item.model_copy(update={"status": "published"})

    def pending_items(self, older_than: datetime, limit: int) -> list[Item]:
        pending = sorted(
            (i for i in self.items.values() if i.status == "pending" and i.ingested_at < older_than),
            key=lambda i: i.ingested_at,
        )
        return pending[: max(limit, 0)]


class InMemoryPublisher:
    """Records published messages; ``fail_ids`` are reported failed (to test the pending path)."""

    def __init__(self, fail_ids: set[str] | None = None) -> None:
        self.messages: list[TopicMessage] = []
        self.fail_ids = fail_ids or set()

    def publish(self, messages: Sequence[TopicMessage]) -> PublishReport:
        report = PublishReport()
        for message in messages:
            if message.item_id in self.fail_ids:
                report.failed[message.item_id] = "injected"
            else:
                self.messages.append(message)
                report.published.append(message.item_id)
        return report
