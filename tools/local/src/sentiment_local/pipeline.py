"""``sentiment-local run``: the whole pipeline against an embedded AWS emulator, step by step.

1. start a moto server on loopback (or use ``endpoint_url``), AWS variables scoped to the run;
2. create the stack's resources with :mod:`sentiment_local.provision` (same settings as infra);
3. publish the model bundle with :mod:`sentiment_shared.model_publish` (the dynamic provider's code);
4. run the ingestion handler on the feed with a real EventBridge scheduled event;
5. drain the work queue into the analysis handler like Lambda's event source mapping;
6. report what happened to every item ingested by this run.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from sentiment_local.dashboard import save_last_run
from sentiment_local.emulator import LOCAL_REGION, aws_environment, embedded_moto, scoped_environ
from sentiment_local.esm import DrainStats, EventSourceMapping, Handler, LocalLambdaContext
from sentiment_local.provision import StackResources, provision
from sentiment_local.state import clear_state, restore_table, save_table
from sentiment_shared import aws
from sentiment_shared.costs import Measured, cost_per_1000
from sentiment_shared.model_bundle import BUNDLE_FILE_NAME
from sentiment_shared.model_publish import ModelSource, PublishResult, publish
from sentiment_shared.schemas import Item
from sentiment_shared.settings import AnalysisSettings, IngestionSettings, environment
from sentiment_shared.stack import (
    DEFAULT_ANALYSIS_FUNCTION,
    DEFAULT_INGESTION_MEMORY_MB,
    DEFAULT_MODEL_PREFIX,
    DEFAULT_MODEL_VERSION,
    DEFAULT_QUEUE,
    ITEMS_TABLE_HASH_KEY,
    METRICS_NAMESPACE,
    ResourceNames,
    model_key,
)

if TYPE_CHECKING:
    from sentiment_analysis.core import ModelProvider

Step = Callable[[str], None]
"""Progress callback: called with a short description when a step starts."""


class PipelineError(RuntimeError):
    """A step failed in a way the user can act on; the message says how."""


@dataclass(frozen=True)
class RunOptions:
    model_dir: Path | None = None
    model: str | None = None
    """``ID[@REVISION]`` of a hub model; ignored when ``model_dir`` is given."""
    feed: str | None = None
    """A path or an http(s) URL; default: the sample feed shipped with the ingestion service."""
    endpoint_url: str | None = None
    state_dir: Path | None = None
    fresh: bool = False
    stack: str = "local"
    batch_size: int = DEFAULT_QUEUE.batch_size
    drain_timeout_s: float = 1800.0


@dataclass
class ItemResult:
    item_id: str
    text: str
    sentiment: str | None
    score: float | None
    label: str | None
    source: str


@dataclass
class RunReport:
    ingestion: dict[str, Any]
    model: PublishResult
    results: list[ItemResult]
    drain: DrainStats
    dlq_depth: int
    timings: dict[str, float] = field(default_factory=dict)
    cold_start: dict[str, Any] = field(default_factory=dict)
    endpoint_url: str = ""

    @property
    def ingested(self) -> int:
        return len(self.results)

    @property
    def analyzed(self) -> int:
        return sum(1 for r in self.results if r.sentiment is not None)

    @property
    def failed(self) -> int:
        return self.ingested - self.analyzed

    def count(self, sentiment: str) -> int:
        return sum(1 for r in self.results if r.sentiment == sentiment)

    @property
    def throughput(self) -> float:
        seconds = self.timings.get("analyze", 0.0)
        return self.analyzed / seconds if seconds > 0 else 0.0

    def cold_start_seconds(self) -> float:
        """The cold start's share of the handler time: the first invocation minus its records at the warm rate.

        With a single invocation there is no warm rate to subtract: the handler's first import (Lambda's
        init phase) and the model provider's own breakdown (download, verify, extract, load) are used.
        """
        if not self.cold_start:  # the analysis function never started in this run
            return 0.0
        drain = self.drain
        later_records = drain.records_succeeded + drain.record_failures - drain.first_batch_records
        if drain.batches > 1 and later_records > 0:
            warm_per_record = (drain.handler_seconds - drain.first_batch_seconds) / later_records
            return max(drain.first_batch_seconds - warm_per_record * drain.first_batch_records, 0.0)
        parts = ("imports_s", "download_s", "verify_s", "extract_s", "load_s")
        return min(sum(float(self.cold_start.get(k, 0.0)) for k in parts), drain.first_batch_seconds)

    def cost_per_1000(self) -> dict[str, Any] | None:
        """USD per 1,000 items from this run's measured warm handler time; the cold start priced apart."""
        cold = self.cold_start_seconds()
        measured = Measured(
            items=self.analyzed,
            analysis_seconds=self.drain.handler_seconds,
            analysis_invocations=self.drain.batches,
            analysis_memory_mb=DEFAULT_ANALYSIS_FUNCTION.memory_mb,
            ingestion_seconds=self.timings.get("ingest", 0.0),
            ingestion_invocations=1,
            ingestion_memory_mb=DEFAULT_INGESTION_MEMORY_MB,
            analysis_cold_start_seconds=cold,
            analysis_cold_starts=1 if cold > 0 else 0,
            analysis_store_seconds=self.timings.get("analyze_store", 0.0),
        )
        cost = cost_per_1000(measured)
        return None if cost is None else cost.as_dict()

    def as_dict(self) -> dict[str, Any]:
        return {
            "ingested": self.ingested,
            "analyzed": self.analyzed,
            "positive": self.count("positive"),
            "negative": self.count("negative"),
            "neutral": self.count("neutral"),
            "failed": self.failed,
            "duplicates": int(self.ingestion.get("duplicates", 0)),
            "dlq_depth": self.dlq_depth,
            "ingestion": self.ingestion,
            "model": self.model.as_dict(),
            "delivery": {
                "batches": self.drain.batches,
                "failed_invocations": self.drain.invocations_failed,
                "record_failures": self.drain.record_failures,
                "timed_out": self.drain.timed_out,
            },
            "throughput_texts_per_s": round(self.throughput, 2),
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "cold_start": self.cold_start,
            "cost_per_1000_items": self.cost_per_1000(),
            "results": [asdict(r) for r in self.results],
        }


