"""The analysis core on fakes: record decoding, one classify call per batch, storing, direct invokes, model cache."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest
from fakes import InMemoryItemsTable

from sentiment_analysis import core
from sentiment_analysis.labels import EMPTY_TEXT_PREDICTION, Prediction
from sentiment_shared.ports import ItemNotFoundError
from sentiment_shared.schemas import MAX_TEXTS_PER_INVOKE, Item
from sentiment_shared.settings import AnalysisSettings

pytestmark = pytest.mark.unit


class CountingClassifier:
    """Calls 'good' positive, 'bad' negative, anything else neutral; records every call."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def classify(self, texts: Sequence[str]) -> list[Prediction]:
        self.calls.append(list(texts))
        out = []
        for text in texts:
            if not text.strip():
                out.append(EMPTY_TEXT_PREDICTION)
            elif "good" in text:
                out.append(Prediction("positive", 0.97, "POSITIVE"))
            elif "bad" in text:
                out.append(Prediction("negative", 0.91, "NEGATIVE"))
            else:
                out.append(Prediction("neutral", 0.55, "POSITIVE"))
        return out


def _model(classifier: core.Classifier) -> core.LoadedModel:
    return core.LoadedModel(classifier=classifier, model_version="m@1+int8", precision="int8", load_s=0.001)


def _sns(message: Any) -> str:
    body = message if isinstance(message, str) else json.dumps(message)
    topic = "arn:aws:sns:us-east-1:123456789012:t"
    return json.dumps({"Type": "Notification", "MessageId": "x", "TopicArn": topic, "Message": body})


@pytest.mark.parametrize(
    "body",
    [
        json.dumps({"item_id": "a", "text": "good"}),
        _sns({"item_id": "a", "text": "good"}),
    ],
)
def test_raw_and_sns_wrapped_bodies_decode_alike(body: str) -> None:
    # When a raw or SNS-wrapped body is decoded / Then the same message comes out
    message = core.decode_message(body)
    assert (message.item_id, message.text) == ("a", "good")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (None, "empty"),
        ("   ", "empty"),
        ("{not json", "not JSON"),
        ("[1, 2]", "JSON object"),
        (json.dumps({"item_id": "a"}), "text"),
        (json.dumps({"text": "x"}), "item_id"),
        (json.dumps({"item_id": 7, "text": "x"}), "item_id"),
        (json.dumps({"item_id": "a", "text": ["x"]}), "text"),
        (json.dumps({"item_id": "", "text": "x"}), "item_id"),
        (json.dumps({"item_id": "a", "text": "x", "schema_version": 99}), "schema_version"),
        (_sns("not json at all"), "SNS Message is not JSON"),
        (json.dumps({"Type": "Notification", "Message": {"item_id": "a"}}), "not a string"),
        ("[" * 100_000, "not JSON"),
    ],
)
def test_bad_bodies_raise_with_the_reason(body: str | None, reason: str) -> None:
    with pytest.raises(core.InvalidMessageError, match=reason):
        core.decode_message(body)


def test_a_batch_is_classified_in_one_call_and_bad_records_keep_their_reason() -> None:
    # Given a batch with good, duplicate and invalid records
    classifier = CountingClassifier()
    records = [
        ("m1", json.dumps({"item_id": "a", "text": "good stuff"})),
        ("m2", _sns({"item_id": "b", "text": "bad stuff"})),
        ("m3", "{oops"),
        ("m4", json.dumps({"item_id": "a", "text": "good stuff"})),
        ("m5", json.dumps({"item_id": "c", "text": ""})),
    ]
    # When analyzed
    batch = core.analyze_batch(records, _model(classifier))
    # Then one classify call saw each distinct valid text once
    assert classifier.calls == [["good stuff", "bad stuff", ""]]
    assert set(batch.results) == {"m1", "m2", "m4", "m5"}
    assert set(batch.errors) == {"m3"}
    assert batch.results["m2"][1].sentiment == "negative"
    assert batch.results["m5"][1].sentiment == "neutral"
    assert batch.results["m1"][1].model_version == "m@1+int8"


def test_storing_updates_existing_items_only() -> None:
    # Given a table holding item a but not item z
    table = InMemoryItemsTable()
    table.create(Item(item_id="a", text="good stuff"))
    records = [
        ("m1", json.dumps({"item_id": "a", "text": "good stuff"})),
        ("m2", json.dumps({"item_id": "z", "text": "good stuff"})),
        ("m3", ""),
    ]
    batch = core.analyze_batch(records, _model(CountingClassifier()))
    # When each record is stored
    batch.store("m1", table)
    # Then the existing item gets the result (twice is harmless: a redelivery)
    batch.store("m1", table)
    stored = table.items["a"]
    assert (stored.sentiment, stored.label, stored.status) == ("positive", "POSITIVE", "analyzed")
    # And the missing item and the bad record fail, creating nothing
    with pytest.raises(ItemNotFoundError):
        batch.store("m2", table)
    with pytest.raises(core.InvalidMessageError):
        batch.store("m3", table)
    assert set(table.items) == {"a"}


