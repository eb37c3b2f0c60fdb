"""The ingestion core: entries in, deduplicated items stored and announced on the topic, nothing lost.

One run (:meth:`Ingestor.ingest_entries` for a direct payload, :meth:`Ingestor.ingest_feeds` for a
scheduled poll) does, in order:

1. **Re-publish** items that earlier runs stored but did not publish (the table's sparse pending index,
   older than ``republish_after_s``, at most ``republish_limit`` per run).
2. **Normalize** every entry to plain text and give it a deterministic ``item_id``; entries without
   usable text are *skipped*, repeats inside the run are *duplicates*.
3. **Store** each item with a conditional put (insert-once): the table decides what is new, so the same
   item arriving in another run or in a concurrent invocation is a *duplicate* and is never published
   again.
4. **Publish** the newly stored items (PublishBatch through the shared publisher), then write *one*
   run marker naming the ids that failed.

Why a run marker instead of flipping each item to ``published``: that flip is an UpdateItem per item,
which doubles the API calls of the whole run. Items are created ``pending`` (in the pending index) with
their ``run_id``; the analysis removes them from the index when it writes the sentiment. An item still
in the index after ``republish_after_s`` is re-published unless its run's marker exists and does not
name it - then it *was* published (its analysis is slow or failed into the DLQ) and the sweep just takes
it out of the index. A run that dies between the put and the marker leaves no marker, so all its items
are re-published: at-least-once, never lost (the analysis is idempotent per ``item_id``).

The core imports no Lambda, Powertools or boto3 types: the handler maps its report to a response and
metrics.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sentiment_ingestion.entries import Entry
from sentiment_ingestion.feeds import FeedError, FeedFetcher, FeedState, FetchResult, ParsedFeed, parse_feed
from sentiment_ingestion.normalize import DEFAULT_MAX_TEXT_CHARS, item_id_for, normalize_text, normalize_title
from sentiment_ingestion.store import IngestionStore
from sentiment_shared.ports import ItemsTable, Publisher, PublishReport
from sentiment_shared.schemas import Item, TopicMessage, utc_now

log = logging.getLogger(__name__)

MAX_FAILED_IN_MARKER = 2_000
"""A run marker lists failed ids (64 hex chars each): beyond this many it would near DynamoDB's 400 KB
item limit, so none is written and every item of the run counts as unpublished (re-published later)."""


@dataclass(frozen=True, slots=True)
class IngestOptions:
    max_text_chars: int = DEFAULT_MAX_TEXT_CHARS
    republish_after_s: int = 300
    """Pending items younger than this are left alone: their own run may still be publishing them. Keep it
    above the function timeout."""
    republish_limit: int = 100
    store_concurrency: int = 8
    """Conditional puts in flight at once (each is one network round trip)."""
    fetch_concurrency: int = 4
    """Feeds downloaded at once, so one slow feed costs its timeout once, not once per later feed."""


@dataclass(slots=True)
class FeedReport:
    """One feed's outcome in a scheduled run."""

    url: str
    entries: int = 0
    new: int = 0
    duplicates: int = 0
    skipped: int = 0
    not_modified: bool = False
    error: str | None = None
    warning: str | None = None
    fetch_ms: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """Every field; ``warning`` and ``fetch_ms`` only when set."""
        out = asdict(self)
        if not self.warning:
            del out["warning"]
        if self.fetch_ms is None:
            del out["fetch_ms"]
        else:
            out["fetch_ms"] = round(self.fetch_ms, 1)
        return out


@dataclass(slots=True)
class IngestReport:
    """Counts of one run. ``received`` = ``stored`` + ``duplicates`` + ``skipped`` + ``store_errors``."""

    run_id: str
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    skipped: int = 0
    truncated: int = 0
    published: int = 0
    failed: int = 0
    """Stored but not published in this run: still pending, re-published by a later run."""
    republished: int = 0
    store_errors: dict[str, str] = field(default_factory=dict)
    """``item_id`` → error, for conditional puts that failed for another reason than a duplicate."""
    failed_ids: dict[str, str] = field(default_factory=dict)
    feeds: list[FeedReport] | None = None

    @property
    def feeds_failed(self) -> int:
        return sum(1 for f in self.feeds or [] if f.error)

    def as_response(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "statusCode": 200,
            "received": self.received,
            "stored": self.stored,
            "duplicates": self.duplicates,
            "published": self.published,
            "failed": self.failed,
            "skipped": self.skipped,
            "truncated": self.truncated,
            "republished": self.republished,
        }
        if self.feeds is not None:
            out["feeds"] = [f.as_dict() for f in self.feeds]
            out["feeds_failed"] = self.feeds_failed
        return out


class StoreError(RuntimeError):
    """Some items could not be stored (not duplicates: the table failed). Carries the run's report.

    Everything that was stored has been published or left pending; retrying the same input is safe.
    """

    def __init__(self, report: IngestReport) -> None:
        first = next(iter(report.store_errors.values()), "?")
        super().__init__(f"{len(report.store_errors)} item(s) could not be stored: {first}")
        self.report = report


