"""Both command-line tools end every AWS or network failure as one line naming what failed, exit 1.

The emulator here is a real HTTP server on loopback: S3 calls succeed, every DynamoDB call answers
HTTP 500, so ``sentiment-local run`` gets past the bucket and fails creating the items table.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from model_fixtures import make_model_dir

from sentiment_infra import model_cli
from sentiment_local import cli as local_cli

pytestmark = pytest.mark.functional


class _DynamoDbFails(BaseHTTPRequestHandler):
    calls: list[str]

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        target = self.headers.get("X-Amz-Target", "")
        self.calls.append(target or f"{self.command} {self.path}")
        failing = target.startswith("DynamoDB_")
        body = b'{"__type":"InternalServerError","message":"emulator broke"}' if failing else b""
        self.send_response(500 if failing else 200)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = do_POST = do_HEAD = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def broken_emulator() -> Iterator[tuple[str, list[str]]]:
    calls: list[str] = []
    handler = type("Handler", (_DynamoDbFails,), {"calls": calls})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", calls
    finally:
        server.shutdown()
        server.server_close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _one_line(err: str, prog: str) -> str:
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"{prog}: error: ")
    return lines[0]


def test_local_run_against_an_emulator_answering_500_to_create_table(
    broken_emulator: tuple[str, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, calls = broken_emulator
    argv = ["run", "--endpoint-url", url, "--model-dir", str(tmp_path), "--state-dir", str(tmp_path), "--json"]

    code = local_cli.main(argv)

    out, err = capsys.readouterr()
    assert (code, out) == (1, "")
    line = _one_line(err, "sentiment-local")
    assert "CreateTable" in line
    assert "(HTTP 500)" in line
    # the call and botocore's 5 retries (``max_attempts`` counts retries), nothing on top
    assert calls.count("DynamoDB_20120810.CreateTable") == 6


def test_local_run_against_an_endpoint_nobody_listens_on(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    argv = ["run", "--endpoint-url", url, "--model-dir", str(tmp_path), "--state-dir", str(tmp_path), "--json"]

    code = local_cli.main(argv)

    _, err = capsys.readouterr()
    assert code == 1
    assert "Could not connect to the endpoint URL" in _one_line(err, "sentiment-local")


def test_model_publish_against_an_endpoint_nobody_listens_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_closed_port()}")
    model = make_model_dir(tmp_path / "model")

    code = model_cli.main(["publish", "--model-dir", str(model), "--bucket", "b", "--key", "k/model.tar"])

    _, err = capsys.readouterr()
    assert code == 1
    assert "Could not connect to the endpoint URL" in _one_line(err, "sentiment-model")
