"""AWS API calls per new item and items/second of the ingestion core, against a moto server.

Counts every DynamoDB and SNS call the real adapters make (botocore ``before-call`` hooks; ``before-send``
counts HTTP attempts, so retries would show) while ingesting ``--entries`` new items two ways:

* a scheduled poll of one RSS feed of that many entries served from 127.0.0.1 (then polled again: 304);
* a direct ``{"texts": [...]}`` payload of as many new texts (then sent again: all duplicates).

Target: <= 1.2 calls per new item (one conditional PutItem + a tenth of a PublishBatch).

moto delivers SNS to SQS synchronously inside ``PublishBatch``, and its SQS scans the whole queue on every
send (plus an x509 signature per message), so each batch gets slower as the undrained queue grows, which
AWS's asynchronous delivery does not. The timed scenarios therefore publish to the topic with the queue
unsubscribed; a final, smaller scenario re-subscribes it and checks that every new item arrived on the
queue (nothing lost), reporting its slower emulator-bound rate too.

    uv run python -m benchmarks.ingestion_api_calls [--entries 1000] [--concurrency 8] [--json]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from xml.sax.saxutils import escape

from sentiment_ingestion.core import IngestOptions, Ingestor, IngestReport
from sentiment_ingestion.entries import DIRECT_SOURCE, Entry
from sentiment_ingestion.feeds import FeedFetcher
from sentiment_ingestion.store import DynamoIngestionStore
from sentiment_local.emulator import embedded_moto
from sentiment_local.provision import StackResources, provision
from sentiment_shared import aws
from sentiment_shared.adapters import DynamoItemsTable, SnsPublisher
from sentiment_shared.stack import ResourceNames

TARGET_CALLS_PER_ITEM = 1.2
ADJECTIVES = ("wonderful", "terrible", "ordinary", "brilliant", "disappointing", "adequate", "superb", "awful")
PRODUCTS = ("headphones", "kettle", "router", "keyboard", "blender", "camera", "scooter", "thermostat")


@dataclass
class CallCounter:
    calls: Counter[str] = field(default_factory=Counter)
    attempts: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def on_call(self, event_name: str, **_: Any) -> None:
        # "before-call.dynamodb.PutItem" → "dynamodb.PutItem"
        with self._lock:
            self.calls[event_name.split(".", 1)[1]] += 1

    def on_send(self, **_: Any) -> None:
        with self._lock:
            self.attempts += 1

    def snapshot(self) -> tuple[Counter[str], int]:
        with self._lock:
            return Counter(self.calls), self.attempts


def _review(n: int, salt: str) -> str:
    adjective = ADJECTIVES[n % len(ADJECTIVES)]
    product = PRODUCTS[(n // len(ADJECTIVES)) % len(PRODUCTS)]
    return f"Review {salt}-{n}: the {product} is {adjective}, and I would say so again after {n % 30 + 1} weeks."


def _rss(entries: int) -> bytes:
    items = "".join(
        f"<item><guid>bench-{n}</guid><title>Review {n}</title>"
        f"<description>{escape('<p>' + _review(n, 'feed') + '</p>')}</description></item>"
        for n in range(entries)
    )
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>bench</title>{items}</channel></rss>'.encode()


@contextmanager
def feed_server(body: bytes) -> Iterator[str]:
    etag = '"bench-1"'

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            if self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("ETag", etag)
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/feed.xml"
    finally:
        server.shutdown()
        server.server_close()


def _queue_depth(stack: StackResources) -> int:
    attrs = aws.client("sqs").get_queue_attributes(
        QueueUrl=stack.queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"])


def measure(
    name: str,
    counter: CallCounter,
    stack: StackResources,
    run: Callable[[], IngestReport],
    *,
    check_queue: bool = False,
) -> dict[str, Any]:
    before_calls, before_attempts = counter.snapshot()
    before_depth = _queue_depth(stack) if check_queue else 0
    started = time.perf_counter()
    report = run()
    seconds = time.perf_counter() - started
    after_calls, after_attempts = counter.snapshot()
    calls = after_calls - before_calls
    total = sum(calls.values())
    if report.failed or report.store_errors:
        raise SystemExit(f"{name}: {report.failed} failed to publish, {len(report.store_errors)} failed to store")
    if check_queue:
        arrived = _queue_depth(stack) - before_depth
        if arrived != report.published:
            raise SystemExit(f"{name}: {report.published} published but {arrived} arrived on the queue")
    return {
        "scenario": name,
        "received": report.received,
        "new": report.stored,
        "duplicates": report.duplicates,
        "published": report.published,
        "api_calls": total,
        "http_attempts": after_attempts - before_attempts,
        "calls_per_new_item": round(total / report.stored, 3) if report.stored else None,
        "calls_by_operation": dict(sorted(calls.items())),
        "seconds": round(seconds, 3),
        "items_per_second": round(report.received / seconds, 1) if seconds else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--entries", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=IngestOptions().store_concurrency)
    parser.add_argument("--delivery-entries", type=int, default=200, help="new items of the SQS delivery check")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)

    for name, value in {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }.items():
        os.environ[name] = value

    # moto's server logs every request (and every duplicate's 400) through werkzeug.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with embedded_moto() as endpoint, feed_server(_rss(args.entries)) as feed_url:
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        aws.reset_clients()
        stack = provision(ResourceNames(stack="bench"))
        counter = CallCounter()
        # The adapters use these same cached clients, so hooks on them see every call they make.
        for events in (aws.client("dynamodb").meta.events, aws.client("sns").meta.events):
            events.register("before-call", counter.on_call)
            events.register("before-send", counter.on_send)

        options = IngestOptions(store_concurrency=args.concurrency, republish_after_s=300)
        ingestor = Ingestor(
            DynamoItemsTable(stack.items_table),
            SnsPublisher(stack.topic_arn),
            DynamoIngestionStore(stack.items_table),
            options=options,
            fetcher=FeedFetcher(timeout_s=10, max_bytes=20 * 1024 * 1024),
        )
        texts = [Entry(text=_review(n, "payload"), source=DIRECT_SOURCE) for n in range(args.entries)]
        delivered = [Entry(text=_review(n, "delivered"), source=DIRECT_SOURCE) for n in range(args.delivery_entries)]
        sns = aws.client("sns")
        sns.unsubscribe(SubscriptionArn=stack.subscription_arn)
        results = [
            measure("feed poll, all new", counter, stack, lambda: ingestor.ingest_feeds([feed_url])),
            measure("feed poll again (304)", counter, stack, lambda: ingestor.ingest_feeds([feed_url])),
            measure("payload, all new", counter, stack, lambda: ingestor.ingest_entries(texts)),
            measure("payload again (duplicates)", counter, stack, lambda: ingestor.ingest_entries(texts)),
        ]
        sns.subscribe(TopicArn=stack.topic_arn, Protocol="sqs", Endpoint=stack.queue_arn)
        results.append(
            measure(
                "payload, new, SQS subscribed",
                counter,
                stack,
                lambda: ingestor.ingest_entries(delivered),
                check_queue=True,
            )
        )
        if ingestor.fetcher is not None:
            ingestor.fetcher.close()

    worst = max(r["calls_per_new_item"] for r in results if r["calls_per_new_item"] is not None)
    summary = {
        "entries": args.entries,
        "store_concurrency": args.concurrency,
        "target_calls_per_new_item": TARGET_CALLS_PER_ITEM,
        "worst_calls_per_new_item": worst,
        "meets_target": worst <= TARGET_CALLS_PER_ITEM,
        "results": results,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"ingestion against a moto server: {args.entries} entries, {args.concurrency} puts and "
            f"{SnsPublisher('').concurrency} PublishBatch calls in flight"
        )
        print(f"{'scenario':<30} {'new':>5} {'dup':>5} {'calls':>6} {'calls/new':>9} {'s':>7} {'items/s':>8}")
        for r in results:
            per_item = "-" if r["calls_per_new_item"] is None else f"{r['calls_per_new_item']:.3f}"
            print(
                f"{r['scenario']:<30} {r['new']:>5} {r['duplicates']:>5} {r['api_calls']:>6} {per_item:>9} "
                f"{r['seconds']:>7.2f} {r['items_per_second']:>8}"
            )
            print(f"{'':<30} {r['calls_by_operation']}")
        verdict = "meets" if summary["meets_target"] else "MISSES"
        print(f"worst calls per new item: {worst:.3f} ({verdict} the target of {TARGET_CALLS_PER_ITEM})")
    return 0 if summary["meets_target"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
