"""Cost per 1,000 items from measured durations and configured memory, and the one price table it uses.

Prices: AWS public on-demand list prices, region ``us-east-1``, as published on 2026-11-29 (Lambda x86
and SQS/SNS unchanged since 2020-2023; DynamoDB on-demand after its 2024-11-01 price cut). No free tier
is subtracted. Edit :data:`PRICES` (and its date) when AWS changes them; README "Cost" quotes this table.

==============================================  ===================  ==================================
what                                             price (USD)          per
==============================================  ===================  ==================================
Lambda compute (x86)                             0.0000166667         GB-second (memory GB x seconds)
Lambda requests                                  0.20                 1 M invocations
SQS standard requests                            0.40                 1 M requests (64 KiB chunks)
SNS publish requests                             0.50                 1 M requests (64 KiB chunks)
SNS → SQS deliveries                             0                    (free)
DynamoDB on-demand writes                        0.625                1 M write request units
DynamoDB on-demand reads                         0.125                1 M read request units
SnapStart cache (Python, per published version)  0.0000015046         GB-second cached (3-hour minimum)
SnapStart restore (Python)                       0.0001397998         GB restored (memory x restores)
==============================================  ===================  ==================================

SnapStart (stacks with ``analysisSnapStart``): AWS Lambda pricing, "SnapStart" section
(https://aws.amazon.com/lambda/pricing/, us-east-1, x86; Python and .NET pay both charges, Java pays
neither). The cache charge runs per *published version* with SnapStart, by the function's memory, from
the publish until the version is deleted, at least 3 hours; the restore charge is paid every time Lambda
resumes an execution environment from the snapshot (a cold start), by memory. Every ``pulumi up`` that
changes the analysis function publishes a version, so delete old versions (docs/DEPLOY.md) to stop
their cache charge.

What one item costs in requests (from the code, not guessed):

* ingestion: one conditional ``PutItem`` (1 WRU), one ``PublishBatch`` entry (SNS bills a batch of
  10 entries as 10 requests), a share of the run's marker write and feed GET;
* queue: the event source mapping's ``ReceiveMessage`` (a share: up to 10 messages per call) and one
  ``DeleteMessage`` share (``DeleteMessageBatch``: 10 per call) — Lambda's own polling is billed as
  SQS requests too, empty receives included (ignored here: they depend on idle time, not items);
* analysis: one ``TransactWriteItems`` per batch: each item's update and the batch's counter deltas
  (total, day, source), 2 WRU per action, shared by the batch's items; plus the index writes
  (:func:`write_units_per_item`: 6.6 WRU per item at batches of 10, the measured batch size locally);
* Lambda: measured milliseconds x configured memory, plus one request per batch.

Cold starts are kept apart from the per-item time: a run of a few dozen items on a fresh container is
mostly model download and load (20 s of 32 s in a local run of the 48 sample items), which says
nothing about the next thousand items a warm container analyses. When the cold start part of the
measured time is known (``analysis_cold_start_seconds``), the estimate per 1,000 items is the *warm*
per-item time, and each cold start is priced on its own (``cold_start_usd``: how often one happens
depends on traffic and concurrency, not on the item count).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sentiment_shared.dal.writes import Counted, counter_deltas
from sentiment_shared.stack import DEFAULT_INGESTION_MEMORY_MB, DEFAULT_QUEUE

PRICES_REGION = "us-east-1"
PRICES_DATE = "2026-11-29"
PRICES: dict[str, float] = {
    "lambda_gb_second": 0.0000166667,
    "lambda_request": 0.20 / 1_000_000,
    "sqs_request": 0.40 / 1_000_000,
    "sns_publish_request": 0.50 / 1_000_000,
    "dynamodb_write_unit": 0.625 / 1_000_000,
    "dynamodb_read_unit": 0.125 / 1_000_000,
    # https://aws.amazon.com/lambda/pricing/ ("SnapStart": Python and .NET), us-east-1
    "snapstart_cache_gb_second": 0.0000015046,
    "snapstart_restore_gb": 0.0001397998,
}

SNAP_START_MINIMUM_CACHE_S = 3 * 3600
"""The cache charge of a published version covers at least 3 hours."""

INGEST_PUT_UNITS = 1
"""Ingestion's conditional ``PutItem`` of an item up to 1 KB."""
TRANSACTION_UNITS_PER_ACTION = 2
"""A transactional write costs 2 write units per action (per KB of its item)."""
INDEX_WRITES_PER_ITEM = 3
"""Index writes, billed as write units too: the pending index takes the item at ingestion and drops it at
analysis, the recent index takes it at analysis."""