Outcome = Literal["stored", "duplicate"]


class Ingestor:
    """Runs ingestion against the ports; cheap to construct (adapters create clients on first use)."""

    def __init__(
        self,
        items: ItemsTable,
        publisher: Publisher,
        store: IngestionStore,
        *,
        options: IngestOptions | None = None,
        fetcher: FeedFetcher | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.items = items
        self.publisher = publisher
        self.store = store
        self.options = options or IngestOptions()
        self.fetcher = fetcher
        self.clock = clock

    # ------------------------------------------------------------------ entry points

    def ingest_entries(self, entries: Sequence[Entry]) -> IngestReport:
        """A direct payload. :class:`StoreError` if the table failed for some items (after publishing the rest)."""
        report = IngestReport(run_id=uuid.uuid4().hex)
        self._republish_pending(report)
        now = self.clock()
        seen: set[str] = set()
        items = self._prepare(entries, report, seen, now)
        outcomes = self._store(items, report)
        stored = [item for item in items if outcomes.get(item.item_id) == "stored"]
        self._publish_new(stored, report)
        if report.store_errors:
            raise StoreError(report)
        return report

    def ingest_feeds(self, urls: Sequence[str]) -> IngestReport:
        """A scheduled poll: every feed is fetched, parsed and stored on its own; one failure stops no other."""
        feeds: list[FeedReport] = []
        report = IngestReport(run_id=uuid.uuid4().hex, feeds=feeds)
        self._republish_pending(report)
        fetched = self._fetch_all(urls)
        now = self.clock()
        seen: set[str] = set()
        stored: list[Item] = []
        to_remember: list[tuple[str, FeedState]] = []
        for url, previous, result in fetched:
            feed = FeedReport(url=url)
            feeds.append(feed)
            new, remember = self._ingest_feed(feed, previous, result, report=report, seen=seen, now=now)
            stored.extend(new)
            if remember is not None:
                to_remember.append((url, remember))
        self._publish_new(stored, report)
        for url, state in to_remember:
            try:
                self.store.put_feed_state(url, state)
            except Exception:  # losing a validator only costs one full download next time
                log.exception("could not remember the validators of feed %s", url)
        return report

    def _ingest_feed(
        self,
        feed: FeedReport,
        previous: FeedState | None,
        result: FetchResult | FeedError,
        *,
        report: IngestReport,
        seen: set[str],
        now: datetime,
    ) -> tuple[list[Item], FeedState | None]:
        """Parse and store one fetched feed: (its newly stored items, validators to remember or None)."""
        parsed = self._parse(feed, result)
        if parsed is None or isinstance(result, FeedError):
            return [], None
        feed.warning = parsed.warning
        feed.entries = len(parsed.entries)
        before = (report.duplicates, report.skipped, len(report.store_errors))
        items = self._prepare(parsed.entries, report, seen, now)
        outcomes = self._store(items, report)
        new = [item for item in items if outcomes.get(item.item_id) == "stored"]
        feed.new = len(new)
        feed.duplicates = report.duplicates - before[0]
        feed.skipped = report.skipped - before[1]
        errors = len(report.store_errors) - before[2]
        if errors:
            # Its validators are not remembered, so the next poll downloads it again and retries.
            feed.error = f"{errors} entries could not be stored"
            log.error("feed %s: %d entries could not be stored", feed.url, errors)
            return new, None
        if result.state.empty or result.state == previous:
            return new, None
        return new, result.state

    def _parse(self, feed: FeedReport, result: FetchResult | FeedError) -> ParsedFeed | None:
        """The feed's entries, or None with ``feed`` saying why not (failed, or 304 Not Modified)."""
        if isinstance(result, FeedError):
            feed.error = str(result)
        else:
            feed.fetch_ms = result.elapsed_ms
            if result.body is None:
                feed.not_modified = True
                return None
            try:
                return parse_feed(result.body, source=feed.url, content_type=result.content_type)
            except FeedError as exc:
                feed.error = str(exc)
            except Exception as exc:  # a parser surprise on one feed must not stop the others
                feed.error = f"{type(exc).__name__}: {exc}"
                log.exception("unexpected error parsing feed %s", feed.url)
        log.warning("feed %s failed: %s", feed.url, feed.error)
        return None

    # ------------------------------------------------------------------ steps

    def _fetch_all(self, urls: Sequence[str]) -> list[tuple[str, FeedState | None, FetchResult | FeedError]]:
        if not urls:
            return []
        if self.fetcher is None:
            raise RuntimeError("ingest_feeds needs a FeedFetcher")
        fetcher = self.fetcher

        def fetch_one(url: str) -> tuple[str, FeedState | None, FetchResult | FeedError]:
            previous: FeedState | None = None
            try:
                previous = self.store.get_feed_state(url)
            except Exception:  # without validators the feed is simply downloaded in full
                log.exception("could not read the validators of feed %s", url)
            try:
                return url, previous, fetcher.fetch(url, previous)
            except FeedError as exc:
                return url, previous, exc
            except Exception as exc:  # one feed's surprise must not stop the others
                log.exception("unexpected error fetching feed %s", url)
                return url, previous, FeedError(f"{type(exc).__name__}: {exc}")

        workers = max(1, min(self.options.fetch_concurrency, len(urls)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="feed") as pool:
            return list(pool.map(fetch_one, urls))

    def _prepare(self, entries: Sequence[Entry], report: IngestReport, seen: set[str], now: datetime) -> list[Item]:
        items: list[Item] = []
        for entry in entries:
            report.received += 1
            try:
                normalized = normalize_text(entry.text, max_chars=self.options.max_text_chars, html=entry.html)
                title = normalize_title(entry.title)
            except Exception:  # one entry the parser chokes on is skipped, not the whole payload or feed
                log.exception("could not normalize an entry of %s", entry.source)
                normalized = None
            if normalized is None:
                report.skipped += 1
                continue
            if entry.key is not None:
                item_id = item_id_for(entry.source, entry.key, kind=entry.key_kind)
            else:
                item_id = item_id_for(entry.source, normalized.full_text, kind="text")
            if item_id in seen:
                report.duplicates += 1
                continue
            seen.add(item_id)
            if normalized.truncated:
                report.truncated += 1
            items.append(
                Item(
                    item_id=item_id,
                    text=normalized.text,
                    source=entry.source,
                    url=entry.url,
                    title=title,
                    published_at=entry.published_at,
                    ingested_at=now,
                    status="pending",
                    text_truncated=normalized.truncated,
                    run_id=report.run_id,
                )
            )
        return items

    def _store(self, items: Sequence[Item], report: IngestReport) -> dict[str, Outcome]:
        def create(item: Item) -> Outcome | Exception:
            try:
                return "stored" if self.items.create(item) else "duplicate"
            except Exception as exc:  # noqa: BLE001 - counted per item; the caller decides what fails
                return exc

        workers = max(1, min(self.options.store_concurrency, len(items)))
        if workers == 1:
            results = [create(item) for item in items]
        else:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="put") as pool:
                results = list(pool.map(create, items))
        outcomes: dict[str, Outcome] = {}
        for item, result in zip(items, results, strict=True):
            if isinstance(result, Exception):
                report.store_errors[item.item_id] = f"{type(result).__name__}: {result}"
                log.error("could not store item %s: %s", item.item_id, result)
            else:
                outcomes[item.item_id] = result
                if result == "stored":
                    report.stored += 1
                else:
                    report.duplicates += 1
        return outcomes

    def _publish_new(self, stored: Sequence[Item], report: IngestReport) -> None:
        if not stored:
            return
        outcome = self._publish([item.to_message() for item in stored])
        report.published += len(outcome.published)
        report.failed += len(outcome.failed)
        report.failed_ids.update(outcome.failed)
        if len(outcome.failed) > MAX_FAILED_IN_MARKER:
            log.warning("%d items failed to publish: no run marker; all are re-published later", len(outcome.failed))
            return
        try:
            self.store.record_run(report.run_id, outcome.failed.keys())
        except Exception:  # without a marker its items are re-published: duplicates, never loss
            log.exception("could not record run %s; its items will be re-published", report.run_id)

    def _publish(self, messages: Sequence[TopicMessage]) -> PublishReport:
        """Publish through the port; a publisher that raises fails every message (they stay pending)."""
        try:
            return self.publisher.publish(messages)
        except Exception as exc:  # the items stay pending and a later run re-publishes them
            log.exception("publishing %d messages failed", len(messages))
            return PublishReport(failed=dict.fromkeys((m.item_id for m in messages), f"publisher error: {exc}"))

    def _republish_pending(self, report: IngestReport) -> None:
        """Re-publish what earlier runs stored but did not publish; take published stragglers off the index."""
        limit = self.options.republish_limit
        if limit <= 0:
            return
        try:
            cutoff = self.clock() - timedelta(seconds=self.options.republish_after_s)
            candidates = self.items.pending_items(cutoff, limit)
            if not candidates:
                return
            markers = self.store.failed_in_runs({c.run_id for c in candidates if c.run_id})
            unpublished: list[Item] = []
            for item in candidates:
                failed = markers.get(item.run_id) if item.run_id else None
                if failed is None or item.item_id in failed:
                    unpublished.append(item)
                else:
                    # Published by its run; its analysis is slow or dead-lettered. Leave the index so it
                    # does not take a place in every later sweep.
                    self.items.mark_published(item.item_id)
            if not unpublished:
                return
            outcome = self._publish([item.to_message() for item in unpublished])
            for item_id in outcome.published:
                self.items.mark_published(item_id)
            report.republished += len(outcome.published)
            if outcome.failed:
                log.warning("%d pending items still failed to publish", len(outcome.failed))
        except Exception:  # a failed sweep must not block new items; the next run retries it
            log.exception("re-publishing pending items failed")
