"""Soak: the local pipeline over N feed items with ~5 % injected faults; nothing may be lost or duplicated.

``sentiment-local``'s pipeline (moto server, the real ingestion and analysis handlers, the SQS event
source mapping stand-in with the queue's real redrive policy) runs over a generated RSS feed of
``--items`` entries. Faults are injected into the analysis function's DynamoDB writes, at the HTTP
layer of the client its items table is built on (``build_handler(table=...)``), for a fixed share of the
items (picked by a hash of the item id):

==============  ==========================================================================  ===========
kind            what happens                                                                expected
==============  ==========================================================================  ===========
``permanent``   every write is refused (``ValidationException``: not retried by botocore)   DLQ
``throttled``   one write attempt is throttled (botocore retries it)                        analyzed
``flaky``       every attempt of one write call fails (HTTP 500): the batch is bisected     analyzed
``timeout``     the invocation dies at this item's write (Lambda's timeout kill)           analyzed
==============  ==========================================================================  ===========

Afterwards ``analyzed + in DLQ == ingested``, the DLQ holds exactly the ``permanent`` items, no item is
lost (neither analyzed nor parked) and none is counted twice; the dashboard's counters (analyzed,
pending, per sentiment) equal the same numbers counted from the items. The table printed is what
``docs/RELIABILITY.md`` quotes; ``tests/e2e/test_soak.py`` asserts the same on a smaller run.

    uv run python -m benchmarks.soak [--items 1000] [--fault-rate 0.05] [--seed 7] [--model-dir DIR] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import tempfile
import threading
import time
import uuid
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from sentiment_ingestion.normalize import item_id_for
from sentiment_local.emulator import embedded_moto
from sentiment_local.esm import Handler
from sentiment_local.pipeline import RunOptions, RunReport, run
from sentiment_shared import aws
from sentiment_shared.dal.keys import is_bookkeeping
from sentiment_shared.dal.read_model import read_summary
from sentiment_shared.dynamo import plain
from sentiment_shared.stack import ITEMS_TABLE_HASH_KEY

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL_DIR = REPO_ROOT.parent / "shared" / "models" / "sst2-distilbert-minilm"

TEMPLATES = (
    "I absolutely love this product, it works perfectly",
    "Terrible quality, it broke after one day",
    "Delivery was fast and the packaging was lovely",
    "The customer service was rude and unhelpful",
    "Decent value for the price, nothing special",
    "A wonderful gift, my family adores it",
    "Worst purchase I have made this year",
    "It does exactly what the description says",
)

SENTIMENT_KEYS = ("positive", "negative", "neutral")
DASHBOARD_KEYS = ("analyzed", "pending", *SENTIMENT_KEYS)

KINDS = ("permanent", "throttled", "flaky", "timeout")
SHARES = {"permanent": 0.2, "throttled": 0.3, "flaky": 0.3, "timeout": 0.2}
"""How the fault budget is split: 1 % permanent, 1.5 % throttled, 1.5 % flaky, 1 % timeouts at 5 %."""


class Crash(BaseException):
    """The function's process is killed here (timeout): no ``except Exception`` in the handler sees it."""


def write_feed(path: Path, items: int, seed: int) -> list[str]:
    """An RSS 2.0 file of ``items`` distinct entries; returns their guids in order."""
    guids = [f"soak-{seed}-{n}" for n in range(items)]
    entries = "".join(
        f"<item><guid>{guid}</guid><title>Review {n}</title>"
        f"<description>{escape(TEMPLATES[n % len(TEMPLATES)])} (review {n}).</description></item>"
        for n, guid in enumerate(guids)
    )
    path.write_text(
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>soak</title>'
        f"{entries}</channel></rss>",
        encoding="utf-8",
    )
    return guids


