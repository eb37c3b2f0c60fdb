"""The backend client against botocore's Lambda client: retries, typed errors, the fallback path.

A real botocore ``lambda`` client with a ``Stubber`` plays the Lambda API (throttling, 5xx, function
errors, handler 400s); an unreachable endpoint plays an outage. ``sleep`` is injected so backoff is
observed without waiting.
"""

from __future__ import annotations

import io
import json
import logging
import socket
import threading
from collections.abc import Iterator
from typing import Any

import botocore.session
import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber

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


@pytest.fixture(scope="module")
def lambda_client() -> Any:
    # A real client (request validation, error parsing), never sending: the Stubber answers.
    return botocore.session.get_session().create_client(
        "lambda", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )


@pytest.fixture
def stubber(lambda_client: Any) -> Iterator[Stubber]:
    with Stubber(lambda_client) as stub:
        yield stub
        stub.assert_no_pending_responses()


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def _payload(body: Any) -> StreamingBody:
    raw = json.dumps(body).encode()
    return StreamingBody(io.BytesIO(raw), len(raw))


def _ok(texts: list[str], sentiment: str = "positive") -> dict[str, Any]:
    results = [{"sentiment": sentiment, "score": 0.97, "label": sentiment.upper()} for _ in texts]
    return {"StatusCode": 200, "Payload": _payload({"statusCode": 200, "results": results, "count": len(texts)})}


def _request(texts: list[str]) -> dict[str, Any]:
    payload = json.dumps({"texts": texts}, ensure_ascii=False, separators=(",", ":")).encode()
    return {"FunctionName": FUNCTION, "InvocationType": "RequestResponse", "Payload": payload}


def _throttle(stub: Stubber) -> None:
    stub.add_client_error(
        "invoke", service_error_code="TooManyRequestsException", service_message="Rate exceeded", http_status_code=429
    )


def _server_error(stub: Stubber) -> None:
    stub.add_client_error(
        "invoke", service_error_code="ServiceException", service_message="internal", http_status_code=500
    )


def test_throttling_and_5xx_are_retried_with_jittered_backoff_then_succeed(
    lambda_client: Any, stubber: Stubber
) -> None:
    # Given a function that throttles, then fails with a 500, then answers
    texts = ["I love it", "naïve café ☕"]
    _throttle(stubber)
    _server_error(stubber)
    stubber.add_response("invoke", _ok(texts), _request(texts))
    sleeps = Sleeps()
    client = SentimentClient(FUNCTION, lambda_client=lambda_client, sleep=sleeps, base_delay_s=0.2, max_delay_s=5)
    # When classified
    results = client.classify(texts)
    # Then the third attempt's answers come back, after two backoffs within the growing caps
    assert [(r.sentiment, r.label, r.source) for r in results] == [("positive", "POSITIVE", "model")] * 2
    assert len(sleeps) == 2
    assert 0 <= sleeps[0] <= 0.2
    assert 0 <= sleeps[1] <= 0.4
    stats = client.stats
    assert (stats.invocations, stats.retries, stats.model_texts, stats.fallback_texts) == (3, 2, 2, 0)


def test_retry_exhaustion_raises_unavailable_naming_the_last_error(lambda_client: Any, stubber: Stubber) -> None:
    # Given a function that throttles on every one of three attempts, and no fallback
    for _ in range(3):
        _throttle(stubber)
    sleeps = Sleeps()
    client = SentimentClient(FUNCTION, lambda_client=lambda_client, max_attempts=3, sleep=sleeps)
    # When classified
    with pytest.raises(FunctionUnavailableError) as info:
        client.classify(["anything"])
    # Then the error says how many attempts and what the last failure was; no result is made up
    assert info.value.attempts == 3
    assert "TooManyRequestsException" in info.value.last_error
    assert "texts[0:1]" in str(info.value)
    assert len(sleeps) == 2


def test_exhausted_batch_falls_back_per_result_and_is_counted_and_logged(
    lambda_client: Any, stubber: Stubber, caplog: pytest.LogCaptureFixture
) -> None:
    # Given two batches: the function answers the first, then keeps failing with 5xx on the second
    first, second = ["good movie", "bad movie"], ["I love this wonderful film", "I hate this awful film"]
    stubber.add_response("invoke", _ok(first, "neutral"), _request(first))
    for _ in range(2):
        _server_error(stubber)
    client = SentimentClient(
        FUNCTION, lambda_client=lambda_client, max_batch=2, concurrency=1, max_attempts=2,
        fallback=VaderFallback(), sleep=Sleeps(),
    )  # fmt: skip
    # When classified
    with caplog.at_level(logging.WARNING, logger="sentiment_client.client"):
        results = client.classify(first + second)
    # Then the first batch carries the model's answers and the second the fallback's, each marked
    assert [r.source for r in results] == ["model", "model", "fallback", "fallback"]
    assert [r.sentiment for r in results] == ["neutral", "neutral", "positive", "negative"]
    assert results[2].label == "VADER_POSITIVE"
    # And the fallback is counted and logged
    stats = client.stats
    assert (stats.model_texts, stats.fallback_texts, stats.fallback_batches) == (2, 2, 1)
    (record,) = [r for r in caplog.records if "fallback" in r.getMessage()]
    assert record.fallback_texts == 2  # type: ignore[attr-defined]
    assert "texts[2:4]" in record.getMessage()
    assert "ServiceException" in record.getMessage()