def _default_state_dir() -> Path:
    from sentiment_local.state import default_state_dir

    return default_state_dir()


@contextlib.contextmanager
def _emulator(endpoint_url: str | None) -> Iterator[tuple[str, bool]]:
    if endpoint_url:
        yield endpoint_url, False
    else:
        with embedded_moto() as url:
            yield url, True


def _feed_url(feed: str | None) -> str:
    """An http(s) URL as given, else the absolute path of a local feed file (default: the sample feed).

    Local files are read by the ingestion function itself (built with :class:`LocalFeedFetcher`), so the
    feed's source, and with it every ``item_id``, is the same from one run to the next: a second run dedups.
    """
    if feed and feed.startswith(("http://", "https://")):
        return feed
    if feed:
        path = Path(feed.removeprefix("file://")).expanduser().resolve()
        if not path.is_file():
            raise PipelineError(f"feed file not found: {path}")
        return str(path)
    from sentiment_local.samples import sample_feed_path

    return str(sample_feed_path().resolve())


def _model_source(options: RunOptions) -> ModelSource:
    if options.model_dir is not None:
        return ModelSource(model_dir=options.model_dir.expanduser().resolve())
    if options.model:
        return ModelSource.parse(options.model)
    from sentiment_shared.stack import DEFAULT_MODEL_ID

    return ModelSource(model_id=DEFAULT_MODEL_ID)


def _scheduled_event() -> dict[str, Any]:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "version": "0",
        "id": "sentiment-local",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": now,
        "region": LOCAL_REGION,
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/sentiment-local"],
        "detail": {},
    }


def _items_of_run(table: str, since: datetime) -> list[Item]:
    """The items this run ingested, from one filtered scan (no call per item, whatever the table holds)."""
    from sentiment_shared.dal.keys import is_bookkeeping
    from sentiment_shared.dynamo import attr, plain

    ddb = aws.client("dynamodb")
    items: list[Item] = []
    for page in ddb.get_paginator("scan").paginate(
        TableName=table,
        ConsistentRead=True,
        FilterExpression="#ingested >= :since",
        ExpressionAttributeNames={"#ingested": "ingested_at"},
        # a second early: ISO strings drop zero microseconds, so the exact bound is checked below
        ExpressionAttributeValues={":since": attr(since - timedelta(seconds=1))},
    ):
        for row in map(plain, page.get("Items", [])):
            if not is_bookkeeping(row[ITEMS_TABLE_HASH_KEY]):
                item = Item.model_validate(row)
                if item.ingested_at >= since:
                    items.append(item)
    return sorted(items, key=lambda i: (i.ingested_at, i.item_id))


