"""Backend client of the analysis function: classify texts from any Python service through ``lambda:Invoke``.

:class:`SentimentClient` splits the input into synchronous invocations that fit Lambda's payload
limit (counted in bytes of the encoded JSON, not characters) and a text count, runs them on a small
thread pool and returns one :class:`ClientResult` per text in input order. Requests are checked and
responses parsed with the functions' own models (:mod:`sentiment_shared.schemas`). Anything that would
make the answers wrong (a text the function cannot take, a function error, a 400 from the handler, a
response that breaks the contract) is raised as a typed :class:`SentimentClientError`; it is never
retried, never replaced by a fallback and never turned into a result.

Retrying is botocore's alone (standard mode: throttling, 5xx and connection errors, at most
``max_attempts`` HTTP calls per invocation, jittered backoff). On top of it this module decides only
what botocore cannot: when an invocation botocore gave up on is answered by the optional fallback
(e.g. :class:`sentiment_client.fallback.VaderFallback`). Those results carry ``source="fallback"``,
are counted in :attr:`SentimentClient.stats` and logged. See docs/CLIENT.md.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError
from pydantic import ValidationError

from sentiment_shared import aws
from sentiment_shared.schemas import (
    MAX_TEXTS_PER_INVOKE,
    DirectRequest,
    DirectResponse,
    Sentiment,
    describe_errors,
)

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient

log = logging.getLogger(__name__)

LAMBDA_SYNC_PAYLOAD_LIMIT = 6_291_456
"""Lambda's synchronous invoke limit for the request and for the response (6 MiB, in bytes)."""
DEFAULT_MAX_PAYLOAD_BYTES = 6_000_000
"""Default request budget: under the limit with room for whatever Lambda counts beyond our JSON."""
DEFAULT_TEXTS_PER_INVOKE = 64
"""Texts per invocation (``SentimentClient(max_batch=...)``'s default): long texts (512 tokens) at this count
finish well inside the function timeout."""
DEFAULT_CONCURRENCY = 4
RESPONSE_BYTES_PER_RESULT = 192
"""Upper bound of one encoded result (``{"sentiment": ..., "score": ..., "label": ..., "id"?: ...}``),
used to keep the *response* under the limit too when a caller raises ``max_batch`` for tiny texts."""
RESPONSE_OVERHEAD_BYTES = 16_384
"""Room for the response envelope (``statusCode``, ``count``, ``metrics``)."""

_ENVELOPE_HEAD = b'{"texts":['
_ENVELOPE_TAIL = b"]}"

Source = Literal["model", "fallback"]


# --------------------------------------------------------------------------- results and errors


@dataclass(frozen=True, slots=True)
class ClientResult:
    """The sentiment of one text, and whether the model or the offline fallback produced it."""

    sentiment: Sentiment
    score: float
    """Model: probability of the model's top label (0..1). Fallback: its own 0..1 confidence."""
    label: str
    """Model: the model's own top label (``"POSITIVE"``). Fallback: e.g. ``"VADER_POSITIVE"``."""
    source: Source = "model"


@dataclass(slots=True)
class ClientStats:
    """Cumulative counters of one client (thread-safe through the client's lock)."""

    invocations: int = 0
    """Invoke HTTP requests sent, botocore's retries included."""
    retries: int = 0
    """Of those, botocore's retries."""
    model_texts: int = 0
    fallback_texts: int = 0
    fallback_batches: int = 0


class SentimentClientError(Exception):
    """Base of every error the client raises about a classification it could not answer correctly."""


class InvalidTextError(SentimentClientError, TypeError, ValueError):
    """A text the function would refuse (not a string, or not valid UTF-8); nothing was sent."""


class TextTooLargeError(SentimentClientError, ValueError):
    """One text alone does not fit in a single invocation's payload; nothing was sent."""

    def __init__(self, index: int, size_bytes: int, limit_bytes: int) -> None:
        self.index = index
        self.size_bytes = size_bytes
        self.limit_bytes = limit_bytes
        super().__init__(
            f"texts[{index}] encodes to {size_bytes} bytes of JSON, more than fits in one invocation "
            f'({limit_bytes} bytes including the {{"texts": [...]}} envelope); shorten or split it'
        )


class BatchError(SentimentClientError):
    """An error about one invocation, naming the function and the slice ``texts[start:end]`` it carried."""

    def __init__(self, function_name: str, start: int, end: int, detail: str) -> None:
        self.function_name = function_name
        self.start = start
        self.end = end
        self.detail = detail
        super().__init__(f"{function_name} (texts[{start}:{end}]): {detail}")


