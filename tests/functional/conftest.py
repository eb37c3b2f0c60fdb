"""Fixtures of the functional tests: a loopback HTTP server standing for an AWS endpoint, a dead port."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from loopback import LoopbackEndpoint, serve


@pytest.fixture
def loopback_endpoint() -> Iterator[LoopbackEndpoint]:
    """A real HTTP server on loopback that records every request and answers as the test scripts it."""
    with serve() as endpoint:
        yield endpoint


@pytest.fixture
def unreachable_url() -> str:
    """An endpoint URL on a loopback port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"