def _queue_depth(queue_url: str) -> int:
    attrs = aws.client("sqs").get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attrs.get("ApproximateNumberOfMessages", 0)) + int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0))


def _cold_start_breakdown() -> dict[str, Any]:
    """Where the analysis function's cold start went (seconds), as its model provider recorded it."""
    loaded = _ANALYSIS.models.loaded if _ANALYSIS.models is not None else None
    if loaded is None:
        return {}
    fetched = loaded.fetch
    return {
        "imports_s": round(_IMPORT_SECONDS.get("analysis", 0.0), 3),
        "download_s": round(fetched.download_s, 3),
        "verify_s": round(fetched.verify_s, 3),
        "extract_s": round(fetched.extract_s, 3),
        "load_s": round(loaded.load_s, 3),
        "bundle_bytes": fetched.bytes,
        "cached": fetched.cached,
        "precision": loaded.precision,
        "model_version": loaded.model_version,
    }


_IMPORT_SECONDS: dict[str, float] = {}
"""How long the analysis handler's first import took (in Lambda: the init phase, before the handler runs)."""


@dataclass
class _AnalysisFunction:
    """The analysis function as this process runs it, built like the ingestion one through its composition root
    (``build_handler`` over a model provider this module owns): on the first delivery, so a run with nothing new
    skips importing torch, then kept for the process, as a warm container keeps its model."""

    models: ModelProvider | None = None
    handler: Handler | None = None

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        if self.handler is None:
            started = time.perf_counter()
            from sentiment_analysis.core import ModelProvider
            from sentiment_analysis.handler import build_handler

            _IMPORT_SECONDS.setdefault("analysis", time.perf_counter() - started)
            self.models = ModelProvider()
            self.handler = build_handler(self.models)
        return self.handler(event, context)


_ANALYSIS = _AnalysisFunction()


def _ingestion_handler() -> Handler:
    """The ingestion function's handler, reading local feed files as well as http(s) feeds."""
    from sentiment_ingestion.handler import build_handler
    from sentiment_local.file_feeds import LocalFeedFetcher

    return build_handler(feed_fetcher=LocalFeedFetcher)


def run(
    options: RunOptions,
    *,
    step: Step | None = None,
    on_batch: Callable[[int, int], None] | None = None,
    analysis_handler: Handler | None = None,
    quiet: bool = True,
) -> RunReport:
    """Run the pipeline once; raises :class:`PipelineError` (or a publish error) with an actionable message."""
    note = step or (lambda _msg: None)
    state_dir = (options.state_dir or _default_state_dir()).expanduser()
    names = ResourceNames(stack=options.stack)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    with _emulator(options.endpoint_url) as (endpoint, embedded), aws_environment(endpoint):
        note(f"Creating the stack's resources on {endpoint}")
        t = time.perf_counter()
        stack = provision(names, queue=DEFAULT_QUEUE, function_timeout_s=DEFAULT_ANALYSIS_FUNCTION.timeout_s)
        if options.fresh:
            clear_state(state_dir)
        if embedded:
            restore_table(stack.items_table, state_dir)
        timings["provision"] = time.perf_counter() - t

        note("Publishing the model bundle")
        t = time.perf_counter()
        key = model_key(DEFAULT_MODEL_PREFIX, DEFAULT_MODEL_VERSION, BUNDLE_FILE_NAME)
        model = publish(_model_source(options), stack.bucket, key, hub_cache_dir=state_dir / "hub")
        timings["publish_model"] = time.perf_counter() - t

        report = _run_functions(
            quiet,
            options,
            stack,
            model,
            state_dir=state_dir,
            note=note,
            on_batch=on_batch,
            analysis_handler=analysis_handler,
            timings=timings,
        )
        report.endpoint_url = endpoint
        if embedded:
            save_table(stack.items_table, state_dir)
            if report.analyzed:  # a run with nothing new keeps the last measured cost
                save_last_run(state_dir, report.cost_per_1000())
    report.timings["total"] = time.perf_counter() - started
    return report


