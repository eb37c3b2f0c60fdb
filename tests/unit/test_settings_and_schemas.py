"""Typed settings read lazily from the environment, and the wire schemas."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from sentiment_shared.schemas import SCHEMA_VERSION, Item, TopicMessage
from sentiment_shared.settings import analysis_settings, ingestion_settings, reset_settings_cache
from sentiment_shared.stack import DEFAULT_QUEUE, ResourceNames, model_key

pytestmark = pytest.mark.unit
SHA = "a" * 64


def test_importing_the_package_needs_no_environment() -> None:
    # Given a process with none of the functions' variables, importing every shared module still works
    env = {k: v for k, v in os.environ.items() if k not in ("MODEL_BUCKET", "ITEMS_TABLE", "TOPIC_ARN")}
    modules = ["settings", "adapters", "schemas", "aws", "ports", "stack"]
    code = ";".join([*(f"import sentiment_shared.{m}" for m in modules), "import sentiment_local.provision"])
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=120)


def test_analysis_settings_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_BUCKET", "models-bucket")
    monkeypatch.setenv("MODEL_KEY", "distilbert/v1.0.0/model.tar")
    monkeypatch.setenv("MODEL_SHA256", SHA.upper())
    monkeypatch.setenv("ITEMS_TABLE", "items")
    monkeypatch.setenv("NEUTRAL_THRESHOLD", "0.6")
    s = analysis_settings()
    assert (s.model_sha256, s.neutral_threshold, s.model_download_strategy) == (SHA, 0.6, "stream")
    assert analysis_settings() is s  # read once, cached


@pytest.mark.parametrize(
    ("name", "value", "match"),
    [
        ("MODEL_SHA256", "not-hex", "model_sha256"),
        ("NEUTRAL_THRESHOLD", "1.5", "neutral_threshold"),
        ("MODEL_DOWNLOAD_STRATEGY", "carrier-pigeon", "model_download_strategy"),
    ],
)
def test_invalid_analysis_settings_fail_clearly(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, match: str
) -> None:
    for k, v in {"MODEL_BUCKET": "bkt", "MODEL_KEY": "k", "MODEL_SHA256": SHA, "ITEMS_TABLE": "t"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv(name, value)
    reset_settings_cache()
    with pytest.raises(ValidationError, match=match):
        analysis_settings()


def test_feeds_are_a_json_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ITEMS_TABLE", "t")
    monkeypatch.setenv("TOPIC_ARN", "arn:aws:sns:eu-west-1:123456789012:items")
    monkeypatch.setenv("FEEDS", json.dumps(["https://example.com/a.xml", "https://example.com/b.xml"]))
    assert ingestion_settings().feeds == ("https://example.com/a.xml", "https://example.com/b.xml")
    reset_settings_cache()
    monkeypatch.setenv("FEEDS", "https://example.com/not-json")
    with pytest.raises(ValidationError, match="JSON list"):
        ingestion_settings()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('["https://a.example/feed", "/srv/local.xml"]', ("https://a.example/feed", "/srv/local.xml")),
        ("  ", ()),
        ("not json", "feeds: must be a JSON list of feed URLs (Expecting value)"),
        ('{"url": "https://a.example/feed"}', "feeds: must be a JSON list of feed URLs (strings)"),
        ("[1]", "feeds: must be a JSON list of feed URLs (strings)"),
    ],
)
def test_feed_urls_are_one_type_with_one_parse_and_one_way_to_say_what_is_wrong(
    value: str, expected: tuple[str, ...] | str
) -> None:
    # Given the FeedUrls type both the function's settings and the stack config use
    from pydantic import BaseModel

    from sentiment_shared.schemas import FeedUrls, error_messages, feed_urls_json

    class Holder(BaseModel):
        feeds: FeedUrls = ()

    # When a value is parsed
    try:
        parsed: tuple[str, ...] | str = Holder.model_validate({"feeds": value}).feeds
    except ValidationError as exc:
        (parsed,) = error_messages(exc)
    # Then it is the tuple of URLs (written back by feed_urls_json as the same JSON list), or one plain message
    assert parsed == expected
    if isinstance(parsed, tuple):
        assert Holder.model_validate({"feeds": feed_urls_json(parsed)}).feeds == parsed


def test_topic_message_round_trip_and_version_bound() -> None:
    msg = Item(item_id="x", text="héllo", source="feed").to_message()
    parsed = TopicMessage.model_validate_json(msg.to_json())
    assert parsed == msg
    assert parsed.schema_version == SCHEMA_VERSION
    with pytest.raises(ValidationError):
        TopicMessage.model_validate({"item_id": "x", "text": "t", "schema_version": SCHEMA_VERSION + 1})
    with pytest.raises(ValidationError):
        TopicMessage.model_validate({"item_id": "", "text": "t"})


def test_stack_names_and_queue_settings() -> None:
    names = ResourceNames(stack="dev")
    assert names.items_table == "sentiment-analyzer-dev-items"
    assert DEFAULT_QUEUE.visibility_timeout_s(120) == 720
    assert model_key("distilbert/", "v1.0.0", "model.tar") == "distilbert/v1.0.0/model.tar"
    with pytest.raises(ValueError, match="non-empty"):
        model_key("", "v1", "model.tar")