def write_units_per_item(batch_size: float = DEFAULT_QUEUE.batch_size) -> float:
    """DynamoDB write units per item (each up to 1 KB), from the write path's own shape.

    Ingestion's put, plus the analysis's one transaction per batch — its item updates and the counter
    deltas :func:`sentiment_shared.dal.writes.counter_deltas` builds for a batch of one day and one source —
    shared by the batch's items, plus the index writes."""
    per_batch = max(batch_size, 1.0)
    counted = [Counted("positive", "2026-01-01", "feed")] * max(round(per_batch), 1)
    counter_actions = len(counter_deltas("items", counted, 0))
    transaction = TRANSACTION_UNITS_PER_ACTION * (1 + counter_actions / per_batch)
    return INGEST_PUT_UNITS + transaction + INDEX_WRITES_PER_ITEM


WRITE_UNITS_PER_ITEM = write_units_per_item()
"""At the stack's batch size (10): 1 + 2 x (10 + 3) / 10 + 3 = 6.6 (the per-record transaction before: 12)."""
SQS_REQUESTS_PER_ITEM = 2 / 10
"""One receive and one batched delete per batch of up to 10 (the stack's batch size)."""
SNS_REQUESTS_PER_ITEM = 1.0


@dataclass(frozen=True, slots=True)
class Measured:
    """What a run measured: items analyzed, and the functions' busy time and invocations for them."""

    items: int
    analysis_seconds: float
    analysis_invocations: int
    analysis_memory_mb: int
    ingestion_seconds: float = 0.0
    ingestion_invocations: int = 0
    ingestion_memory_mb: int = DEFAULT_INGESTION_MEMORY_MB
    analysis_cold_start_seconds: float = 0.0
    """The part of ``analysis_seconds`` spent on cold starts (imports, model download, verify, load)."""
    analysis_cold_starts: int = 0
    analysis_store_seconds: float = 0.0
    """The part of ``analysis_seconds`` spent waiting on the items table (round trips; locally, to the
    emulator): the rest of the warm time is the handler's own compute, inference above all."""

    @property
    def warm_analysis_seconds(self) -> float:
        return max(self.analysis_seconds - self.analysis_cold_start_seconds, 0.0)

    @property
    def batch_size(self) -> float:
        """Records per analysis invocation (the stack's batch size when nothing says otherwise)."""
        return self.items / self.analysis_invocations if self.analysis_invocations else DEFAULT_QUEUE.batch_size


