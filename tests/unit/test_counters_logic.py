"""The analysis core's stores count each item once: redelivery, duplicates, concurrent first writes, re-analysis.

Runs on the in-memory table (whose ``set_sentiment`` has DynamoDB's contract: serializable, first write
wins); the DynamoDB transaction itself is tested against moto in ``tests/functional/test_counters.py``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence

import pytest
from fakes import InMemoryItemsTable

from sentiment_analysis import core
from sentiment_analysis.labels import Prediction
from sentiment_shared.dal.keys import (
    COUNTER_SHARDS,
    TOTAL_COUNTER_ID,
    day_counter_id,
    is_bookkeeping,
    shard_id,
    source_counter_id,
)
from sentiment_shared.dal.read_model import Counts
from sentiment_shared.dal.writes import Counted, counter_deltas
from sentiment_shared.dynamo import plain
from sentiment_shared.schemas import SENTIMENTS, Item

pytestmark = pytest.mark.unit


class Fixed:
    def __init__(self, sentiment: str) -> None:
        self.sentiment = sentiment

    def classify(self, texts: Sequence[str]) -> list[Prediction]:
        return [Prediction(self.sentiment, 0.9, self.sentiment.upper()) for _ in texts]  # type: ignore[arg-type]


def _model(sentiment: str, version: str = "m@1") -> core.LoadedModel:
    return core.LoadedModel(classifier=Fixed(sentiment), model_version=version, precision="fp32")


def _records(ids: Sequence[str], prefix: str = "m") -> list[tuple[str, str | None]]:
    return [(f"{prefix}-{i}", json.dumps({"item_id": i, "text": f"text {i}", "source": "feed"})) for i in ids]


@pytest.fixture
def table() -> InMemoryItemsTable:
    items = InMemoryItemsTable()
    for n in range(5):
        items.create(Item(item_id=f"i{n}", text=f"text i{n}", source="feed"))
    return items


def test_a_redelivered_batch_and_a_duplicate_message_count_once(table: InMemoryItemsTable) -> None:
    ids = ["i0", "i1", "i2"]
    batch = core.analyze_batch([*_records(ids), ("dup", _records(["i0"])[0][1])], _model("positive"))
    for record_id in batch.results:
        batch.store(record_id, table)
    redelivered = core.analyze_batch(_records(ids), _model("positive"))
    for record_id in redelivered.results:
        redelivered.store(record_id, table)  # succeeds (the record is done) but counts nothing
    assert table.counts == {"positive": 3}
    assert table.counts_by_source == {("feed", "positive"): 3}


def test_a_re_analysis_with_another_model_keeps_the_first_result_and_count(table: InMemoryItemsTable) -> None:
    first = core.analyze_batch(_records(["i0"]), _model("positive", "m@1"))
    first.store("m-i0", table)
    again = core.analyze_batch(_records(["i0"]), _model("negative", "m@2"))
    again.store("m-i0", table)
    assert table.counts == {"positive": 1}
    assert (table.items["i0"].sentiment, table.items["i0"].model_version) == ("positive", "m@1")


def test_concurrent_first_writes_count_once(table: InMemoryItemsTable) -> None:
    writers = 16
    barrier = threading.Barrier(writers)
    won: list[bool] = []

    def write(n: int) -> None:
        batch = core.analyze_batch(_records(["i4"], prefix=f"w{n}"), _model(SENTIMENTS[n % 3]))
        _, result = batch.results[f"w{n}-i4"]
        barrier.wait()
        won.append(table.set_sentiment("i4", result, source="feed"))

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(won) == [False] * (writers - 1) + [True]
    assert sum(table.counts.values()) == 1
    assert table.counts[table.items["i4"].sentiment or ""] == 1


def test_counter_keys_are_stable_and_bookkeeping_is_recognised() -> None:
    assert source_counter_id("https://example.com/feed") == source_counter_id("https://example.com/feed")
    assert source_counter_id("a") != source_counter_id("b")
    assert len(source_counter_id("x" * 1024)) == len("counter#source#") + 32
    assert is_bookkeeping(TOTAL_COUNTER_ID)
    assert is_bookkeeping(day_counter_id("2026-11-29"))
    assert not is_bookkeeping("3f2a" * 16)
    assert is_bookkeeping(shard_id(TOTAL_COUNTER_ID, 3))
    with pytest.raises(ValueError, match="unknown sentiment"):
        counter_deltas("t", [Counted("ecstatic", "2026-11-29", "s")], 0)


def test_a_batch_writes_one_action_per_counter_on_one_shard_whatever_its_size() -> None:
    counted = [Counted(("positive", "negative")[n % 2], "2026-11-29", f"s{n % 2}") for n in range(10)]
    counted.append(Counted("neutral", "2026-11-30", "s0"))
    actions = counter_deltas("t", counted, 5)
    keys = [a["Update"]["Key"]["item_id"]["S"] for a in actions]
    assert keys == [
        "counter#all#5",
        "counter#day#2026-11-29#5",
        "counter#day#2026-11-30#5",
        shard_id(source_counter_id("s0"), 5),
        shard_id(source_counter_id("s1"), 5),
    ]
    total = actions[0]["Update"]
    assert total["UpdateExpression"] == (
        "ADD #total :total, #positive :positive, #negative :negative, #neutral :neutral, #sources :sources"
    )
    assert total["ExpressionAttributeValues"][":total"] == {"N": "11"}
    assert total["ExpressionAttributeValues"][":positive"] == {"N": "5"}
    assert total["ExpressionAttributeValues"][":neutral"] == {"N": "1"}
    day = actions[2]["Update"]
    assert day["UpdateExpression"] == "ADD #total :total, #neutral :neutral SET #date = :date"
    assert counter_deltas("t", [], 0) == []


def test_a_reader_sums_every_shard_and_the_unsharded_counter() -> None:
    raw = {
        TOTAL_COUNTER_ID: {"positive": {"N": "2"}},
        shard_id(TOTAL_COUNTER_ID, 0): {"positive": {"N": "1"}, "neutral": {"N": "4"}},
        shard_id(TOTAL_COUNTER_ID, COUNTER_SHARDS - 1): {"negative": {"N": "3"}},
        shard_id(TOTAL_COUNTER_ID, COUNTER_SHARDS): {"negative": {"N": "100"}},
    }
    found = {counter_id: plain(item) for counter_id, item in raw.items()}  # as the read model decodes them
    assert Counts.summed(found, TOTAL_COUNTER_ID) == Counts(3, 3, 4)
