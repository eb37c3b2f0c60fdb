"""Backend client of the analysis function: classify texts from any Python service through ``lambda:Invoke``.

:class:`SentimentClient` splits the input into synchronous invocations that fit Lambda's payload
limit (counted in bytes of the encoded JSON, not characters) and a text count, runs them on a small
thread pool, retries throttling, 5xx and connection failures with jittered exponential backoff, and
returns one :class:`ClientResult` per text in input order. Anything that would make the answers wrong
(a function error, a 400 from the handler, a response that breaks the contract) is raised as a typed
:class:`SentimentClientError`; it is never retried into a fallback and never turned into a result.

The optional fallback (e.g. :class:`sentiment_client.fallback.VaderFallback`) answers only for the
texts whose invocation stayed unavailable after every retry; those results carry ``source="fallback"``,
are counted in :attr:`SentimentClient.stats` and logged. See docs/CLIENT.md.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError
from pydantic import ValidationError

from sentiment_shared import aws
from sentiment_shared.schemas import MAX_TEXTS_PER_INVOKE, DirectResponse, Sentiment, describe_errors

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient

log = logging.getLogger(__name__)

LAMBDA_SYNC_PAYLOAD_LIMIT = 6_291_456
"""Lambda's synchronous invoke limit for the request and for the response (6 MiB, in bytes)."""
DEFAULT_MAX_PAYLOAD_BYTES = 6_000_000
"""Default request budget: under the limit with room for whatever Lambda counts beyond our JSON."""
DEFAULT_MAX_BATCH = 64
"""Texts per invocation: long texts (512 tokens) at this count finish well inside the function timeout."""
DEFAULT_CONCURRENCY = 4
RESPONSE_BYTES_PER_RESULT = 192
"""Upper bound of one encoded result (``{"sentiment": ..., "score": ..., "label": ..., "id"?: ...}``),
used to keep the *response* under the limit too when a caller raises ``max_batch`` for tiny texts."""
RESPONSE_OVERHEAD_BYTES = 16_384
"""Room for the response envelope (``statusCode``, ``count``, ``metrics``)."""

_ENVELOPE_HEAD = b'{"texts":['
_ENVELOPE_TAIL = b"]}"

_RETRYABLE_CODES = frozenset(
    {
        "TooManyRequestsException",  # throttled: account/function concurrency or request rate
        "ThrottlingException",
        "Throttling",
        "RequestLimitExceeded",
        "ServiceException",
        "ServiceUnavailableException",
        "ResourceConflictException",  # function mid-update (a deploy): succeeds moments later
        "ResourceNotReadyException",
        "EC2ThrottledException",
    }
)

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
    """Invoke calls made, retries included."""
    retries: int = 0
    model_texts: int = 0
    fallback_texts: int = 0
    fallback_batches: int = 0


class SentimentClientError(Exception):
    """Base of every error the client raises about a classification it could not answer correctly."""


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
    """Lambda refused the call for a reason retrying cannot fix (missing function, access denied, ...)."""

    def __init__(self, function_name: str, start: int, end: int, code: str, message: str) -> None:
        self.code = code
        super().__init__(function_name, start, end, f"invoke failed: {code}: {message}")


class FunctionUnavailableError(BatchError):
    """Throttling, 5xx or connection failures persisted through every attempt (and no fallback was set)."""

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
    """One text as a JSON string, UTF-8: what it adds to the request body.

    Non-ASCII stays literal (``"日"`` is 3 bytes, not a 6-byte ``\\u65e5`` escape). A string holding
    lone surrogates cannot be UTF-8 encoded; it falls back to ASCII escapes, which JSON decodes back.
    """
    try:
        return json.dumps(text, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(text, ensure_ascii=True).encode("ascii")


def envelope_bytes(n_texts: int, text_bytes: int) -> int:
    """Size of ``{"texts":[...]}`` holding ``n_texts`` encoded texts totalling ``text_bytes``."""
    return len(_ENVELOPE_HEAD) + text_bytes + max(n_texts - 1, 0) + len(_ENVELOPE_TAIL)


def plan_batches(texts: Sequence[str], *, max_batch: int, max_payload_bytes: int) -> list[Batch]:
    """Greedy split into consecutive batches of ≤ ``max_batch`` texts and ≤ ``max_payload_bytes`` of body.

    Raises :class:`TextTooLargeError` (before anything is sent) for a text that fits in no batch.
    """
    batches: list[Batch] = []
    current: list[bytes] = []
    current_bytes = 0
    start = 0
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{index}] is {type(text).__name__}, not str")
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


class _Unavailable(Exception):  # internal signal, converted before it leaves the module
    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(detail)


