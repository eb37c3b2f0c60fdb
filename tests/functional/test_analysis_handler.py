"""The analysis handler against moto (S3 model bundle + DynamoDB items) with the shared trained model.

Covers the cold start (verified fetch, logs, metrics), the mixed SQS batch of the issue's "Done when"
(exactly the bad records fail), redelivery, a model that cannot load, and direct invokes.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.typing import LambdaContext

from sentiment_analysis import core
from sentiment_analysis.handler import Handler, build_handler, handler
from sentiment_local.provision import create_bucket, create_items_table
from sentiment_shared import aws, model_bundle
from sentiment_shared.adapters import DynamoItemsTable
from sentiment_shared.schemas import Item
from sentiment_shared.settings import reset_settings_cache

pytestmark = [pytest.mark.functional, pytest.mark.slow]

EVENTS = Path(__file__).resolve().parent.parent / "events"
BUCKET = "sentiment-analyzer-test-models"
KEY = "distilbert/v1.0.0/model.tar"
TABLE = "sentiment-analyzer-test-items"
GOOD_RECORDS = {"good-sns", "good-raw", "good-duplicate", "good-long", "good-unicode"}
BAD_RECORDS = {
    "bad-json",
    "bad-missing-fields",
    "bad-wrong-types",
    "bad-missing-item",
    "bad-empty-body",
    "bad-sns-non-json",
}


@pytest.fixture(scope="session")
def bundle(shared_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> model_bundle.BundleInfo:
    return model_bundle.pack(shared_model_dir, tmp_path_factory.mktemp("bundle") / "model.tar")


@pytest.fixture(scope="session")
def warm_cache(bundle: model_bundle.BundleInfo, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A container's /tmp after an earlier cold start: the verified bundle already extracted."""
    cache = tmp_path_factory.mktemp("model-cache")
    model_bundle.extract(bundle.path, cache / bundle.sha256, bundle.sha256)
    assert model_bundle.cached_model_dir(cache, bundle.sha256) is not None
    return cache


@pytest.fixture
def stack(
    moto_aws: None, bundle: model_bundle.BundleInfo, warm_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> DynamoItemsTable:
    """The items table on moto and the function's environment; the model comes from the warm cache."""
    create_items_table(TABLE)
    for name, value in {
        "MODEL_BUCKET": BUCKET,
        "MODEL_KEY": KEY,
        "MODEL_SHA256": bundle.sha256,
        "ITEMS_TABLE": TABLE,
        "MODEL_CACHE_DIR": str(warm_cache),
        "TORCH_THREADS": "1",
    }.items():
        monkeypatch.setenv(name, value)
    reset_settings_cache()
    return DynamoItemsTable(TABLE)


@pytest.fixture
def cold_container(
    stack: DynamoItemsTable,
    bundle: model_bundle.BundleInfo,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[Handler, Path]:
    """A new container: no model loaded, an empty cache, the bundle in S3. Its handler and cache dir."""
    create_bucket(BUCKET)
    aws.client("s3").put_object(
        Bucket=BUCKET, Key=KEY, Body=bundle.path.read_bytes(), Metadata={"sha256": bundle.sha256}
    )
    monkeypatch.setenv("MODEL_CACHE_DIR", str(tmp_path / "cache"))
    reset_settings_cache()
    return build_handler(), tmp_path / "cache"


def _mixed_batch() -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / "analysis_sqs_mixed_batch.json").read_text(encoding="utf-8"))
    for record in event["Records"]:
        record["body"] = record["body"].replace("LONG_TEXT_PLACEHOLDER", "What a wonderful, joyful film. " * 6_500)
    return event


def _seed_items(table: DynamoItemsTable, event: dict[str, Any]) -> None:
    """Store the items the good records refer to (the missing-item record's item stays absent)."""
    for record in event["Records"]:
        if record["messageId"] in GOOD_RECORDS and record["messageId"] != "good-duplicate":
            message = core.decode_message(record["body"])
            table.create(Item(item_id=message.item_id, text=message.text[:100]))


class RecordingHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _fields(records: list[logging.LogRecord]) -> dict[str, dict[str, Any]]:
    return {r.getMessage(): vars(r) for r in records}


def test_cold_start_fetches_verifies_and_logs_the_model(
    cold_container: tuple[Handler, Path], lambda_context: LambdaContext
) -> None:
    # Given a new container (no model loaded) with an empty cache
    handler, cache = cold_container
    recorder = RecordingHandler()
    logging.getLogger("sentiment_analysis").addHandler(recorder)
    # When the first direct invoke arrives
    try:
        response = handler(json.loads((EVENTS / "analysis_direct_texts.json").read_text()), lambda_context)
    finally:
        logging.getLogger("sentiment_analysis").removeHandler(recorder)
    # Then it answers and the cold start is in the logs, with timings and size
    assert response["statusCode"] == 200
    assert response["metrics"]["cold_start"] is True
    logs = _fields(recorder.records)
    assert "Downloading model from S3" in logs
    downloaded = logs["Model downloaded from S3"]
    assert downloaded["bytes"] > 10_000_000
    assert {"download_time_ms", "extract_time_ms", "verify_time_ms"} <= set(downloaded)
    assert logs["Model loaded successfully"]["load_time_ms"] > 0
    # And the extracted model sits in the cache under its digest, complete
    assert model_bundle.cached_model_dir(cache, os.environ["MODEL_SHA256"]) is not None
    # And the next invoke is warm
    assert handler({"texts": ["fine"]}, lambda_context)["metrics"]["cold_start"] is False


