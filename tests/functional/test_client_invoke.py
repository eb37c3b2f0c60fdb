"""The backend client through botocore's real Lambda client and HTTP: one retry layer, typed errors, the fallback.

A loopback HTTP server plays the Lambda API (throttling, 5xx, hang-ups, function errors, handler 400s)
and counts the HTTP requests the client really sends: botocore's standard retry mode is the only layer
that repeats an invocation, so a throttled invoke is sent exactly ``max_attempts`` times. A port nobody
listens on plays an outage.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from loopback import LoopbackEndpoint, Reply

from sentiment_client.client import (
    FunctionFailedError,
    FunctionUnavailableError,
    InvalidResponseError,
    InvocationError,
    RequestRejectedError,
    SentimentClient,
)
from sentiment_client.fallback import VaderFallback

pytestmark = pytest.mark.functional

FUNCTION = "sentiment-analyzer-dev-analysis"
INVOKE_PATH = f"/2015-03-31/functions/{FUNCTION}/invocations"


def _error(status: int, code: str, message: str) -> Reply:
    return Reply(status, json.dumps({"Type": "Service", "message": message}).encode(), {"x-amzn-ErrorType": code})


THROTTLED = _error(429, "TooManyRequestsException", "Rate exceeded")
SERVER_ERROR = _error(500, "ServiceException", "internal")


def _answer(body: Any, **headers: str) -> Reply:
    return Reply(200, json.dumps(body).encode(), headers)


def _ok(texts: list[str], sentiment: str = "positive") -> Reply:
    results = [{"sentiment": sentiment, "score": 0.97, "label": sentiment.upper()} for _ in texts]
    return _answer({"statusCode": 200, "results": results, "count": len(texts)})


@pytest.fixture
def lambda_endpoint(loopback_endpoint: LoopbackEndpoint, monkeypatch: pytest.MonkeyPatch) -> LoopbackEndpoint:
    """Every SentimentClient built without ``lambda_client`` talks to the loopback server."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", loopback_endpoint.url)
    return loopback_endpoint


def test_throttling_and_5xx_are_retried_by_botocore_then_succeed(lambda_endpoint: LoopbackEndpoint) -> None:
    # Given a function that throttles, then fails with a 500, then answers
    texts = ["I love it", "naïve café ☕"]
    lambda_endpoint.script(THROTTLED, SERVER_ERROR, _ok(texts))
    client = SentimentClient(FUNCTION)
    # When classified
    results = client.classify(texts)
    # Then the third request's answers come back: the same invocation, sent three times over HTTP
    assert [(r.sentiment, r.label, r.source) for r in results] == [("positive", "POSITIVE", "model")] * 2
    sent = json.dumps({"texts": texts}, ensure_ascii=False, separators=(",", ":")).encode()
    assert [(r.method, r.path, r.body) for r in lambda_endpoint.requests] == [("POST", INVOKE_PATH, sent)] * 3
    stats = client.stats
    assert (stats.invocations, stats.retries, stats.model_texts, stats.fallback_texts) == (3, 2, 2, 0)


def test_a_throttled_invoke_is_sent_exactly_max_attempts_times(lambda_endpoint: LoopbackEndpoint) -> None:
    # Given a function that throttles every request, and no fallback
    lambda_endpoint.reply = lambda _request: THROTTLED
    client = SentimentClient(FUNCTION, max_attempts=3)
    # When classified
    with pytest.raises(FunctionUnavailableError) as info:
        client.classify(["anything"])
    # Then botocore sent it three times in all (one retry layer, not one inside another), and the
    # error says so, with the last failure; no result is made up
    assert len(lambda_endpoint.requests) == 3
    assert info.value.attempts == 3
    assert "TooManyRequestsException (HTTP 429): Rate exceeded" in info.value.last_error
    assert "texts[0:1]" in str(info.value)
    assert (client.stats.invocations, client.stats.retries) == (3, 2)


