"""Load rehearsal of the analysis write path: N concurrent invocations, transaction conflicts modelled.

A moto server (the embedded emulator, patched as ``sentiment-local`` runs it) gets DynamoDB's transaction
isolation at the item level: a ``TransactWriteItems`` that touches an item another transaction holds is
cancelled with ``TransactionConflict`` on that action (as DynamoDB does), and each transaction holds its
items for ``--hold-ms`` (DynamoDB's commit is not instant; moto's is) while the others run. N threads play
N concurrent analysis invocations: each takes SQS-sized batches of 10 records from one shared queue of
``--items`` stored items and writes their results with the path under test (its own client, as separate
Lambda containers have), exactly as the handler does (``set_sentiments``; inference left out: this
measures the writes). Prints, per path and N: items/s, transactions sent, conflicts (cancelled by the
emulation), retries the adapter made, records failed, and whether the counters equal the items.

* ``today``: one transaction per record, item + ``counter#all`` + day + source counters (unsharded);
* ``new``: one transaction per batch, counter deltas on one of 8 random shards.

    uv run python -m benchmarks.write_concurrency [--items 600] [--workers 1,2,4,8,16] [--hold-ms 10]
"""

from __future__ import annotations

import argparse
import json
import random
import threading
import time
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from benchmarks.host import banner
from benchmarks.write_paths import PATHS, items_table
from sentiment_shared import aws
from sentiment_shared.dal.read_model import read_summary
from sentiment_shared.dynamo import MAX_WRITES_PER_BATCH, batch_write, encode
from sentiment_shared.ports import SentimentWrite
from sentiment_shared.schemas import SENTIMENTS, Item, SentimentResult
from sentiment_shared.stack import ITEMS_TABLE_HASH_KEY

BATCH = 10


@dataclass
class ItemLocks:
    """DynamoDB's item-level transaction isolation on moto: in-flight transactions hold their items."""

    hold_s: float
    held: set[tuple[str, str]] = field(default_factory=set)
    sent: int = 0
    cancelled: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    apply: threading.Lock = field(default_factory=threading.Lock)

    def install(self) -> Any:
        from moto.dynamodb.exceptions import TransactionCanceledException
        from moto.dynamodb.models import DynamoDBBackend

        real = DynamoDBBackend.transact_write_items
        locks = self

        def isolated(backend: Any, transact_items: list[dict[str, Any]]) -> None:
            keys = []
            for action in transact_items:
                op = next(iter(action.values()))
                key = (op.get("Item") or op.get("Key", {})).get(ITEMS_TABLE_HASH_KEY, {})
                keys.append((op["TableName"], json.dumps(key, sort_keys=True)))
            with locks.lock:
                locks.sent += 1
                busy = [k in locks.held for k in keys]
                if any(busy):
                    locks.cancelled += 1
                    raise TransactionCanceledException(
                        [
                            ("TransactionConflict", "Transaction is ongoing for the item", None)
                            if b
                            else ("None", None, None)
                            for b in busy
                        ]
                    )
                locks.held.update(keys)
            try:
                time.sleep(locks.hold_s)  # the transaction is in flight: its items are held
                with locks.apply:  # moto's backend is not thread-safe
                    real(backend, transact_items)
            finally:
                with locks.lock:
                    locks.held.difference_update(keys)

        DynamoDBBackend.transact_write_items = isolated  # type: ignore[method-assign]
        return real


def _seed(table_name: str, n: int, sources: int) -> list[Item]:
    ddb = aws.client("dynamodb")
    items = [Item(item_id=f"item-{i}", text=f"review {i}", source=f"feed-{i % sources}") for i in range(n)]
    rows = [{ITEMS_TABLE_HASH_KEY: i.item_id, "text": i.text, "source": i.source, "status": "published"} for i in items]
    for start in range(0, n, MAX_WRITES_PER_BATCH):
        chunk = rows[start : start + MAX_WRITES_PER_BATCH]
        batch_write(ddb, {table_name: [{"PutRequest": {"Item": encode(row)}} for row in chunk]})
    return items


def rehearse(path: str, workers: int, n_items: int, hold_s: float, sources: int) -> dict[str, Any]:
    from sentiment_local.provision import provision

    url = aws.client("dynamodb").meta.endpoint_url
    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"), timeout=10).close()
    aws.reset_clients()
    stack = provision()
    items = _seed(stack.items_table, n_items, sources)
    queue: deque[list[Item]] = deque(items[i : i + BATCH] for i in range(0, n_items, BATCH))
    locks = ItemLocks(hold_s)
    real = locks.install()
    now = datetime.now(UTC)
    retries = failed = written = 0
    tally = threading.Lock()

    def invocation() -> None:
        nonlocal retries, failed, written
        table = items_table(path, stack.items_table, client=aws.client("dynamodb"), conflict_attempts=12)
        rng = random.Random()
        while True:
            try:
                batch = queue.popleft()
            except IndexError:
                break
            writes = [
                SentimentWrite(i.item_id, SentimentResult(sentiment=rng.choice(SENTIMENTS), score=0.9, label="X",
                                                          model_version="m", analyzed_at=now), i.source)
                for i in batch
            ]  # fmt: skip
            outcomes = table.set_sentiments(writes)
            with tally:
                failed += sum(isinstance(o, Exception) for o in outcomes)
                written += sum(o is True for o in outcomes)
        with tally:
            retries += table.conflicts

    threads = [threading.Thread(target=invocation) for _ in range(workers)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    from moto.dynamodb.models import DynamoDBBackend

    DynamoDBBackend.transact_write_items = real  # type: ignore[method-assign]
    summary = read_summary(stack.items_table)
    return {
        "path": path,
        "workers": workers,
        "items": n_items,
        "items_per_s": round(written / elapsed, 1),
        "transactions": locks.sent,
        "conflicts": locks.cancelled,
        "retries": retries,
        "failed": failed,
        "exact": summary.analyzed == written and failed + written == n_items,
        "seconds": round(elapsed, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=600)
    parser.add_argument("--workers", default="1,2,4,8,16")
    parser.add_argument("--hold-ms", type=float, default=10.0, help="how long a transaction holds its items")
    parser.add_argument("--sources", type=int, default=1, help="feeds the items come from (1: one hot source)")
    parser.add_argument("--paths", default=",".join(PATHS))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from sentiment_local.emulator import aws_environment, embedded_moto

    rows = []
    print(banner(), flush=True)
    with embedded_moto() as url, aws_environment(url):
        for workers in (int(w) for w in args.workers.split(",")):
            for path in args.paths.split(","):
                row = rehearse(path, workers, args.items, args.hold_ms / 1000, args.sources)
                rows.append(row)
                if not args.json:
                    print(json.dumps(row), flush=True)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(banner())
    print(
        f"{args.items} items in batches of {BATCH}, {args.sources} source(s), transactions hold items {args.hold_ms} ms"
    )
    head = f"{'N':>3} {'path':<6} {'items/s':>8} {'transactions':>12} {'conflicts':>9} {'retries':>7} {'failed':>6}"
    print(f"{head} {'exact':>5}")
    for r in rows:
        print(
            f"{r['workers']:>3} {r['path']:<6} {r['items_per_s']:>8.1f} {r['transactions']:>12} {r['conflicts']:>9} "
            f"{r['retries']:>7} {r['failed']:>6} {r['exact']!s:>5}"
        )


if __name__ == "__main__":
    main()
