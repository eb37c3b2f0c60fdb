"""The backend client's own logic: byte-exact chunking, order across concurrent batches, the VADER mapping.

The function is the SDK's own in-memory double of ``lambda.invoke`` (``sentiment_client.testing``) that
answers per the handler contract, so these tests need no AWS emulator; the botocore plumbing (errors,
retries) is in tests/functional.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from sentiment_client.client import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    LAMBDA_SYNC_PAYLOAD_LIMIT,
    MAX_TEXTS_PER_INVOKE,
    RESPONSE_BYTES_PER_RESULT,
    ClientResult,
    InvalidTextError,
    RequestRejectedError,
    SentimentClient,
    TextTooLargeError,
    encode_text,
    envelope_bytes,
    plan_invocations,
)
from sentiment_client.fallback import VaderFallback, sentiment_from_compound
from sentiment_client.testing import FakeAnalysisFunction, FlakyAnalysisFunction, fake_client

pytestmark = pytest.mark.unit


def _client(fake: FakeAnalysisFunction, **kwargs: Any) -> SentimentClient:
    return fake_client(fake, **kwargs)


def _texts_of(payload: bytes) -> list[str]:
    texts = json.loads(payload)["texts"]
    assert isinstance(texts, list)
    return texts


# --------------------------------------------------------------------------- the shipped test double


def test_the_sdk_ships_a_test_double_that_answers_without_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given no AWS configuration at all, as in an SDK user's unit tests
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    function = FakeAnalysisFunction()
    # When a client built on sentiment_client.testing classifies, with an alias pinned
    client = fake_client(function, max_batch=2, qualifier="live")
    results = client.classify(["a good day", "a bad day", "good again"])
    # Then the real client ran (two batches of at most two), and the double answered deterministically
    assert isinstance(client, SentimentClient)
    assert [r.sentiment for r in results] == ["positive", "negative", "positive"]
    assert [_texts_of(p) for p in function.payloads] == [["a good day", "a bad day"], ["good again"]]


# --------------------------------------------------------------------------- chunking


def test_multibyte_batch_filling_the_byte_limit_exactly_is_kept_and_one_byte_less_splits() -> None:
    # Given three texts of 100 CJK characters: 100 characters but 302 bytes of JSON each
    texts = ["日" * 100] * 3
    assert len(encode_text(texts[0])) == 302
    exact = envelope_bytes(3, 3 * 302)
    # When planned with a byte budget equal to their envelope, and with one byte less
    fits = plan_invocations(texts, max_batch=10, max_payload_bytes=exact)
    split = plan_invocations(texts, max_batch=10, max_payload_bytes=exact - 1)
    # Then the exact budget holds all three in one body of exactly that many bytes...
    assert [(b.start, b.end) for b in fits] == [(0, 3)]
    assert len(fits[0].payload) == exact == 920
    # ...and one byte less splits them, although the characters (3 x 100) are far below either budget
    assert [(b.start, b.end) for b in split] == [(0, 2), (2, 3)]
    assert all(len(b.payload) <= exact - 1 for b in split)
    assert [t for b in split for t in _texts_of(b.payload)] == texts


def test_default_budget_counts_bytes_of_multibyte_text_not_characters() -> None:
    # Given three 700,000-character CJK texts (2.1 MB of UTF-8 each: 6.3 MB together, 2.1 M characters)
    texts = ["感" * 700_000, "情" * 700_000, "分" * 700_000, "fine"]
    fake = FakeAnalysisFunction()
    # When classified with the default budget
    results = _client(fake).classify(texts)
    # Then no request exceeds the byte budget, so they were split although the characters would fit one
    assert sum(map(len, texts[:3])) < DEFAULT_MAX_PAYLOAD_BYTES
    assert len(fake.payloads) >= 2
    assert max(len(p) for p in fake.payloads) <= DEFAULT_MAX_PAYLOAD_BYTES < LAMBDA_SYNC_PAYLOAD_LIMIT
    # And every text was sent exactly once, in order, and answered
    assert [t for p in fake.payloads for t in _texts_of(p)] == texts
    assert len(results) == 4


def test_emoji_are_sized_as_sent_and_round_trip() -> None:
    # Given astral-plane emoji (4 bytes each) among other texts
    texts = ["😀" * 10, "naïve", "plain"]
    # When planned
    (batch,) = plan_invocations(texts, max_batch=10, max_payload_bytes=1000)
    # Then the body is valid JSON giving back the same strings, and its size is what was planned
    assert _texts_of(batch.payload) == texts
    assert len(batch.payload) == envelope_bytes(3, sum(len(encode_text(t)) for t in texts))
    assert len(encode_text(texts[0])) == 42


def test_text_count_limit_splits_batches() -> None:
    texts = [f"text {i}" for i in range(10)]
    batches = plan_invocations(texts, max_batch=4, max_payload_bytes=DEFAULT_MAX_PAYLOAD_BYTES)
    assert [(b.start, b.end) for b in batches] == [(0, 4), (4, 8), (8, 10)]


def test_single_text_too_large_raises_typed_error_before_anything_is_sent() -> None:
    # Given a small budget and, in third place, a text whose JSON alone exceeds it
    fake = FakeAnalysisFunction()
    client = _client(fake, max_payload_bytes=1_000)
    texts = ["ok", "fine", "é" * 600, "ok"]
    # When classified
    with pytest.raises(TextTooLargeError) as info:
        client.classify(texts)
    # Then the error names the text, its size and the limit, and no invocation happened
    assert (info.value.index, info.value.size_bytes, info.value.limit_bytes) == (2, 1214, 1_000)
    assert "texts[2]" in str(info.value)
    assert isinstance(info.value, ValueError)
    assert fake.payloads == []


def test_batch_count_is_capped_by_the_handler_limit_and_the_response_size() -> None:
    # Given a caller asking for a huge batch of tiny texts
    client = _client(FakeAnalysisFunction(), max_batch=1_000_000)
    # Then the client caps the count at what the handler accepts, and the results still fit 6 MiB
    assert client.max_batch == MAX_TEXTS_PER_INVOKE
    assert client.max_batch * RESPONSE_BYTES_PER_RESULT < LAMBDA_SYNC_PAYLOAD_LIMIT


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_payload_bytes": LAMBDA_SYNC_PAYLOAD_LIMIT + 1},
        {"max_payload_bytes": 10},
        {"max_batch": 0},
        {"concurrency": 0},
        {"max_attempts": 0},
    ],
)
def test_invalid_configuration_is_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        _client(FakeAnalysisFunction(), **kwargs)


def test_empty_input_makes_no_call_and_what_the_function_would_refuse_is_refused_before_sending() -> None:
    fake = FakeAnalysisFunction()
    client = _client(fake)
    assert client.classify([]) == []
    with pytest.raises(TypeError, match="not a single str"):
        client.classify("a string is a sequence of characters")
    # The function's own request model decides, and the error names the text
    with pytest.raises(TypeError, match=r"texts\[1\]: Input should be a valid string"):
        client.classify(["ok", 3])  # type: ignore[list-item]
    with pytest.raises(
        InvalidTextError, match=r"texts\[2\]: not valid Unicode: unpaired surrogate '\\ud800' at index 4"
    ):
        client.classify(["😀", "ok", "bad \ud800 half"])
    assert fake.payloads == []


# --------------------------------------------------------------------------- concurrency and order


def test_order_is_preserved_when_concurrent_batches_finish_in_reverse() -> None:
    # Given 40 distinct texts, batches of 5, and a function where earlier batches take longer
    texts = [f"{'good' if i % 3 else 'bad'} review number {i} {'!' * i}" for i in range(40)]
    fake = FakeAnalysisFunction(delay_for=lambda n: 0.02 * max(0, 4 - n))
    client = _client(fake, max_batch=5, concurrency=4)
    # When classified
    results = client.classify(texts)
    # Then batches really completed out of order...
    assert len(fake.payloads) == 8
    assert fake.completed != sorted(fake.completed)
    # ...yet result i is the verdict for text i
    expected = [ClientResult(**FakeAnalysisFunction.verdict(t), source="model") for t in texts]
    assert results == expected
    assert client.stats.model_texts == 40


def test_concurrency_is_bounded() -> None:
    # Given 12 single-text batches that each take a moment, and concurrency 3
    fake = FakeAnalysisFunction(delay_for=lambda _n: 0.02)
    client = _client(fake, max_batch=1, concurrency=3)
    # When classified
    client.classify([f"text {i}" for i in range(12)])
    # Then at most three invocations were ever in flight, and more than one was
    assert fake.peak_in_flight == 3
    assert client.stats.invocations == 12


# --------------------------------------------------------------------------- VADER fallback


@pytest.mark.parametrize(
    ("compound", "sentiment", "score"),
    [
        (0.05, "positive", 0.05),
        (0.9, "positive", 0.9),
        (0.0499, "neutral", 0.9501),
        (0.0, "neutral", 1.0),
        (-0.0499, "neutral", 0.9501),
        (-0.05, "negative", 0.05),
        (-0.8, "negative", 0.8),
    ],
)
def test_vader_compound_maps_with_the_documented_thresholds(compound: float, sentiment: str, score: float) -> None:
    got_sentiment, got_score = sentiment_from_compound(compound)
    assert got_sentiment == sentiment
    assert got_score == pytest.approx(score)


def test_vader_fallback_classifies_offline_and_marks_its_results() -> None:
    # Given the lexicon fallback (from the `fallback` extra)
    fallback = VaderFallback()
    texts: Sequence[str] = ["I love this, it is wonderful!", "This is terrible and I hate it.", "The box is blue."]
    # When it classifies clear cases
    results = fallback.classify(texts)
    # Then it gets them right and says where the answer came from
    assert [r.sentiment for r in results] == ["positive", "negative", "neutral"]
    assert [r.label for r in results] == ["VADER_POSITIVE", "VADER_NEGATIVE", "VADER_NEUTRAL"]
    assert all(r.source == "fallback" and 0.0 <= r.score <= 1.0 for r in results)


# --------------------------------------------------------------------------- failures across batches


def test_a_rejected_batch_fails_the_whole_call_naming_its_slice() -> None:
    # Given six batches of which the fourth is rejected by the handler
    texts = [f"good {i}" for i in range(12)]
    texts[7] = "reject me"
    client = _client(FlakyAnalysisFunction(throttle=False), max_batch=2, concurrency=3, fallback=VaderFallback())
    # When classified
    with pytest.raises(RequestRejectedError, match=r"texts\[6:8\].*rejected item") as info:
        client.classify(texts)
    # Then the error is about that batch only, and the fallback did not paper over it
    assert (info.value.start, info.value.end) == (6, 8)
    assert client.stats.fallback_texts == 0


def test_after_one_batch_outlasts_the_retries_later_batches_go_straight_to_the_fallback() -> None:
    # Given an outage (every call throttled, whatever the Lambda client retried), three batches run one at a time
    fake = FlakyAnalysisFunction(throttle=True)
    client = _client(fake, max_batch=2, concurrency=1, fallback=VaderFallback())
    # When classified
    results = client.classify(["lovely", "horrible", "nice", "bad", "great", "awful"])
    # Then only the first batch was sent; every text got a marked fallback answer
    assert len(fake.payloads) == 1
    assert [r.sentiment for r in results] == ["positive", "negative"] * 3
    assert {r.source for r in results} == {"fallback"}
    assert (client.stats.fallback_texts, client.stats.fallback_batches) == (6, 3)
