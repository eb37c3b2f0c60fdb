"""The data that crosses service boundaries: the stored item, the topic message, the sentiment result.

These models are the wire contract between ingestion, the topic/queue and analysis; see
ARCHITECTURE.md ("Items table", "Messages on the topic"). They import nothing from AWS.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

SCHEMA_VERSION = 1
"""Version of :class:`TopicMessage`; consumers accept messages up to this version."""

Sentiment = Literal["positive", "negative", "neutral"]
ItemStatus = Literal["pending", "published", "analyzed"]

ItemId = Annotated[str, StringConstraints(min_length=1, max_length=256, strip_whitespace=False)]


def utc_now() -> datetime:
    """Timezone-aware now, the only clock the schemas use."""
    return datetime.now(UTC)


class TopicMessage(BaseModel):
    """The JSON message ingestion publishes on the topic, one per newly stored item."""

    model_config = ConfigDict(extra="ignore", frozen=True, strict=False)

    item_id: ItemId
    text: str
    source: str = "direct"
    ingested_at: datetime = Field(default_factory=utc_now)
    schema_version: int = Field(default=SCHEMA_VERSION, ge=1, le=SCHEMA_VERSION)

    def to_json(self) -> str:
        return self.model_dump_json()


class SentimentResult(BaseModel):
    """What the analysis writes onto an existing item."""

    model_config = ConfigDict(frozen=True)

    sentiment: Sentiment
    score: float = Field(ge=0.0, le=1.0)
    label: str
    model_version: str
    analyzed_at: datetime = Field(default_factory=utc_now)


class Item(BaseModel):
    """An item of the items table (partition key ``item_id``)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    item_id: ItemId
    text: str
    source: str = "direct"
    url: str | None = None
    title: str | None = None
    published_at: datetime | None = None
    ingested_at: datetime = Field(default_factory=utc_now)
    status: ItemStatus = "pending"
    text_truncated: bool = False
    run_id: str | None = None
    """The ingestion run that stored the item; that run's marker (``stack.PUBLISH_RUN_PREFIX``) says
    whether its publish finished, so a successful publish needs no write per item."""
    # Written by the analysis onto the existing item.
    sentiment: Sentiment | None = None
    score: float | None = None
    label: str | None = None
    model_version: str | None = None
    analyzed_at: datetime | None = None

    def to_message(self) -> TopicMessage:
        return TopicMessage(item_id=self.item_id, text=self.text, source=self.source, ingested_at=self.ingested_at)