class FunctionFailedError(BatchError):
    """The invoke response carried ``FunctionError``: the function raised, timed out or ran out of memory."""

    def __init__(
        self, function_name: str, start: int, end: int, *, function_error: str, error_type: str, error_message: str
    ) -> None:
        self.function_error = function_error
        self.error_type = error_type
        self.error_message = error_message
        super().__init__(function_name, start, end, f"function error ({function_error}) {error_type}: {error_message}")


class RequestRejectedError(BatchError):
    """The handler answered with an error status (400: it found the payload malformed)."""

    def __init__(self, function_name: str, start: int, end: int, status_code: int, error: str) -> None:
        self.status_code = status_code
        self.error = error
        super().__init__(function_name, start, end, f"handler rejected the request ({status_code}): {error}")


class InvalidResponseError(BatchError):
    """The function answered 200 but not per the contract (wrong count, missing or invalid fields)."""


class InvocationError(BatchError):
    """Lambda refused the call (missing function, access denied, ...): botocore does not retry it."""

    def __init__(self, function_name: str, start: int, end: int, code: str, message: str) -> None:
        self.code = code
        super().__init__(function_name, start, end, f"invoke failed: {code}: {message}")


class FunctionUnavailableError(BatchError):
    """Throttling, 5xx or connection failures outlasted botocore's retries (and no fallback was set)."""

    def __init__(self, function_name: str, start: int, end: int, attempts: int, last_error: str) -> None:
        self.attempts = attempts
        self.last_error = last_error
        super().__init__(function_name, start, end, f"unavailable after {attempts} attempts; last error: {last_error}")


class Fallback(Protocol):
    """An offline analyzer used for texts the function could not answer (see :mod:`sentiment_client.fallback`)."""

    name: str

    def classify(self, texts: Sequence[str]) -> list[ClientResult]: ...


# --------------------------------------------------------------------------- payload chunking


@dataclass(frozen=True, slots=True)
class Batch:
    """``texts[start:end]`` and the exact request body carrying them."""

    start: int
    end: int
    payload: bytes


def encode_text(text: str) -> bytes:
    """One text as a JSON string, UTF-8: what it adds to the request body (``"日"`` is 3 bytes, not a
    6-byte ``\\u65e5`` escape)."""
    return json.dumps(text, ensure_ascii=False).encode("utf-8")


def envelope_bytes(n_texts: int, text_bytes: int) -> int:
    """Size of ``{"texts":[...]}`` holding ``n_texts`` encoded texts totalling ``text_bytes``."""
    return len(_ENVELOPE_HEAD) + text_bytes + max(n_texts - 1, 0) + len(_ENVELOPE_TAIL)


def plan_invocations(texts: Sequence[str], *, max_batch: int, max_payload_bytes: int) -> list[Batch]:
    """The invocations ``texts`` go out in: a greedy split into consecutive batches of ≤ ``max_batch`` texts
    and ≤ ``max_payload_bytes`` of request body (the function then cuts each into forward passes by tokens).

    Raises, before anything is sent, :class:`InvalidTextError` for a text the function would refuse
    and :class:`TextTooLargeError` for a text that fits in no batch.
    """
    try:
        if texts:
            DirectRequest.model_validate({"texts": list(texts)})  # what the function will check
    except ValidationError as exc:
        raise InvalidTextError(describe_errors(exc)) from None
    batches: list[Batch] = []
    current: list[bytes] = []
    current_bytes = 0
    start = 0
    for index, text in enumerate(texts):
        encoded = encode_text(text)
        if envelope_bytes(1, len(encoded)) > max_payload_bytes:
            raise TextTooLargeError(index, envelope_bytes(1, len(encoded)), max_payload_bytes)
        if current and (
            len(current) >= max_batch
            or envelope_bytes(len(current) + 1, current_bytes + len(encoded)) > max_payload_bytes
        ):
            batches.append(Batch(start, index, _ENVELOPE_HEAD + b",".join(current) + _ENVELOPE_TAIL))
            current, current_bytes, start = [], 0, index
        current.append(encoded)
        current_bytes += len(encoded)
    if current:
        batches.append(Batch(start, len(texts), _ENVELOPE_HEAD + b",".join(current) + _ENVELOPE_TAIL))
    return batches


# --------------------------------------------------------------------------- the client


_ATTEMPTS: ContextVar[list[int] | None] = ContextVar("sentiment_client_attempts", default=None)


def _count_attempt(**_kwargs: Any) -> None:
    """botocore ``before-send`` hook: one more HTTP request for the invocation this thread is making."""
    if (attempts := _ATTEMPTS.get()) is not None:
        attempts.append(1)


def _counting(client: LambdaClient) -> LambdaClient:
    """``client`` with :func:`_count_attempt` hooked in (a botocore client; a test's stand-in has no events)."""
    if (events := getattr(getattr(client, "meta", None), "events", None)) is not None:
        events.register("before-send.lambda.Invoke", _count_attempt, unique_id="sentiment-client-attempts")
    return client


