"""S3 in the minutes after versioning is first enabled on a bucket: a loopback proxy in front of a moto server.

S3's documentation (Using versioning in S3 buckets): "When you enable versioning on a bucket for the first
time, it might take a short amount of time for the change to be fully propagated. While this change is
propagating, you might encounter intermittent HTTP 404 NoSuchKey errors for requests to objects created or
updated after enabling versioning. We recommend that you wait for 15 minutes after enabling versioning
before issuing write operations (PUT or DELETE) on objects in the bucket." Writes landing before then are
stored as the bucket's unversioned ("null") object: PutObject answers without a version id, or with
``x-amz-version-id: null`` (what S3 answers for a write into a null version).

:class:`VersioningLag` forwards every request to the moto server and plays that window for real: the bucket
is left unversioned in moto, so the first ``writes`` object writes (PutObject, CompleteMultipartUpload) are
stored unversioned by moto itself, answered with no version header (``answer="absent"``) or with
``x-amz-version-id: null`` (``answer="null"``); once the last of them is answered the proxy enables
versioning on the moto bucket ("propagated") and from then on writes get real version ids.
"""

from __future__ import annotations

import http.client
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

from loopback import QuietHandler, serving

_VERSIONING_ENABLED = (
    b'<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Status>Enabled</Status>'
    b"</VersioningConfiguration>"
)
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "host"})


@dataclass
class VersioningLag:
    """State of the proxy: how many writes are still to land unversioned, and what it saw."""

    upstream: str
    bucket: str
    writes: int
    answer: Literal["absent", "null"] = "absent"
    url: str = ""
    unversioned_writes: int = 0
    versioned_writes: int = 0
    log: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def enable_versioning(self) -> None:
        """PutBucketVersioning on the moto server (moto does not check signatures)."""
        target = urllib.parse.urlsplit(self.upstream)
        connection = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port, timeout=30)
        try:
            connection.request("PUT", f"/{self.bucket}?versioning", body=_VERSIONING_ENABLED)
            response = connection.getresponse()
            response.read()
            assert response.status == 200, f"PutBucketVersioning on moto answered {response.status}"
        finally:
            connection.close()


def _is_object_write(method: str, path: str, bucket: str) -> bool:
    url = urllib.parse.urlsplit(path)
    parts = url.path.lstrip("/").split("/", 1)
    if len(parts) != 2 or parts[0] != bucket or not parts[1]:
        return False
    query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
    if method == "PUT":
        return not ({"partNumber", "uploadId", "tagging", "acl", "retention", "legal-hold"} & query.keys())
    return method == "POST" and "uploadId" in query  # CompleteMultipartUpload


@contextmanager
def versioning_lag(
    upstream: str, bucket: str, *, writes: int, answer: Literal["absent", "null"] = "absent"
) -> Iterator[VersioningLag]:
    """Serve the proxy on a loopback port (``lag.url``); ``bucket`` must exist on ``upstream``, unversioned."""
    lag = VersioningLag(upstream=upstream, bucket=bucket, writes=writes, answer=answer)
    target = urllib.parse.urlsplit(upstream)
    if writes == 0:
        lag.enable_versioning()

    class Handler(QuietHandler):
        protocol_version = "HTTP/1.1"

        def _forward(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            headers["Host"] = target.netloc
            write = _is_object_write(self.command, self.path, bucket)
            with lag.lock:  # one write at a time, so "the first N writes" is well defined
                connection = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port, timeout=60)
                try:
                    connection.request(self.command, self.path, body=body, headers=headers)
                    response = connection.getresponse()
                    payload = response.read()
                    length = response.getheader("Content-Length") or str(len(payload))  # a HEAD's is the object's
                    reply_headers = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP]
                    status = response.status
                finally:
                    connection.close()
                if write and 200 <= status < 300:
                    if lag.unversioned_writes < lag.writes:
                        lag.unversioned_writes += 1
                        reply_headers = [(k, v) for k, v in reply_headers if k.lower() != "x-amz-version-id"]
                        if lag.answer == "null":
                            reply_headers.append(("x-amz-version-id", "null"))
                        lag.log.append(f"{self.command} {self.path}: unversioned ({lag.answer})")
                        if lag.unversioned_writes == lag.writes:
                            lag.enable_versioning()
                    else:
                        lag.versioned_writes += 1
                        lag.log.append(f"{self.command} {self.path}: versioned")
            self.send_response(status)
            for name, value in reply_headers:
                self.send_header(name, value)
            self.send_header("Content-Length", length)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward

    with serving(Handler) as lag.url:
        yield lag
