"""The data that crosses service boundaries: the stored item, the topic message, the sentiment result.

These models are the wire contract between ingestion, the topic/queue and analysis; see README.md
("Contracts": the items table, messages on the topic). They import nothing from AWS.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Self, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    StringConstraints,
    ValidationError,
    model_validator,
)

SCHEMA_VERSION = 1
"""Version of :class:`TopicMessage`; consumers accept messages up to this version."""

Sentiment = Literal["positive", "negative", "neutral"]
SENTIMENTS: tuple[Sentiment, ...] = get_args(Sentiment)
ItemStatus = Literal["pending", "published", "analyzed"]


def _encodable(value: str) -> str:
    # JSON may carry an unpaired UTF-16 surrogate escape ("\ud800"): Python decodes it to a lone
    # surrogate, which no UTF-8 encoder (hashing, DynamoDB, SNS, the tokenizer) accepts.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"not valid Unicode: unpaired surrogate {value[exc.start]!r} at index {exc.start}") from exc
    return value


Utf8Str = Annotated[str, AfterValidator(_encodable)]
"""A string every UTF-8 encoder takes (no lone surrogates)."""

ItemId = Annotated[str, StringConstraints(min_length=1, max_length=256), AfterValidator(_encodable)]


def _feed_list(value: Any) -> Any:
    # Pulumi config and the FEEDS variable both carry the list as JSON text; an empty variable is no feeds.
    if isinstance(value, str):
        if not value.strip():
            return ()
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"must be a JSON list of feed URLs ({exc.msg})") from exc
    if not isinstance(value, list | tuple) or not all(isinstance(url, str) for url in value):
        raise ValueError("must be a JSON list of feed URLs (strings)")
    return tuple(value)


FeedUrls = Annotated[tuple[str, ...], BeforeValidator(_feed_list)]
"""The feeds the ingestion function polls: parsed here once, from the stack's ``feeds`` config and from the
function's ``FEEDS`` variable (a JSON list, written by :func:`feed_urls_json`)."""


def feed_urls_json(urls: Sequence[str]) -> str:
    """``urls`` as the ``FEEDS`` value :data:`FeedUrls` reads back."""
    return json.dumps(list(urls))


MAX_TEXTS_PER_INVOKE = 4096
"""Texts per direct invoke of the analysis function (Lambda's 6 MB payload limit bounds it too)."""


def utc_now() -> datetime:
    """Timezone-aware now, the only clock the schemas use."""
    return datetime.now(UTC)


class TopicMessage(BaseModel):
    """The JSON message ingestion publishes on the topic, one per newly stored item."""

    model_config = ConfigDict(extra="ignore", frozen=True, strict=False)

    item_id: ItemId
    text: Utf8Str
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


# --------------------------------------------------------------------------- direct invokes

_Source = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1024), AfterValidator(_encodable)
]
_Url = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2048), AfterValidator(_encodable)]


def _direct_id(value: Any) -> str | int:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError("must be a string or an integer")
    return _encodable(value) if isinstance(value, str) else value


_DirectId = Annotated[str | int, PlainValidator(_direct_id)]


class DirectRequestError(ValueError):
    """A direct invoke's payload is malformed; the message names the field (the 400's ``error``)."""


class DirectItem(BaseModel):
    """One entry of ``{"items": [...]}``; the analysis echoes ``id``, ingestion also keeps the rest."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    text: Utf8Str
    id: _DirectId | None = None
    source: _Source | None = None
    url: _Url | None = None
    title: Utf8Str | None = None


class DirectRequest(BaseModel):
    """``{"texts": [str, ...]}`` or ``{"items": [{"text", "id"?, ...}, ...]}``: both functions' direct invoke."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    texts: list[Utf8Str] | None = Field(default=None, min_length=1)
    items: list[DirectItem] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_of(self) -> Self:
        if (self.texts is None) == (self.items is None):
            raise ValueError("give either 'texts' or 'items'" + (", not both" if self.texts is not None else ""))
        return self

    @property
    def entries(self) -> list[DirectItem]:
        return self.items if self.items is not None else [DirectItem(text=t) for t in self.texts or []]

    @classmethod
    def parse(cls, event: Mapping[str, Any], *, max_texts: int, ignore_unknown: bool = False) -> DirectRequest:
        """The request, or :class:`DirectRequestError` naming what is wrong with it.

        ``ignore_unknown`` drops keys the contract does not name (top level and per item) instead of refusing
        them: the analysis function only reads ``texts`` / ``items[].text`` / ``items[].id``, so a caller's
        extra bookkeeping keys are harmless there; ingestion stores what it is given and stays strict.
        """
        if "texts" in event and "items" in event:
            raise DirectRequestError("give either 'texts' or 'items', not both")
        if ignore_unknown:
            event = {key: event[key] for key in cls.model_fields if key in event}
            if isinstance(items := event.get("items"), list):
                known = DirectItem.model_fields
                event["items"] = [
                    {k: v for k, v in item.items() if k in known} if isinstance(item, dict) else item for item in items
                ]
        try:
            request = cls.model_validate(event)
        except ValidationError as exc:
            raise DirectRequestError(f"malformed payload: {describe_errors(exc)}") from exc
        field = "texts" if request.texts is not None else "items"
        if (n := len(request.entries)) > max_texts:
            raise DirectRequestError(f"too many {field}: {n} > {max_texts} per invoke (at most {max_texts})")
        return request


class DirectResult(BaseModel):
    """One text's answer in the analysis function's direct-invoke response."""

    model_config = ConfigDict(frozen=True, strict=True)

    sentiment: Sentiment
    score: float = Field(ge=0.0, le=1.0)
    label: str
    id: str | int | None = None


class DirectResponse(BaseModel):
    """The analysis function's 200 answer to a direct invoke (what the client parses)."""

    statusCode: Literal[200]
    results: list[DirectResult]
    count: int | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)


def error_messages(
    exc: ValidationError, *, most: int | None = None, skip: int = 0, whole: str = "payload"
) -> list[str]:
    """Pydantic's errors as ``texts[1]: Input should be a valid string``, each naming its field.

    The one place a validation error becomes words (requests, responses, settings, queue messages, stack
    config). ``skip`` leaves out the first parts of each location (a union's tag, an envelope); an error
    about the whole value names ``whole``.
    """
    messages = []
    for error in exc.errors()[:most]:
        loc = error["loc"][skip:]
        where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")
        messages.append(f"{where or whole}: {error['msg'].removeprefix('Value error, ')}")
    return messages


def describe_errors(exc: ValidationError, most: int = 3) -> str:
    """:func:`error_messages` on one line: ``texts[1]: Input should be a valid string; ... (and 2 more)``."""
    problems = error_messages(exc, most=most)
    more = exc.error_count() - len(problems)
    return "; ".join(problems) + (f" (and {more} more)" if more > 0 else "")
