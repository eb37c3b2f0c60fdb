"""Property-based tests (hypothesis) of everything that parses untrusted input, and of "nothing is lost".

* the analysis function's queue-body decoder and direct-invoke parser, and the ingestion function's
  event parser, take *any* JSON (and any string, lone surrogates included) and either return a valid
  request or raise their own error type — never anything else, never a string no UTF-8 API accepts;
* a batch of arbitrary records is accounted for record by record (analyzed or failed, never dropped);
* the ingestion core, on arbitrary entries, stores and publishes each new item exactly once and
  counts every entry exactly once.

The model-bundle extractor's property test lives with its unit tests (``test_model_bundle.py``).
"""

from __future__ import annotations

import contextlib
import json
import unicodedata
from collections.abc import Sequence
from typing import Any

import pytest
from fakes import InMemoryIngestionStore, InMemoryItemsTable, InMemoryPublisher
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sentiment_analysis import core
from sentiment_analysis.labels import Prediction
from sentiment_ingestion.core import Ingestor
from sentiment_ingestion.entries import Entry
from sentiment_ingestion.events import DirectPayload, InvalidEventError, ScheduledPoll, parse_event
from sentiment_ingestion.normalize import item_id_for, normalize_text
from sentiment_shared.schemas import MAX_TEXTS_PER_INVOKE, TopicMessage

pytestmark = pytest.mark.functional

PROPERTY_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Any text, lone surrogates included (what a JSON "\ud800" escape decodes to).
any_text = (
    st.text(st.characters(exclude_categories=()), max_size=40)
    | st.text(max_size=40)
    | st.sampled_from(["\ud800", "ok \udfff", "\udcff\udcfe", '{"item_id": "x", "text": "\ud800"}'])
)
json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | any_text
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=12,
)


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _near_messages() -> st.SearchStrategy[Any]:
    """Objects shaped almost like a topic message: the fields present, their types and values arbitrary."""
    return st.fixed_dictionaries(
        {"item_id": json_values, "text": json_values},
        optional={"source": json_values, "schema_version": json_values, "ingested_at": json_values},
    )


@pytest.mark.reliability(
    area="property-based (hypothesis)",
    case="any JSON value or near-message object as a queue body, raw or SNS-wrapped (lone surrogates included)",
    expected="a valid, UTF-8-encodable message or InvalidMessageError; nothing else",
)
@PROPERTY_SETTINGS
@given(payload=json_values | _near_messages(), wrap=st.booleans())
def test_decode_message_returns_a_valid_message_or_raises_its_own_error(payload: Any, wrap: bool) -> None:
    body = json.dumps(payload)
    if wrap:
        body = json.dumps({"Type": "Notification", "MessageId": "m", "Message": body})
    try:
        message = core.decode_message(body)
    except core.InvalidMessageError:
        return
    assert isinstance(message, TopicMessage)
    assert _encodable(message.item_id)
    assert _encodable(message.text)


@pytest.mark.reliability(
    area="property-based (hypothesis)",
    case="any string (or null) as a queue body",
    expected="a message or InvalidMessageError",
)
@PROPERTY_SETTINGS
@given(body=st.none() | any_text)
def test_decode_message_survives_any_raw_body(body: str | None) -> None:
    with contextlib.suppress(core.InvalidMessageError):
        core.decode_message(body)


@PROPERTY_SETTINGS
@given(
    item_id=st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=60),
    text=st.text(st.characters(exclude_categories=("Cs",)), max_size=200),
    wrap=st.booleans(),
)
@pytest.mark.reliability(
    area="property-based (hypothesis)",
    case="any valid topic message, raw or SNS-wrapped",
    expected="decodes to the same item_id and text",
)
def test_every_valid_message_round_trips_raw_or_wrapped(item_id: str, text: str, wrap: bool) -> None:
    body = TopicMessage(item_id=item_id, text=text).to_json()
    if wrap:
        body = json.dumps({"Type": "Notification", "Message": body})
    decoded = core.decode_message(body)
    assert (decoded.item_id, decoded.text) == (item_id, text)


@pytest.mark.reliability(
    area="property-based (hypothesis)",
    case="any JSON object as an analysis direct invoke",
    expected="a request of 1..4096 encodable texts or PayloadError (a 400)",
)
@PROPERTY_SETTINGS
@given(event=json_values | st.fixed_dictionaries({}, optional={"texts": json_values, "items": json_values}))
def test_parse_direct_returns_a_request_or_a_payload_error(event: Any) -> None:
    if not isinstance(event, dict):
        event = {"payload": event}
    try:
        request = core.parse_direct(event)
    except core.PayloadError:
        return
    assert 1 <= len(request.entries) <= MAX_TEXTS_PER_INVOKE
    assert all(isinstance(e.text, str) and _encodable(e.text) for e in request.entries)


