"""Model bundles in S3: the object store the model publisher writes through.

Used by the model publisher (upload with S3-verified SHA-256 checksums and the digest in the metadata,
skip when already there, delete a version). Uploads go through s3transfer, the library boto3's own
``upload_file`` / ``download_file`` use. The adapter's client comes from :mod:`sentiment_shared.aws` on
first use, never at construction.
"""

from __future__ import annotations

import base64
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError
from s3transfer.manager import TransferConfig, TransferManager
from s3transfer.subscribers import BaseSubscriber

from sentiment_shared import aws

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from s3transfer.futures import TransferFuture

ProgressCallback = Callable[[int], None]
"""Called with the number of bytes just transferred."""

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ObjectHead:
    """What a HEAD of an object tells: size, version, user metadata and the stored SHA-256 checksum."""

    bucket: str
    key: str
    size: int
    etag: str
    version_id: str | None
    metadata: Mapping[str, str] = field(default_factory=dict)
    checksum_sha256: str | None = None
    """S3's base64 SHA-256 checksum (composite ``…-N`` for multipart uploads), if one was stored."""


@dataclass(frozen=True, slots=True)
class PutResult:
    version_id: str | None
    etag: str


def _version_id(response: Mapping[str, object]) -> str | None:
    """The object's version id, or None where S3 cannot pin one: an unversioned (or suspended) bucket
    answers nothing or the literal ``"null"``, and a later write replaces that object in place."""
    version = response.get("VersionId")
    return str(version) if version and version != "null" else None


_WRITES = ("PutObject", "CompleteMultipartUpload")
"""The requests whose answer is the new object (and carries its version id)."""
_upload_numbers = itertools.count()


class _WriteAnswer:
    """Catches S3's answer to the request that creates one upload's object, which s3transfer does not return.

    botocore hands one ``context`` dict to a call's ``before-parameter-build`` and ``after-call`` events: the
    first marks the calls writing this bucket and key, the second keeps the marked answer (the version id
    the publisher pins). Registered on the client for the upload only.
    """

    def __init__(self, client: S3Client, bucket: str, key: str) -> None:
        self._events = client.meta.events
        self._target = (bucket, key)
        self._token = f"sentiment-upload-{next(_upload_numbers)}"
        self.response: Mapping[str, Any] = {}

    def _mark(self, params: Mapping[str, Any], context: dict[str, Any], **_: Any) -> None:
        if (params.get("Bucket"), params.get("Key")) == self._target:
            context[self._token] = True

    def _keep(self, parsed: Mapping[str, Any], context: Mapping[str, Any], **_: Any) -> None:
        if context.get(self._token):
            self.response = parsed

    def __enter__(self) -> _WriteAnswer:
        for op in _WRITES:
            self._events.register(f"before-parameter-build.s3.{op}", self._mark, unique_id=f"{self._token}-m-{op}")
            self._events.register(f"after-call.s3.{op}", self._keep, unique_id=f"{self._token}-k-{op}")
        return self

    def __exit__(self, *_exc: object) -> None:
        for op in _WRITES:
            self._events.unregister(f"before-parameter-build.s3.{op}", unique_id=f"{self._token}-m-{op}")
            self._events.unregister(f"after-call.s3.{op}", unique_id=f"{self._token}-k-{op}")


class _Progress(BaseSubscriber):
    def __init__(self, callback: ProgressCallback) -> None:
        self._callback = callback

    def on_progress(self, future: TransferFuture, bytes_transferred: int, **_: Any) -> None:
        self._callback(bytes_transferred)


class S3ObjectStore:
    """Objects in S3: head, verified upload, delete.

    Files up to ``multipart_threshold`` go up in one ``PutObject`` carrying the whole file's
    ``ChecksumSHA256``, which S3 checks on write. Larger files use s3transfer's multipart upload
    (``part_size`` parts, ``max_concurrency`` at once) with a SHA-256 checksum per part that botocore
    computes and S3 checks, and S3 a composite checksum of the whole (S3 keeps no full-object SHA-256
    of a multipart object); any failure aborts the upload, so no partial object appears.
    """

    client: aws.LazyClient[S3Client] = aws.LazyClient("s3")

    def __init__(
        self,
        *,
        client: S3Client | None = None,
        multipart_threshold: int = 64 * MiB,
        part_size: int = 32 * MiB,
        max_concurrency: int = 4,
    ) -> None:
        if part_size < 5 * MiB:
            raise ValueError("S3 parts must be at least 5 MiB")
        self._client = client
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        self.max_concurrency = max_concurrency

    def head(self, bucket: str, key: str, *, version_id: str | None = None) -> ObjectHead | None:
        """The object's metadata, or None if there is no such object (or version)."""
        try:
            if version_id is None:
                resp = self.client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
            else:
                resp = self.client.head_object(Bucket=bucket, Key=key, VersionId=version_id, ChecksumMode="ENABLED")
        except ClientError as exc:
            if aws.error_code(exc) in ("404", "NoSuchKey", "NotFound", "NoSuchVersion"):
                return None
            raise
        return ObjectHead(
            bucket=bucket,
            key=key,
            size=int(resp.get("ContentLength", 0)),
            etag=str(resp.get("ETag", "")),
            version_id=_version_id(resp),
            metadata=dict(resp.get("Metadata", {})),
            checksum_sha256=resp.get("ChecksumSHA256"),
        )

    def upload(
        self,
        path: Path,
        bucket: str,
        key: str,
        *,
        sha256: str,
        metadata: Mapping[str, str],
        progress: ProgressCallback | None = None,
    ) -> PutResult:
        """Upload ``path`` with S3 verifying its SHA-256; an upload that fails leaves no object behind."""
        extra: dict[str, Any] = {
            "ChecksumAlgorithm": "SHA256",
            "Metadata": dict(metadata),
            "ContentType": "application/x-tar",
        }
        if path.stat().st_size <= self.multipart_threshold:
            # One PutObject: S3 checks the whole file against the digest we computed, not one botocore recomputes
            extra["ChecksumSHA256"] = base64.b64encode(bytes.fromhex(sha256)).decode("ascii")
        config = TransferConfig(
            multipart_threshold=self.multipart_threshold + 1,  # multipart above the threshold, as documented
            multipart_chunksize=self.part_size,
            max_request_concurrency=self.max_concurrency,
        )
        subscribers = [_Progress(progress)] if progress is not None else None
        client = self.client
        with _WriteAnswer(client, bucket, key) as answer, TransferManager(client, config) as transfers:
            transfers.upload(str(path), bucket, key, extra_args=extra, subscribers=subscribers).result()
        return PutResult(version_id=_version_id(answer.response), etag=str(answer.response.get("ETag", "")))

    def delete(self, bucket: str, key: str, *, version_id: str | None = None) -> None:
        """Delete the object (that version only, when given); a missing object is not an error."""
        try:
            if version_id is None:
                self.client.delete_object(Bucket=bucket, Key=key)
            else:
                self.client.delete_object(Bucket=bucket, Key=key, VersionId=version_id)
        except ClientError as exc:
            if aws.error_code(exc) not in ("404", "NoSuchKey", "NoSuchVersion"):
                raise
