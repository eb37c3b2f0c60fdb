"""In-memory fakes of every port (items table, publisher, ingestion bookkeeping), for tests only.

The cores run on these ("prefer fakes over mocks"); the handlers take them through their
``build_handler``. They live under ``tests/`` so no function ships them. The analysis function as the
client invokes it is faked by ``sentiment_client.testing``, which ships with the SDK for its users.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Collection, Sequence
from datetime import datetime

from sentiment_ingestion.feeds import FeedState
from sentiment_shared.ports import ItemNotFoundError, PublishReport, SentimentWrite, WriteOutcome
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

    def set_sentiments(self, writes: Sequence[SentimentWrite]) -> list[WriteOutcome]:
        outcomes: list[WriteOutcome] = []
        for write in writes:
            try:
                outcomes.append(self.set_sentiment(write.item_id, write.result, source=write.source))
            except Exception as exc:  # noqa: BLE001 - one write's failure is its outcome
                outcomes.append(exc)
        return outcomes

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


class AtomicTable(InMemoryItemsTable):
    """The fake with DynamoDB's guarantee that a conditional put is atomic (for concurrent runs)."""

    def __init__(self) -> None:
        super().__init__()
        self.barrier: threading.Barrier | None = None

    def create(self, item: Item) -> bool:
        if self.barrier is not None:
            self.barrier.wait(timeout=10)  # both runs reach the table together
        with self._lock:
            return super().create(item)


class BrokenTable(InMemoryItemsTable):
    """Fails the put of chosen texts as a throttled/unavailable table would."""

    def __init__(self, broken_texts: set[str]) -> None:
        super().__init__()
        self.broken_texts = broken_texts

    def create(self, item: Item) -> bool:
        if item.text in self.broken_texts:
            raise ConnectionError("table unavailable")
        return super().create(item)


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


class RaisingPublisher(InMemoryPublisher):
    def publish(self, messages: Sequence[TopicMessage]) -> PublishReport:
        raise RuntimeError("SNS client exploded")


class InMemoryIngestionStore:
    """:class:`sentiment_ingestion.store.IngestionStore` in memory."""

    def __init__(self) -> None:
        self.feed_states: dict[str, FeedState] = {}
        self.runs: dict[str, frozenset[str]] = {}
        self._lock = threading.Lock()

    def get_feed_state(self, url: str) -> FeedState | None:
        return self.feed_states.get(url)

    def put_feed_state(self, url: str, state: FeedState) -> None:
        with self._lock:
            self.feed_states[url] = state

    def record_run(self, run_id: str, failed: Collection[str]) -> None:
        with self._lock:
            self.runs[run_id] = frozenset(failed)

    def failed_in_runs(self, run_ids: Collection[str]) -> dict[str, frozenset[str]]:
        return {run_id: self.runs[run_id] for run_id in run_ids if run_id in self.runs}
