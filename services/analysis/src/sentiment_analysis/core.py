"""The analysis function's logic, free of Lambda and Powertools types: cold start, batches, direct invokes.

* :class:`ModelProvider` fetches the verified model bundle into ``MODEL_CACHE_DIR`` and loads it
  once per container (a failure is raised, never cached, so the next invocation tries again).
* :func:`decode_message` gives one SQS record body's topic message, SNS-wrapped (raw delivery off) or raw,
  or why it is invalid: the one parse of a body.
* :func:`analyze_batch` classifies every valid message of a batch in ONE classifier call and keeps,
  per record, either the result to store or the reason it failed; :meth:`AnalyzedBatch.write` writes
  every result (and their counts) in one call, :meth:`AnalyzedBatch.store` gives one record's outcome
  (a missing item is that record's failure).
* :func:`parse_direct` / :func:`answer_direct` implement the direct-invoke contract
  (:class:`sentiment_shared.schemas.DirectRequest` in, :class:`~sentiment_shared.schemas.DirectResponse` out).

Logs go through the standard ``logging`` module (the handler gives them the Powertools JSON format);
the handler turns the returned timings into metrics.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, Discriminator, Field, Json, Tag, TypeAdapter, ValidationError

from sentiment_analysis.classifier import SentimentClassifier
from sentiment_analysis.labels import Prediction
from sentiment_analysis.precision import DEFAULT_PRECISION
from sentiment_analysis.runtime import import_runtime
from sentiment_shared import model_bundle
from sentiment_shared.ports import ItemsTable, SentimentWrite, WriteOutcome
from sentiment_shared.schemas import (
    MAX_TEXTS_PER_INVOKE,
    DirectRequest,
    DirectRequestError,
    DirectResponse,
    DirectResult,
    SentimentResult,
    TopicMessage,
    error_messages,
)
from sentiment_shared.settings import AnalysisSettings
from sentiment_shared.stack import ResolvedPrecision

log = logging.getLogger(__name__)

PayloadError = DirectRequestError
"""A direct invoke's payload is malformed (answered with status 400)."""


class InvalidMessageError(ValueError):
    """A queue record's body is not a valid topic message (that record fails, its neighbours do not)."""


# --------------------------------------------------------------------------- cold start


class Classifier(Protocol):
    def classify(self, texts: Sequence[str]) -> list[Prediction]: ...


@dataclass(frozen=True, slots=True)
class LoadedModel:
    classifier: Classifier
    model_version: str
    precision: ResolvedPrecision
    fetch: model_bundle.FetchStats = field(default_factory=model_bundle.FetchStats)
    """Where the bundle fetch spent its time (``cached`` when it was already on disk)."""
    load_s: float = 0.0
    """Seconds from the fetched bundle to a loaded classifier (the rest of the imports and from_pretrained)."""
    remeasure: Callable[[], ResolvedPrecision] | None = None
    """Resolve the precision again on the CPU this process runs on now, switch to it, and return it (after a
    SnapStart restore). :func:`load_model` always sets it (an explicit ``fp32`` / ``int8`` stays as asked, only
    the thread count is sized again); None: nothing to re-measure (a model built without it, e.g. a test double)."""


def model_version(settings: AnalysisSettings, precision: str) -> str:
    """``<key's folder>@<sha256 prefix>+<precision>``, e.g. ``distilbert/v1.0.0@3f2a9c1b07de+int8``."""
    folder = str(PurePosixPath(settings.model_key).parent)
    name = settings.model_key if folder in ("", ".") else folder
    return f"{name}@{settings.model_sha256[:12]}+{precision}"


def _import_in_background() -> threading.Thread:
    def run() -> None:
        try:
            import_runtime()
        except Exception:
            log.debug("background import failed", exc_info=True)

    thread = threading.Thread(target=run, name="import-runtime", daemon=True)
    thread.start()
    return thread


