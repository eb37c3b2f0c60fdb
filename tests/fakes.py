"""In-memory fakes of every port (items table, publisher, ingestion bookkeeping, the analysis function as the
client invokes it), for tests only.

The cores run on these ("prefer fakes over mocks"); the handlers take them through their
``build_handler``. They live under ``tests/`` so no function ships them.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections import Counter
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

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


class FakeAnalysisFunction:
    """Stands for ``lambda.invoke`` of the analysis function: a deterministic verdict per text.

    ``delay_for(batch_number)`` lets a test make early batches finish last, to prove ordering does
    not depend on completion order. Records every request body and the peak number in flight.
    """

    def __init__(self, delay_for: Any = None) -> None:
        self.payloads: list[bytes] = []
        self.completed: list[int] = []
        self.in_flight = 0
        self.peak_in_flight = 0
        self._delay_for = delay_for
        self._lock = threading.Lock()

    @staticmethod
    def verdict(text: str) -> dict[str, Any]:
        # Deterministic and text-dependent, so a result in the wrong slot is detected.
        positive = "good" in text
        return {
            "sentiment": "positive" if positive else "negative",
            "score": round(0.5 + (len(text) % 50) / 100, 4),
            "label": "POSITIVE" if positive else "NEGATIVE",
        }

    def invoke(self, *, FunctionName: str, InvocationType: str, Payload: bytes) -> dict[str, Any]:
        assert InvocationType == "RequestResponse"
        with self._lock:
            number = len(self.payloads)
            self.payloads.append(Payload)
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            if self._delay_for is not None:
                time.sleep(self._delay_for(number))
            texts = json.loads(Payload)["texts"]
            body = {"statusCode": 200, "results": [self.verdict(t) for t in texts], "count": len(texts)}
        finally:
            with self._lock:
                self.in_flight -= 1
                self.completed.append(number)
        return {"StatusCode": 200, "Payload": io.BytesIO(json.dumps(body).encode())}


class FlakyAnalysisFunction(FakeAnalysisFunction):
    """Throttles every call (an outage), or rejects any batch holding a text starting with ``reject``."""

    def __init__(self, *, throttle: bool) -> None:
        super().__init__()
        self.throttle = throttle

    def invoke(self, *, FunctionName: str, InvocationType: str, Payload: bytes) -> dict[str, Any]:
        if self.throttle:
            with self._lock:
                self.payloads.append(Payload)
            response: Any = {
                "Error": {"Code": "TooManyRequestsException", "Message": "Rate exceeded"},
                "ResponseMetadata": {"HTTPStatusCode": 429},
            }
            raise ClientError(response, "Invoke")
        if any(t.startswith("reject") for t in json.loads(Payload)["texts"]):
            with self._lock:
                self.payloads.append(Payload)
            body = {"statusCode": 400, "error": "texts contain a rejected item"}
            return {"StatusCode": 200, "Payload": io.BytesIO(json.dumps(body).encode())}
        return super().invoke(FunctionName=FunctionName, InvocationType=InvocationType, Payload=Payload)