@pytest.mark.parametrize(
    ("event", "texts", "ids"),
    [
        ({"texts": ["good", "bad"]}, ["good", "bad"], None),
        ({"items": [{"id": "x1", "text": "good"}, {"id": 7, "text": "bad"}]}, ["good", "bad"], ["x1", 7]),
        ({"items": [{"text": "good"}]}, ["good"], [None]),
        # Keys the analysis does not read are ignored, as before the models (ingestion refuses them)
        ({"texts": ["good"], "trace": "t-1"}, ["good"], None),
        ({"items": [{"id": "x1", "text": "good", "lang": "en"}]}, ["good"], ["x1"]),
    ],
)
def test_direct_payloads_parse(event: dict[str, Any], texts: list[str], ids: list[Any] | None) -> None:
    entries = core.parse_direct(event).entries
    assert ([e.text for e in entries], [e.id for e in entries]) == (texts, ids or [None] * len(texts))


@pytest.mark.parametrize(
    "event",
    [
        {},
        {"texts": []},
        {"texts": "good"},
        {"texts": ["ok", 3]},
        {"items": [{"id": "a"}]},
        {"items": ["text"]},
        {"items": [{"id": True, "text": "x"}]},
        {"items": [{"id": ["a"], "text": "x"}]},
        {"texts": ["a"], "items": [{"text": "b"}]},
        {"texts": ["a"] * (MAX_TEXTS_PER_INVOKE + 1)},
        {"Records": []},
    ],
)
def test_malformed_direct_payloads_are_refused(event: dict[str, Any]) -> None:
    with pytest.raises(core.PayloadError):
        core.parse_direct(event)


def test_direct_answer_keeps_order_ids_and_reports_metrics() -> None:
    # Given items with ids, one duplicate text
    request = core.parse_direct({"items": [{"id": "a", "text": "good"}, {"text": "bad"}, {"id": "c", "text": "good"}]})
    classifier = CountingClassifier()
    # When answered on a cold start
    response = core.answer_direct(request, _model(classifier), cold_start=True)
    # Then results follow the input order, ids echo where given, and one call did the work
    assert response["statusCode"] == 200
    assert response["count"] == 3
    assert [r["sentiment"] for r in response["results"]] == ["positive", "negative", "positive"]
    assert [r.get("id") for r in response["results"]] == ["a", None, "c"]
    assert classifier.calls == [["good", "bad"]]
    assert response["metrics"]["cold_start"] is True
    assert "model_load_ms" in response["metrics"]


def _settings(**overrides: Any) -> AnalysisSettings:
    values: dict[str, Any] = {
        "model_bucket": "bucket",
        "model_key": "distilbert/v1.0.0/model.tar",
        "model_sha256": "ab" * 32,
        "items_table": "items",
        **overrides,
    }
    return AnalysisSettings(**values)


def test_model_is_loaded_once_per_container_and_failures_are_not_cached() -> None:
    # Given a loader that fails once, then succeeds
    calls: list[AnalysisSettings] = []

    def loader(settings: AnalysisSettings) -> core.LoadedModel:
        calls.append(settings)
        if len(calls) == 1:
            raise RuntimeError("S3 unavailable")
        return _model(CountingClassifier())

    provider = core.ModelProvider(loader)
    # When the first load fails / Then it raises (the batch is retried whole)
    with pytest.raises(RuntimeError):
        provider.get(_settings())
    # And the next invocation loads (cold), the one after reuses it (warm)
    assert provider.get(_settings())[1] is True
    assert provider.get(_settings())[1] is False
    # And a different model configuration loads again
    assert provider.get(_settings(model_precision="fp32"))[1] is True
    assert len(calls) == 3


def test_after_restore_takes_the_precision_measured_on_the_restored_cpu_and_renames_the_version() -> None:
    # Given a model loaded as int8 whose precision, measured again after a restore, is fp32 on this CPU
    measured: list[str] = []

    def remeasure() -> str:
        measured.append("fp32")
        return "fp32"

    provider = core.ModelProvider(
        lambda settings: core.LoadedModel(
            classifier=CountingClassifier(),
            model_version=core.model_version(settings, "int8"),
            precision="int8",
            remeasure=remeasure,
        )
    )
    # Nothing loaded yet: nothing to measure
    assert provider.after_restore() is None
    provider.preload(_settings())
    # When the copy is restored / Then it measured once, and the version names what now runs
    restored = provider.after_restore()
    assert measured == ["fp32"]
    assert restored is not None
    assert (restored.precision, restored.model_version) == ("fp32", "distilbert/v1.0.0@abababababab+fp32")
    # And the next invocation gets the restored model without loading again
    assert provider.get(_settings()) == (restored, False)


def test_after_restore_keeps_a_model_without_a_precision_to_measure() -> None:
    provider = core.ModelProvider(lambda settings: _model(CountingClassifier()))
    loaded = provider.preload(_settings())
    assert provider.after_restore() is loaded


def test_model_version_names_the_key_folder_digest_and_precision() -> None:
    assert core.model_version(_settings(), "int8") == "distilbert/v1.0.0@abababababab+int8"
    assert core.model_version(_settings(model_key="model.tar"), "fp32") == "model.tar@abababababab+fp32"


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ({"Records": [{"eventSource": "aws:sqs", "messageId": "m1", "body": "{}"}]}, True),
        # No message id: nothing could name it in batchItemFailures, so it is no SQS batch (a 400).
        ({"Records": [{"eventSource": "aws:sqs", "body": "{}"}]}, False),
        ({"Records": [{"eventSource": "aws:sns"}]}, False),
        ({"Records": []}, False),
        ({"texts": ["a"]}, False),
        ([], False),
    ],
)
def test_sqs_events_are_recognised(event: Any, expected: bool) -> None:
    assert core.is_sqs_event(event) is expected
