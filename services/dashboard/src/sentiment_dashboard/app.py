"""The dashboard's HTTP surface, independent of how it is served (Lambda function URL or a local server).

``GET /`` → the HTML page (``?sentiment=``, ``?source=``, ``?page=`` filter and page its item list);
``GET /items.csv`` and ``GET /items.json`` → the filtered items as a download; ``GET /api/summary`` →
the JSON summary (README.md "Dashboard"); ``/favicon.svg`` (and ``/favicon.ico``) → the icon;
``HEAD`` of any. Anything else is refused (405) — nothing here writes. A query parameter the route does
not take, or a bad value, is a 400 with one plain line saying which. Every response carries the strict
Content-Security-Policy and a short shared-cache lifetime (``s-maxage``), so CloudFront answers most
viewers (its cache key holds the query string) and the table is read at most once per TTL per edge.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sentiment_dashboard.items import DOWNLOAD_LIMIT, PER_PAGE, ItemFilter, ItemsLoader, QueryError, parse_query
from sentiment_dashboard.render import CONTENT_SECURITY_POLICY, FAVICON_SVG, page

log = logging.getLogger(__name__)

CACHE_TTL_S = 30
ICON_TTL_S = 86400
SummaryLoader = Callable[[], dict[str, Any]]
DOWNLOAD_MAX_BYTES = 4_000_000
"""A download's body at most (base64, as the Lambda sends it, makes 5.3 MB of the function URL's 6 MB)."""
CSV_COLUMNS = ("item_id", "analyzed_at", "published_at", "sentiment", "score", "source", "title", "url", "text")

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
ROUTES = ("/", "/api/summary", "/items.csv", "/items.json", "/favicon.svg", "/favicon.ico")


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def _response(status: int, body: str, content_type: str, *, cache: int | None, **extra: str) -> Response:
    headers = {
        "Content-Type": content_type,
        "Cache-Control": f"public, max-age={cache}, s-maxage={cache}" if cache else "no-store",
        **SECURITY_HEADERS,
        **extra,
    }
    return Response(status=status, body=body.encode("utf-8"), headers=headers)


def _error(status: int, message: str) -> Response:
    return _response(status, json.dumps({"error": message}) + "\n", "application/json", cache=None)


def _plain_error(status: int, message: str) -> Response:
    """A browser-facing error: one plain line (``text/plain``), nothing to render."""
    return _response(status, f"Bad request: {message}\n", "text/plain; charset=utf-8", cache=None)


def _csv_cell(value: Any) -> str:
    """A CSV cell a spreadsheet shows as text: a leading ``= + - @`` (a formula) gets a ``'`` before it."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _csv_line(cells: Iterable[Any]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(cells)
    return out.getvalue()


def _download(route: str, items: list[dict[str, Any]], flt: ItemFilter, truncated: bool, ttl: int) -> Response:
    """The items as CSV or JSON, newest first, cut at :data:`DOWNLOAD_MAX_BYTES` (the Lambda answers through a
    buffered function URL: at most 6 MB, base64 included); a cut download says so in ``X-Items-Truncated``
    (and, as JSON, in ``truncated``)."""
    name = "items" + "".join(f"-{v}" for v in (flt.sentiment, flt.source) if v)
    safe = "".join(c if c.isalnum() or c in "-._" else "_" for c in name)[:100]
    parts: list[str] = []
    size = 0
    kept = 0
    if route == "/items.json":
        for item in items:
            part = json.dumps(item, ensure_ascii=False)
            size += len(part.encode("utf-8")) + 2
            if size > DOWNLOAD_MAX_BYTES:
                truncated = True
                break
            parts.append(part)
            kept += 1
        head = {"filter": {"sentiment": flt.sentiment, "source": flt.source}, "count": kept, "truncated": truncated}
        body = json.dumps(head)[:-1] + ', "items": [' + ", ".join(parts) + "]}\n"
        kind = "application/json"
    else:
        lines = [_csv_line(CSV_COLUMNS)]
        size = len(lines[0])
        for item in items:
            line = _csv_line([item["item_id"], *(_csv_cell(item.get(c)) for c in CSV_COLUMNS[1:])])
            size += len(line.encode("utf-8"))
            if size > DOWNLOAD_MAX_BYTES:
                truncated = True
                break
            lines.append(line)
            kept += 1
        body = "".join(lines)
        kind = "text/csv; charset=utf-8"
    extra = {"Content-Disposition": f'attachment; filename="{safe}.{route.rsplit(".", 1)[1]}"'}
    if truncated:
        extra["X-Items-Truncated"] = f"{kept} items: the newest that fit the download's limit"
    return _response(200, body, kind, cache=ttl, **extra)


def respond(
    method: str,
    path: str,
    load_summary: SummaryLoader,
    *,
    query: str = "",
    load_items: ItemsLoader | None = None,
    title: str = "Sentiment analyzer",
    empty_hint: str | None = None,
    cache_ttl: int = CACHE_TTL_S,
) -> Response:
    """The response to one request (``cache_ttl`` 0: not cached, for the local server, whose data changes
    with each run); the loaders read the table (called only for a known route and a valid query)."""
    route = "/" + path.strip("/")
    if route not in ROUTES:
        return _error(404, f"not found: {route[:200]}")
    if method not in ("GET", "HEAD"):
        response = _error(405, "read-only: GET or HEAD only")
        response.headers["Allow"] = "GET, HEAD"
        return response
    response = _get(
        route,
        query=query,
        load_summary=load_summary,
        load_items=load_items,
        title=title,
        empty_hint=empty_hint,
        cache_ttl=cache_ttl,
    )
    if method == "HEAD":
        return Response(status=response.status, body=b"", headers=response.headers)
    return response


def _get(  # noqa: PLR0911 - one return per route and per refusal reads plainest here
    route: str,
    *,
    query: str,
    load_summary: SummaryLoader,
    load_items: ItemsLoader | None,
    title: str,
    empty_hint: str | None,
    cache_ttl: int,
) -> Response:
    if route in ("/favicon.svg", "/favicon.ico"):
        return _response(200, FAVICON_SVG, "image/svg+xml", cache=ICON_TTL_S)
    if route == "/api/summary":
        if query:
            return _error(400, "/api/summary takes no query parameters")
    else:
        try:
            flt = parse_query(query)
        except QueryError as exc:
            return _plain_error(400, str(exc))
    try:
        if route in ("/items.csv", "/items.json"):
            if load_items is None:
                return _error(404, "item downloads are not available here")
            listed = load_items(ItemFilter(flt.sentiment, flt.source), 0, DOWNLOAD_LIMIT)
            return _download(route, [i.as_dict() for i in listed.items], flt, listed.truncated, cache_ttl)
        summary = load_summary()
        if route == "/api/summary":
            return _response(200, json.dumps(summary, ensure_ascii=False) + "\n", "application/json", cache=cache_ttl)
        items = None  # the first, unfiltered page is the summary's recent items (read with it)
        if load_items is not None and (flt.active or flt.page > 1):
            items = load_items(flt, (flt.page - 1) * PER_PAGE, PER_PAGE)
    except Exception:
        log.exception("reading the summary failed")
        return _error(503, "the summary could not be read; try again shortly")
    html = page(summary, title=title, items=items, empty_hint=empty_hint, cache_ttl=cache_ttl)
    return _response(200, html, "text/html; charset=utf-8", cache=cache_ttl)
