"""Test doubles of the analysis function for code that uses :class:`SentimentClient`: no AWS, no credentials.

Like pydantic-ai's ``TestModel``, the double stands where the real thing would be and answers
deterministically, so a service's own tests run offline::

    from sentiment_client.testing import FakeAnalysisFunction, fake_client

    function = FakeAnalysisFunction()
    client = fake_client(function, max_batch=2)  # a real SentimentClient; its Lambda is the fake
    results = client.classify(["a good day", "a bad day"])
    assert [r.sentiment for r in results] == ["positive", "negative"]
    assert len(function.payloads) == 1  # the request bodies the client sent, as bytes

Everything the client does (batching by bytes and count, concurrency, request and response contracts,
errors, the fallback) runs for real; only ``lambda.invoke`` is replaced. :class:`FlakyAnalysisFunction`
plays an outage (every call throttled, as botocore reports it after its retries) or a handler that
rejects a request, to test the error and fallback paths.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import ClientError

from sentiment_client.client import SentimentClient

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient

__all__ = ["FakeAnalysisFunction", "FlakyAnalysisFunction", "fake_client"]


class FakeAnalysisFunction:
    """Stands for ``lambda.invoke`` of the analysis function: a deterministic verdict per text.

    A text containing ``"good"`` is positive, any other negative, with a score that depends on its
    length (so a result in the wrong slot shows). ``delay_for(batch_number)`` (seconds) lets a test make
    early batches finish last. Records every request body (:attr:`payloads`), the order batches
    completed in and the peak number of invocations in flight.
    """

    def __init__(self, delay_for: Callable[[int], float] | None = None) -> None:
        self.payloads: list[bytes] = []
        self.completed: list[int] = []
        self.in_flight = 0
        self.peak_in_flight = 0
        self._delay_for = delay_for
        self._lock = threading.Lock()

    @staticmethod
    def verdict(text: str) -> dict[str, Any]:
        """The result this double answers for ``text``."""
        positive = "good" in text
        return {
            "sentiment": "positive" if positive else "negative",
            "score": round(0.5 + (len(text) % 50) / 100, 4),
            "label": "POSITIVE" if positive else "NEGATIVE",
        }

    def invoke(
        self, *, FunctionName: str, InvocationType: str, Payload: bytes, Qualifier: str | None = None
    ) -> dict[str, Any]:
        if InvocationType != "RequestResponse":
            raise ValueError(f"the client invokes synchronously, not {InvocationType!r}")
        with self._lock:
            number = len(self.payloads)
            self.payloads.append(Payload)
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            if self._delay_for is not None:
                time.sleep(self._delay_for(number))
            texts = json.loads(Payload)["texts"]
            body = {"statusCode": 200, "results": [self.verdict(t) for t in texts], "count": len(texts)}
        finally:
            with self._lock:
                self.in_flight -= 1
                self.completed.append(number)
        return {"StatusCode": 200, "Payload": io.BytesIO(json.dumps(body).encode())}


class FlakyAnalysisFunction(FakeAnalysisFunction):
    """Throttles every call (an outage), or rejects any batch holding a text starting with ``reject``."""

    def __init__(self, *, throttle: bool) -> None:
        super().__init__()
        self.throttle = throttle

    def invoke(
        self, *, FunctionName: str, InvocationType: str, Payload: bytes, Qualifier: str | None = None
    ) -> dict[str, Any]:
        if self.throttle:
            with self._lock:
                self.payloads.append(Payload)
            response: Any = {
                "Error": {"Code": "TooManyRequestsException", "Message": "Rate exceeded"},
                "ResponseMetadata": {"HTTPStatusCode": 429},
            }
            raise ClientError(response, "Invoke")
        if any(t.startswith("reject") for t in json.loads(Payload)["texts"]):
            with self._lock:
                self.payloads.append(Payload)
            body = {"statusCode": 400, "error": "texts contain a rejected item"}
            return {"StatusCode": 200, "Payload": io.BytesIO(json.dumps(body).encode())}
        return super().invoke(
            FunctionName=FunctionName, InvocationType=InvocationType, Payload=Payload, Qualifier=Qualifier
        )


def fake_client(
    function: FakeAnalysisFunction | None = None, *, function_name: str = "sentiment-analysis", **options: Any
) -> SentimentClient:
    """A real :class:`SentimentClient` (``options`` as its own) whose Lambda client is ``function``."""
    double = FakeAnalysisFunction() if function is None else function
    return SentimentClient(function_name, lambda_client=cast("LambdaClient", double), **options)