def test_handler_400_is_surfaced_with_its_error_and_never_retried_or_replaced(
    lambda_client: Any, stubber: Stubber
) -> None:
    # Given a handler that rejects the payload (a fallback is configured, and must not hide this)
    stubber.add_response(
        "invoke",
        {"StatusCode": 200, "Payload": _payload({"statusCode": 400, "error": "texts[0] is empty"})},
        {"FunctionName": FUNCTION, "InvocationType": "RequestResponse", "Payload": ANY},
    )
    client = SentimentClient(FUNCTION, lambda_client=lambda_client, fallback=VaderFallback(), sleep=Sleeps())
    # When classified
    with pytest.raises(RequestRejectedError) as info:
        client.classify(["", "fine"])
    # Then the typed error carries the handler's status and message, after exactly one call
    assert (info.value.status_code, info.value.error) == (400, "texts[0] is empty")
    assert "texts[0] is empty" in str(info.value)
    assert client.stats.invocations == 1
    assert client.stats.fallback_texts == 0


def test_function_error_is_surfaced_with_type_and_message(lambda_client: Any, stubber: Stubber) -> None:
    # Given a function that crashed (Lambda reports FunctionError and the runtime's error object)
    crash = {"errorMessage": "CUDA? no: out of memory", "errorType": "MemoryError", "stackTrace": ["..."]}
    stubber.add_response(
        "invoke",
        {"StatusCode": 200, "FunctionError": "Unhandled", "Payload": _payload(crash)},
        _request(["text"]),
    )
    client = SentimentClient(FUNCTION, lambda_client=lambda_client, fallback=VaderFallback(), sleep=Sleeps())
    # When classified
    with pytest.raises(FunctionFailedError) as info:
        client.classify(["text"])
    # Then the error names what failed, and no fallback result was made up
    error = info.value
    assert (error.function_error, error.error_type, error.error_message) == (
        "Unhandled",
        "MemoryError",
        "CUDA? no: out of memory",
    )
    assert FUNCTION in str(error)
    assert client.stats.fallback_texts == 0


def test_missing_function_is_a_typed_error_without_retries(lambda_client: Any, stubber: Stubber) -> None:
    stubber.add_client_error(
        "invoke",
        service_error_code="ResourceNotFoundException",
        service_message="Function not found",
        http_status_code=404,
    )
    client = SentimentClient(FUNCTION, lambda_client=lambda_client, fallback=VaderFallback(), sleep=Sleeps())
    with pytest.raises(InvocationError, match="ResourceNotFoundException: Function not found") as info:
        client.classify(["text"])
    assert info.value.code == "ResourceNotFoundException"
    assert client.stats.invocations == 1


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
        ({"statusCode": 302}, "statusCode is 302"),
    ],
)
def test_response_breaking_the_contract_is_an_error_not_a_result(
    lambda_client: Any, stubber: Stubber, body: dict[str, Any], match: str
) -> None:
    stubber.add_response("invoke", {"StatusCode": 200, "Payload": _payload(body)}, _request(["a", "b"]))
    client = SentimentClient(FUNCTION, lambda_client=lambda_client, sleep=Sleeps())
    with pytest.raises(InvalidResponseError, match=match):
        client.classify(["a", "b"])


@pytest.fixture
def hang_up_server() -> Iterator[tuple[str, list[int]]]:
    """A TCP endpoint that accepts each connection and closes it at once; counts the connections."""
    accepted: list[int] = []
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            accepted.append(1)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}", accepted
    finally:
        stop.set()
        thread.join()
        server.close()


def test_each_attempt_is_one_connection_because_botocore_retries_are_off(
    monkeypatch: pytest.MonkeyPatch, hang_up_server: tuple[str, list[int]]
) -> None:
    # Given the default client pointed at an endpoint that hangs up on every connection
    url, accepted = hang_up_server
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", url)
    client = SentimentClient(FUNCTION, max_attempts=3, sleep=Sleeps())
    # When classified
    with pytest.raises(FunctionUnavailableError, match="ConnectionClosedError") as info:
        client.classify(["hello"])
    # Then the closed connection was retried by the client, one connection per attempt (no hidden retries)
    assert info.value.attempts == 3
    assert len(accepted) == 3


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_endpoint_is_retried_then_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the default client (from sentiment_shared.aws) pointed at a port nobody listens on
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", f"http://127.0.0.1:{_closed_port()}")
    sleeps = Sleeps()
    without = SentimentClient(FUNCTION, max_attempts=2, sleep=sleeps)
    with_fallback = SentimentClient(FUNCTION, max_attempts=2, sleep=sleeps, fallback=VaderFallback())
    # When classified without and with the fallback
    with pytest.raises(FunctionUnavailableError, match="EndpointConnectionError"):
        without.classify(["great"])
    results = with_fallback.classify(["What a great day!", "awful"])
    # Then each made its attempts (botocore's own retries are off: one connection attempt per try)...
    assert without.stats.invocations == 2
    assert with_fallback.stats.invocations == 2  # the second text rode in the same batch
    # ...and the fallback answered, marked as such
    assert [(r.sentiment, r.source) for r in results] == [("positive", "fallback"), ("negative", "fallback")]


def test_qualifier_is_sent_with_every_invocation(lambda_client: Any, stubber: Stubber) -> None:
    # Given a client pinned to the function's "live" alias
    stubber.add_response("invoke", _ok(["text"]), {**_request(["text"]), "Qualifier": "live"})
    client = SentimentClient(FUNCTION, lambda_client=lambda_client, qualifier="live", sleep=Sleeps())
    # When classified, then the stub (which checks every parameter) saw the alias
    assert [r.sentiment for r in client.classify(["text"])] == ["positive"]