def test_mixed_batch_reports_exactly_the_bad_records(
    stack: DynamoItemsTable, emitted_metrics: Callable[[str], dict[str, Any]], lambda_context: LambdaContext
) -> None:
    # Given the mixed batch and the items its good records refer to
    event = _mixed_batch()
    _seed_items(stack, event)
    # When the handler processes it
    response = handler(event, lambda_context)
    # Then exactly the bad records are reported
    assert {f["itemIdentifier"] for f in response["batchItemFailures"]} == BAD_RECORDS
    # And every good record's item carries a result, and no item was created for the missing one
    for item_id in ("item-good-sns", "item-good-raw", "item-good-long", "item-good-unicode"):
        item = stack.get(item_id)
        assert item is not None
        assert item.status == "analyzed"
        assert item.sentiment in ("positive", "negative", "neutral")
        assert item.model_version is not None
        assert item.model_version.startswith("distilbert/v1.0.0@")
    assert stack.get("item-good-sns").sentiment == "positive"  # type: ignore[union-attr]
    assert stack.get("item-good-raw").sentiment == "negative"  # type: ignore[union-attr]
    assert stack.get("item-good-long").sentiment == "positive"  # type: ignore[union-attr]
    assert stack.get("item-that-was-never-ingested") is None
    # And the metrics count the batch
    metrics = emitted_metrics("BatchSize")
    assert metrics["BatchSize"] == [11.0] or metrics["BatchSize"] == 11.0
    assert metrics["ItemsFailed"] in (6.0, [6.0])
    assert metrics["ItemsAnalyzed"] in (5.0, [5.0])


def test_redelivered_batch_is_harmless(stack: DynamoItemsTable, lambda_context: LambdaContext) -> None:
    # Given a batch already processed once
    event = _mixed_batch()
    _seed_items(stack, event)
    first = handler(event, lambda_context)
    before = stack.get("item-good-raw")
    # When SQS delivers it again
    second = handler(event, lambda_context)
    # Then the same records fail, and the items hold the same result (only analyzed_at moves)
    assert second == first
    after = stack.get("item-good-raw")
    assert before is not None
    assert after is not None
    assert (after.sentiment, after.score, after.label) == (before.sentiment, before.score, before.label)


def test_a_model_that_cannot_load_fails_the_whole_batch(
    stack: DynamoItemsTable,
    cold_container: tuple[Handler, Path],
    monkeypatch: pytest.MonkeyPatch,
    lambda_context: LambdaContext,
) -> None:
    # Given a new container whose configured digest does not match the bundle in S3
    handler, cache = cold_container
    monkeypatch.setenv("MODEL_SHA256", "0" * 64)
    reset_settings_cache()
    event = _mixed_batch()
    _seed_items(stack, event)
    # When a batch arrives / Then the invocation raises, so SQS retries every record
    with pytest.raises(model_bundle.BundleError):
        handler(event, lambda_context)
    # And nothing was marked analyzed, and no half-extracted model is left behind
    assert stack.get("item-good-raw").status == "pending"  # type: ignore[union-attr]
    assert not list(cache.glob("*/config.json"))


def test_direct_invokes_answer_texts_and_items(stack: DynamoItemsTable, lambda_context: LambdaContext) -> None:
    # When invoked with texts
    texts = json.loads((EVENTS / "analysis_direct_texts.json").read_text(encoding="utf-8"))
    response = handler(texts, lambda_context)
    # Then one result per text, in order, per the contract
    assert response["statusCode"] == 200
    assert response["count"] == len(texts["texts"]) == len(response["results"])
    assert [r["sentiment"] for r in response["results"][:3]] == ["positive", "negative", "neutral"]
    assert response["results"][2] == {"sentiment": "neutral", "score": 0.0, "label": ""}  # the empty text
    for result in response["results"]:
        assert set(result) == {"sentiment", "score", "label"}
        assert 0.0 <= result["score"] <= 1.0
    assert response["metrics"]["inference_ms"] > 0
    # When invoked with items / Then ids are echoed
    items = json.loads((EVENTS / "analysis_direct_items.json").read_text(encoding="utf-8"))
    response = handler(items, lambda_context)
    assert [(r["id"], r["sentiment"]) for r in response["results"]] == [("r-1", "positive"), (2, "negative")]
    # And the response is JSON-serialisable as Lambda returns it
    json.dumps(response)


def test_malformed_direct_invokes_answer_400(stack: DynamoItemsTable, lambda_context: LambdaContext) -> None:
    # Given the malformed payloads
    events = json.loads((EVENTS / "analysis_direct_bad.json").read_text(encoding="utf-8"))
    assert len(events) == 7
    for event in events:
        # When invoked / Then a 400 with a reason, and nothing else
        response = handler(event, lambda_context)
        assert response["statusCode"] == 400, event
        assert set(response) == {"statusCode", "error"}
        assert response["error"]
