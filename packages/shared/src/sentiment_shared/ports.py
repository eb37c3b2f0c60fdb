"""The small interfaces the services' cores depend on; boto3 adapters live in :mod:`sentiment_shared.adapters`.

Cores and tests use these Protocols (tests with the in-memory fakes in ``tests/fakes.py``),
so no core imports boto3 or Lambda types.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from sentiment_shared.schemas import Item, SentimentResult, TopicMessage


class ItemNotFoundError(LookupError):
    """The item to update does not exist (the analysis never creates items)."""


@dataclass(frozen=True, slots=True)
class PublishReport:
    """Outcome of publishing a batch of messages: every input ``item_id`` is in exactly one list."""

    published: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    """``item_id`` → last error code/message, for entries still failing after the retries."""


@dataclass(frozen=True, slots=True)
class SentimentWrite:
    """One record's first write of an item's sentiment: the item, its result and the source it counts for."""

    item_id: str
    result: SentimentResult
    source: str = "direct"


WriteOutcome = bool | Exception
"""True: the item's first write, counted once; False: it already had a sentiment (nothing written or
counted); an exception: this write failed and counted nothing (:class:`ItemNotFoundError` for a missing item)."""


class ItemsTable(Protocol):
    def create(self, item: Item) -> bool:
        """Insert-once: True if stored, False if an item with that ``item_id`` already exists."""
        ...

    def get(self, item_id: str) -> Item | None: ...

    def set_sentiment(self, item_id: str, result: SentimentResult, *, source: str = "direct") -> bool:
        """First write of an item's sentiment, counted once (True); False if it already had one.

        :class:`ItemNotFoundError` if the item is missing. ``source`` is the item's source (its counter).
        """
        ...

    def set_sentiments(self, writes: Sequence[SentimentWrite]) -> list[WriteOutcome]:
        """A batch's first writes, each counted exactly once: one outcome per write, in order.

        Never raises for one write's failure: that write's outcome is the exception (it counts nothing).
        """
        ...

    def mark_published(self, item_id: str) -> None:
        """Pending → published (no-op if the analysis already got there first)."""
        ...

    def pending_items(self, older_than: datetime, limit: int) -> list[Item]:
        """Items stored but never published, ingested before ``older_than``, oldest first."""
        ...


class Publisher(Protocol):
    def publish(self, messages: Sequence[TopicMessage]) -> PublishReport: ...
