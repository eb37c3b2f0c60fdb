"""Lambda entry point of the ingestion function: event in, one core call, counts and metrics out.

``handler(event, context)`` takes an EventBridge scheduled event (poll ``FEEDS``) or a direct invoke
``{"texts": [...]}`` / ``{"items": [...]}`` (see :mod:`sentiment_ingestion.events`) and answers
``{"statusCode": 200, "received", "stored", "duplicates", "published", "failed", ...}``; a malformed or
unknown event gets ``{"statusCode": 400, "error": "..."}``. A table failure raises, so Lambda's retry
runs the (idempotent) payload again.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, cast

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from sentiment_ingestion.core import IngestOptions, Ingestor, IngestReport, StoreError
from sentiment_ingestion.events import DirectPayload, InvalidEventError, parse_event
from sentiment_ingestion.feeds import FeedFetcher
from sentiment_ingestion.store import DynamoIngestionStore, IngestionStore
from sentiment_shared.adapters import DynamoItemsTable, SnsPublisher
from sentiment_shared.lambda_metrics import instrument, powertools
from sentiment_shared.ports import ItemsTable, Publisher
from sentiment_shared.settings import ingestion_settings
from sentiment_shared.stack import INGESTION_SERVICE, Metric

logger, metrics = powertools(INGESTION_SERVICE, "sentiment_ingestion")

Handler = Callable[[Any, LambdaContext], dict[str, Any]]


def _emit(report: IngestReport) -> None:
    for name, value in (
        (Metric.ITEMS_RECEIVED, report.received),
        (Metric.ITEMS_STORED, report.stored),
        (Metric.ITEMS_DUPLICATE, report.duplicates),
        (Metric.ITEMS_SKIPPED, report.skipped),
        (Metric.ITEMS_TRUNCATED, report.truncated),
        (Metric.ITEMS_PUBLISHED, report.published),
        (Metric.ITEMS_FAILED, report.failed + len(report.store_errors)),
        (Metric.ITEMS_REPUBLISHED, report.republished),
    ):
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    if report.feeds is not None:
        metrics.add_metric(name=Metric.FEEDS_FAILED, unit=MetricUnit.Count, value=report.feeds_failed)
        for feed in report.feeds:
            if feed.fetch_ms is not None:
                metrics.add_metric(name=Metric.FEED_FETCH_MS, unit=MetricUnit.Milliseconds, value=feed.fetch_ms)
            if feed.error:
                logger.warning("feed failed", extra={"feed": feed.url, "error": feed.error})
    logger.info("ingestion run", extra=report.as_response() | {"run_id": report.run_id})


def build_handler(
    *,
    table: ItemsTable | None = None,
    publisher: Publisher | None = None,
    store: IngestionStore | None = None,
    feed_fetcher: Callable[..., FeedFetcher] = FeedFetcher,
) -> Handler:
    """The function over its adapters (default: the real ones on the configured table and topic, built per
    invocation from the settings). Tests pass fakes or a stubbed client's adapter here; the local pipeline
    passes a ``feed_fetcher`` that also reads local files (the function itself polls http(s) only)."""

    @instrument(logger, metrics)
    def handler(event: Any, context: LambdaContext) -> dict[str, Any]:
        try:
            request = parse_event(event)
        except InvalidEventError as exc:
            logger.warning("rejected event", extra={"error": str(exc)})
            metrics.add_metric(name=Metric.EVENTS_REJECTED, unit=MetricUnit.Count, value=1)
            return {"statusCode": 400, "error": str(exc)}

        settings = ingestion_settings()
        ingestor = functools.partial(
            Ingestor,
            table if table is not None else DynamoItemsTable(settings.items_table),
            publisher if publisher is not None else SnsPublisher(settings.topic_arn),
            store if store is not None else DynamoIngestionStore(settings.items_table),
            options=IngestOptions(
                max_text_chars=settings.max_text_chars,
                republish_after_s=settings.republish_after_s,
                republish_limit=settings.republish_limit,
            ),
        )
        try:
            if isinstance(request, DirectPayload):
                report = ingestor().ingest_entries(request.entries)
            else:
                if not settings.feeds:
                    logger.warning("scheduled run with no FEEDS configured")
                with feed_fetcher(timeout_s=settings.feed_timeout_s, max_bytes=settings.feed_max_bytes) as fetcher:
                    report = ingestor(fetcher=fetcher).ingest_feeds(settings.feeds)
        except StoreError as exc:
            _emit(exc.report)
            logger.exception("items could not be stored; failing the invocation so it is retried")
            raise
        _emit(report)
        return report.as_response()

    return cast(Handler, handler)  # the decorators are untyped


handler = build_handler()
