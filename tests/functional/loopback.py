"""A loopback HTTP server standing for an AWS endpoint (see the ``loopback_endpoint`` fixture), and
:func:`serving`, how every loopback server in the tests runs."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    target: str
    """``X-Amz-Target`` (the operation, in AWS's JSON protocols); empty otherwise."""
    body: bytes


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)


class LoopbackEndpoint:
    """A real HTTP server on loopback: records every request and answers it with ``reply(request)``.

    A reply of ``None`` hangs up without answering (the client sees the connection closed).
    """

    def __init__(self) -> None:
        self.url = ""
        self.requests: list[Request] = []
        self.reply: Callable[[Request], Reply | None] = lambda _request: Reply(200)

    def script(self, *replies: Reply | None) -> None:
        """Answer with ``replies`` in order, then with the last one again."""
        queue = list(replies)
        self.reply = lambda _request: queue.pop(0) if len(queue) > 1 else queue[0]


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that keeps the test output clean (no access log lines)."""

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """``handler`` served on a free loopback port by a threading server until the block ends: its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def serve() -> Iterator[LoopbackEndpoint]:
    endpoint = LoopbackEndpoint()

    class Handler(QuietHandler):
        def _answer(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            request = Request(self.command, self.path, self.headers.get("X-Amz-Target", ""), body)
            endpoint.requests.append(request)
            reply = endpoint.reply(request)
            if reply is None:
                return
            self.send_response(reply.status)
            for name, value in {"Content-Length": str(len(reply.body)), **reply.headers}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(reply.body)

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _answer

    with serving(Handler) as endpoint.url:
        yield endpoint
