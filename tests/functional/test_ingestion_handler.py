"""The ingestion handler against moto and a local HTTP feed server: counts, messages, dedup, recovery.

The feed server on 127.0.0.1 plays every kind of feed the issue names (good RSS, good Atom, malformed
XML, 404, a server slower than the timeout, an oversized body, 304 on a conditional GET, HTML-heavy
entries, a redirect); messages are read back from the SQS queue subscribed to the topic.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.typing import LambdaContext
from queue_support import drain_topic_messages

from sentiment_ingestion.core import StoreError
from sentiment_ingestion.feeds import USER_AGENT, FeedState
from sentiment_ingestion.handler import build_handler, handler
from sentiment_ingestion.store import DynamoIngestionStore
from sentiment_local.file_feeds import LocalFeedFetcher
from sentiment_local.provision import StackResources, provision
from sentiment_local.samples import sample_feed_path
from sentiment_shared import aws
from sentiment_shared.adapters import DynamoItemsTable
from sentiment_shared.settings import reset_settings_cache
from sentiment_shared.stack import ITEMS_TABLE_HASH_KEY

pytestmark = pytest.mark.functional

EVENTS = Path(__file__).resolve().parent.parent / "events"
SLOW_S = 2.0
TIMEOUT_S = 0.5
MAX_BYTES = 64 * 1024


def _rss(*items: str) -> bytes:
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>{"".join(items)}</channel></rss>'.encode()


def _item(guid: str, description: str, title: str = "") -> str:
    return f"<item><guid>{guid}</guid><title>{title}</title><description>{description}</description></item>"


HTML_HEAVY_BODY = (
    "<![CDATA[<div class='review'><style>.x{color:red}</style><script>track('view')</script>"
    "<h2>Verdict</h2><table><tr><td>Sound</td><td>&#9733;&#9733;&#9733;&#9733;</td></tr></table>"
    "<p>Honestly&nbsp;the <b>best</b> purchase&mdash;I&rsquo;m <a href='/x'>thrilled</a>.</p>\n\n<br/></div>]]>"
)

FEEDS: dict[str, bytes] = {
    "/rss.xml": _rss(
        _item("rss-1", "I adore this blender, it is fantastic."),
        _item("rss-2", "The charger stopped working after a week. Awful."),
        _item("rss-3", "The store opens at nine."),
    ),
    "/atom.xml": b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>a</title><id>urn:a</id><updated>2026-11-01T00:00:00Z</updated>
<entry><id>urn:a:1</id><title>One</title><updated>2026-11-01T00:00:00Z</updated>
<content type="text">Delivery was quick and the box was intact.</content></entry>
<entry><id>urn:a:2</id><title>Two</title><updated>2026-11-01T00:00:00Z</updated>
<summary type="html">&lt;p&gt;Support was &lt;em&gt;rude&lt;/em&gt; and unhelpful.&lt;/p&gt;</summary></entry>
</feed>""",
    "/html.xml": _rss(
        _item("html-1", HTML_HEAVY_BODY),
        _item("html-2", "<![CDATA[<p>Decent  value,\n\t <i>nothing</i> special.</p>]]>"),
        _item("html-3", "<![CDATA[<img src='photo.jpg'/><p> </p>]]>"),
        _item("html-1", "<![CDATA[<p>The same guid again</p>]]>"),
    ),
    "/etag.xml": _rss(_item("etag-1", "Cached feed entry one."), _item("etag-2", "Cached feed entry two.")),
    "/final.xml": _rss(_item("moved-1", "A feed that moved house.")),
    "/malformed.xml": b"<?xml version='1.0'?><rss version='2.0'><channel><<<<>>>> &&& </rss",
}
ETAG = '"etag-v1"'