def load_model(settings: AnalysisSettings) -> LoadedModel:
    """Fetch (or find in the cache), verify, extract and load the configured model.

    torch and transformers are imported on a thread meanwhile, overlapping the download.
    """
    cache_dir = settings.model_cache_dir
    stats = model_bundle.FetchStats()
    importing = _import_in_background()
    if model_bundle.cached_model_dir(cache_dir, settings.model_sha256) is None:
        log.info(
            "Downloading model from S3",
            extra={
                "bucket": settings.model_bucket,
                "key": settings.model_key,
                "version_id": settings.model_version_id,
                "cache_dir": str(cache_dir),
            },
        )
    model_dir = model_bundle.fetch(
        settings.model_bucket,
        settings.model_key,
        settings.model_sha256,
        cache_dir,
        strategy=settings.model_download_strategy,
        stats=stats,
        version_id=settings.model_version_id,
    )
    if stats.cached:
        log.info("Model found in the container's cache", extra={"model_dir": str(model_dir)})
    else:
        log.info(
            "Model downloaded from S3",
            extra={
                "download_time_ms": round(stats.download_s * 1000, 1),
                "verify_time_ms": round(stats.verify_s * 1000, 1),
                "extract_time_ms": round(stats.extract_s * 1000, 1),
                "bytes": stats.bytes,
                "strategy": settings.model_download_strategy,
            },
        )
    started = time.perf_counter()
    importing.join()
    classifier = SentimentClassifier.from_pretrained(
        model_dir,
        neutral_threshold=settings.neutral_threshold,
        precision=settings.model_precision or DEFAULT_PRECISION,
        threads=settings.torch_threads,
    )
    precision = classifier.precision  # "auto" resolved: the version names what really ran
    load_s = time.perf_counter() - started
    version = model_version(settings, precision)
    log.info(
        "Model loaded successfully",
        extra={"load_time_ms": round(load_s * 1000, 1), "model_version": version, "precision": precision},
    )
    return LoadedModel(
        classifier=classifier,
        model_version=version,
        precision=precision,
        fetch=stats,
        load_s=load_s,
        remeasure=lambda: classifier.remeasure_precision().precision,
    )


WARM_UP_TEXT = "A warm-up sentence, classified once at init so the first request finds every kernel ready."


class ModelProvider:
    """Loads the model on first use and keeps it for the container's lifetime (per settings).

    With SnapStart (:mod:`sentiment_analysis.snapstart`), :meth:`preload` loads and warms it during INIT,
    so the snapshot holds it, and :meth:`after_restore` re-resolves the precision on the restored host.
    """

    def __init__(self, loader: Callable[[AnalysisSettings], LoadedModel] = load_model) -> None:
        self._loader = loader
        self._loaded: LoadedModel | None = None
        self._settings: AnalysisSettings | None = None

    @property
    def loaded(self) -> LoadedModel | None:
        """The model this container holds, if any (the local pipeline reports its cold start)."""
        return self._loaded

    def get(self, settings: AnalysisSettings) -> tuple[LoadedModel, bool]:
        """The loaded model and whether this call loaded it (a cold start). A failed load raises."""
        if self._loaded is not None and self._settings == settings:
            return self._loaded, False
        self._loaded = self._loader(settings)
        self._settings = settings
        return self._loaded, True

    def preload(self, settings: AnalysisSettings) -> LoadedModel:
        """Load now and run one inference (SnapStart INIT: the snapshot then holds warm kernels, too).

        The first invocation then finds the model (``get`` answers ``cold=False``: it loaded nothing)."""
        model, _ = self.get(settings)
        started = time.perf_counter()
        model.classifier.classify([WARM_UP_TEXT])
        log.info("Model warmed", extra={"warm_up_ms": round((time.perf_counter() - started) * 1000, 1)})
        return model

    def after_restore(self) -> LoadedModel | None:
        """After a snapshot restore: resolve the precision again on the CPU this copy runs on (no fetch, no
        load); the model version then names what really runs. None when nothing was loaded."""
        loaded = self._loaded
        if loaded is None or self._settings is None or loaded.remeasure is None:
            return loaded
        precision = loaded.remeasure()
        if precision != loaded.precision:
            version = model_version(self._settings, precision)
            log.info("Precision changed after restore", extra={"precision": precision, "model_version": version})
            loaded = replace(loaded, precision=precision, model_version=version)
            self._loaded = loaded
        return loaded


