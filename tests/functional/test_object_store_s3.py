"""The S3 object-store adapter against moto: verified uploads, metadata, multipart abort, versions."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from sentiment_shared.object_store import MiB, S3ObjectStore

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.functional

BUCKET = "models"


def _file(tmp_path: Path, size: int) -> tuple[Path, str]:
    data = os.urandom(size)
    path = tmp_path / "blob.tar"
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def test_small_upload_carries_checksum_and_metadata(tmp_path: Path, s3: S3Client) -> None:
    # Given a small file
    path, sha = _file(tmp_path, 4096)
    store = S3ObjectStore(client=s3)
    progress: list[int] = []

    # When it is uploaded
    put = store.upload(path, BUCKET, "a/model.tar", sha256=sha, metadata={"sha256": sha}, progress=progress.append)

    # Then HEAD shows its size, version, metadata and S3's SHA-256 checksum of the whole file
    head = store.head(BUCKET, "a/model.tar")
    assert head is not None
    assert (head.size, head.version_id, dict(head.metadata)) == (4096, put.version_id, {"sha256": sha})
    assert head.checksum_sha256 == base64.b64encode(bytes.fromhex(sha)).decode()
    assert sum(progress) == 4096
    # And the object holds the same bytes
    assert hashlib.sha256(s3.get_object(Bucket=BUCKET, Key="a/model.tar")["Body"].read()).hexdigest() == sha


def test_large_upload_goes_multipart_with_per_part_checksums(tmp_path: Path, s3: S3Client) -> None:
    # Given a file larger than the multipart threshold
    path, sha = _file(tmp_path, 11 * MiB)
    store = S3ObjectStore(client=s3, multipart_threshold=5 * MiB, part_size=5 * MiB)
    calls: list[str] = []
    sent: list[str] = []
    part_checksums: list[str] = []
    s3.meta.events.register("before-call.s3", lambda model, **_: calls.append(model.name))

    def how_the_checksum_is_sent(request: Any, **_: Any) -> None:
        sent.append("header" if "x-amz-checksum-sha256" in request.headers else request.headers["x-amz-trailer"])

    s3.meta.events.register("before-send.s3.UploadPart", how_the_checksum_is_sent)
    s3.meta.events.register(
        "after-call.s3.UploadPart", lambda parsed, **_: part_checksums.append(parsed["ChecksumSHA256"])
    )
    progress: list[int] = []

    # When it is uploaded
    put = store.upload(path, BUCKET, "big/model.tar", sha256=sha, metadata={"sha256": sha}, progress=progress.append)

    # Then it went up in three parts, each sending the SHA-256 of its own bytes for S3 to check, and one complete
    assert sent in (["header"] * 3, [b"x-amz-checksum-sha256"] * 3)
    assert calls.count("UploadPart") == 3
    assert calls.count("CompleteMultipartUpload") == 1
    data = path.read_bytes()
    expected = [hashlib.sha256(data[i : i + 5 * MiB]).digest() for i in range(0, len(data), 5 * MiB)]
    assert sorted(part_checksums) == sorted(base64.b64encode(d).decode() for d in expected)
    # And S3 keeps the composite checksum of those parts, the version the upload reported, and the metadata
    head = store.head(BUCKET, "big/model.tar")
    assert head is not None
    composite = base64.b64encode(hashlib.sha256(b"".join(expected)).digest()).decode()
    assert head.checksum_sha256 in (f"{composite}-3", composite)  # S3 appends the part count, moto does not
    assert (head.version_id, head.etag) == (put.version_id, put.etag)
    assert head.version_id is not None
    assert head.metadata["sha256"] == sha
    assert sum(progress) == 11 * MiB
    assert hashlib.sha256(s3.get_object(Bucket=BUCKET, Key="big/model.tar")["Body"].read()).hexdigest() == sha


def test_failed_multipart_upload_is_aborted_and_leaves_no_object(tmp_path: Path, s3: S3Client) -> None:
    # Given the second part upload fails (a dropped connection, say)
    path, sha = _file(tmp_path, 11 * MiB)
    store = S3ObjectStore(client=s3, multipart_threshold=5 * MiB, part_size=5 * MiB)
    parts = 0

    def fail_second_part(**_: Any) -> None:
        nonlocal parts
        parts += 1
        if parts == 2:
            raise ConnectionResetError("connection reset by peer")

    s3.meta.events.register("before-call.s3.UploadPart", fail_second_part)

    # When it is uploaded
    with pytest.raises(ConnectionResetError):
        store.upload(path, BUCKET, "big/model.tar", sha256=sha, metadata={"sha256": sha})

    # Then there is neither an object nor a pending multipart upload
    assert store.head(BUCKET, "big/model.tar") is None
    assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []


def test_delete_removes_only_the_given_version(tmp_path: Path, s3: S3Client) -> None:
    # Given two versions of one key
    store = S3ObjectStore(client=s3)
    path, sha = _file(tmp_path, 100)
    first = store.upload(path, BUCKET, "k", sha256=sha, metadata={"sha256": sha})
    path2, sha2 = _file(tmp_path, 200)
    second = store.upload(path2, BUCKET, "k", sha256=sha2, metadata={"sha256": sha2})

    # When the first version is deleted
    store.delete(BUCKET, "k", version_id=first.version_id)

    # Then the second is still current, the first is gone, and deleting again is harmless
    head = store.head(BUCKET, "k")
    assert head is not None
    assert head.version_id == second.version_id
    assert store.head(BUCKET, "k", version_id=first.version_id) is None
    store.delete(BUCKET, "missing-key")


def test_head_of_a_missing_object_is_none(s3: S3Client) -> None:
    assert S3ObjectStore(client=s3).head(BUCKET, "nothing/here.tar") is None


@pytest.mark.parametrize(
    ("response", "expected"), [({}, None), ({"VersionId": "null"}, None), ({"VersionId": "3HL4k"}, "3HL4k")]
)
def test_only_a_real_version_id_is_reported(response: dict[str, str], expected: str | None) -> None:
    # S3 answers "null" for the object of an unversioned or versioning-suspended bucket: nothing to pin
    from sentiment_shared.object_store import _version_id

    assert _version_id(response) == expected