def plan_faults(item_ids: list[str], fault_rate: float, seed: int) -> dict[str, str]:
    """item_id → fault kind for ``fault_rate`` of the items (at least one of each kind), by a seeded hash."""
    ranked = sorted(item_ids, key=lambda i: zlib.crc32(f"{seed}:{i}".encode()))
    budget = max(len(KINDS), round(len(item_ids) * fault_rate))
    plan: dict[str, str] = {}
    start = 0
    for kind in KINDS:
        count = max(1, round(budget * SHARES[kind]))
        for item_id in ranked[start : start + count]:
            plan[item_id] = kind
        start += count
    return plan


@dataclass
class FaultInjector:
    """Decides, per HTTP attempt of the analysis function's result write, whether to inject a fault.

    The result write is one ``TransactWriteItems`` per batch (the items' updates, then the batch's counter
    deltas), so a fault planned for any item of a transaction fails that whole transaction and the
    adapter's bisection has to isolate the faulty item from its neighbours. One fault answers an attempt
    (a kill first, then refusals, then failures, then throttles), and each item's one-off fault
    (``timeout``, ``flaky``, ``throttled``) is spent only when it is the answer, so a neighbour's fault
    never hides it: every planned kind is injected, whatever the batches' composition."""

    plan: dict[str, str]
    calls: Counter[str] = field(default_factory=Counter)
    """API calls (deliveries that reached the write) per item."""
    injected: Counter[str] = field(default_factory=Counter)
    """Injected faults per kind (attempts for write faults, kills for timeouts)."""
    crashed: set[str] = field(default_factory=set)
    throttled: set[str] = field(default_factory=set)
    flaky_call: dict[str, int] = field(default_factory=dict)
    """The call whose every attempt failed for each ``flaky`` item (its first call that met the fault)."""
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _client: Any = None

    def client(self) -> Any:
        """A DynamoDB client of the run's environment with the faults hooked on (its own, not the cached one)."""
        if self._client is None:
            from botocore.config import Config

            self._client = aws.client("dynamodb", config=Config(user_agent_extra="soak-faults"))
            events = self._client.meta.events
            events.register("before-parameter-build.dynamodb.TransactWriteItems", self._before_call)
            events.register("before-send.dynamodb.TransactWriteItems", self._before_send)
        return self._client

    def _before_call(self, params: dict[str, Any], **_: Any) -> None:
        with self._lock:
            for item_id in _written_items(params):
                self.calls[item_id] += 1

    def _before_send(self, request: Any, **_: Any) -> Any:
        with self._lock:
            due = [
                (PRIORITY.index(kind), item_id, kind)
                for item_id in _written_items(json.loads(request.body))
                if (kind := self._due(item_id))
            ]
            if not due:
                return None
            _rank, item_id, kind = min(due)
            self.injected[kind] += 1
            if kind == "timeout":
                self.crashed.add(item_id)
            elif kind == "throttled":
                self.throttled.add(item_id)
            elif kind == "flaky":
                self.flaky_call.setdefault(item_id, self.calls[item_id])
        if kind == "timeout":
            raise Crash
        return _error(*FAULTS[kind])

    def _due(self, item_id: str) -> str | None:
        """The fault this item would inject into this attempt (called under the lock)."""
        kind = self.plan.get(item_id)
        due = (
            (kind == "timeout" and item_id not in self.crashed)
            or kind == "permanent"
            or (kind == "flaky" and self.flaky_call.get(item_id, self.calls[item_id]) == self.calls[item_id])
            or (kind == "throttled" and item_id not in self.throttled)
        )
        return kind if due else None


PRIORITY = ("timeout", "permanent", "flaky", "throttled")
"""Which planned fault answers an attempt that carries several."""
FAULTS = {
    "permanent": ("ValidationException", 400),
    "flaky": ("InternalServerError", 500),
    "throttled": ("ThrottlingException", 400),
}


def _written_items(params: dict[str, Any]) -> list[str]:
    """The items a result write is for: the transaction's updates of items (its counter deltas excluded)."""
    keys = (
        plain(action["Update"]["Key"])[ITEMS_TABLE_HASH_KEY] for action in params["TransactItems"] if "Update" in action
    )
    return [str(key) for key in keys if not is_bookkeeping(str(key))]


