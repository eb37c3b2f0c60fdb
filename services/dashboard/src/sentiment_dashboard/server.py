"""Serve the dashboard on 127.0.0.1 with the standard library (``sentiment-local dashboard``, tests).

A threading WSGI server: the same :func:`sentiment_dashboard.app.respond` as the Lambda, read-only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from sentiment_dashboard.app import CACHE_TTL_S, SummaryLoader, respond
from sentiment_dashboard.items import ItemsLoader

log = logging.getLogger(__name__)

_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


def wsgi_app(
    load_summary: SummaryLoader,
    load_items: ItemsLoader | None = None,
    empty_hint: str | None = None,
    cache_ttl: int = CACHE_TTL_S,
) -> Callable[..., Iterable[bytes]]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        # PEP 3333: PATH_INFO arrives as latin-1-decoded bytes; the query string is passed on undecoded
        response = respond(
            str(environ.get("REQUEST_METHOD", "GET")),
            str(environ.get("PATH_INFO", "/")),
            load_summary,
            query=str(environ.get("QUERY_STRING", "")).encode("latin-1", "replace").decode("utf-8", "replace"),
            load_items=load_items,
            empty_hint=empty_hint,
            cache_ttl=cache_ttl,
        )
        status = f"{response.status} {_REASONS.get(response.status, 'Error')}"
        headers = [*response.headers.items(), ("Content-Length", str(len(response.body)))]
        start_response(status, headers)
        return [response.body]

    return app


def make(
    load_summary: SummaryLoader,
    port: int,
    host: str = "127.0.0.1",
    *,
    load_items: ItemsLoader | None = None,
    empty_hint: str | None = None,
    cache_ttl: int = CACHE_TTL_S,
) -> WSGIServer:
    """A server bound to ``host:port`` (port 0: any free port; read ``server.server_port``); ``cache_ttl`` 0
    answers ``no-store`` (the local dashboard: a run made while the page is open shows on its next load)."""
    app = wsgi_app(load_summary, load_items, empty_hint, cache_ttl)
    return make_server(host, port, app, server_class=_Server, handler_class=_QuietHandler)
