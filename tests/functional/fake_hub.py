"""A tiny fake of the Hugging Face hub's HTTP API on 127.0.0.1: enough for ``snapshot_download``.

Serves one or more model repos from local files (``repo_id -> {commit: {path: bytes}}``) with the
endpoints huggingface_hub uses: revision info, the recursive tree listing and ``resolve`` HEAD/GET
with the commit, ETag and size headers. It records every request so tests can assert what was
(and was never) downloaded.
"""

from __future__ import annotations

import hashlib
import json
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest


@dataclass
class FakeRepo:
    commits: dict[str, dict[str, bytes]]
    refs: dict[str, str] = field(default_factory=dict)

    def commit_for(self, revision: str) -> str | None:
        if revision in self.commits:
            return revision
        return self.refs.get(revision)


class FakeHub:
    def __init__(self, repos: dict[str, FakeRepo]) -> None:
        self.repos = repos
        self.requests: list[tuple[str, str]] = []
        self.fail_with: int | None = None
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_HEAD(self) -> None:
                hub._handle(self, head=True)

            def do_GET(self) -> None:
                hub._handle(self, head=False)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def downloaded(self) -> set[str]:
        """File paths fetched with a GET of ``resolve``."""
        return {
            path.rsplit("/resolve/", 1)[1].split("/", 1)[1]
            for verb, path in self.requests
            if verb == "GET" and "/resolve/" in path
        }

    # ------------------------------------------------------------------ request handling

    def _send(
        self, handler: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str], *, head: bool
    ) -> None:
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if not head:
            handler.wfile.write(body)

    def _json(
        self,
        handler: BaseHTTPRequestHandler,
        status: int,
        payload: Any,
        *,
        head: bool,
        extra: dict[str, str] | None = None,
    ) -> None:
        self._send(
            handler,
            status,
            json.dumps(payload).encode(),
            {"Content-Type": "application/json", **(extra or {})},
            head=head,
        )

    def _not_found(self, handler: BaseHTTPRequestHandler, code: str, *, head: bool) -> None:
        self._json(handler, 404, {"error": code}, head=head, extra={"X-Error-Code": code, "X-Error-Message": code})

    def _handle(self, handler: BaseHTTPRequestHandler, *, head: bool) -> None:
        path = urllib.parse.urlsplit(handler.path).path
        self.requests.append(("HEAD" if head else "GET", path))
        if self.fail_with is not None:
            self._json(handler, self.fail_with, {"error": "unavailable"}, head=head)
            return
        if path.startswith("/api/models/"):
            self._api(handler, urllib.parse.unquote(path[len("/api/models/") :]), head=head)
        elif "/resolve/" in path:
            repo_id, _, rest = urllib.parse.unquote(path.lstrip("/")).partition("/resolve/")
            revision, _, filename = rest.partition("/")
            self._resolve(handler, repo_id, revision, filename, head=head)
        else:
            self._not_found(handler, "EntryNotFound", head=head)

    def _api(self, handler: BaseHTTPRequestHandler, rest: str, *, head: bool) -> None:
        for marker in ("/revision/", "/tree/"):
            if marker in rest:
                repo_id, _, tail = rest.partition(marker)
                revision = tail.split("/", 1)[0]
                break
        else:
            self._not_found(handler, "RepoNotFound", head=head)
            return
        repo = self.repos.get(repo_id)
        if repo is None:
            self._not_found(handler, "RepoNotFound", head=head)
            return
        commit = repo.commit_for(revision)
        if commit is None:
            self._not_found(handler, "RevisionNotFound", head=head)
            return
        files = repo.commits[commit]
        if marker == "/revision/":
            payload: Any = {
                "id": repo_id,
                "modelId": repo_id,
                "sha": commit,
                "siblings": [{"rfilename": f} for f in sorted(files)],
            }
        else:
            payload = [
                {"type": "file", "oid": hashlib.sha1(data).hexdigest(), "size": len(data), "path": name}
                for name, data in sorted(files.items())
            ]
        self._json(handler, 200, payload, head=head)

    def _resolve(
        self, handler: BaseHTTPRequestHandler, repo_id: str, revision: str, filename: str, *, head: bool
    ) -> None:
        repo = self.repos.get(repo_id)
        commit = repo.commit_for(revision) if repo else None
        if repo is None or commit is None:
            self._not_found(handler, "RepoNotFound" if repo is None else "RevisionNotFound", head=head)
            return
        data = repo.commits[commit].get(filename)
        if data is None:
            self._not_found(handler, "EntryNotFound", head=head)
            return
        etag = hashlib.sha256(data).hexdigest()
        headers = {"X-Repo-Commit": commit, "ETag": f'"{etag}"', "Content-Type": "application/octet-stream"}
        self._send(handler, 200, data, headers, head=head)


@contextmanager
def serving(repos: dict[str, FakeRepo], cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    """Run a fake hub and point ``HF_ENDPOINT`` / ``HF_HUB_CACHE`` (read at call time) at it and an empty cache."""
    with FakeHub(repos) as fake:
        monkeypatch.setenv("HF_ENDPOINT", fake.endpoint)
        monkeypatch.setenv("HF_HUB_CACHE", str(cache_dir))
        monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        yield fake
