"""The dashboard's HTTP surface, independent of how it is served (Lambda function URL or a local server).

``GET /`` → the HTML page; ``GET /api/summary`` → the JSON summary (ARCHITECTURE.md "Dashboard");
``HEAD`` of either; anything else is refused (405) — nothing here writes. Every response carries the
strict Content-Security-Policy and a short shared-cache lifetime (``s-maxage``), so CloudFront answers
most viewers and the table is read at most once per TTL per edge.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sentiment_dashboard.render import CONTENT_SECURITY_POLICY, page

log = logging.getLogger(__name__)

CACHE_TTL_S = 30
SummaryLoader = Callable[[], dict[str, Any]]

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def _response(status: int, body: str, content_type: str, *, cache: bool) -> Response:
    headers = {
        "Content-Type": content_type,
        "Cache-Control": f"public, max-age={CACHE_TTL_S}, s-maxage={CACHE_TTL_S}" if cache else "no-store",
        **SECURITY_HEADERS,
    }
    return Response(status=status, body=body.encode("utf-8"), headers=headers)


def _error(status: int, message: str) -> Response:
    return _response(status, json.dumps({"error": message}) + "\n", "application/json", cache=False)


def respond(method: str, path: str, load_summary: SummaryLoader, *, title: str = "Sentiment analyzer") -> Response:
    """The response to one request; ``load_summary`` reads the table (called only for a known route)."""
    route = "/" + path.strip("/")
    if route not in ("/", "/api/summary"):
        return _error(404, f"not found: {route[:200]}")
    if method not in ("GET", "HEAD"):
        response = _error(405, "read-only: GET or HEAD only")
        response.headers["Allow"] = "GET, HEAD"
        return response
    try:
        summary = load_summary()
    except Exception:
        log.exception("reading the summary failed")
        return _error(503, "the summary could not be read; try again shortly")
    if route == "/api/summary":
        response = _response(200, json.dumps(summary, ensure_ascii=False) + "\n", "application/json", cache=True)
    else:
        response = _response(200, page(summary, title=title), "text/html; charset=utf-8", cache=True)
    if method == "HEAD":
        return Response(status=response.status, body=b"", headers=response.headers)
    return response
