"""One source of truth for the stack's names and settings, shared by the Pulumi program and the local pipeline.

Infra reads stack config with these values as defaults; ``sentiment-local`` creates the same resources
on the emulator with the same settings. Nothing here imports Pulumi or boto3.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, get_args

# ------------------------------------------------------------------ model
DEFAULT_MODEL_ID = "distilbert-base-uncased-finetuned-sst-2-english"
"""The production model on the Hugging Face hub."""
DEFAULT_MODEL_REVISION = "714eb0fa89d2f80546fda750413ed43d93601a13"
"""The pinned commit of :data:`DEFAULT_MODEL_ID`: the full hash of ``714eb0f``, the revision transformers pins for
its ``sentiment-analysis`` pipeline default (the hub cache folder ``snapshots/714eb0fa…3601a13``)."""
DEFAULT_MODEL_PREFIX = "distilbert"
DEFAULT_MODEL_VERSION = "v1.0.0"

DEFAULT_NEUTRAL_THRESHOLD = 0.75
"""Top-class probability below which a text is called ``neutral`` (evidence: README "Neutral threshold").

SST-2 dev (872 sentences, no neutral ones) with the shared model, fp32: the 5.5 % of texts scoring
under 0.75 are right only 58 % of the time (near a coin flip), those in 0.75-0.80 already 78 %;
calling them neutral lifts accuracy on the rest from 90.1 % to 92.0 % (int8: 5.8 %, 57 %, 91.8 %)."""

Precision = Literal["auto", "fp32", "int8"]
"""How the analysis function runs its model's linear layers (``MODEL_PRECISION``, ``from_pretrained(precision=)``);
``auto`` resolves to one of the two others at load (``sentiment_analysis.precision``)."""
ResolvedPrecision = Literal["fp32", "int8"]
PRECISIONS: tuple[Precision, ...] = get_args(Precision)

METRICS_NAMESPACE = "SentimentAnalyzer"
"""CloudWatch namespace of every function's EMF metrics (``POWERTOOLS_METRICS_NAMESPACE``)."""


class Metric(StrEnum):
    """The functions' EMF metric names under :data:`METRICS_NAMESPACE` (Powertools' ``service`` dimension).

    Emitted by the handlers, read by the operators' CloudWatch dashboard and the dashboard's cost summary:
    a name is written here once, never as a string at either end.
    """

    COLD_START = "ColdStart"
    """Powertools' own (``capture_cold_start_metric``), with a ``function_name`` dimension as well."""
    # analysis
    MODEL_DOWNLOAD_MS = "ModelDownloadMs"
    MODEL_EXTRACT_MS = "ModelExtractMs"
    MODEL_LOAD_MS = "ModelLoadMs"
    MODEL_LOAD_FAILURES = "ModelLoadFailures"
    INVALID_REQUESTS = "InvalidRequests"
    BATCH_SIZE = "BatchSize"
    INFERENCE_MS = "InferenceMs"
    ITEMS_ANALYZED = "ItemsAnalyzed"
    # both
    ITEMS_FAILED = "ItemsFailed"
    # ingestion
    ITEMS_RECEIVED = "ItemsReceived"
    ITEMS_STORED = "ItemsStored"
    ITEMS_DUPLICATE = "ItemsDuplicate"
    ITEMS_SKIPPED = "ItemsSkipped"
    ITEMS_TRUNCATED = "ItemsTruncated"
    ITEMS_PUBLISHED = "ItemsPublished"
    ITEMS_REPUBLISHED = "ItemsRepublished"
    FEEDS_FAILED = "FeedsFailed"
    FEED_FETCH_MS = "FeedFetchMs"
    EVENTS_REJECTED = "EventsRejected"


ANALYSIS_SERVICE = "sentiment-analysis"
INGESTION_SERVICE = "sentiment-ingestion"
DASHBOARD_SERVICE = "sentiment-dashboard"
"""``POWERTOOLS_SERVICE_NAME`` of each function: infra sets it, the handlers fall back to it."""