@dataclass
class FeedServer:
    base: str
    requests: list[tuple[str, dict[str, str]]]

    def url(self, path: str) -> str:
        return self.base + path


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test asserts on ``requests`` instead."""

    def do_GET(self) -> None:
        self.server.requests.append((self.path, dict(self.headers.items())))
        if self.path == "/slow.xml":
            time.sleep(SLOW_S)
        if self.path == "/moved.xml":
            self._reply(301, b"", {"Location": "/final.xml"})
        elif self.path == "/huge.xml":
            # No Content-Length: the limit must be enforced while streaming.
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml")
            self.end_headers()
            chunk = b"<!-- padding -->" * 1024
            for _ in range(20):
                self.wfile.write(chunk)
        elif self.path == "/etag.xml":
            if self.headers.get("If-None-Match") == ETAG:
                self._reply(304, b"", {"ETag": ETAG})
            else:
                self._reply(200, FEEDS[self.path], {"ETag": ETAG, "Last-Modified": "Mon, 02 Nov 2026 08:00:00 GMT"})
        elif self.path in FEEDS or self.path == "/slow.xml":
            self._reply(200, FEEDS.get(self.path, FEEDS["/rss.xml"]), {})
        else:
            self._reply(404, b"not here", {})

    def _reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in ({"Content-Type": "application/rss+xml"} | headers).items():
            self.send_header(name, value)
        if status != 304:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    requests: list[tuple[str, dict[str, str]]]

    def handle_error(self, request: Any, client_address: Any) -> None:
        """The client hanging up on the slow and huge feeds is the point of those feeds."""


@pytest.fixture(scope="module")
def feed_server() -> Iterator[FeedServer]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield FeedServer(f"http://127.0.0.1:{server.server_address[1]}", server.requests)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def stack(moto_aws: None, monkeypatch: pytest.MonkeyPatch) -> StackResources:
    resources = provision()
    monkeypatch.setenv("ITEMS_TABLE", resources.items_table)
    monkeypatch.setenv("TOPIC_ARN", resources.topic_arn)
    monkeypatch.setenv("FEED_TIMEOUT_S", str(TIMEOUT_S))
    monkeypatch.setenv("FEED_MAX_BYTES", str(MAX_BYTES))
    reset_settings_cache()
    return resources


def _set_env(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    reset_settings_cache()


def _content_items(table: str) -> dict[str, dict[str, Any]]:
    """The table's items, without ingestion's bookkeeping items (feed state, run markers)."""
    raw = aws.client("dynamodb").scan(TableName=table)["Items"]
    out = {}
    for attrs in raw:
        key = attrs[ITEMS_TABLE_HASH_KEY]["S"]
        if "#" not in key:
            out[key] = {name: next(iter(value.values())) for name, value in attrs.items()}
    return out


def test_scheduled_run_over_every_kind_of_feed(
    stack: StackResources,
    feed_server: FeedServer,
    monkeypatch: pytest.MonkeyPatch,
    emitted_metrics: Callable[[str], dict[str, Any]],
    lambda_context: LambdaContext,
) -> None:
    # Given feeds of every kind, one after another in FEEDS
    paths = [
        "/rss.xml",
        "/atom.xml",
        "/malformed.xml",
        "/missing.xml",
        "/slow.xml",
        "/huge.xml",
        "/etag.xml",
        "/html.xml",
        "/moved.xml",
    ]
    _set_env(monkeypatch, FEEDS=json.dumps([feed_server.url(p) for p in paths]))
    event = json.loads((EVENTS / "ingestion_scheduled.json").read_text())

    # When the schedule fires
    first = handler(event, lambda_context)

    # Then every good feed is ingested and every bad one is reported, none stopping another
    feeds = {f["url"].removeprefix(feed_server.base): f for f in first["feeds"]}
    assert [(feeds[p]["entries"], feeds[p]["new"]) for p in ("/rss.xml", "/atom.xml", "/etag.xml", "/moved.xml")] == [
        (3, 3),
        (2, 2),
        (2, 2),
        (1, 1),
    ]
    assert (feeds["/html.xml"]["entries"], feeds["/html.xml"]["new"]) == (4, 2)
    assert (feeds["/html.xml"]["skipped"], feeds["/html.xml"]["duplicates"]) == (1, 1)
    assert feeds["/malformed.xml"]["error"].startswith("malformed feed")
    assert feeds["/missing.xml"]["error"] == "HTTP 404 Not Found"
    assert feeds["/slow.xml"]["error"].startswith(f"timed out after {TIMEOUT_S:g} s")
    assert feeds["/huge.xml"]["error"] == f"body is over the {MAX_BYTES}-byte limit"
    assert all(feeds[p]["error"] is None for p in ("/rss.xml", "/atom.xml", "/etag.xml", "/html.xml", "/moved.xml"))
    assert {k: first[k] for k in ("statusCode", "received", "stored", "duplicates", "published", "failed")} == {
        "statusCode": 200,
        "received": 12,
        "stored": 10,
        "duplicates": 1,
        "published": 10,
        "failed": 0,
    }
    assert (first["skipped"], first["feeds_failed"]) == (1, 4)

    # And each stored item arrived on the queue once, with its id and plain text
    messages = drain_topic_messages(stack.queue_url)
    items = _content_items(stack.items_table)
    assert sorted(m["item_id"] for m in messages) == sorted(items)
    assert all(m["text"] == items[m["item_id"]]["text"] and m["schema_version"] == 1 for m in messages)
    texts = {m["text"] for m in messages}
    assert "Verdict Sound \u2605\u2605\u2605\u2605 Honestly the best purchase\u2014I\u2019m thrilled." in texts
    assert all("<" not in t and "track(" not in t and "  " not in t for t in texts)
    assert "Decent value, nothing special." in texts
    # The feed server saw our User-Agent
    assert {headers["User-Agent"] for _, headers in feed_server.requests} == {USER_AGENT}

    # And the metrics were emitted
    metrics = emitted_metrics("ItemsReceived")
    assert (metrics["ItemsStored"], metrics["ItemsPublished"], metrics["FeedsFailed"]) == ([10.0], [10.0], [4.0])
    assert len(metrics["FeedFetchMs"]) == 6  # every feed that answered (not the 404, slow or huge one)

    # When the schedule fires again with nothing new
    feed_server.requests.clear()
    second = handler(event, lambda_context)

    # Then the ETag feed answers 304, everything else is a duplicate, and nothing is re-published
    feeds = {f["url"].removeprefix(feed_server.base): f for f in second["feeds"]}
    assert feeds["/etag.xml"]["not_modified"] is True
    assert ("/etag.xml", ETAG) in {(p, h.get("If-None-Match")) for p, h in feed_server.requests}
    assert (second["stored"], second["duplicates"], second["published"]) == (0, 9, 0)
    assert drain_topic_messages(stack.queue_url) == []


@pytest.mark.parametrize(
    ("event_file", "counts"),
    [
        ("ingestion_texts.json", {"received": 5, "stored": 3, "duplicates": 1, "skipped": 1, "published": 3}),
        ("ingestion_items.json", {"received": 3, "stored": 3, "duplicates": 0, "skipped": 0, "published": 3}),
    ],
)
def test_direct_invoke_payloads(
    stack: StackResources, event_file: str, counts: dict[str, int], lambda_context: LambdaContext
) -> None:
    event = json.loads((EVENTS / event_file).read_text())
    response = handler(event, lambda_context)
    assert {k: response[k] for k in counts} == counts
    assert response["failed"] == 0
    messages = drain_topic_messages(stack.queue_url)
    assert len(messages) == counts["stored"]
    assert all(m["item_id"] and m["text"] for m in messages)
    # The same payload again: all duplicates, nothing new on the queue
    again = handler(event, lambda_context)
    assert (again["stored"], again["published"]) == (0, 0)
    assert drain_topic_messages(stack.queue_url) == []


MALFORMED_EVENTS: list[tuple[Any, str]] = [
    ({"texts": []}, "texts: List should have at least 1 item"),
    ({"items": [{"title": "no text"}]}, "items[0].text: Field required"),
    ({"texts": [1, 2]}, "texts[0]: Input should be a valid string"),
    (["not", "an", "object"], "event must be a JSON object"),
    ({"Records": []}, "unrecognised event"),
]


def test_malformed_events_answer_400_and_touch_nothing(
    stack: StackResources, capsys: pytest.CaptureFixture[str], lambda_context: LambdaContext
) -> None:
    for event, error in MALFORMED_EVENTS:
        response = handler(event, lambda_context)
        assert response["statusCode"] == 400, event
        assert error in response["error"]
    assert aws.client("dynamodb").scan(TableName=stack.items_table)["Count"] == 0
    rejected = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"EventsRejected"' in line]
    assert len(rejected) == len(MALFORMED_EVENTS)


@pytest.mark.reliability(
    area="ingestion publish",
    case="publish failure in one run (moto)",
    expected="item stays pending, a later run re-publishes it",
)
def test_publish_failure_is_recovered_by_a_later_run(
    stack: StackResources, monkeypatch: pytest.MonkeyPatch, lambda_context: LambdaContext
) -> None:
    # Given a run whose publish fails (the topic it was given does not exist)
    _set_env(monkeypatch, TOPIC_ARN="arn:aws:sns:us-east-1:123456789012:no-such-topic", REPUBLISH_AFTER_S="0")
    first = handler({"texts": ["Lost in transit? Never."]}, lambda_context)
    assert (first["stored"], first["published"], first["failed"]) == (1, 0, 1)
    (item_id,) = _content_items(stack.items_table)
    assert DynamoItemsTable(stack.items_table).get(item_id).status == "pending"  # type: ignore[union-attr]
    assert drain_topic_messages(stack.queue_url) == []

    # When a later run happens with a working topic
    _set_env(monkeypatch, TOPIC_ARN=stack.topic_arn)
    second = handler({"texts": ["Another text"]}, lambda_context)

    # Then the pending item is re-published (once) alongside the new one, and is no longer pending
    assert (second["republished"], second["stored"], second["published"]) == (1, 1, 1)
    messages = drain_topic_messages(stack.queue_url)
    assert sorted(m["text"] for m in messages) == ["Another text", "Lost in transit? Never."]
    assert DynamoItemsTable(stack.items_table).get(item_id).status == "published"  # type: ignore[union-attr]
    third = handler({"texts": ["Another text"]}, lambda_context)
    assert (third["republished"], third["published"]) == (0, 0)
    assert drain_topic_messages(stack.queue_url) == []


def test_published_but_unanalysed_items_are_not_republished(
    stack: StackResources, monkeypatch: pytest.MonkeyPatch, lambda_context: LambdaContext
) -> None:
    # Given an item published normally, whose analysis has not written anything yet
    _set_env(monkeypatch, REPUBLISH_AFTER_S="0")
    handler({"texts": ["Published fine"]}, lambda_context)
    assert len(drain_topic_messages(stack.queue_url)) == 1
    # When later runs sweep the pending index
    second = handler({"texts": ["Published fine"]}, lambda_context)
    # Then the run marker shows it was published: no second message, and it leaves the index
    assert (second["republished"], second["duplicates"]) == (0, 1)
    assert drain_topic_messages(stack.queue_url) == []
    (item_id,) = _content_items(stack.items_table)
    assert DynamoItemsTable(stack.items_table).get(item_id).status == "published"  # type: ignore[union-attr]


def test_the_function_refuses_a_file_feed_and_the_local_pipelines_handler_reads_it(
    stack: StackResources, monkeypatch: pytest.MonkeyPatch, lambda_context: LambdaContext
) -> None:
    # Given the packaged sample feed as the only feed (the local pipeline's default)
    _set_env(monkeypatch, FEEDS=json.dumps([str(sample_feed_path())]))
    event = json.loads((EVENTS / "ingestion_scheduled.json").read_text())
    # When the function runs (as on AWS) / Then the feed is refused, not read
    (refused,) = handler(event, lambda_context)["feeds"]
    assert refused["error"].startswith("unsupported URL scheme")
    # When the local pipeline's handler runs / Then all of its entries are stored and published
    response = build_handler(feed_fetcher=LocalFeedFetcher)(event, lambda_context)
    assert (response["received"], response["stored"], response["published"]) == (48, 48, 48)
    assert len(drain_topic_messages(stack.queue_url)) == 48


@pytest.mark.reliability(
    area="faults: ingestion",
    case="items table unavailable during a direct invoke",
    expected="the invocation raises (Lambda retries it); nothing is reported stored",
)
def test_table_failure_fails_the_invocation_so_it_is_retried(
    stack: StackResources,
    monkeypatch: pytest.MonkeyPatch,
    emitted_metrics: Callable[[str], dict[str, Any]],
    lambda_context: LambdaContext,
) -> None:
    # Given a function pointed at a table that does not exist
    _set_env(monkeypatch, ITEMS_TABLE="no-such-table")
    # When a payload arrives / Then the invocation raises (Lambda retries it; dedup makes that safe)
    with pytest.raises(StoreError, match="2 item"):
        handler({"texts": ["one", "two"]}, lambda_context)
    # And the failure is counted in the metrics before raising
    assert emitted_metrics("ItemsReceived")["ItemsFailed"] == [2.0]
    assert drain_topic_messages(stack.queue_url) == []


def test_bookkeeping_items_round_trip_in_the_items_table(stack: StackResources) -> None:
    store = DynamoIngestionStore(stack.items_table)
    # Feed validators
    assert store.get_feed_state("https://f.example.com/rss") is None
    store.put_feed_state("https://f.example.com/rss", FeedState(etag='"x"', last_modified="Mon, 02 Nov 2026"))
    store.put_feed_state("https://f.example.com/atom", FeedState(last_modified="Tue, 03 Nov 2026"))
    assert store.get_feed_state("https://f.example.com/rss") == FeedState(etag='"x"', last_modified="Mon, 02 Nov 2026")
    assert store.get_feed_state("https://f.example.com/atom") == FeedState(last_modified="Tue, 03 Nov 2026")
    # Run markers: present with and without failures, absent for a run that never recorded one
    store.record_run("run-ok", [])
    store.record_run("run-bad", ["b" * 64, "a" * 64])
    assert store.failed_in_runs(["run-ok", "run-bad", "run-dead"]) == {
        "run-ok": frozenset(),
        "run-bad": frozenset({"a" * 64, "b" * 64}),
    }
    # None of them is in the pending index
    assert DynamoItemsTable(stack.items_table).pending_items(datetime.now(UTC) + timedelta(days=1), 10) == []
