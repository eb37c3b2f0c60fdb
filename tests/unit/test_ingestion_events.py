"""Which events the ingestion function takes, and what a malformed one is told."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sentiment_ingestion.entries import DIRECT_SOURCE
from sentiment_ingestion.events import (
    MAX_ENTRIES_PER_EVENT,
    DirectPayload,
    InvalidEventError,
    ScheduledPoll,
    parse_event,
)

pytestmark = pytest.mark.unit

EVENTS = Path(__file__).resolve().parent.parent / "events"


def test_eventbridge_scheduled_event_is_a_poll() -> None:
    event = json.loads((EVENTS / "ingestion_scheduled.json").read_text())
    assert parse_event(event) == ScheduledPoll()


def test_texts_become_direct_entries() -> None:
    request = parse_event({"texts": ["good", "<b>bad</b>"]})
    assert isinstance(request, DirectPayload)
    assert [(e.text, e.source, e.key) for e in request.entries] == [
        ("good", DIRECT_SOURCE, None),
        ("<b>bad</b>", DIRECT_SOURCE, None),
    ]


def test_items_keep_their_optional_fields_and_numeric_ids_become_strings() -> None:
    event = json.loads((EVENTS / "ingestion_items.json").read_text())
    request = parse_event(event)
    assert isinstance(request, DirectPayload)
    first, second = request.entries[0], request.entries[1]
    assert first.source == "reviews-api"
    assert first.key == "r-1001"
    assert first.url == "https://shop.example.com/r/1001"
    assert first.title == "Loved it"
    assert second.key == "42"
    assert second.source == DIRECT_SOURCE


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ([], "must be a JSON object, got list"),
        ("texts", "must be a JSON object, got str"),
        (None, "must be a JSON object, got NoneType"),
        ({}, "unrecognised event"),
        ({"detail-type": "Object Created"}, "unrecognised event"),
        ({"text": ["a"]}, "unrecognised event (keys: text)"),
        ({"texts": []}, "texts: List should have at least 1 item"),
        ({"texts": "one text"}, "texts: Input should be a valid list"),
        ({"texts": ["ok", 3]}, "texts[1]: Input should be a valid string"),
        ({"texts": [None]}, "texts[0]: Input should be a valid string"),
        ({"texts": ["a"], "items": [{"text": "b"}]}, "not both"),
        ({"texts": ["a"], "extra": 1}, "extra: Extra inputs are not permitted"),
        ({"items": []}, "items: List should have at least 1 item"),
        ({"items": {"text": "a"}}, "items: Input should be a valid list"),
        ({"items": ["plain string"]}, "items[0]: Input should be a valid dictionary"),
        ({"items": [{"source": "x"}]}, "items[0].text: Field required"),
        ({"items": [{"text": 5}]}, "items[0].text: Input should be a valid string"),
        ({"items": [{"text": "a", "id": True}]}, "items[0].id"),
        ({"items": [{"text": "a", "id": 1.5}]}, "items[0].id"),
        ({"items": [{"text": "a", "source": ""}]}, "items[0].source"),
        ({"items": [{"text": "a", "url": ["x"]}]}, "items[0].url: Input should be a valid string"),
        ({"items": [{"text": "a", "colour": "red"}]}, "items[0].colour: Extra inputs are not permitted"),
    ],
)
def test_malformed_events_are_refused_with_what_is_wrong(event: Any, message: str) -> None:
    with pytest.raises(InvalidEventError) as info:
        parse_event(event)
    assert message in str(info.value)


def test_too_many_entries_are_refused() -> None:
    with pytest.raises(InvalidEventError, match="at most"):
        parse_event({"texts": ["x"] * (MAX_ENTRIES_PER_EVENT + 1)})


def test_many_problems_are_summarised() -> None:
    with pytest.raises(InvalidEventError, match=r"and 2 more"):
        parse_event({"texts": [1, 2, 3, 4, 5]})


@pytest.mark.parametrize(
    ("event", "match"),
    [
        ({"texts": ["fine", "broken \ud800"]}, r"texts\[1\]: not valid Unicode"),
        ({"items": [{"text": "broken \udfff"}]}, r"items\[0\].text: not valid Unicode"),
        ({"items": [{"text": "ok", "id": "id-\ud800"}]}, r"items\[0\].id: not valid Unicode"),
        ({"items": [{"text": "ok", "source": "src-\ud800"}]}, r"items\[0\].source: .*unicode string"),
    ],
)
def test_unpaired_surrogates_are_refused(event: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidEventError, match=match):
        parse_event(event)
