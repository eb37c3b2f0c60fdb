"""The events the ingestion function accepts, validated; anything else is an :class:`InvalidEventError`.

* an EventBridge scheduled event (``"detail-type": "Scheduled Event"``): poll the configured feeds;
* ``{"texts": ["...", ...]}``: plain texts (source ``direct``);
* ``{"items": [{"text": ..., "source"?: ..., "url"?: ..., "title"?: ..., "id"?: ...}, ...]}``.

Types are checked strictly (a number is not a text) and unknown keys are refused, so a typo such as
``{"text": [...]}`` is a 400 that names the problem rather than a silently empty run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

from sentiment_ingestion.entries import DIRECT_SOURCE, Entry

MAX_ENTRIES_PER_EVENT = 10_000
"""More than this in one invoke is refused: split the payload (Lambda's 6 MB request cap comes first anyway)."""

SCHEDULED_DETAIL_TYPE = "Scheduled Event"


def _valid_unicode(value: str) -> str:
    # JSON may carry an unpaired UTF-16 surrogate escape ("\ud800"): Python decodes it to a lone
    # surrogate, which no UTF-8 encoder (hashing, DynamoDB, SNS, the tokenizer) accepts. Refuse it here.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"not valid Unicode: unpaired surrogate {value[exc.start]!r} at index {exc.start}") from exc
    return value


_Str = Annotated[str, AfterValidator(_valid_unicode)]
_Source = Annotated[_Str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1024)]
_Url = Annotated[_Str, StringConstraints(strip_whitespace=True, max_length=2048)]


class InvalidEventError(ValueError):
    """The event is not one the function takes; the message says what is wrong (the 400's ``error``)."""


class _PayloadItem(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    text: _Str
    source: _Source | None = None
    url: _Url | None = None
    title: _Str | None = None
    id: str | int | None = None

    @field_validator("id")
    @classmethod
    def _id_is_valid_unicode(cls, value: str | int | None) -> str | int | None:
        return _valid_unicode(value) if isinstance(value, str) else value


class _TextsPayload(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    texts: list[_Str] = Field(min_length=1, max_length=MAX_ENTRIES_PER_EVENT)


class _ItemsPayload(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    items: list[_PayloadItem] = Field(min_length=1, max_length=MAX_ENTRIES_PER_EVENT)


@dataclass(frozen=True, slots=True)
class ScheduledPoll:
    """Poll every configured feed."""


@dataclass(frozen=True, slots=True)
class DirectPayload:
    entries: list[Entry]


Request = ScheduledPoll | DirectPayload


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors()[:3]:
        where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"]).lstrip(".")
        problems.append(f"{where or 'payload'}: {error['msg']}")
    more = exc.error_count() - len(problems)
    return "; ".join(problems) + (f" (and {more} more)" if more > 0 else "")


def parse_event(event: Any) -> Request:
    """The request an event stands for, or :class:`InvalidEventError` saying what is wrong with it."""
    if not isinstance(event, dict):
        raise InvalidEventError(f"event must be a JSON object, got {type(event).__name__}")
    if event.get("detail-type") == SCHEDULED_DETAIL_TYPE:
        return ScheduledPoll()
    if "texts" in event and "items" in event:
        raise InvalidEventError("give either 'texts' or 'items', not both")
    try:
        if "texts" in event:
            texts = _TextsPayload.model_validate(event)
            return DirectPayload([Entry(text=text, source=DIRECT_SOURCE) for text in texts.texts])
        if "items" in event:
            items = _ItemsPayload.model_validate(event)
            return DirectPayload([_entry(item) for item in items.items])
    except ValidationError as exc:
        raise InvalidEventError(f"malformed payload: {_describe(exc)}") from exc
    keys = ", ".join(sorted(map(str, event))) or "none"
    raise InvalidEventError(
        "unrecognised event (keys: "
        f"{keys}): expected a scheduled event, {{'texts': [...]}} or {{'items': [{{'text': ...}}, ...]}}"
    )


def _entry(item: _PayloadItem) -> Entry:
    key = None if item.id is None else str(item.id)
    return Entry(
        text=item.text,
        source=item.source or DIRECT_SOURCE,
        key=key,
        key_kind="id",
        url=item.url or None,
        title=item.title,
    )