items_like = st.lists(
    st.fixed_dictionaries(
        {"text": json_values}, optional={"id": json_values, "source": json_values, "url": json_values}
    ),
    max_size=5,
)


@PROPERTY_SETTINGS
@given(
    event=json_values
    | st.fixed_dictionaries({}, optional={"texts": json_values | st.lists(any_text, max_size=5), "items": items_like})
)
@pytest.mark.reliability(
    area="property-based (hypothesis)",
    case="any JSON value as an ingestion event",
    expected="a request with one encodable entry per input, or InvalidEventError (a 400)",
)
def test_parse_event_returns_a_request_or_an_invalid_event_error(event: Any) -> None:
    try:
        request = parse_event(event)
    except InvalidEventError:
        return
    assert isinstance(request, DirectPayload | ScheduledPoll)
    if isinstance(request, DirectPayload):
        given = event.get("texts") or event.get("items")
        assert len(request.entries) == len(given)
        for entry in request.entries:
            assert entry.text is not None
            assert _encodable(entry.text)
            assert _encodable(entry.source)
            assert entry.key is None or _encodable(entry.key)


@pytest.mark.reliability(
    area="property-based (hypothesis)",
    case="any text through ingestion's normalizer",
    expected="None, or text without controls/format characters, single-spaced, within the cap",
)
@PROPERTY_SETTINGS
@given(raw=st.text(st.characters(exclude_categories=("Cs",)), max_size=300), cap=st.integers(100, 400))
def test_normalized_text_is_clean_bounded_and_encodable(raw: str, cap: int) -> None:
    normalized = normalize_text(raw, max_chars=cap)
    if normalized is None:
        return
    text = normalized.text
    assert 0 < len(text) <= cap
    assert text == text.strip()
    assert "  " not in text
    assert not [ch for ch in text if unicodedata.category(ch) in ("Cc", "Cf")]
    assert _encodable(text)
    assert item_id_for("source", normalized.full_text, kind="text") == item_id_for(
        "source", normalized.full_text, kind="text"
    )


class _FixedClassifier:
    def classify(self, texts: Sequence[str]) -> list[Prediction]:
        return [Prediction(sentiment="neutral", score=0.5, label="NEUTRAL") for _ in texts]


MODEL = core.LoadedModel(
    classifier=_FixedClassifier(),
    model_version="test@0+fp32",
    precision="fp32",
)
record_bodies = (
    st.builds(lambda i, t: TopicMessage(item_id=i, text=t).to_json(), st.text(min_size=1, max_size=20), st.text())
    | st.builds(json.dumps, json_values)
    | any_text
    | st.none()
)


@pytest.mark.reliability(
    area="property-based (hypothesis)",
    case="any batch of record bodies (valid, JSON, arbitrary strings, null)",
    expected="each record id ends in exactly one of results / errors",
)
@PROPERTY_SETTINGS
@given(bodies=st.lists(record_bodies, max_size=12))
def test_every_record_of_a_batch_is_analysed_or_failed_never_dropped(bodies: list[str | None]) -> None:
    records = [(f"m-{n}", body) for n, body in enumerate(bodies)]
    batch = core.analyze_batch(records, MODEL)
    for record_id, _ in records:
        assert (record_id in batch.results) != (record_id in batch.errors), record_id
    assert len(batch.results) + len(batch.errors) == len(records)


entry_texts = st.lists(
    st.text(max_size=30) | st.sampled_from(["same text", " same  text ", "<p>same text</p>"]), max_size=25
)


@pytest.mark.reliability(
    area="property-based (hypothesis)",
    case="any list of entries (duplicates, HTML, blanks, repeated keys), ingested twice",
    expected="received = stored + duplicates + skipped; each new item published once; the rerun stores nothing",
)
@PROPERTY_SETTINGS
@given(texts=entry_texts, keys=st.lists(st.none() | st.sampled_from(["k1", "k2", "k3"]), max_size=25))
def test_ingestion_counts_every_entry_once_and_publishes_every_new_item_once(
    texts: list[str], keys: list[str | None]
) -> None:
    table, publisher = InMemoryItemsTable(), InMemoryPublisher()
    ingestor = Ingestor(table, publisher, InMemoryIngestionStore())
    entries = [Entry(text=t, source="prop", key=keys[n] if n < len(keys) else None) for n, t in enumerate(texts)]
    report = ingestor.ingest_entries(entries)
    again = ingestor.ingest_entries(entries)
    assert report.received == len(entries) == report.stored + report.duplicates + report.skipped
    assert report.stored == len(table.items) == report.published
    assert sorted(m.item_id for m in publisher.messages) == sorted(table.items)
    assert (again.stored, again.published) == (0, 0)
    assert again.duplicates == report.stored + report.duplicates