def _error(code: str, status: int) -> Any:
    from botocore.awsrequest import AWSResponse

    body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": "injected by the soak"})

    class Raw:
        def stream(self, **_: Any) -> Any:
            yield body.encode()

    return AWSResponse("https://dynamodb.injected/", status, {"x-amzn-RequestId": "soak"}, Raw())


def faulty_function(injector: FaultInjector) -> Handler:
    """The analysis function as Lambda runs it, its items table on the injector's client, timeouts as kills."""

    def function(event: dict[str, Any], context: Any) -> Any:
        from sentiment_analysis.handler import build_handler, models  # on first delivery, as the pipeline does
        from sentiment_shared.adapters import DynamoItemsTable
        from sentiment_shared.settings import analysis_settings

        table = DynamoItemsTable(analysis_settings().items_table, client=injector.client())
        try:
            return build_handler(models, table=table)(event, context)
        except Crash:
            raise TimeoutError("Task timed out after 120.00 seconds") from None

    return function


@dataclass
class SoakResult:
    items: int
    ingested: int
    analyzed: int
    in_dlq: int
    lost: int
    duplicated: int
    dlq_matches_permanent: bool
    faults: dict[str, int]
    """Items planned per fault kind."""
    injected: dict[str, int]
    """Faults actually injected per kind (write attempts refused, or invocations killed)."""
    batches: int
    failed_invocations: int
    record_failures: int
    seconds: float
    drain_timed_out: bool
    dashboard: dict[str, int] = field(default_factory=dict)
    """What the dashboard's counters say afterwards (``GET /api/summary``): analyzed, pending, per sentiment."""
    accounting: dict[str, int] = field(default_factory=dict)
    """The same numbers counted from the run's items (the accounting above)."""
    timings: dict[str, float] = field(default_factory=dict)
    """The pipeline's own step timings (provision, publish_model, ingest, analyze), seconds."""

    @property
    def ok(self) -> bool:
        return (
            self.lost == 0
            and self.duplicated == 0
            and self.analyzed + self.in_dlq == self.ingested == self.items
            and self.dlq_matches_permanent
            and not self.drain_timed_out
            and self.dashboard == self.accounting
        )

    def rows(self) -> list[tuple[str, str]]:
        fault_rows = [
            (f"  {k} items (faults injected)", f"{self.faults[k]} ({self.injected.get(k, 0)})") for k in KINDS
        ]
        return [
            ("items in the feed", str(self.items)),
            ("ingested", str(self.ingested)),
            ("analyzed", str(self.analyzed)),
            ("in the DLQ", str(self.in_dlq)),
            ("analyzed + in DLQ == ingested", str(self.analyzed + self.in_dlq == self.ingested)),
            ("lost", str(self.lost)),
            ("duplicated", str(self.duplicated)),
            ("DLQ == the permanent-fault items", str(self.dlq_matches_permanent)),
            ("dashboard: analyzed / pending", f"{self.dashboard.get('analyzed')} / {self.dashboard.get('pending')}"),
            (
                "dashboard: positive / negative / neutral",
                "{positive} / {negative} / {neutral}".format(**{k: self.dashboard.get(k) for k in SENTIMENT_KEYS}),
            ),
            ("dashboard totals == accounting", str(self.dashboard == self.accounting)),
            (f"faulty items ({sum(self.faults.values()) / max(self.items, 1):.1%})", str(sum(self.faults.values()))),
            *fault_rows,
            ("batches delivered", str(self.batches)),
            ("failed invocations (timeouts)", str(self.failed_invocations)),
            ("record failures (redeliveries)", str(self.record_failures)),
            ("wall time (s)", f"{self.seconds:.1f}"),
            *((f"  {step} (s)", f"{secs:.1f}") for step, secs in self.timings.items() if step != "total"),
        ]

    def table(self) -> str:
        width = max(len(k) for k, _ in self.rows())
        lines = [f"{'measure':<{width}}  value", f"{'-' * width}  -----"]
        lines += [f"{k:<{width}}  {v}" for k, v in self.rows()]
        lines.append(f"{'verdict':<{width}}  {'PASS: nothing lost, nothing duplicated' if self.ok else 'FAIL'}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "ok": self.ok}


def _dlq_item_ids(queue_url: str) -> list[str]:
    sqs = aws.client("sqs")
    found: list[str] = []
    while batch := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=300).get(
        "Messages", []
    ):
        for message in batch:
            envelope = json.loads(message["Body"])
            found.append(str(json.loads(envelope["Message"])["item_id"]))
    return found


