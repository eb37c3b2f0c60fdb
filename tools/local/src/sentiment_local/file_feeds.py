"""Local files as feeds: the local pipeline's sample feed (or ``--feed PATH``) read by the ingestion function.

The Lambda polls http(s) feeds only and ships no file reading; the local pipeline builds the ingestion
handler with :class:`LocalFeedFetcher` instead, so a path's entries get the same source, and the same
``item_id`` values, from one run to the next (a second run dedups).
"""

from __future__ import annotations

import time
import urllib.parse
from pathlib import Path

from sentiment_ingestion.feeds import FeedError, FeedFetcher, FeedState, FetchResult


class LocalFeedFetcher(FeedFetcher):
    """:class:`FeedFetcher` that also reads ``file://`` URLs and plain paths, within the same byte cap."""

    def fetch(self, url: str, previous: FeedState | None = None) -> FetchResult:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme.lower() not in ("file", ""):
            return super().fetch(url, previous)
        started = time.monotonic()
        path = Path(urllib.parse.unquote(parts.path) if parts.scheme else url)
        try:
            size = path.stat().st_size
            if size > self.max_bytes:
                raise FeedError(f"file of {size} bytes is over the {self.max_bytes}-byte limit")
            body = path.read_bytes()
        except OSError as exc:
            raise FeedError(f"cannot read {path}: {exc.strerror or exc}") from exc
        elapsed_ms = (time.monotonic() - started) * 1000
        return FetchResult(url=url, body=body, content_type=None, state=FeedState(), elapsed_ms=elapsed_ms)