class SentimentClient:
    """Classify texts with the deployed analysis function (synchronous ``Invoke``).

    ``function_name`` is a name, ARN or partial ARN (the stack exports the ARN). Without
    ``lambda_client`` one comes from :func:`sentiment_shared.aws.client` (honours
    ``AWS_ENDPOINT_URL[_LAMBDA]``) with botocore's standard retries bounded at ``max_attempts``
    requests per invocation; a ``lambda_client`` passed in retries as it was configured to.
    """

    def __init__(
        self,
        function_name: str,
        *,
        lambda_client: LambdaClient | None = None,
        max_batch: int = DEFAULT_TEXTS_PER_INVOKE,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        concurrency: int = DEFAULT_CONCURRENCY,
        fallback: Fallback | None = None,
        qualifier: str | None = None,
        max_attempts: int = 5,
        read_timeout_s: float = 150.0,
    ) -> None:
        if not function_name:
            raise ValueError("function_name must be a function name or ARN")
        if max_batch < 1:
            raise ValueError(f"max_batch must be ≥ 1, got {max_batch}")
        minimum = envelope_bytes(1, 2)  # one empty text
        if not minimum <= max_payload_bytes <= LAMBDA_SYNC_PAYLOAD_LIMIT:
            raise ValueError(
                f"max_payload_bytes must be in [{minimum}, {LAMBDA_SYNC_PAYLOAD_LIMIT}] (Lambda's synchronous "
                f"payload limit), got {max_payload_bytes}"
            )
        if not 1 <= concurrency <= 64:
            raise ValueError(f"concurrency must be in [1, 64], got {concurrency}")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be ≥ 1, got {max_attempts}")
        self.function_name = function_name
        self.qualifier = qualifier
        # The response must fit the same limit: cap the count so even tiny texts cannot overflow it
        # (a tighter bound than the handler's own count limit today, but it holds whatever that becomes).
        response_cap = (LAMBDA_SYNC_PAYLOAD_LIMIT - RESPONSE_OVERHEAD_BYTES) // RESPONSE_BYTES_PER_RESULT
        self.max_batch = min(max_batch, response_cap, MAX_TEXTS_PER_INVOKE)
        self.max_payload_bytes = max_payload_bytes
        self.concurrency = concurrency
        self.fallback = fallback
        self.max_attempts = max_attempts
        self.read_timeout_s = read_timeout_s
        self._client = None if lambda_client is None else _counting(lambda_client)
        self._lock = threading.Lock()
        self._stats = ClientStats()

    @property
    def client(self) -> LambdaClient:
        if self._client is None:
            config = Config(
                # The one retry layer: throttling, 5xx and connection errors, bounded per invocation.
                retries={"mode": "standard", "total_max_attempts": self.max_attempts},
                read_timeout=self.read_timeout_s,
                max_pool_connections=max(self.concurrency, 10),
            )
            self._client = _counting(aws.client("lambda", config=config))
        return self._client

    @property
    def stats(self) -> ClientStats:
        """A snapshot of the cumulative counters."""
        with self._lock:
            return dataclasses.replace(self._stats)

    def _count(self, **increments: int) -> None:
        with self._lock:
            for name, value in increments.items():
                setattr(self._stats, name, getattr(self._stats, name) + value)

    # ----------------------------------------------------------------- public API

    def classify(self, texts: Sequence[str]) -> list[ClientResult]:
        """One result per text, in input order.

        Raises :class:`TextTooLargeError` before sending anything if a text cannot fit one invocation,
        and a :class:`BatchError` subclass if an invocation fails in a way a retry cannot fix (the
        first failing batch in input order wins; batches not yet started are cancelled).
        """
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of strings, not a single str")
        batches = plan_invocations(texts, max_batch=self.max_batch, max_payload_bytes=self.max_payload_bytes)
        if not batches:
            return []
        texts = list(texts)
        unavailable = threading.Event()
        workers = min(self.concurrency, len(batches))
        if workers == 1:
            return [r for batch in batches for r in self._run_batch(batch, texts, unavailable)]
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sentiment-client") as pool:
            futures = [pool.submit(self._run_batch, batch, texts, unavailable) for batch in batches]
            _, not_done = wait(futures, return_when=FIRST_EXCEPTION)
            for future in not_done:
                future.cancel()
            return _gather(futures)

    # ----------------------------------------------------------------- one batch

    def _run_batch(self, batch: Batch, texts: list[str], unavailable: threading.Event) -> list[ClientResult]:
        chunk = texts[batch.start : batch.end]
        if self.fallback is not None and unavailable.is_set():
            # Another batch of this call already outlasted botocore's retries: don't spend them again.
            return self._fall_back(batch, chunk, "an earlier batch of this call found the function unavailable")
        try:
            results = self._invoke(batch)
        except FunctionUnavailableError as exc:
            if self.fallback is None:
                raise
            unavailable.set()
            return self._fall_back(batch, chunk, f"unavailable after {exc.attempts} attempts: {exc.last_error}")
        self._count(model_texts=len(results))
        return results

    def _fall_back(self, batch: Batch, chunk: list[str], reason: str) -> list[ClientResult]:
        assert self.fallback is not None
        results = [dataclasses.replace(r, source="fallback") for r in self.fallback.classify(chunk)]
        if len(results) != len(chunk):
            raise InvalidResponseError(
                self.function_name,
                batch.start,
                batch.end,
                f"fallback {self.fallback.name} returned {len(results)} results for {len(chunk)} texts",
            )
        self._count(fallback_texts=len(chunk), fallback_batches=1)
        log.warning(
            "sentiment fallback: %d texts (texts[%d:%d]) classified by %s because %s is %s",
            len(chunk),
            batch.start,
            batch.end,
            self.fallback.name,
            self.function_name,
            reason,
            extra={"fallback_texts": len(chunk), "fallback": self.fallback.name, "function_name": self.function_name},
        )
        return results

    def _invoke(self, batch: Batch) -> list[ClientResult]:
        """One invocation, botocore retrying it; what it still fails with decides the fallback policy."""
        kwargs: dict[str, Any] = {"Qualifier": self.qualifier} if self.qualifier else {}
        sent: list[int] = []
        token = _ATTEMPTS.set(sent)

        def unavailable(detail: str) -> FunctionUnavailableError:
            return FunctionUnavailableError(self.function_name, batch.start, batch.end, len(sent) or 1, detail)

        try:
            response = self.client.invoke(
                FunctionName=self.function_name, InvocationType="RequestResponse", Payload=batch.payload, **kwargs
            )
            raw = response["Payload"].read()
        except ClientError as exc:
            code, message = aws.error_code(exc) or "Unknown", str(exc.response.get("Error", {}).get("Message", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            if status == 429 or status >= 500:  # throttled or failing: what botocore retried, in vain
                raise unavailable(f"{code} (HTTP {status}): {message}") from exc
            raise InvocationError(self.function_name, batch.start, batch.end, code, message) from exc
        except (BotoConnectionError, HTTPClientError) as exc:
            # Unreachable endpoint, connect/read timeout, connection closed, payload stream cut.
            raise unavailable(f"{type(exc).__name__}: {exc}") from exc
        except BotoCoreError as exc:
            raise InvocationError(self.function_name, batch.start, batch.end, type(exc).__name__, str(exc)) from exc
        finally:
            _ATTEMPTS.reset(token)
            self._count(invocations=len(sent) or 1, retries=max(len(sent) - 1, 0))
        return self._parse(batch, response, raw)

    # ----------------------------------------------------------------- response contract

    def _parse(self, batch: Batch, response: Mapping[str, Any], raw: bytes) -> list[ClientResult]:
        if function_error := response.get("FunctionError"):
            crash = _json_object(raw)
            raise FunctionFailedError(
                self.function_name,
                batch.start,
                batch.end,
                function_error=str(function_error),
                error_type=str(crash.get("errorType", "UnknownError")),
                error_message=str(crash.get("errorMessage", raw[:500].decode("utf-8", "replace"))),
            )
        try:
            parsed = DirectResponse.model_validate_json(raw)
        except ValidationError as exc:
            body = _json_object(raw)
            if isinstance(status := body.get("statusCode"), int) and 400 <= status < 600:
                error = str(body.get("error", "(no error message)"))
                raise RequestRejectedError(self.function_name, batch.start, batch.end, status, error) from None
            detail = f"response breaks the contract: {describe_errors(exc)}"
            raise InvalidResponseError(self.function_name, batch.start, batch.end, detail) from exc
        if len(parsed.results) != (expected := batch.end - batch.start):
            detail = f"expected {expected} results, got {len(parsed.results)}"
            raise InvalidResponseError(self.function_name, batch.start, batch.end, detail)
        return [ClientResult(sentiment=r.sentiment, score=r.score, label=r.label) for r in parsed.results]


def _json_object(raw: bytes) -> dict[str, Any]:
    """The payload as a JSON object, or ``{}`` when it is not one (for reading error fields only)."""
    try:
        body = json.loads(raw)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _gather(futures: list[Future[list[ClientResult]]]) -> list[ClientResult]:
    """Results in batch order; the first failed batch in input order raises.

    Batches are submitted in order, so only batches after a failure can have been cancelled.
    """
    for future in futures:
        error = None if future.cancelled() else future.exception()
        if error is not None:
            raise error
    return [result for future in futures for result in future.result()]
