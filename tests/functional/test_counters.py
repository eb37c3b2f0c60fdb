"""The dashboard's counters against moto: counted once per item, under redelivery, re-analysis and concurrency.

Concurrent tests use the ``dynamodb_isolation`` fixture (tests/conftest.py): moto's transactions are not
isolated between threads, DynamoDB's are, and a colliding one is cancelled with ``TransactionConflict``.
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sentiment_local.provision import StackResources, provision
from sentiment_shared import aws
from sentiment_shared.adapters import DynamoItemsTable
from sentiment_shared.dal.backfill import backfill
from sentiment_shared.dal.keys import TOTAL_COUNTER_ID, day_counter_id, is_bookkeeping, shard_ids
from sentiment_shared.dal.read_model import SUMMARY_DAYS, Counts, Summary, read_summary
from sentiment_shared.dynamo import plain
from sentiment_shared.ports import ItemNotFoundError, SentimentWrite
from sentiment_shared.schemas import Item, SentimentResult

pytestmark = pytest.mark.functional

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@pytest.fixture
def stack(moto_aws: None) -> StackResources:
    return provision()


def _result(sentiment: str = "positive", *, at: datetime = NOW, model: str = "m@1") -> SentimentResult:
    return SentimentResult(sentiment=sentiment, score=0.9, label=sentiment.upper(), model_version=model, analyzed_at=at)  # type: ignore[arg-type]


def _summary(stack: StackResources) -> Summary:
    return read_summary(stack.items_table, now=NOW)


def test_first_write_counts_total_day_and_source_and_a_redelivery_counts_nothing(stack: StackResources) -> None:
    table = DynamoItemsTable(stack.items_table)
    for item_id in ("a", "b", "c"):
        table.create(Item(item_id=item_id, text=f"text {item_id}", source="feed-1"))
    # When a is written, then redelivered (same result) and re-analyzed (another sentiment, another day)
    assert table.set_sentiment("a", _result("positive"), source="feed-1") is True
    assert table.set_sentiment("a", _result("positive"), source="feed-1") is False
    assert (
        table.set_sentiment("a", _result("negative", at=NOW + timedelta(days=1), model="m@2"), source="feed-1") is False
    )
    assert table.set_sentiment("b", _result("negative", at=NOW + timedelta(minutes=1)), source="feed-1") is True
    # Then a counts once, its first result stays, and c is still pending
    summary = _summary(stack)
    assert (summary.total, summary.analyzed, summary.pending) == (3, 2, 1)
    assert summary.counts == Counts(positive=1, negative=1, neutral=0)
    assert summary.days[-1] == ("2026-11-29", Counts(positive=1, negative=1))
    assert len(summary.days) == SUMMARY_DAYS
    assert [s.as_dict() for s in summary.sources] == [
        {"source": "feed-1", "total": 2, "positive": 1, "negative": 1, "neutral": 0}
    ]
    stored = table.get("a")
    assert stored is not None
    assert (stored.sentiment, stored.model_version) == ("positive", "m@1")
    assert [r.item_id for r in summary.recent] == ["b", "a"]


def test_a_missing_item_is_not_created_and_not_counted(stack: StackResources) -> None:
    table = DynamoItemsTable(stack.items_table)
    with pytest.raises(ItemNotFoundError, match="ghost"):
        table.set_sentiment("ghost", _result())
    assert table.get("ghost") is None
    assert _summary(stack).analyzed == 0


def test_concurrent_first_writes_of_one_item_count_once(stack: StackResources, dynamodb_isolation: Any) -> None:
    table = DynamoItemsTable(stack.items_table)
    table.create(Item(item_id="hot", text="contested", source="s"))
    writers = 8
    barrier = threading.Barrier(writers)
    outcomes: list[bool] = []
    errors: list[BaseException] = []

    def write(n: int) -> None:
        aws_table = DynamoItemsTable(stack.items_table, client=aws.client("dynamodb"))
        barrier.wait()
        try:
            outcomes.append(aws_table.set_sentiment("hot", _result(("positive", "negative")[n % 2]), source="s"))
        except Exception as exc:  # noqa: BLE001 - collected, then asserted empty
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(outcomes) == [False] * (writers - 1) + [True]
    summary = _summary(stack)
    assert summary.analyzed == 1
    stored = table.get("hot")
    assert stored is not None
    assert summary.counts.as_dict()[stored.sentiment or ""] == 1


def test_concurrent_first_writes_of_many_items_conflict_on_the_counters_and_are_retried_exactly(
    stack: StackResources, dynamodb_isolation: Any
) -> None:
    table = DynamoItemsTable(stack.items_table)
    ids = [f"i-{n}" for n in range(24)]
    for item_id in ids:
        table.create(Item(item_id=item_id, text=item_id, source=f"src-{int(item_id[2:]) % 3}"))
    sentiments = ("positive", "negative", "neutral")
    errors: list[BaseException] = []

    def writer(offset: int) -> None:
        # Two writers per item (a duplicate delivery racing the original), in different orders.
        mine = DynamoItemsTable(stack.items_table, client=aws.client("dynamodb"), conflict_attempts=50)
        for item_id in ids[offset:] + ids[:offset]:
            n = int(item_id[2:])
            try:
                mine.set_sentiment(item_id, _result(sentiments[n % 3]), source=f"src-{n % 3}")
            except Exception as exc:  # noqa: BLE001 - collected, then asserted empty
                errors.append(exc)

    threads = [threading.Thread(target=writer, args=(offset,)) for offset in (0, 12, 6, 18)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert dynamodb_isolation.cancelled > 0, "the emulation produced no conflict: the retry path went untested"
    summary = _summary(stack)
    assert summary.counts == Counts(positive=8, negative=8, neutral=8)
    assert summary.pending == 0
    assert sorted((s.source, s.counts.total) for s in summary.sources) == [("src-0", 8), ("src-1", 8), ("src-2", 8)]


def test_backfill_recomputes_the_counters_from_the_items(stack: StackResources) -> None:
    table = DynamoItemsTable(stack.items_table)
    ddb = aws.client("dynamodb")
    source = {n: "feed" if n % 2 else "direct" for n in range(6)}
    for n in range(6):
        table.create(Item(item_id=f"b-{n}", text="t", source=source[n]))
    for n in range(5):
        table.set_sentiment(
            f"b-{n}", _result(("positive", "negative")[n % 2], at=NOW - timedelta(days=n)), source=source[n]
        )
    truth = _summary(stack)
    # Given counters that are wrong (lost, and one stale day) and an item analyzed before the recent index
    for counter_id in shard_ids(TOTAL_COUNTER_ID):
        ddb.delete_item(TableName=stack.items_table, Key={"item_id": {"S": counter_id}})
    ddb.put_item(
        TableName=stack.items_table,
        Item={"item_id": {"S": day_counter_id("2026-01-01")}, "positive": {"N": "7"}},
    )
    ddb.update_item(TableName=stack.items_table, Key={"item_id": {"S": "b-0"}}, UpdateExpression="REMOVE analyzed_day")
    assert _summary(stack).analyzed == 0
    # When the backfill runs
    report = backfill(stack.items_table)
    # Then every counter is what the items say
    assert (report.items, report.analyzed, report.indexed) == (6, 5, 1)
    assert report.removed >= 1, "the stale day counter"
    again = _summary(stack)
    assert again.as_dict() | {"generated_at": ""} == truth.as_dict() | {"generated_at": ""}
    assert (again.total, again.pending) == (6, 1)
    # every counter now lives in shard 0, the other shards are gone
    ids = [plain(i)["item_id"] for i in ddb.scan(TableName=stack.items_table)["Items"]]
    assert {item_id.rpartition("#")[2] for item_id in ids if is_bookkeeping(item_id)} == {"0"}


def test_read_summary_costs_a_handful_of_calls(stack: StackResources) -> None:
    table = DynamoItemsTable(stack.items_table)
    for n in range(30):
        table.create(Item(item_id=f"r-{n}", text="t", source=f"s{n % 4}"))
        table.set_sentiment(f"r-{n}", _result(at=NOW - timedelta(minutes=n)), source=f"s{n % 4}")
    calls: list[str] = []
    ddb = aws.client("dynamodb")
    ddb.meta.events.register("before-call.dynamodb.*", lambda model, **_: calls.append(model.name))
    summary = read_summary(stack.items_table, now=NOW, client=ddb)
    assert summary.analyzed == 30
    assert [r.item_id for r in summary.recent][:3] == ["r-0", "r-1", "r-2"]
    # 9 ids per counter (8 shards and the unsharded layout): total + 30 days in 3 calls, 4 sources in 1
    assert calls == ["BatchGetItem"] * 4 + ["Query", "Query"]


def test_a_message_naming_another_source_counts_the_items_own_source(stack: StackResources) -> None:
    table = DynamoItemsTable(stack.items_table)
    table.create(Item(item_id="s1", text="t", source="https://feeds.example/rss"))
    assert table.set_sentiment("s1", _result(), source="direct") is True
    assert [(s.source, s.counts.total) for s in _summary(stack).sources] == [("https://feeds.example/rss", 1)]


def _writes_recorded(ddb: Any) -> list[dict[str, Any]]:
    """Every TransactWriteItems call's parameters, as sent."""
    sent: list[dict[str, Any]] = []
    event = "before-parameter-build.dynamodb.TransactWriteItems"
    ddb.meta.events.register(event, lambda params, **_: sent.append(params))
    return sent


