"""Feed sources: fetch a feed over HTTP (bounded in time and size, conditional GET) and parse it with feedparser.

Fetching and parsing are separate so that a fetch never parses and a parse never touches the network:
feedparser only ever gets the bytes we downloaded (wrapped in a stream, so it cannot mistake them for a
file name or URL and open it itself).
"""

from __future__ import annotations

import io
import time
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from types import TracebackType
from typing import Any

import feedparser
import httpx

from sentiment_ingestion.entries import Entry, KeyKind


def _user_agent() -> str:
    try:
        version = metadata.version("sentiment-ingestion")
    except metadata.PackageNotFoundError:  # running from a source tree without an install
        version = "0"
    return f"sentiment-analyzer-ingestion/{version} (+https://github.com/sentiment-analyzer; feed poller)"


USER_AGENT = _user_agent()
MAX_REDIRECTS = 5
TOTAL_TIME_FACTOR = 3
"""A download may take at most this many times the per-read timeout in total, so a server that trickles
one byte just inside every read timeout cannot hold a run hostage."""
ACCEPT = "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.1"


class FeedError(Exception):
    """A feed could not be fetched or is not a feed; the message is what the per-feed report shows."""


@dataclass(frozen=True, slots=True)
class FeedState:
    """The validators a server gave for a feed, sent back on the next poll (conditional GET)."""

    etag: str | None = None
    last_modified: str | None = None

    @property
    def empty(self) -> bool:
        return self.etag is None and self.last_modified is None


@dataclass(frozen=True, slots=True)
class FetchResult:
    url: str
    body: bytes | None
    """None when the server answered 304 Not Modified."""
    content_type: str | None
    state: FeedState
    """Validators to remember for the next poll (the previous ones on a 304)."""
    elapsed_ms: float

    @property
    def not_modified(self) -> bool:
        return self.body is None


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    entries: list[Entry]
    warning: str | None = None
    """Set when feedparser had to recover from malformed XML but still found entries."""


class FeedFetcher:
    """HTTP(S) feed downloads: timeouts, a byte cap enforced while streaming, redirects, conditional GET.

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        *,
        timeout_s: float,
        max_bytes: int,
        user_agent: str = USER_AGENT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout_s),
            follow_redirects=True,
            max_redirects=MAX_REDIRECTS,
            headers={"User-Agent": user_agent, "Accept": ACCEPT},
            transport=transport,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> FeedFetcher:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def fetch(self, url: str, previous: FeedState | None = None) -> FetchResult:
        """Download ``url``; :class:`FeedError` on any failure (its message says which)."""
        started = time.monotonic()
        scheme = urllib.parse.urlsplit(url).scheme.lower()
        if scheme not in ("http", "https"):
            raise FeedError(f"unsupported URL scheme {scheme or '(none)'!r}: only http and https feeds are polled")
        body, content_type, state = self._fetch_http(url, previous, started)
        return FetchResult(
            url=url,
            body=body,
            content_type=content_type,
            state=state,
            elapsed_ms=(time.monotonic() - started) * 1000,
        )

    def _fetch_http(
        self, url: str, previous: FeedState | None, started: float
    ) -> tuple[bytes | None, str | None, FeedState]:
        headers: dict[str, str] = {}
        if previous is not None:
            if previous.etag:
                headers["If-None-Match"] = previous.etag
            if previous.last_modified:
                headers["If-Modified-Since"] = previous.last_modified
        deadline = started + self.timeout_s * TOTAL_TIME_FACTOR
        try:
            with self._client.stream("GET", url, headers=headers) as response:
                if response.status_code == httpx.codes.NOT_MODIFIED:
                    return None, None, previous or FeedState()
                if response.status_code != httpx.codes.OK:
                    reason = response.reason_phrase or ""
                    raise FeedError(f"HTTP {response.status_code} {reason}".strip())
                declared = response.headers.get("Content-Length")
                if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
                    raise FeedError(f"body of {declared} bytes is over the {self.max_bytes}-byte limit")
                body = bytearray()
                # iter_bytes yields *decoded* bytes, so the cap also stops a gzip bomb.
                for chunk in response.iter_bytes():
                    body.extend(chunk)
                    if len(body) > self.max_bytes:
                        raise FeedError(f"body is over the {self.max_bytes}-byte limit")
                    if time.monotonic() > deadline:
                        raise FeedError(f"download took longer than {self.timeout_s * TOTAL_TIME_FACTOR:g} s")
                state = FeedState(
                    etag=response.headers.get("ETag"), last_modified=response.headers.get("Last-Modified")
                )
                return bytes(body), response.headers.get("Content-Type"), state
        except httpx.TimeoutException as exc:
            raise FeedError(f"timed out after {self.timeout_s:g} s ({type(exc).__name__})") from exc
        except httpx.TooManyRedirects as exc:
            raise FeedError(f"more than {MAX_REDIRECTS} redirects") from exc
        except httpx.HTTPError as exc:
            raise FeedError(f"{type(exc).__name__}: {exc}") from exc


# --------------------------------------------------------------------------- parsing


def _published(entry: Any) -> datetime | None:
    parsed = entry.get("published_parsed") or entry.get("updated_parsed")
    if not parsed:
        return None
    try:
        year, month, day, hour, minute, second = (int(part) for part in parsed[:6])
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except (TypeError, ValueError):
        return None


def _body(entry: Any) -> tuple[str | None, bool]:
    """The entry's longest body (Atom content, else RSS description / summary) and whether it is HTML."""
    candidates: list[tuple[str, str]] = [
        (str(c.get("value") or ""), str(c.get("type") or "text/html")) for c in entry.get("content") or []
    ]
    detail = entry.get("summary_detail") or {}
    if entry.get("summary"):
        candidates.append((str(entry.get("summary")), str(detail.get("type") or "text/html")))
    candidates = [(value, kind) for value, kind in candidates if value.strip()]
    if not candidates:
        return None, True
    value, kind = max(candidates, key=lambda c: len(c[0]))
    return value, kind != "text/plain"


