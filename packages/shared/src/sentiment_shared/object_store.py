"""Model bundles in S3: the object store the model publisher writes through.

Used by the model publisher (upload with an S3-verified SHA-256 checksum and the digest in the
metadata, skip when already there, delete a version) and by readers that stream an object. The
adapter's client comes from :mod:`sentiment_shared.aws` on first use, never at construction.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

from botocore.exceptions import ClientError

from sentiment_shared import aws

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

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


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


class S3ObjectStore:
    """Objects in S3: head, streamed read, verified upload, delete.

    Files up to ``multipart_threshold`` go up in one ``PutObject`` carrying the whole file's
    ``ChecksumSHA256``, which S3 checks on write. Larger files use a multipart upload with a SHA-256
    checksum per part (S3 checks each); any failure aborts the upload, so no partial object appears.
    """

    client: aws.LazyClient[S3Client] = aws.LazyClient("s3")

    def __init__(
        self,
        *,
        client: S3Client | None = None,
        multipart_threshold: int = 64 * MiB,
        part_size: int = 32 * MiB,
    ) -> None:
        if part_size < 5 * MiB:
            raise ValueError("S3 parts must be at least 5 MiB")
        self._client = client
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size

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

    def open(self, bucket: str, key: str) -> IO[bytes]:
        """A streamed read of the object's content (one GET); the caller closes it."""
        # StreamingBody is a readable binary stream; the stubs do not say it is an IO[bytes].
        return self.client.get_object(Bucket=bucket, Key=key)["Body"]  # type: ignore[return-value]

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
        size = path.stat().st_size
        if size > self.multipart_threshold:
            return self._multipart(path, bucket, key, metadata=metadata, progress=progress)
        with path.open("rb") as body:
            resp = self.client.put_object(
                Bucket=bucket,
                Key=key,
                Body=body,
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=_b64(bytes.fromhex(sha256)),
                Metadata=dict(metadata),
                ContentType="application/x-tar",
            )
        if progress is not None:
            progress(size)
        return PutResult(version_id=_version_id(resp), etag=str(resp.get("ETag", "")))

    def _multipart(
        self,
        path: Path,
        bucket: str,
        key: str,
        *,
        metadata: Mapping[str, str],
        progress: ProgressCallback | None,
    ) -> PutResult:
        upload_id = self.client.create_multipart_upload(
            Bucket=bucket,
            Key=key,
            ChecksumAlgorithm="SHA256",
            Metadata=dict(metadata),
            ContentType="application/x-tar",
        )["UploadId"]
        try:
            parts: list[CompletedPartTypeDef] = []
            with path.open("rb") as src:
                number = 1
                while chunk := src.read(self.part_size):
                    checksum = _b64(hashlib.sha256(chunk).digest())
                    resp = self.client.upload_part(
                        Bucket=bucket,
                        Key=key,
                        UploadId=upload_id,
                        PartNumber=number,
                        Body=chunk,
                        ChecksumAlgorithm="SHA256",
                        ChecksumSHA256=checksum,
                    )
                    parts.append({"PartNumber": number, "ETag": resp["ETag"], "ChecksumSHA256": checksum})
                    if progress is not None:
                        progress(len(chunk))
                    number += 1
            done = self.client.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            # Never leave a half upload (billed, invisible) behind; the original error is what matters.
            with contextlib.suppress(ClientError):
                self.client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            raise
        return PutResult(version_id=_version_id(done), etag=str(done.get("ETag", "")))

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


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(MiB):
            digest.update(chunk)
    return digest.hexdigest()