@contextlib.contextmanager
def _timed_calls(service: Literal["dynamodb"]) -> Iterator[Callable[[], float]]:
    """Seconds the block's calls on the cached ``service`` client (the handlers' own) spent waiting for answers."""
    client = aws.client(service)
    started = threading.local()
    total = [0.0]

    def before(**_: Any) -> None:
        started.at = time.perf_counter()

    def after(**_: Any) -> None:
        if getattr(started, "at", None) is not None:
            total[0] += time.perf_counter() - started.at
            started.at = None

    events = client.meta.events
    events.register(f"before-call.{service}", before)
    events.register(f"after-call.{service}", after)
    try:
        yield lambda: total[0]
    finally:
        events.unregister(f"before-call.{service}", before)
        events.unregister(f"after-call.{service}", after)


def _run_functions(
    quiet: bool,
    options: RunOptions,
    stack: StackResources,
    model: PublishResult,
    *,
    state_dir: Path,
    note: Step,
    on_batch: Callable[[int, int], None] | None,
    analysis_handler: Handler | None,
    timings: dict[str, float],
) -> RunReport:
    feeds = json.dumps([_feed_url(options.feed)])
    function_env = {
        **environment(
            IngestionSettings,
            items_table=stack.items_table,
            topic_arn=stack.topic_arn,
            feeds=feeds,
        ),
        **environment(
            AnalysisSettings,
            items_table=stack.items_table,
            model_bucket=stack.bucket,
            model_key=model.key,
            model_sha256=model.sha256,
            model_cache_dir=str(state_dir / "model-cache"),
        ),
        "POWERTOOLS_METRICS_NAMESPACE": f"{METRICS_NAMESPACE}Local",
        "POWERTOOLS_LOG_LEVEL": "WARNING" if quiet else "INFO",
        # EMF lines are for CloudWatch; locally they are noise unless asked for (--verbose).
        "POWERTOOLS_METRICS_DISABLED": "true" if quiet else "false",
    }
    run_started = datetime.now(UTC)
    with scoped_environ(function_env):
        note(f"Ingesting {options.feed or 'the sample feed'}")
        t = time.perf_counter()
        ingestion = _ingestion_handler()(_scheduled_event(), LocalLambdaContext(function_name="sentiment-ingestion"))
        timings["ingest"] = time.perf_counter() - t
        if not isinstance(ingestion, dict) or ingestion.get("statusCode") != 200:
            raise PipelineError(f"ingestion failed: {ingestion!r}")
        for polled in ingestion.get("feeds", []):
            if isinstance(polled, dict) and polled.get("error"):  # the one feed given could not be read
                raise PipelineError(f"cannot read the feed {polled.get('url')}: {polled['error']}")

        note("Analyzing (draining the work queue like Lambda's event source mapping)")
        t = time.perf_counter()
        esm = EventSourceMapping(
            queue_url=stack.queue_url,
            queue_arn=stack.queue_arn,
            handler=analysis_handler or _ANALYSIS,
            batch_size=options.batch_size,
            region=LOCAL_REGION,
            function_timeout_s=DEFAULT_ANALYSIS_FUNCTION.timeout_s,
            on_batch=on_batch,
        )
        with _timed_calls("dynamodb") as store_seconds:
            drain = esm.drain(timeout_s=options.drain_timeout_s)
        timings["analyze"] = time.perf_counter() - t
        timings["analyze_store"] = store_seconds()
        cold_start = _cold_start_breakdown()

    items = _items_of_run(stack.items_table, run_started)
    results = [
        ItemResult(item_id=i.item_id, text=i.text, sentiment=i.sentiment, score=i.score, label=i.label, source=i.source)
        for i in items
    ]
    return RunReport(
        ingestion=ingestion,
        model=model,
        results=results,
        drain=drain,
        dlq_depth=_queue_depth(stack.dlq_url),
        timings=timings,
        cold_start=cold_start,
    )


def classify_texts(
    texts: list[str], *, model_dir: Path | None, model: str | None, state_dir: Path | None
) -> list[dict[str, Any]]:
    """Classify with the same model sources and hub cache as :func:`run` (no emulator needed)."""
    from sentiment_analysis.classifier import SentimentClassifier
    from sentiment_shared.model_publish import resolve_source

    state = (state_dir or _default_state_dir()).expanduser()
    resolved = resolve_source(_model_source(RunOptions(model_dir=model_dir, model=model)), hub_cache_dir=state / "hub")
    classifier = SentimentClassifier.from_pretrained(resolved.path)
    return [
        {"sentiment": p.sentiment, "score": round(p.score, 6), "label": p.label} for p in classifier.classify(texts)
    ]