@dataclass(frozen=True, slots=True)
class CostPer1000:
    """USD per 1,000 analyzed items, by part."""

    lambda_compute: float
    lambda_requests: float
    sqs: float
    sns: float
    dynamodb: float
    basis: Measured
    cold_start_usd: float = 0.0
    """Lambda compute of one cold start (not in the per-1,000 figures)."""

    @property
    def total(self) -> float:
        return self.lambda_compute + self.lambda_requests + self.sqs + self.sns + self.dynamodb

    def as_dict(self) -> dict[str, Any]:
        return {
            "total_usd": round(self.total, 6),
            "lambda_compute_usd": round(self.lambda_compute, 6),
            "lambda_requests_usd": round(self.lambda_requests, 6),
            "sqs_usd": round(self.sqs, 6),
            "sns_usd": round(self.sns, 6),
            "dynamodb_usd": round(self.dynamodb, 6),
            "items_measured": self.basis.items,
            "analysis_ms_per_item": round(1000 * self.basis.warm_analysis_seconds / max(self.basis.items, 1), 2),
            "analysis_memory_mb": self.basis.analysis_memory_mb,
            "cold_starts_measured": self.basis.analysis_cold_starts,
            "cold_start_s": round(self.basis.analysis_cold_start_seconds / max(self.basis.analysis_cold_starts, 1), 3),
            "cold_start_usd": round(self.cold_start_usd, 6),
            **self.split(),
            "write_units_per_item": round(write_units_per_item(self.basis.batch_size), 2),
            "basis": self.basis_text(),
            "prices": f"AWS list prices, {PRICES_REGION}, {PRICES_DATE}",
        }

    def split(self) -> dict[str, Any]:
        """The warm analysis time per item, split: the handler's compute (inference) and the items table's
        round trips (locally: to the emulator), and which dominates; empty when the round trips were not timed."""
        b = self.basis
        if b.analysis_store_seconds <= 0:
            return {}
        store = min(b.analysis_store_seconds, b.warm_analysis_seconds)
        compute = b.warm_analysis_seconds - store
        return {
            "analysis_compute_ms_per_item": round(1000 * compute / max(b.items, 1), 2),
            "analysis_store_ms_per_item": round(1000 * store / max(b.items, 1), 2),
            "analysis_dominated_by": "compute (inference)" if compute >= store else "table round trips",
        }

    def basis_text(self) -> str:
        """What the figure is made of, in one line (shown next to it)."""
        b = self.basis
        per_item = 1000 * b.warm_analysis_seconds / max(b.items, 1)
        split = self.split()
        parts = (
            f" ({split['analysis_compute_ms_per_item']:.0f} ms compute, {split['analysis_store_ms_per_item']:.0f} ms"
            f" table round trips: {split['analysis_dominated_by']} dominates)"
            if split
            else ""
        )
        if not b.analysis_cold_starts:
            return f"{per_item:.0f} ms of analysis per item{parts} at {b.analysis_memory_mb} MB, over {b.items} items"
        each = b.analysis_cold_start_seconds / b.analysis_cold_starts
        return (
            f"warm: {per_item:.0f} ms of analysis per item{parts} at {b.analysis_memory_mb} MB over {b.items} items; "
            f"cold starts excluded: {b.analysis_cold_starts} x {each:.1f} s, ${self.cold_start_usd:.5f} each"
        )


def cost_per_1000(measured: Measured) -> CostPer1000 | None:
    """Scale what was measured to 1,000 items; None when nothing was analyzed (no basis)."""
    if measured.items <= 0:
        return None
    scale = 1000 / measured.items
    gb_seconds = (
        measured.warm_analysis_seconds * measured.analysis_memory_mb / 1024
        + measured.ingestion_seconds * measured.ingestion_memory_mb / 1024
    )
    invocations = measured.analysis_invocations + measured.ingestion_invocations
    return CostPer1000(
        lambda_compute=gb_seconds * PRICES["lambda_gb_second"] * scale,
        lambda_requests=invocations * PRICES["lambda_request"] * scale,
        sqs=1000 * SQS_REQUESTS_PER_ITEM * PRICES["sqs_request"],
        sns=1000 * SNS_REQUESTS_PER_ITEM * PRICES["sns_publish_request"],
        dynamodb=1000 * write_units_per_item(measured.batch_size) * PRICES["dynamodb_write_unit"],
        basis=measured,
        cold_start_usd=(
            measured.analysis_cold_start_seconds
            / max(measured.analysis_cold_starts, 1)
            * measured.analysis_memory_mb
            / 1024
            * PRICES["lambda_gb_second"]
        ),
    )


def snap_start_cache_usd(memory_mb: int, seconds: float) -> float:
    """The SnapStart cache charge of one published version kept ``seconds`` (at least 3 hours are billed)."""
    return memory_mb / 1024 * max(seconds, SNAP_START_MINIMUM_CACHE_S) * PRICES["snapstart_cache_gb_second"]


def snap_start_restore_usd(memory_mb: int, restores: int = 1) -> float:
    """The SnapStart restore charge of ``restores`` cold starts from the snapshot."""
    return memory_mb / 1024 * restores * PRICES["snapstart_restore_gb"]
