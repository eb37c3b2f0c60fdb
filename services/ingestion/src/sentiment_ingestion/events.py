"""The events the ingestion function accepts, validated; anything else is an :class:`InvalidEventError`.

* an EventBridge scheduled event (``"detail-type": "Scheduled Event"``): poll the configured feeds;
* ``{"texts": ["...", ...]}``: plain texts (source ``direct``);
* ``{"items": [{"text": ..., "source"?: ..., "url"?: ..., "title"?: ..., "id"?: ...}, ...]}``.

Types are checked strictly (a number is not a text) and unknown keys are refused, so a typo such as
``{"text": [...]}`` is a 400 that names the problem rather than a silently empty run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sentiment_ingestion.entries import DIRECT_SOURCE, Entry
from sentiment_shared.schemas import DirectItem, DirectRequest, DirectRequestError

MAX_ENTRIES_PER_EVENT = 10_000
"""More than this in one invoke is refused: split the payload (Lambda's 6 MB request cap comes first anyway)."""

SCHEDULED_DETAIL_TYPE = "Scheduled Event"


class InvalidEventError(ValueError):
    """The event is not one the function takes; the message says what is wrong (the 400's ``error``)."""


@dataclass(frozen=True, slots=True)
class ScheduledPoll:
    """Poll every configured feed."""


@dataclass(frozen=True, slots=True)
class DirectPayload:
    entries: list[Entry]


Request = ScheduledPoll | DirectPayload


def parse_event(event: Any) -> Request:
    """The request an event stands for, or :class:`InvalidEventError` saying what is wrong with it."""
    if not isinstance(event, dict):
        raise InvalidEventError(f"event must be a JSON object, got {type(event).__name__}")
    if event.get("detail-type") == SCHEDULED_DETAIL_TYPE:
        return ScheduledPoll()
    if "texts" in event or "items" in event:
        try:
            request = DirectRequest.parse(event, max_texts=MAX_ENTRIES_PER_EVENT)
        except DirectRequestError as exc:
            raise InvalidEventError(str(exc)) from exc
        return DirectPayload([_entry(item) for item in request.entries])
    keys = ", ".join(sorted(map(str, event))) or "none"
    raise InvalidEventError(
        "unrecognised event (keys: "
        f"{keys}): expected a scheduled event, {{'texts': [...]}} or {{'items': [{{'text': ...}}, ...]}}"
    )


def _entry(item: DirectItem) -> Entry:
    key = None if item.id is None else str(item.id)
    return Entry(
        text=item.text,
        source=item.source or DIRECT_SOURCE,
        key=key,
        key_kind="id",
        url=item.url or None,
        title=item.title,
    )
