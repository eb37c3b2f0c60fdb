"""The ingestion core on in-memory fakes: counts, dedup, publish failures, the pending sweep, feeds."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fakes import (
    AtomicTable,
    BrokenTable,
    InMemoryIngestionStore,
    InMemoryItemsTable,
    InMemoryPublisher,
    RaisingPublisher,
)

from sentiment_ingestion.core import IngestOptions, Ingestor, StoreError
from sentiment_ingestion.entries import Entry
from sentiment_ingestion.feeds import FeedFetcher, FeedState
from sentiment_ingestion.normalize import item_id_for
from sentiment_shared.schemas import Item

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def _ingestor(
    table: InMemoryItemsTable | None = None,
    publisher: InMemoryPublisher | None = None,
    store: InMemoryIngestionStore | None = None,
    clock: Clock | None = None,
    fetcher: FeedFetcher | None = None,
    **options: int,
) -> Ingestor:
    return Ingestor(
        table if table is not None else InMemoryItemsTable(),
        publisher if publisher is not None else InMemoryPublisher(),
        store if store is not None else InMemoryIngestionStore(),
        options=IngestOptions(**({"republish_after_s": 300, "store_concurrency": 1} | options)),
        fetcher=fetcher,
        clock=clock or Clock(),
    )


def _texts(*texts: str | None) -> list[Entry]:
    return [Entry(text=t, source="direct") for t in texts]


def test_new_items_are_stored_pending_and_published_with_one_run_marker() -> None:
    # Given an empty table
    table, publisher, store = InMemoryItemsTable(), InMemoryPublisher(), InMemoryIngestionStore()
    # When two texts are ingested
    report = _ingestor(table, publisher, store).ingest_entries(_texts("I love it", "<p>I <b>hate</b> it</p>"))
    # Then both are stored (plain text), both published, and one marker records the run with no failures
    assert (report.received, report.stored, report.duplicates, report.published, report.failed) == (2, 2, 0, 2, 0)
    assert sorted(i.text for i in table.items.values()) == ["I hate it", "I love it"]
    assert all(i.status == "pending" and i.run_id == report.run_id for i in table.items.values())
    assert {m.item_id for m in publisher.messages} == set(table.items)
    assert store.runs == {report.run_id: frozenset()}
    assert report.as_response() == {
        "statusCode": 200,
        "received": 2,
        "stored": 2,
        "duplicates": 0,
        "published": 2,
        "failed": 0,
        "skipped": 0,
        "truncated": 0,
        "republished": 0,
    }


def test_duplicates_within_a_payload_and_across_runs_are_counted_and_never_republished() -> None:
    table, publisher = InMemoryItemsTable(), InMemoryPublisher()
    ingestor = _ingestor(table, publisher)
    # Given a payload repeating a text (also after normalization: HTML and spacing differ)
    first = ingestor.ingest_entries(_texts("Great phone", "Great phone", "<i>Great</i>   phone", "Bad phone"))
    # When the same texts arrive again in a later run
    second = ingestor.ingest_entries(_texts("Bad phone", "Great phone"))
    # Then each text is stored and published exactly once
    assert (first.stored, first.duplicates, first.published) == (2, 2, 2)
    assert (second.stored, second.duplicates, second.published) == (0, 2, 0)
    assert len(publisher.messages) == 2
    assert len(table.items) == 2


def test_payload_ids_not_texts_decide_identity() -> None:
    table = InMemoryItemsTable()
    ingestor = _ingestor(table)
    entries = [
        Entry(text="same words", source="api", key="1"),
        Entry(text="same words", source="api", key="2"),  # another review with the same words
        Entry(text="edited words", source="api", key="1"),  # an edit of review 1: still review 1
        Entry(text="same words", source="other-api", key="1"),  # another source's id 1
    ]
    report = ingestor.ingest_entries(entries)
    assert (report.stored, report.duplicates) == (3, 1)


def test_entries_without_usable_text_are_skipped() -> None:
    report = _ingestor().ingest_entries(_texts("ok", "", "   ", "<img src='a.png'>", None))
    assert (report.received, report.stored, report.skipped) == (5, 1, 4)


def test_long_text_is_stored_truncated_and_flagged() -> None:
    table = InMemoryItemsTable()
    report = _ingestor(table, max_text_chars=100).ingest_entries(_texts("word " * 100))
    (item,) = table.items.values()
    assert report.truncated == 1
    assert item.text_truncated
    assert len(item.text) <= 100


def test_publish_failure_leaves_item_pending_and_a_later_run_republishes_it_once() -> None:
    # Given a publisher that fails one item
    table, store, clock = InMemoryItemsTable(), InMemoryIngestionStore(), Clock()
    bad = item_id_for("direct", "doomed", kind="text")
    failing = InMemoryPublisher(fail_ids={bad})
    ingestor = _ingestor(table, failing, store, clock)
    # When it is ingested
    first = ingestor.ingest_entries(_texts("doomed", "fine"))
    # Then it counts as failed, stays pending, and the marker names it
    assert (first.stored, first.published, first.failed) == (2, 1, 1)
    assert first.failed_ids == {bad: "injected"}
    assert store.runs[first.run_id] == frozenset({bad})
    # And a run before republish_after_s leaves it alone
    failing.fail_ids.clear()
    clock.advance(60)
    assert ingestor.ingest_entries(_texts("later")).republished == 0
    # When a run comes after republish_after_s
    clock.advance(300)
    third = ingestor.ingest_entries(_texts("even later"))
    # Then only the failed item is re-published (the published ones are not), and then marked published
    assert third.republished == 1
    assert [m.item_id for m in failing.messages].count(bad) == 1
    assert table.items[bad].status == "published"
    # And a further run re-publishes nothing
    clock.advance(600)
    assert ingestor.ingest_entries(_texts("last")).republished == 0
    assert len(failing.messages) == len({m.item_id for m in failing.messages})


def test_run_that_died_before_its_marker_has_all_its_items_republished() -> None:
    # Given items stored by a run that never got to publish (no marker), and one by a run that did
    table, publisher, store, clock = InMemoryItemsTable(), InMemoryPublisher(), InMemoryIngestionStore(), Clock()
    old = clock() - timedelta(hours=1)
    for item_id, run_id in (("a" * 64, "dead-run"), ("b" * 64, "dead-run"), ("c" * 64, "done-run")):
        table.create(Item(item_id=item_id, text=f"text {item_id[0]}", ingested_at=old, run_id=run_id))
    table.create(Item(item_id="d" * 64, text="no run id (created elsewhere)", ingested_at=old))
    store.record_run("done-run", [])
    # When the next run sweeps
    report = _ingestor(table, publisher, store, clock).ingest_entries(_texts("new"))
    # Then the dead run's items and the run-less item are re-published; the finished run's item is not,
    # but it leaves the pending index so it stops taking a place in later sweeps
    republished = {m.item_id for m in publisher.messages} - {item_id_for("direct", "new", kind="text")}
    assert republished == {"a" * 64, "b" * 64, "d" * 64}
    assert report.republished == 3
    assert all(table.items[i].status == "published" for i in ("a" * 64, "b" * 64, "c" * 64, "d" * 64))


def test_sweep_is_bounded_per_run_oldest_first() -> None:
    table, publisher, clock = InMemoryItemsTable(), InMemoryPublisher(), Clock()
    for n in range(7):
        table.create(Item(item_id=f"{n:064x}", text=f"t{n}", ingested_at=clock() - timedelta(hours=2, minutes=-n)))
    ingestor = _ingestor(table, publisher, clock=clock, republish_limit=3)
    assert ingestor.ingest_entries(_texts("x")).republished == 3
    assert [m.item_id for m in publisher.messages[:3]] == [f"{n:064x}" for n in range(3)]
    assert ingestor.ingest_entries(_texts("y")).republished == 3
    assert ingestor.ingest_entries(_texts("z")).republished == 1


def test_publisher_exception_leaves_its_items_pending_and_named_in_the_marker() -> None:
    table, store, clock = InMemoryItemsTable(), InMemoryIngestionStore(), Clock()
    report = _ingestor(table, RaisingPublisher(), store, clock).ingest_entries(_texts("a", "b"))
    assert (report.stored, report.published, report.failed) == (2, 0, 2)
    assert store.runs == {report.run_id: frozenset(table.items)}
    assert set(report.failed_ids.values()) == {"publisher error: SNS client exploded"}
    # A later run with a working publisher recovers both
    clock.advance(301)
    publisher = InMemoryPublisher()
    assert _ingestor(table, publisher, store, clock).ingest_entries(_texts("c")).republished == 2


def test_store_failure_publishes_what_was_stored_then_raises_for_a_retry() -> None:
    table, publisher = BrokenTable({"unlucky"}), InMemoryPublisher()
    with pytest.raises(StoreError, match="1 item") as info:
        _ingestor(table, publisher).ingest_entries(_texts("lucky", "unlucky"))
    report = info.value.report
    assert (report.received, report.stored, report.published, len(report.store_errors)) == (2, 1, 1, 1)
    assert [m.text for m in publisher.messages] == ["lucky"]
    # A retry of the same payload (Lambda's) stores the rest and does not re-publish the first
    table.broken_texts.clear()
    retry = _ingestor(table, publisher).ingest_entries(_texts("lucky", "unlucky"))
    assert (retry.stored, retry.duplicates, retry.published) == (1, 1, 1)
    assert sorted(m.text for m in publisher.messages) == ["lucky", "unlucky"]


@pytest.mark.reliability(
    area="faults: ingestion",
    case="the same payload ingested by concurrent invocations",
    expected="each item stored and published once",
)
def test_concurrent_runs_store_and_publish_each_item_once() -> None:
    # Given two invocations of the same payload arriving at the same time
    table, publisher, store = AtomicTable(), InMemoryPublisher(), InMemoryIngestionStore()
    texts = _texts(*(f"review number {n}" for n in range(40)))
    table.barrier = threading.Barrier(2)
    reports = []

    def run() -> None:
        reports.append(_ingestor(table, publisher, store, store_concurrency=1).ingest_entries(texts))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    # Then every item was stored by exactly one of them and published exactly once
    assert len(reports) == 2
    assert sum(r.stored for r in reports) == 40
    assert sum(r.duplicates for r in reports) == 40
    assert len(publisher.messages) == 40
    assert len({m.item_id for m in publisher.messages}) == 40


def test_parallel_puts_give_the_same_counts() -> None:
    table = AtomicTable()
    report = _ingestor(table, store_concurrency=8).ingest_entries(_texts(*(f"t{n % 30}" for n in range(90))))
    assert (report.stored, report.duplicates, report.published) == (30, 60, 30)


# --------------------------------------------------------------------------- feeds

RSS = b"""<rss version="2.0"><channel><title>t</title>
<item><guid>1</guid><description>first</description></item>
<item><guid>2</guid><description>second</description></item>
<item><guid>3</guid><description>  </description><title></title></item>
</channel></rss>"""


def _feed_fetcher(requests: list[httpx.Request]) -> FeedFetcher:
    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        if request.url.path == "/good":
            if request.headers.get("If-None-Match") == '"v1"':
                return httpx.Response(304)
            return httpx.Response(200, content=RSS, headers={"ETag": '"v1"'})
        if request.url.path == "/nostate":
            return httpx.Response(200, content=RSS.replace(b"<guid>", b"<guid>ns-"))
        return httpx.Response(404)

    return FeedFetcher(timeout_s=1, max_bytes=10_000, transport=httpx.MockTransport(handler))


def test_feeds_report_per_feed_and_one_failure_does_not_stop_the_others() -> None:
    requests: list[httpx.Request] = []
    table, publisher, store = InMemoryItemsTable(), InMemoryPublisher(), InMemoryIngestionStore()
    urls = ["https://f.example.com/missing", "https://f.example.com/good", "https://f.example.com/nostate"]
    with _feed_fetcher(requests) as fetcher:
        ingestor = _ingestor(table, publisher, store, fetcher=fetcher)
        first = ingestor.ingest_feeds(urls)
        second = ingestor.ingest_feeds(urls)
    missing, good, nostate = first.feeds or []
    assert (missing.error, missing.entries) == ("HTTP 404 Not Found", 0)
    assert (good.entries, good.new, good.skipped, good.error) == (3, 2, 1, None)
    assert (nostate.entries, nostate.new) == (3, 2)
    assert (first.received, first.stored, first.skipped, first.published, first.feeds_failed) == (6, 4, 2, 4, 1)
    # Validators were remembered only where the server sent some
    assert store.feed_states == {"https://f.example.com/good": FeedState(etag='"v1"')}
    # Second poll: the good feed answers 304 (nothing parsed), the other is all duplicates
    _, good2, nostate2 = second.feeds or []
    assert good2.not_modified
    assert good2.entries == 0
    assert (nostate2.entries, nostate2.new, nostate2.duplicates) == (3, 0, 2)
    assert (second.stored, second.published) == (0, 0)
    assert len(publisher.messages) == 4
    response = second.as_response()
    assert response["feeds_failed"] == 1
    assert response["feeds"][1] == {
        "url": "https://f.example.com/good",
        "entries": 0,
        "new": 0,
        "duplicates": 0,
        "skipped": 0,
        "not_modified": True,
        "error": None,
        "fetch_ms": response["feeds"][1]["fetch_ms"],
    }


def test_feed_whose_items_could_not_be_stored_keeps_no_validators() -> None:
    requests: list[httpx.Request] = []
    table, store = BrokenTable({"second"}), InMemoryIngestionStore()
    with _feed_fetcher(requests) as fetcher:
        report = _ingestor(table, store=store, fetcher=fetcher).ingest_feeds(["https://f.example.com/good"])
    (good,) = report.feeds or []
    assert good.error == "1 entries could not be stored"
    assert good.new == 1
    assert store.feed_states == {}


def test_no_feeds_is_an_empty_successful_run() -> None:
    report = _ingestor().ingest_feeds([])
    assert report.as_response()["feeds"] == []
    assert report.received == 0