def _identity(entry: Any) -> tuple[str | None, KeyKind]:
    guid = entry.get("id")
    if isinstance(guid, str) and guid.strip():
        return guid.strip(), "guid"
    link = entry.get("link")
    if isinstance(link, str) and link.strip():
        return link.strip(), "link"
    return None, "id"


def parse_feed(body: bytes, *, source: str, content_type: str | None = None) -> ParsedFeed:
    """Entries of an RSS 0.9x/1.0/2.0 or Atom document; :class:`FeedError` if it is no feed at all.

    An entry without a body falls back to its title as text (headline-only feeds). Its identity is the
    guid/id, else the link; without either the core hashes the text.
    """
    headers = {"content-type": content_type} if content_type else {}
    try:
        parsed = feedparser.parse(io.BytesIO(body), response_headers=headers)
    except Exception as exc:
        # Hostile bytes must fail this feed only, with a reason, never the whole scheduled run: e.g. a
        # character reference to a surrogate ("&#55296;") makes feedparser raise UnicodeEncodeError.
        raise FeedError(f"feed parser failed: {type(exc).__name__}: {exc}") from exc
    entries_raw = parsed.get("entries") or []
    problem = parsed.get("bozo_exception") if parsed.get("bozo") else None
    if not entries_raw:
        if problem is not None:
            raise FeedError(f"malformed feed: {type(problem).__name__}: {problem}")
        if not parsed.get("version"):
            raise FeedError("not an RSS or Atom feed")
    entries: list[Entry] = []
    for raw in entries_raw:
        text, is_html = _body(raw)
        title = raw.get("title")
        if text is None and isinstance(title, str):
            text, is_html = title, True
        key, kind = _identity(raw)
        link = raw.get("link")
        entries.append(
            Entry(
                text=text,
                source=source,
                key=key,
                key_kind=kind,
                url=link if isinstance(link, str) and link else None,
                title=title if isinstance(title, str) else None,
                published_at=_published(raw),
                html=is_html,
            )
        )
    warning = None
    if problem is not None:
        warning = f"recovered from malformed feed: {type(problem).__name__}: {problem}"
    return ParsedFeed(entries=entries, warning=warning)