class SentimentClient:
    """Classify texts with the deployed analysis function (synchronous ``Invoke``).

    ``function_name`` is a name, ARN or partial ARN (the stack exports the ARN). Without
    ``lambda_client`` one comes from :func:`sentiment_shared.aws.client` (honours
    ``AWS_ENDPOINT_URL[_LAMBDA]``) with botocore's own retries off, since this class retries.
    """

    def __init__(
        self,
        function_name: str,
        *,
        lambda_client: LambdaClient | None = None,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        concurrency: int = DEFAULT_CONCURRENCY,
        fallback: Fallback | None = None,
        qualifier: str | None = None,
        max_attempts: int = 5,
        base_delay_s: float = 0.2,
        max_delay_s: float = 5.0,
        read_timeout_s: float = 150.0,
        sleep: Callable[[float], None] = time.sleep,
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
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.read_timeout_s = read_timeout_s
        self._sleep = sleep
        self._client = lambda_client
        self._lock = threading.Lock()
        self._stats = ClientStats()

    @property
    def client(self) -> LambdaClient:
        if self._client is None:
            config = Config(
                # One attempt per call: this class owns retries (and the decision to fall back).
                retries={"mode": "standard", "total_max_attempts": 1},
                read_timeout=self.read_timeout_s,
                max_pool_connections=max(self.concurrency, 10),
            )
            self._client = aws.client("lambda", config=config)
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
        batches = plan_batches(texts, max_batch=self.max_batch, max_payload_bytes=self.max_payload_bytes)
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
            # Another batch of this call already exhausted its retries: don't spend them again.
            return self._fall_back(batch, chunk, "an earlier batch of this call found the function unavailable")
        try:
            results = self._invoke_with_retries(batch)
        except _Unavailable as exc:
            if self.fallback is None:
                raise FunctionUnavailableError(
                    self.function_name, batch.start, batch.end, self.max_attempts, exc.detail
                ) from exc
            unavailable.set()
            return self._fall_back(batch, chunk, f"unavailable after {self.max_attempts} attempts: {exc.detail}")
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

    def _invoke_with_retries(self, batch: Batch) -> list[ClientResult]:
        last = "no attempt made"
        for attempt in range(1, self.max_attempts + 1):
            if attempt > 1:
                self._count(retries=1)
                cap = min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 2))
                self._sleep(random.uniform(0, cap))  # noqa: S311 - full jitter, not crypto
            try:
                return self._invoke_once(batch)
            except _Unavailable as exc:
                last = exc.detail
                log.info(
                    "invoke %s texts[%d:%d] attempt %d/%d failed: %s",
                    self.function_name,
                    batch.start,
                    batch.end,
                    attempt,
                    self.max_attempts,
                    last,
                )
        raise _Unavailable(last)

    def _invoke_once(self, batch: Batch) -> list[ClientResult]:
        self._count(invocations=1)
        kwargs: dict[str, Any] = {}
        if self.qualifier:
            kwargs["Qualifier"] = self.qualifier
        try:
            response = self.client.invoke(
                FunctionName=self.function_name, InvocationType="RequestResponse", Payload=batch.payload, **kwargs
            )
            raw = _read_payload(response.get("Payload"))
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", "Unknown"))
            message = str(error.get("Message", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            if code in _RETRYABLE_CODES or status == 429 or status >= 500:
                raise _Unavailable(f"{code} (HTTP {status}): {message}") from exc
            raise InvocationError(self.function_name, batch.start, batch.end, code, message) from exc
        except (BotoConnectionError, HTTPClientError) as exc:
            # Unreachable endpoint, connect/read timeout, connection closed, payload stream cut: the
            # classification is idempotent, so even a call that may have run is safe to repeat.
            raise _Unavailable(f"{type(exc).__name__}: {exc}") from exc
        except BotoCoreError as exc:
            raise InvocationError(self.function_name, batch.start, batch.end, type(exc).__name__, str(exc)) from exc
        return self._parse(batch, response, raw)

    # ----------------------------------------------------------------- response contract

    def _parse(self, batch: Batch, response: Mapping[str, Any], raw: bytes) -> list[ClientResult]:
        def invalid(detail: str) -> InvalidResponseError:
            return InvalidResponseError(self.function_name, batch.start, batch.end, detail)

        try:
            body: Any = json.loads(raw) if raw else None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            if response.get("FunctionError"):
                body = None
            else:
                raise invalid(f"response payload is not JSON: {exc}") from exc
        function_error = response.get("FunctionError")
        if function_error:
            fields = body if isinstance(body, dict) else {}
            raise FunctionFailedError(
                self.function_name,
                batch.start,
                batch.end,
                function_error=str(function_error),
                error_type=str(fields.get("errorType", "UnknownError")),
                error_message=str(fields.get("errorMessage", raw[:500].decode("utf-8", "replace"))),
            )
        if not isinstance(body, dict):
            raise invalid(f"response payload is {type(body).__name__}, not a JSON object")
        status = body.get("statusCode")
        if status != 200:
            if isinstance(status, int) and 400 <= status < 600:
                raise RequestRejectedError(
                    self.function_name, batch.start, batch.end, status, str(body.get("error", "(no error message)"))
                )
            raise invalid(f"statusCode is {status!r}, expected 200")
        try:
            parsed = DirectResponse.model_validate(body)
        except ValidationError as exc:
            raise invalid(f"response breaks the contract: {describe_errors(exc)}") from exc
        expected = batch.end - batch.start
        if len(parsed.results) != expected:
            raise invalid(f"expected {expected} results, got {len(parsed.results)}")
        return [ClientResult(sentiment=r.sentiment, score=r.score, label=r.label) for r in parsed.results]


def _read_payload(payload: Any) -> bytes:
    if payload is None:
        return b""
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    data = payload.read()
    return data if isinstance(data, bytes) else str(data).encode("utf-8")


def _gather(futures: list[Future[list[ClientResult]]]) -> list[ClientResult]:
    """Results in batch order; the first failed batch in input order raises.

    Batches are submitted in order, so only batches after a failure can have been cancelled.
    """
    for future in futures:
        error = None if future.cancelled() else future.exception()
        if error is not None:
            raise error
    return [result for future in futures for result in future.result()]