def test_a_batch_is_one_transaction_with_its_counts_and_each_refused_write_is_settled_alone(
    stack: StackResources,
) -> None:
    ddb = aws.client("dynamodb")
    table = DynamoItemsTable(stack.items_table, client=ddb)
    for n in range(8):
        table.create(Item(item_id=f"k-{n}", text=f"t{n}", source=f"src-{n % 2}"))
    assert table.set_sentiment("k-7", _result("neutral"), source="src-1") is True  # analyzed before
    sent = _writes_recorded(ddb)
    writes = [SentimentWrite(f"k-{n}", _result(("positive", "negative")[n % 2]), f"src-{n % 2}") for n in range(8)]
    writes.insert(3, SentimentWrite("ghost", _result()))
    writes.append(SentimentWrite("k-0", _result("negative"), "src-0"))  # the same item twice in one batch
    outcomes = table.set_sentiments(writes)
    assert [o if isinstance(o, bool) else type(o).__name__ for o in outcomes] == [
        True, True, True, "ItemNotFoundError", True, True, True, True, False, False,
    ]  # fmt: skip
    # One transaction, refused (ghost missing, k-7 analyzed), then sent once more without them
    assert len(sent) == 2
    items_sent = [[a["Update"]["Key"]["item_id"]["S"] for a in p["TransactItems"]] for p in sent]
    assert [i for i in items_sent[1] if not is_bookkeeping(i)] == [f"k-{n}" for n in range(7)]
    counter_actions = [i for i in items_sent[1] if is_bookkeeping(i)]
    assert len(counter_actions) == 1 + 1 + 2, "total, one day, two sources: per batch, not per item"
    summary = _summary(stack)
    assert summary.counts == Counts(positive=4, negative=3, neutral=1)
    assert sorted((s.source, s.counts.total) for s in summary.sources) == [("src-0", 4), ("src-1", 4)]


def test_no_counter_item_takes_more_than_a_small_share_of_the_writes(stack: StackResources) -> None:
    ddb = aws.client("dynamodb")
    table = DynamoItemsTable(stack.items_table, client=ddb)
    ids = [f"h-{n}" for n in range(200)]
    for item_id in ids:
        table.create(Item(item_id=item_id, text=item_id, source="one-feed"))
    sent = _writes_recorded(ddb)
    for start in range(0, 200, 10):  # SQS batches of 10
        table.set_sentiments([SentimentWrite(i, _result(), "one-feed") for i in ids[start : start + 10]])
    for item_id in ids[:40]:  # and batches of one
        table.set_sentiments([SentimentWrite(item_id, _result(), "one-feed")])
    per_item = Counter(a["Update"]["Key"]["item_id"]["S"] for p in sent for a in p["TransactItems"])
    hottest, writes = per_item.most_common(1)[0]
    assert writes <= 200 / 5, f"{hottest} written {writes} times for 200 analysed items"
    assert _summary(stack).analyzed == 200
