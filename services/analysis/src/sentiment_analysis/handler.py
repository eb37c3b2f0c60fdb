"""Analysis Lambda entry point (the image's ``CMD``): SQS batches and direct invokes over :mod:`.core`.

The model is fetched and loaded on the first invocation and kept for the container's life; a load
failure raises, so an SQS batch is retried whole (nothing is marked done without a result). Under
SnapStart (``AWS_LAMBDA_INITIALIZATION_TYPE=snap-start``) it is loaded and warmed at import instead, and
the before-snapshot / after-restore hooks of :mod:`.snapstart` are registered here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from sentiment_analysis import core, snapstart
from sentiment_shared.adapters import DynamoItemsTable
from sentiment_shared.lambda_metrics import instrument, powertools
from sentiment_shared.ports import ItemsTable
from sentiment_shared.settings import analysis_settings
from sentiment_shared.stack import ANALYSIS_SERVICE, Metric

logger, metrics = powertools(ANALYSIS_SERVICE, "sentiment_analysis")
models = core.ModelProvider()
"""This container's model: fetched and loaded by the first invocation that needs it, then kept."""
lifecycle = snapstart.install(models)
"""SnapStart's hooks over ``models``; under ``snap-start`` the model is fetched, loaded and warmed here, at INIT."""

Handler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]


def _model(provider: core.ModelProvider) -> tuple[core.LoadedModel, bool]:
    try:
        model, cold = provider.get(analysis_settings())
    except Exception:
        metrics.add_metric(name=Metric.MODEL_LOAD_FAILURES, unit=MetricUnit.Count, value=1)
        raise
    if cold:
        for name, seconds in (
            (Metric.MODEL_DOWNLOAD_MS, model.fetch.download_s),
            (Metric.MODEL_EXTRACT_MS, model.fetch.extract_s),
            (Metric.MODEL_LOAD_MS, model.load_s),
        ):
            metrics.add_metric(name=name, unit=MetricUnit.Milliseconds, value=seconds * 1000)
    return model, cold


class BatchAnalysis(BatchProcessor):
    """Powertools' SQS batch processor, whose ``_prepare`` runs the core once for the whole batch.

    :func:`core.analyze_batch` parses every body (the only parse: this processor has no model for Powertools
    to parse each record with again), classifies the valid messages in one call, and :meth:`AnalyzedBatch.write`
    stores all the results and their counts in one transaction. Powertools then settles each record with
    :meth:`settle`: a record whose body was invalid or whose write failed raises, and only it is reported in
    ``batchItemFailures``.
    """

    def __init__(self, model: core.LoadedModel, table: ItemsTable) -> None:
        super().__init__(EventType.SQS)
        self._model, self._table = model, table
        self.analyzed = core.AnalyzedBatch()

    def _prepare(self) -> None:
        super()._prepare()  # type: ignore[no-untyped-call]  # Powertools leaves it unannotated
        self.analyzed = core.analyze_batch([(r["messageId"], r.get("body")) for r in self.records], self._model)
        self.analyzed.write(self._table)  # one transaction for the batch's results and counts, not one per record

    def settle(self, record: SQSRecord) -> None:
        self.analyzed.store(record.message_id, self._table)


def _sqs_batch(
    event: dict[str, Any], context: LambdaContext, model: core.LoadedModel, table: ItemsTable
) -> dict[str, Any]:
    processor = BatchAnalysis(model, table)
    response = process_partial_response(
        event=event, record_handler=processor.settle, processor=processor, context=context
    )
    failed = len(response.get("batchItemFailures", []))
    metrics.add_metric(name=Metric.BATCH_SIZE, unit=MetricUnit.Count, value=len(event["Records"]))
    metrics.add_metric(name=Metric.INFERENCE_MS, unit=MetricUnit.Milliseconds, value=processor.analyzed.inference_ms)
    metrics.add_metric(name=Metric.ITEMS_ANALYZED, unit=MetricUnit.Count, value=len(event["Records"]) - failed)
    metrics.add_metric(name=Metric.ITEMS_FAILED, unit=MetricUnit.Count, value=failed)
    return dict(response)


def build_handler(provider: core.ModelProvider | None = None, *, table: ItemsTable | None = None) -> Handler:
    """The function over its adapters: ``provider`` (default: a new container's) and the items table
    (default: ``ITEMS_TABLE``'s, read per invocation). Tests pass fakes or a stubbed client's adapter here."""
    provider = provider or core.ModelProvider()

    @instrument(logger, metrics)
    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        if core.is_sqs_event(event):
            model, _ = _model(provider)
            items = table if table is not None else DynamoItemsTable(analysis_settings().items_table)
            return _sqs_batch(event, context, model, items)
        try:
            request = core.parse_direct(event)
        except core.PayloadError as exc:
            logger.warning("Rejected direct invoke", extra={"error": str(exc)})
            metrics.add_metric(name=Metric.INVALID_REQUESTS, unit=MetricUnit.Count, value=1)
            return {"statusCode": 400, "error": str(exc)}
        model, cold = _model(provider)
        response = core.answer_direct(request, model, cold_start=cold)
        metrics.add_metric(name=Metric.BATCH_SIZE, unit=MetricUnit.Count, value=response["count"])
        inference_ms = response["metrics"]["inference_ms"]
        metrics.add_metric(name=Metric.INFERENCE_MS, unit=MetricUnit.Milliseconds, value=inference_ms)
        metrics.add_metric(name=Metric.ITEMS_ANALYZED, unit=MetricUnit.Count, value=response["count"])
        return response

    return cast(Handler, handler)  # the decorators are untyped


handler = build_handler(models)