# --------------------------------------------------------------------------- queue records


class SnsEnvelope(BaseModel):
    """The SNS notification SQS holds when raw message delivery is off; only what is read is required.

    (Powertools' ``SnsNotificationModel`` also requires ``UnsubscribeURL`` and ``Timestamp``, and its
    before-validator raises ``TypeError`` on a body that is a JSON number, failing the whole batch.)
    """

    Type: Literal["Notification"]
    Message: Json[TopicMessage]


def _delivery(body: Any) -> str:
    return "sns" if isinstance(body, dict) and body.get("Type") == "Notification" else "raw"


MessageBody = Json[
    Annotated[Annotated[SnsEnvelope, Tag("sns")] | Annotated[TopicMessage, Tag("raw")], Discriminator(_delivery)]
]


class _SqsRecordRef(BaseModel):
    messageId: str
    eventSource: Literal["aws:sqs"]


# A record without a message id could not be named in batchItemFailures: not an SQS batch (→ 400).
_SqsRecords = TypeAdapter(Annotated[list[_SqsRecordRef], Field(min_length=1)])
_Body = TypeAdapter(MessageBody)


def is_sqs_event(event: Any) -> bool:
    try:
        _SqsRecords.validate_python(event.get("Records") if isinstance(event, dict) else None)
    except ValidationError:
        return False
    return True


def _reason(exc: ValidationError) -> str:
    """One invalid body's first problem, naming where it is (the body, the SNS Message or a field)."""
    error = exc.errors()[0]
    in_sns = [str(part) for part in error["loc"][:2]] == ["sns", "Message"]
    where = "SNS Message" if in_sns else "body"
    envelope = 2 if in_sns else 1  # the union's tag (and the SNS Message) before the message's own fields
    if error["type"] == "json_invalid":
        return f"{where} is not JSON: {error['msg'].removeprefix('Invalid JSON: ')}"
    if error["type"] == "json_type":
        return f"{where} is not a string"
    if error["type"] == "model_type" and len(error["loc"]) == envelope:
        return f"{'SNS Message' if in_sns else 'message'} must be a JSON object"
    return f"invalid message: {error_messages(exc, most=1, skip=envelope, whole='')[0]}"


def decode_message(body: Any) -> TopicMessage:
    """The topic message in a queue record body: an SNS notification wrapping it, or the raw JSON."""
    if body is None or (isinstance(body, str) and not body.strip()):
        raise InvalidMessageError("empty message body")
    try:
        parsed = _Body.validate_python(body)
    except ValidationError as exc:
        raise InvalidMessageError(_reason(exc)) from exc
    return parsed.Message if isinstance(parsed, SnsEnvelope) else parsed


def classify_unique(classifier: Classifier, texts: Sequence[str]) -> tuple[list[Prediction], float]:
    """Predictions for ``texts`` from ONE classify call over the distinct texts, and its duration (ms)."""
    unique = list(dict.fromkeys(texts))
    started = time.perf_counter()
    predictions = classifier.classify(unique) if unique else []
    inference_ms = (time.perf_counter() - started) * 1000
    by_text = dict(zip(unique, predictions, strict=True))
    return [by_text[t] for t in texts], inference_ms


