"""DynamoDB write units per analysed item, recorded on the wire, for today's write path and the new one.

Runs ``sentiment-local run`` in-process (embedded moto, the small model) on a generated feed of
``--items`` items, twice per path (the second run must ingest nothing), with every DynamoDB write
request recorded as sent (:class:`benchmarks.write_paths.WriteRecorder`: retries and refused
transactions included). Prints, per path:

* estimated write units per analysed item, all functions counted (ingestion's puts and run marker,
  the analysis's writes; GSI writes are not on the wire and are listed apart);
* the most-written item and its share of the analysed items;
* exactness: ingested = analysed, the second run ingests nothing, the dashboard's numbers
  (``sentiment_shared.dal.read_model.read_summary``) equal a count of the items.

Targets (issue 21): <= 4.0 units per item; no item written by more than 1 in 5 analysed items.

    uv run python -m benchmarks.write_units [--items 200] [--long-every 0] [--paths today,new] [--json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.host import banner
from benchmarks.local_feed import write_feed
from benchmarks.write_paths import PATHS, WriteRecorder, items_table, table_sizes
from sentiment_shared import aws
from sentiment_shared.dal.keys import is_bookkeeping
from sentiment_shared.dal.read_model import read_summary
from sentiment_shared.dynamo import plain
from sentiment_shared.schemas import SENTIMENTS
from sentiment_shared.stack import ITEMS_TABLE_HASH_KEY, ResourceNames

TARGET_UNITS_PER_ITEM = 4.0
TARGET_HOT_SHARE = 1 / 5
SHARED_MODEL = Path(__file__).resolve().parents[2] / "shared" / "models" / "sst2-distilbert-minilm"


def _truth(table: str) -> Counter[str]:
    """Sentiment → analysed items, counted from the items themselves."""
    truth: Counter[str] = Counter()
    for page in aws.client("dynamodb").get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        for row in map(plain, page.get("Items", [])):
            if not is_bookkeeping(row[ITEMS_TABLE_HASH_KEY]) and "sentiment" in row:
                truth[row["sentiment"]] += 1
    return truth


def measure(path: str, feed: Path, model_dir: Path, state_dir: Path) -> dict[str, Any]:
    from sentiment_analysis.handler import build_handler, models
    from sentiment_local import pipeline
    from sentiment_local.emulator import aws_environment, embedded_moto

    table_name = ResourceNames(stack="local").items_table
    recorder = WriteRecorder()
    with embedded_moto() as url, aws_environment(url), recorder.installed():
        # moto's backends are per process: start each path on an empty emulator
        urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"), timeout=10).close()
        handler = build_handler(models, table=items_table(path, table_name))
        options = pipeline.RunOptions(model_dir=model_dir, feed=str(feed), endpoint_url=url, state_dir=state_dir)
        first = pipeline.run(options, analysis_handler=handler)
        sizes = table_sizes(table_name)
        summary = read_summary(table_name)
        truth = _truth(table_name)
        first_run = WriteRecorder(writes=list(recorder.writes), requests=Counter(recorder.requests))
        second = pipeline.run(options, analysis_handler=handler)
        second_run_writes = len(recorder.writes) - len(first_run.writes)
    analysed = first.analyzed
    per_key = first_run.per_key()
    hottest, hottest_writes = per_key.most_common(1)[0]
    units = first_run.units(sizes)
    return {
        "path": path,
        "items": first.ingested,
        "analysed": analysed,
        "second_run_ingested": second.ingested,
        "write_requests": dict(first_run.requests),
        "write_actions": len(first_run.writes),
        "second_run_write_actions": second_run_writes,
        "failed": first.failed,
        "dlq_depth": first.dlq_depth,
        "units": units,
        "units_per_item": round(units / max(analysed, 1), 2),
        "gsi_writes_per_item": 3,  # pending index: ingest put + analysis removal; recent index: analysis put
        "hottest_item": hottest,
        "hottest_writes": hottest_writes,
        "hottest_share": round(hottest_writes / max(analysed, 1), 3),
        "dashboard": summary.counts.as_dict(),
        "items_say": {s: truth.get(s, 0) for s in SENTIMENTS},
        "exact": (
            first.ingested == analysed
            and second.ingested == 0
            and summary.counts.as_dict() == {s: truth.get(s, 0) for s in SENTIMENTS}
            and summary.analyzed == analysed
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--long-every", type=int, default=0, help="one in N items 3,000-6,000 chars (0: none)")
    parser.add_argument("--paths", default=",".join(PATHS))
    parser.add_argument("--model-dir", type=Path, default=SHARED_MODEL)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        feed = write_feed(Path(tmp) / "feed.xml", args.items, long_every=args.long_every)
        for path in args.paths.split(","):
            rows.append(measure(path, feed, args.model_dir, Path(tmp) / f"state-{path}"))
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(banner())
    print(f"{args.items} items, one in {args.long_every or 'no'} long; write units estimated from requests as sent")
    print(
        f"{'path':<6} {'analysed':>8} {'requests':>38} {'units':>7} {'per item':>8} "
        f"{'hottest item (writes, share)':>44} {'2nd run':>7} {'exact':>5}"
    )
    for r in rows:
        requests = ", ".join(f"{k} {v}" for k, v in sorted(r["write_requests"].items()))
        print(
            f"{r['path']:<6} {r['analysed']:>8} {requests:>38} {r['units']:>7.0f} {r['units_per_item']:>8.2f} "
            f"{r['hottest_item'][:30]:>30} ({r['hottest_writes']}, {r['hottest_share']:.0%}) "
            f"{r['second_run_ingested']:>7} {r['exact']!s:>5}"
        )
    print(
        f"targets: <= {TARGET_UNITS_PER_ITEM} units per item, hottest share <= {TARGET_HOT_SHARE:.0%}; "
        "GSI writes (not on the wire, either path): ~3 per item (pending index in and out, recent index)"
    )


if __name__ == "__main__":
    main()
