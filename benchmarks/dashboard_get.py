"""``GET /`` of the dashboard before and after issue 22, side by side in one process, on the embedded emulator.

    uv run python -m benchmarks.dashboard_get [--items 48,2000] [--rounds 10]

A table of N analysed items (today, two sources, the three sentiments; counters rebuilt with
``sentiment_shared.dal.backfill``) in the local twin's embedded moto; then, interleaved round by round after one
warm-up call each:

* **before**: ``sentiment_shared.dal.read_model.read_summary`` and the page renderer of commit ``ce6edc1``
  (read from git: the page as it was before issue 22; skipped if git cannot show it);
* **after**: ``app.respond("GET", "/")`` with the items reader (the summary plus one page of items and
  their links), and the filtered page, the next page and the CSV download.

The issue measured 54 ms (48 items) and 199 ms (2,000 items) through the local server (median of 10);
this measures the app's work without HTTP. Medians in ms; prints the CPU and load average.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time
import types
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.host import banner

BASELINE_COMMIT = "ce6edc1"
REPO = Path(__file__).resolve().parents[1]


def _baseline_page() -> Callable[[dict[str, Any]], str] | None:
    path = "services/dashboard/src/sentiment_dashboard/render.py"
    try:
        source = subprocess.run(
            ["git", "-C", str(REPO), "show", f"{BASELINE_COMMIT}:{path}"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return None
    module = types.ModuleType("render_before")
    exec(compile(source, f"{BASELINE_COMMIT}:{path}", "exec"), module.__dict__)  # our own file at a commit
    page: Callable[[dict[str, Any]], str] = module.page
    return page


def _fill(table: str, count: int) -> None:
    from sentiment_shared import aws
    from sentiment_shared.dal.backfill import backfill
    from sentiment_shared.dynamo import MAX_WRITES_PER_BATCH, batch_write, encode

    ddb = aws.client("dynamodb")
    now = datetime.now(UTC)
    sentiments = ("positive", "negative", "neutral")
    rows: list[Any] = []
    for n in range(count):
        at = (now - timedelta(seconds=n)).isoformat()
        source = "https://news.example.com/feed.xml" if n % 3 else "/home/me/reviews.xml"
        rows.append(
            encode(
                {
                    "item_id": f"{n:064x}",
                    "text": f"Item {n}: the product was fine, the delivery slow and the manual unclear. " * 3,
                    "source": source,
                    "url": f"https://news.example.com/a/{n}",
                    "title": f"Headline number {n}",
                    "published_at": (now - timedelta(hours=n)).isoformat(),
                    "sentiment": sentiments[n % 3],
                    "score": 0.91,
                    "model_version": "distilbert/v1@bench",
                    "analyzed_at": at,
                    "analyzed_day": at[:10],
                    "status": "analyzed",
                }
            )
        )
    for start in range(0, len(rows), MAX_WRITES_PER_BATCH):
        batch_write(ddb, {table: [{"PutRequest": {"Item": r}} for r in rows[start : start + MAX_WRITES_PER_BATCH]]})
    backfill(table)


def _median_ms(samples: list[float]) -> str:
    return f"{1000 * statistics.median(samples):8.1f}"


def _measure(table: str, rounds: int, before_page: Callable[[dict[str, Any]], str] | None) -> dict[str, list[float]]:
    from sentiment_dashboard import app
    from sentiment_dashboard.items import table_items
    from sentiment_dashboard.summary import table_summary
    from sentiment_shared.dal.read_model import read_summary

    items = table_items(table)

    def summary() -> dict[str, Any]:
        return table_summary(table, lambda: None)

    calls: dict[str, Callable[[], object]] = {
        "after": lambda: app.respond("GET", "/", summary, load_items=items),
        "sentiment": lambda: app.respond("GET", "/", summary, query="sentiment=negative", load_items=items),
        "source": lambda: app.respond("GET", "/", summary, query="source=reviews.xml&page=2", load_items=items),
        "csv": lambda: app.respond("GET", "/items.csv", summary, load_items=items),
    }
    if before_page is not None:
        page = before_page
        calls["before"] = lambda: page(read_summary(table).as_dict())
    for call in calls.values():
        call()  # warm-up: the first call imports and builds clients
    times: dict[str, list[float]] = {k: [] for k in calls}
    for _ in range(rounds):
        for key, call in calls.items():
            started = time.perf_counter()
            result = call()
            times[key].append(time.perf_counter() - started)
            if isinstance(result, app.Response):
                assert result.status == 200, (key, result.body[:200])
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", default="48,2000")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()

    from sentiment_local.emulator import aws_environment, embedded_moto
    from sentiment_local.provision import create_items_table
    from sentiment_shared import aws

    before_page = _baseline_page()
    print(banner())
    print(f"median of {args.rounds} rounds, ms (app work, no HTTP); before = {BASELINE_COMMIT}'s page renderer")
    header = "| items | before GET / | after GET / | ?sentiment=negative | ?source=…&page=2 | items.csv (all) |"
    print(header)
    columns = header.split("|")[1:-1]
    print("|" + "|".join("-" * (len(c) - 1) + ":" if i else "-" * len(c) for i, c in enumerate(columns)) + "|")
    with embedded_moto() as endpoint, aws_environment(endpoint):
        for n, count in enumerate(int(x) for x in args.items.split(",")):
            table = f"bench-items-{n}"
            create_items_table(table)
            _fill(table, count)
            times = _measure(table, args.rounds, before_page)
            before = _median_ms(times["before"]) if "before" in times else "     n/a"
            print(
                f"| {count:5,} | {before:>12} | {_median_ms(times['after']):>11} | "
                f"{_median_ms(times['sentiment']):>19} | {_median_ms(times['source']):>16} | "
                f"{_median_ms(times['csv']):>15} |"
            )
            aws.client("dynamodb").delete_table(TableName=table)
    print(banner().splitlines()[1])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