@dataclass(slots=True)
class AnalyzedBatch:
    """Per record id: the message and its result, or why the record failed before storing."""

    results: dict[str, tuple[TopicMessage, SentimentResult]] = field(default_factory=dict)
    errors: dict[str, Exception] = field(default_factory=dict)
    inference_ms: float = 0.0
    stored: dict[str, WriteOutcome] = field(default_factory=dict)
    """Per record id, what :meth:`write` did with its result (True counted, False already there, or the error)."""

    def write(self, table: ItemsTable) -> None:
        """Write every result in one call (:meth:`ItemsTable.set_sentiments`: one transaction per batch)."""
        ids = [i for i in self.results if i not in self.stored]
        if not ids:
            return
        writes = [SentimentWrite(m.item_id, r, m.source) for m, r in (self.results[i] for i in ids)]
        try:
            outcomes = table.set_sentiments(writes)
        except Exception as exc:  # noqa: BLE001 - the table failed as a whole: every record fails with it
            outcomes = [exc] * len(ids)
        self.stored.update(zip(ids, outcomes, strict=True))

    def store(self, record_id: str, table: ItemsTable) -> None:
        """One record's outcome: raise if it failed (a missing item too); written by :meth:`write` if not yet.

        An item that already had a sentiment (redelivery, duplicate) is left as it is and not counted
        again: the record still succeeds.
        """
        if record_id in self.errors:
            raise self.errors[record_id]
        if record_id not in self.stored:
            message, result = self.results[record_id]
            (self.stored[record_id],) = table.set_sentiments([SentimentWrite(message.item_id, result, message.source)])
        outcome = self.stored[record_id]
        if isinstance(outcome, Exception):
            raise outcome


def analyze_batch(records: Sequence[tuple[str, str | None]], model: LoadedModel) -> AnalyzedBatch:
    """Decode every ``(record_id, body)`` and classify all valid messages together in one call."""
    batch = AnalyzedBatch()
    valid: dict[str, TopicMessage] = {}
    for record_id, body in records:
        try:
            valid[record_id] = decode_message(body)
        except InvalidMessageError as exc:
            batch.errors[record_id] = exc
            log.warning("Invalid message", extra={"message_id": record_id, "error": str(exc)})
    predictions, batch.inference_ms = classify_unique(model.classifier, [m.text for m in valid.values()])
    for (record_id, message), prediction in zip(valid.items(), predictions, strict=True):
        result = SentimentResult(
            sentiment=prediction.sentiment,
            score=prediction.score,
            label=prediction.label,
            model_version=model.model_version,
        )
        batch.results[record_id] = (message, result)
    return batch


# --------------------------------------------------------------------------- direct invoke


def parse_direct(event: Any) -> DirectRequest:
    """``{"texts": [str, ...]}`` or ``{"items": [{"id"?, "text"}, ...]}``; anything else is a PayloadError."""
    if not isinstance(event, dict) or ("texts" not in event and "items" not in event):
        raise PayloadError("unknown event: expected an SQS batch, {'texts': [...]} or {'items': [...]}")
    return DirectRequest.parse(event, max_texts=MAX_TEXTS_PER_INVOKE, ignore_unknown=True)


def answer_direct(request: DirectRequest, model: LoadedModel, *, cold_start: bool) -> dict[str, Any]:
    """The 200 response: one result per text, in order, plus timings."""
    entries = request.entries
    predictions, inference_ms = classify_unique(model.classifier, [e.text for e in entries])
    results = [
        DirectResult(sentiment=p.sentiment, score=p.score, label=p.label, id=e.id)
        for e, p in zip(entries, predictions, strict=True)
    ]
    metrics: dict[str, Any] = {
        "inference_ms": round(inference_ms, 2),
        "cold_start": cold_start,
        "model_version": model.model_version,
    }
    if cold_start:
        metrics["model_load_ms"] = round(model.load_s * 1000, 1)
    response = DirectResponse(statusCode=200, results=results, count=len(results), metrics=metrics)
    return response.model_dump(exclude_none=True)