# ------------------------------------------------------------------ items table
ITEMS_TABLE_HASH_KEY = "item_id"
ITEMS_TABLE_TTL_ATTRIBUTE = "expires_at"
"""Epoch seconds after which DynamoDB deletes an item (set only on bookkeeping items such as run markers)."""
PENDING_INDEX = "pending-by-age"
"""Sparse GSI over items that were stored but not yet published (``pending_shard`` is set only then)."""
PENDING_INDEX_HASH_KEY = "pending_shard"
PENDING_INDEX_RANGE_KEY = "ingested_at"
PENDING_SHARD_VALUE = "pending"
FEED_STATE_PREFIX = "feed-state#"
"""``item_id`` prefix of the small per-feed state items (ETag / Last-Modified) ingestion keeps."""
PUBLISH_RUN_PREFIX = "publish-run#"
"""``item_id`` prefix of the one marker item an ingestion run writes after publishing (ids that failed)."""
COUNTER_PREFIX = "counter#"
"""``item_id`` prefix of the dashboard's counter items (:mod:`sentiment_shared.dal`)."""
RECENT_INDEX = "recent-by-day"
"""Sparse GSI over analyzed items: ``analyzed_day`` (YYYY-MM-DD) → ``analyzed_at``, newest first per day."""
RECENT_INDEX_HASH_KEY = "analyzed_day"
RECENT_INDEX_RANGE_KEY = "analyzed_at"
RECENT_INDEX_PROJECTION = ("text", "source", "sentiment", "score", "model_version")
"""Non-key attributes the recent-items index carries (the dashboard's "most recent items" list)."""
BOOKKEEPING_PREFIXES = (FEED_STATE_PREFIX, PUBLISH_RUN_PREFIX, COUNTER_PREFIX)
"""Every ``item_id`` prefix of the table's non-item bookkeeping (item ids are hex, so they never clash)."""


@dataclass(frozen=True, slots=True)
class TableIndex:
    """A global secondary index of the items table: string keys, and what it projects."""

    name: str
    hash_key: str
    range_key: str
    non_key_attributes: tuple[str, ...] | None = None
    """None: every attribute (projection ``ALL``); else ``INCLUDE`` exactly these."""

    @property
    def key_schema(self) -> tuple[tuple[str, Literal["HASH", "RANGE"]], ...]:
        return ((self.hash_key, "HASH"), (self.range_key, "RANGE"))

    @property
    def projection_type(self) -> Literal["ALL", "INCLUDE"]:
        return "ALL" if self.non_key_attributes is None else "INCLUDE"


ITEMS_TABLE_INDEXES = (
    TableIndex(PENDING_INDEX, PENDING_INDEX_HASH_KEY, PENDING_INDEX_RANGE_KEY),
    TableIndex(RECENT_INDEX, RECENT_INDEX_HASH_KEY, RECENT_INDEX_RANGE_KEY, RECENT_INDEX_PROJECTION),
)
"""The table's shape beyond its ``item_id`` key; the Pulumi program and the local twin both create it from this."""
ITEMS_TABLE_KEY_ATTRIBUTES = (ITEMS_TABLE_HASH_KEY, *(key for i in ITEMS_TABLE_INDEXES for key, _ in i.key_schema))
"""Every attribute the table or an index is keyed on (all strings)."""


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """The work queue, its dead-letter queue and the event source mapping that drains it."""

    batch_size: int = 10
    batching_window_s: int = 2
    max_receive_count: int = 5
    retention_s: int = 4 * 24 * 3600
    dlq_retention_s: int = 14 * 24 * 3600
    maximum_concurrency: int = 5
    visibility_multiplier: int = 6
    """AWS: the queue's visibility timeout must be at least 6 x the function timeout."""

    def visibility_timeout_s(self, function_timeout_s: int) -> int:
        return self.visibility_multiplier * function_timeout_s


@dataclass(frozen=True, slots=True)
class AnalysisFunctionSettings:
    memory_mb: int = 2048
    ephemeral_storage_mb: int = 512
    """Lambda's default ``/tmp``, and SnapStart's ceiling. The stream fetch extracts the compact bundle
    (~68 MB for DistilBERT) without an archive on disk; the ``ranged`` fetch also keeps the archive for a
    moment (~136 MB). Even a full-size fp32 bundle (~268 MB) fits when streamed."""
    timeout_s: int = 120


DEFAULT_INGESTION_MEMORY_MB = 512
DEFAULT_DASHBOARD_MEMORY_MB = 256

DEFAULT_QUEUE = QueueSettings()
DEFAULT_ANALYSIS_FUNCTION = AnalysisFunctionSettings()


@dataclass(frozen=True, slots=True)
class ResourceNames:
    """Physical names of the stack's resources for a project/stack pair (local pipeline and tests)."""

    project: str = "sentiment-analyzer"
    stack: str = "local"

    def _name(self, suffix: str) -> str:
        return f"{self.project}-{self.stack}-{suffix}"

    @property
    def model_bucket(self) -> str:
        return self._name("models")

    @property
    def items_table(self) -> str:
        return self._name("items")

    @property
    def topic(self) -> str:
        return self._name("items-topic")

    @property
    def work_queue(self) -> str:
        return self._name("analysis-queue")

    @property
    def dead_letter_queue(self) -> str:
        return self._name("analysis-dlq")


def model_key(prefix: str, version: str, bundle_file: str) -> str:
    """``<prefix>/<version>/<bundle file>`` (e.g. ``distilbert/v1.0.0/model.tar``)."""
    parts = [p.strip("/") for p in (prefix, version, bundle_file)]
    if any(not p for p in parts):
        raise ValueError(f"model key parts must be non-empty: {parts!r}")
    return "/".join(parts)