def test_exhausted_batch_falls_back_per_result_and_is_counted_and_logged(
    lambda_endpoint: LoopbackEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    # Given two batches: the function answers the first, then keeps failing with 5xx on the second
    first, second = ["good movie", "bad movie"], ["I love this wonderful film", "I hate this awful film"]
    lambda_endpoint.script(_ok(first, "neutral"), SERVER_ERROR)
    client = SentimentClient(FUNCTION, max_batch=2, concurrency=1, max_attempts=2, fallback=VaderFallback())
    # When classified
    with caplog.at_level(logging.WARNING, logger="sentiment_client.client"):
        results = client.classify(first + second)
    # Then the first batch carries the model's answers and the second the fallback's, each marked
    assert [r.source for r in results] == ["model", "model", "fallback", "fallback"]
    assert [r.sentiment for r in results] == ["neutral", "neutral", "positive", "negative"]
    assert results[2].label == "VADER_POSITIVE"
    # And the fallback came after botocore's two attempts, and is counted and logged
    assert len(lambda_endpoint.requests) == 3
    stats = client.stats
    assert (stats.model_texts, stats.fallback_texts, stats.fallback_batches) == (2, 2, 1)
    (record,) = [r for r in caplog.records if "fallback" in r.getMessage()]
    assert record.fallback_texts == 2  # type: ignore[attr-defined]
    assert "texts[2:4]" in record.getMessage()
    assert "unavailable after 2 attempts: ServiceException" in record.getMessage()


def test_handler_400_is_surfaced_with_its_error_and_never_retried_or_replaced(
    lambda_endpoint: LoopbackEndpoint,
) -> None:
    # Given a handler that rejects the payload (a fallback is configured, and must not hide this)
    lambda_endpoint.reply = lambda _request: _answer({"statusCode": 400, "error": "texts[0] is empty"})
    client = SentimentClient(FUNCTION, fallback=VaderFallback())
    # When classified
    with pytest.raises(RequestRejectedError) as info:
        client.classify(["", "fine"])
    # Then the typed error carries the handler's status and message, after exactly one request
    assert (info.value.status_code, info.value.error) == (400, "texts[0] is empty")
    assert "texts[0] is empty" in str(info.value)
    assert len(lambda_endpoint.requests) == client.stats.invocations == 1
    assert client.stats.fallback_texts == 0


def test_function_error_is_surfaced_with_type_and_message(lambda_endpoint: LoopbackEndpoint) -> None:
    # Given a function that crashed (Lambda reports FunctionError and the runtime's error object)
    crash = {"errorMessage": "CUDA? no: out of memory", "errorType": "MemoryError", "stackTrace": ["..."]}
    lambda_endpoint.reply = lambda _request: _answer(crash, **{"X-Amz-Function-Error": "Unhandled"})
    client = SentimentClient(FUNCTION, fallback=VaderFallback())
    # When classified
    with pytest.raises(FunctionFailedError) as info:
        client.classify(["text"])
    # Then the error names what failed, it was not retried, and no fallback result was made up
    error = info.value
    assert (error.function_error, error.error_type, error.error_message) == (
        "Unhandled",
        "MemoryError",
        "CUDA? no: out of memory",
    )
    assert FUNCTION in str(error)
    assert len(lambda_endpoint.requests) == 1
    assert client.stats.fallback_texts == 0


def test_missing_function_is_a_typed_error_without_retries(lambda_endpoint: LoopbackEndpoint) -> None:
    lambda_endpoint.reply = lambda _request: _error(404, "ResourceNotFoundException", "Function not found")
    client = SentimentClient(FUNCTION, fallback=VaderFallback())
    with pytest.raises(InvocationError, match="ResourceNotFoundException: Function not found") as info:
        client.classify(["text"])
    assert info.value.code == "ResourceNotFoundException"
    assert len(lambda_endpoint.requests) == client.stats.invocations == 1


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ({"statusCode": 200, "results": [], "count": 0}, "expected 2 results, got 0"),
        (
            {"statusCode": 200, "results": [{"sentiment": "joyful", "score": 0.9, "label": "X"}] * 2},
            r"results\[0\]\.sentiment: Input should be 'positive', 'negative' or 'neutral'",
        ),
        (
            {"statusCode": 200, "results": [{"sentiment": "positive", "score": 1.5, "label": "P"}] * 2},
            r"results\[0\]\.score: Input should be less than or equal to 1",
        ),
        ({"statusCode": 302}, "statusCode: Input should be 200"),
        ("not an object", "payload: Input should be an object"),
    ],
)
def test_response_breaking_the_contract_is_an_error_not_a_result(
    lambda_endpoint: LoopbackEndpoint, body: Any, match: str
) -> None:
    lambda_endpoint.reply = lambda _request: _answer(body)
    client = SentimentClient(FUNCTION)
    with pytest.raises(InvalidResponseError, match=match):
        client.classify(["a", "b"])
    assert len(lambda_endpoint.requests) == 1


def test_a_hang_up_is_retried_by_botocore_one_connection_per_attempt(lambda_endpoint: LoopbackEndpoint) -> None:
    # Given an endpoint that closes every connection without answering
    lambda_endpoint.reply = lambda _request: None
    client = SentimentClient(FUNCTION, max_attempts=3)
    # When classified
    with pytest.raises(FunctionUnavailableError, match="ConnectionClosedError") as info:
        client.classify(["hello"])
    # Then botocore retried the closed connection up to the bound, and nothing retried on top of it
    assert info.value.attempts == len(lambda_endpoint.requests) == 3


def test_unreachable_endpoint_is_retried_then_falls_back(monkeypatch: pytest.MonkeyPatch, unreachable_url: str) -> None:
    # Given the default client (from sentiment_shared.aws) pointed at a port nobody listens on
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", unreachable_url)
    without = SentimentClient(FUNCTION, max_attempts=2)
    with_fallback = SentimentClient(FUNCTION, max_attempts=2, fallback=VaderFallback())
    # When classified without and with the fallback
    with pytest.raises(FunctionUnavailableError, match="EndpointConnectionError"):
        without.classify(["great"])
    results = with_fallback.classify(["What a great day!", "awful"])
    # Then each made its two attempts (botocore's: one connection attempt per try)...
    assert without.stats.invocations == 2
    assert with_fallback.stats.invocations == 2  # the second text rode in the same batch
    # ...and the fallback answered, marked as such
    assert [(r.sentiment, r.source) for r in results] == [("positive", "fallback"), ("negative", "fallback")]


def test_qualifier_is_sent_with_every_invocation(lambda_endpoint: LoopbackEndpoint) -> None:
    # Given a client pinned to the function's "live" alias
    lambda_endpoint.reply = lambda _request: _ok(["text"])
    client = SentimentClient(FUNCTION, qualifier="live")
    # When classified, then the request named the alias
    assert [r.sentiment for r in client.classify(["text"])] == ["positive"]
    assert [r.path for r in lambda_endpoint.requests] == [f"{INVOKE_PATH}?Qualifier=live"]