def soak(
    items: int,
    *,
    fault_rate: float = 0.05,
    seed: int = 7,
    model_dir: Path,
    work_dir: Path,
) -> SoakResult:
    """Run the pipeline once over a generated feed with injected faults and account for every item."""
    from sentiment_local.emulator import aws_environment
    from sentiment_shared.stack import ResourceNames

    feed = work_dir / "soak-feed.xml"
    guids = write_feed(feed, items, seed)
    source = str(feed.resolve())  # the ingestion function's source for a local feed file
    plan = plan_faults([item_id_for(source, g, kind="guid") for g in guids], fault_rate, seed)
    injector = FaultInjector(plan)
    # moto keeps its state per process, not per server: a stack name of its own keeps earlier runs' queues out.
    stack = f"soak-{uuid.uuid4().hex[:8]}"
    started = time.perf_counter()
    with embedded_moto() as endpoint:
        options = RunOptions(
            model_dir=model_dir, feed=str(feed), endpoint_url=endpoint, state_dir=work_dir / "state", stack=stack
        )
        report: RunReport = run(options, analysis_handler=faulty_function(injector))
        with aws_environment(endpoint):
            dlq = ResourceNames(stack=stack).dead_letter_queue
            dlq_url = aws.client("sqs").get_queue_url(QueueName=dlq)["QueueUrl"]
            parked = _dlq_item_ids(dlq_url)
            summary = read_summary(ResourceNames(stack=stack).items_table).as_dict()
    seconds = time.perf_counter() - started
    ingested = {r.item_id for r in report.results}
    analyzed = {r.item_id for r in report.results if r.sentiment is not None}
    parked_set = set(parked)
    lost = ingested - analyzed - parked_set
    duplicated = (len(parked) - len(parked_set)) + len(analyzed & parked_set) + len(parked_set - ingested)
    permanent = {i for i, k in plan.items() if k == "permanent"}
    return SoakResult(
        items=items,
        ingested=len(ingested),
        analyzed=len(analyzed),
        in_dlq=len(parked),
        lost=len(lost),
        duplicated=duplicated,
        dlq_matches_permanent=parked_set == permanent,
        faults={k: sum(1 for v in plan.values() if v == k) for k in KINDS},
        injected=dict(injector.injected),
        batches=report.drain.batches,
        failed_invocations=report.drain.invocations_failed,
        record_failures=report.drain.record_failures,
        seconds=seconds,
        drain_timed_out=report.drain.timed_out,
        dashboard={k: int(summary[k]) for k in DASHBOARD_KEYS},
        accounting={
            "analyzed": len(analyzed),
            "pending": len(ingested - analyzed),
            **{k: sum(1 for r in report.results if r.sentiment == k) for k in SENTIMENT_KEYS},
        },
        timings=dict(report.timings),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--fault-rate", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if not (args.model_dir / "config.json").is_file():
        parser.error(f"no model at {args.model_dir}: pass --model-dir (a local Hugging Face model directory)")
    # The stand-in logs every killed invocation with its traceback: expected here, and counted below.
    logging.getLogger("sentiment_local.esm").setLevel(logging.CRITICAL)
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")
    # The functions' EMF metric lines go to stdout (as on Lambda): keep stdout for the table alone.
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp, contextlib.redirect_stdout(sys.stderr):
        result = soak(
            args.items, fault_rate=args.fault_rate, seed=args.seed, model_dir=args.model_dir, work_dir=Path(tmp)
        )
    print(json.dumps(result.as_dict(), indent=2) if args.json else result.table())
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
