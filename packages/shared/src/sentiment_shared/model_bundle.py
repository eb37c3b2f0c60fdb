"""The model bundle: a reproducible archive of a Hugging Face model directory, and its safe reader.

Used by the publisher (``sentiment-model`` / the ``ModelArtifact`` dynamic resource) to build the
object stored in S3, and by the analysis function's cold start to fetch, verify and extract it.

Format: a plain, uncompressed POSIX (PAX) tar, chosen by measurement (``benchmarks.bundle_formats``,
table in ``benchmarks/README.md``): fp32 weights barely compress (-8 %), so gzip or zstd would add
CPU to every cold start (and zstd a codec to the image) to save a fraction of a second of transfer.
Readers detect the format from the bytes (tar magic at offset 257; gzip magic for legacy bundles),
never from the file name; anything else is refused.

Reproducibility: members sorted by name, mtime 0, uid/gid 0, empty user/group names, mode 0644,
regular files only, PAX format fixed, no compression header (so no name or time in it). The same
model gives the same sha256 whatever the destination path or the source files' metadata.

Safety (``tarfile`` trusts member names and link targets, so a hostile archive can write outside the
destination): members are written by this module, not by ``extractall``. Only
regular files whose single-component names are on an allow-list (config, tokenizer files,
``*.safetensors``) are accepted; absolute paths, ``..``, subdirectories, links, devices, fifos,
sparse files and duplicates raise :class:`BundleError`. Extraction goes into a temporary sibling of
the destination; a completion marker is written last and the directory renamed into place, so a
failure (bad digest, hostile member, full disk, cut stream) leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Literal, Protocol

from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

BUNDLE_FILE_NAME = "model.tar"
"""The bundle's file name in the model key (``<prefix>/<version>/model.tar``)."""

COMPLETE_MARKER = ".bundle-complete"
"""Written last into an extracted bundle directory; holds the bundle's sha256."""

MAX_BUNDLE_BYTES = 10 * 1024**3
"""Refuse bundles whose members add up to more than Lambda's largest ``/tmp`` (10 GiB)."""

_CHUNK = 1024 * 1024
_TAR_MAGIC_OFFSET = 257
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")

CONFIG_FILES = frozenset({"config.json", "generation_config.json"})
TOKENIZER_FILES = frozenset(
    {
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "added_tokens.json",
        "vocab.txt",
        "vocab.json",
        "merges.txt",
        "spiece.model",
        "sentencepiece.bpe.model",
        "tokenizer.model",
    }
)
_TOKENIZER_VOCAB_FILES = frozenset(
    {"tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model", "tokenizer.model"}
)
_WEIGHTS_INDEX = "model.safetensors.index.json"
_WEIGHTS_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*\.safetensors$")

HUB_ALLOW_PATTERNS = (*sorted(CONFIG_FILES), *sorted(TOKENIZER_FILES), _WEIGHTS_INDEX, "*.safetensors")
"""``allow_patterns`` for ``huggingface_hub.snapshot_download``: exactly what a bundle may hold."""


class BundleError(Exception):
    """A bundle could not be built, verified, fetched or extracted safely."""


@dataclass(frozen=True, slots=True)
class BundleInfo:
    """A packed bundle: its sha256 (hex), size in bytes and path."""

    sha256: str
    size: int
    path: Path


@dataclass(slots=True)
class FetchStats:
    """Where a :func:`fetch` spent its time; pass one in to get the breakdown filled in."""

    bytes: int = 0
    download_s: float = 0.0
    verify_s: float = 0.0
    extract_s: float = 0.0
    cached: bool = False


def is_bundle_member_name(name: str) -> bool:
    """True for the file names a bundle may hold: config, tokenizer files and safetensors weights."""
    if not _NAME_RE.fullmatch(name):
        return False
    return (
        name in CONFIG_FILES or name in TOKENIZER_FILES or name == _WEIGHTS_INDEX or bool(_WEIGHTS_RE.fullmatch(name))
    )


def model_files(model_dir: Path) -> list[Path]:
    """The files of ``model_dir`` that go into a bundle, sorted; :class:`BundleError` if it is not a model.

    A model directory must hold ``config.json``, a tokenizer (``tokenizer.json`` or a vocabulary) and
    safetensors weights. Anything else (READMEs, ``.bin`` pickles, other frameworks' weights,
    subdirectories) is ignored. Symlinks are followed (the Hugging Face cache links into its blobs).
    """
    if not model_dir.is_dir():
        raise BundleError(f"model directory not found: {model_dir}")
    chosen: list[Path] = []
    for entry in sorted(model_dir.iterdir(), key=lambda p: p.name):
        if is_bundle_member_name(entry.name) and entry.is_file():
            chosen.append(entry)
    names = {p.name for p in chosen}
    missing = []
    if "config.json" not in names:
        missing.append("config.json")
    if not names & _TOKENIZER_VOCAB_FILES:
        missing.append("tokenizer files (tokenizer.json or a vocabulary)")
    if not any(_WEIGHTS_RE.fullmatch(n) for n in names):
        missing.append("safetensors weights (*.safetensors)")
    if missing:
        raise BundleError(f"{model_dir} is not a model directory: missing {', '.join(missing)}")
    # Refuse a config the function could never load here, at publish time, not at every cold start.
    try:
        config = json.loads((model_dir / "config.json").read_bytes())
    except (OSError, ValueError) as exc:
        raise BundleError(f"{model_dir / 'config.json'} is not valid JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise BundleError(f"{model_dir / 'config.json'} must hold a JSON object")
    return chosen


# --------------------------------------------------------------------------- pack


class _HashingWriter(io.RawIOBase):
    """A write-only file that hashes and counts what passes through it."""

    def __init__(self, raw: IO[bytes]) -> None:
        super().__init__()
        self._raw = raw
        self.digest = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        view = memoryview(data)
        self._raw.write(view)
        self.digest.update(view)
        self.size += len(view)
        return len(view)


def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info


def pack(model_dir: Path, dest_file: Path) -> BundleInfo:
    """Write a reproducible bundle of ``model_dir`` to ``dest_file`` (atomically) and return its digest."""
    model_dir, dest_file = Path(model_dir), Path(dest_file)
    files = model_files(model_dir)
    dest_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest_file.with_name(f".{dest_file.name}.{uuid.uuid4().hex}.tmp")
    try:
        with tmp.open("wb") as raw:
            writer = _HashingWriter(raw)
            # Stream mode ("w|"): the writer cannot seek, and the output must not depend on it anyway.
            with tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                for path in files:
                    with path.open("rb") as src:
                        size = os.fstat(src.fileno()).st_size
                        tar.addfile(_tarinfo(path.name, size), src)
            raw.flush()
            os.fsync(raw.fileno())
        tmp.replace(dest_file)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise BundleError(f"cannot write bundle {dest_file}: {exc}") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return BundleInfo(sha256=writer.digest.hexdigest(), size=writer.size, path=dest_file)


# --------------------------------------------------------------------------- read side


class _Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


class _HashingReader(io.RawIOBase):
    """Reads from ``source`` (after replaying ``head``), hashing and timing every byte handed out."""

    def __init__(self, source: _Readable, head: bytes, stats: FetchStats) -> None:
        super().__init__()
        self._source = source
        self._head = head
        self.digest = hashlib.sha256(head)
        self.size = len(head)
        self._stats = stats

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1, /) -> bytes:
        if size < 0:
            return b"".join(iter(lambda: self.read(_CHUNK), b""))
        if self._head:
            n = min(size, len(self._head))
            out, self._head = self._head[:n], self._head[n:]
            return out
        started = time.perf_counter()
        data = self._source.read(size)
        hashed = time.perf_counter()
        self.digest.update(data)
        self.size += len(data)
        self._stats.download_s += hashed - started
        self._stats.verify_s += time.perf_counter() - hashed
        return data

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def drain(self) -> None:
        while self.read(_CHUNK):
            pass


def _read_head(source: _Readable, n: int) -> bytes:
    parts: list[bytes] = []
    got = 0
    while got < n:
        chunk = source.read(n - got)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def _tar_mode(head: bytes) -> Literal["r|", "r|gz"]:
    """The tarfile stream mode for the archive starting with ``head``; :class:`BundleError` if unknown."""
    if head.startswith(_GZIP_MAGIC):
        return "r|gz"
    if head[_TAR_MAGIC_OFFSET : _TAR_MAGIC_OFFSET + 5] == b"ustar":
        return "r|"
    if head.startswith(_ZSTD_MAGIC):
        raise BundleError("zstd-compressed bundles are not supported (the bundle format is a plain tar)")
    raise BundleError("not a model bundle: neither a tar archive nor gzip-compressed")


def _normalize_digest(expected_sha256: str) -> str:
    digest = expected_sha256.strip().lower()
    if not _SHA256_RE.fullmatch(digest):
        raise BundleError(f"expected sha256 must be 64 hex characters, got {expected_sha256!r}")
    return digest


def _check_member(member: tarfile.TarInfo, seen: set[str], total: int) -> None:
    name = member.name
    if member.type not in (tarfile.REGTYPE, tarfile.AREGTYPE):
        kind = {
            tarfile.SYMTYPE: "symlink",
            tarfile.LNKTYPE: "hardlink",
            tarfile.CHRTYPE: "character device",
            tarfile.BLKTYPE: "block device",
            tarfile.FIFOTYPE: "fifo",
            tarfile.DIRTYPE: "directory",
            tarfile.CONTTYPE: "contiguous file",
            tarfile.GNUTYPE_SPARSE: "sparse file",
        }.get(member.type, f"type {member.type!r}")
        raise BundleError(f"refusing bundle member {name!r}: {kind} (only regular files are allowed)")
    if name.startswith("/") or "\\" in name or "\x00" in name:
        raise BundleError(f"refusing bundle member {name!r}: absolute or non-portable path")
    if ".." in name.split("/"):
        raise BundleError(f"refusing bundle member {name!r}: '..' component")
    if "/" in name:
        raise BundleError(f"refusing bundle member {name!r}: bundles hold files at the top level only")
    if not is_bundle_member_name(name):
        raise BundleError(f"refusing bundle member {name!r}: not a config, tokenizer or safetensors file")
    if name in seen:
        raise BundleError(f"refusing bundle member {name!r}: duplicate")
    if member.size < 0 or total + member.size > MAX_BUNDLE_BYTES:
        raise BundleError(f"refusing bundle: members exceed {MAX_BUNDLE_BYTES} bytes")


def _write_member(tar: tarfile.TarFile, member: tarfile.TarInfo, root: Path) -> None:
    target = root / member.name
    # The name is a single allow-listed component, so this always holds; checked anyway, cheaply.
    if target.parent != root:
        raise BundleError(f"refusing bundle member {member.name!r}: lands outside the destination")
    source = tar.extractfile(member)
    if source is None:  # pragma: no cover - regular files always have data
        raise BundleError(f"bundle member {member.name!r} has no data")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(target, flags, 0o644)
    with os.fdopen(fd, "wb") as out:
        remaining = member.size
        while remaining > 0:
            chunk = source.read(min(_CHUNK, remaining))
            if not chunk:
                raise BundleError(f"bundle member {member.name!r} is truncated")
            out.write(chunk)
            remaining -= len(chunk)


def _is_complete(directory: Path, digest: str) -> bool:
    marker = directory / COMPLETE_MARKER
    try:
        return marker.is_file() and marker.read_text(encoding="ascii").strip() == digest
    except (OSError, UnicodeDecodeError):
        return False


@contextlib.contextmanager
def _staging_dir(dest_dir: Path) -> Iterator[Path]:
    """A fresh temporary sibling of ``dest_dir``, removed on exit unless it was renamed away."""
    try:
        dest_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest_dir.name}.", suffix=".partial", dir=dest_dir.parent))
    except OSError as exc:
        raise BundleError(f"cannot create a directory next to {dest_dir}: {exc}") from exc
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _publish_dir(tmp: Path, dest_dir: Path, digest: str) -> Path:
    """Rename the staged ``tmp`` to ``dest_dir``; a concurrent identical extraction is accepted."""
    try:
        if dest_dir.is_dir() and not any(dest_dir.iterdir()):
            dest_dir.rmdir()
        tmp.rename(dest_dir)
    except OSError as exc:
        if _is_complete(dest_dir, digest):
            return dest_dir  # another process finished first; ours is discarded by the caller
        raise BundleError(f"cannot move the extracted bundle into {dest_dir}: {exc}") from exc
    return dest_dir


def _extract_stream(source: _Readable, dest_dir: Path, digest: str, stats: FetchStats) -> Path:
    """Stream-extract the bundle read from ``source`` into ``dest_dir``, verifying ``digest`` as it goes."""
    started = time.perf_counter()
    download_before, verify_before = stats.download_s, stats.verify_s
    with _staging_dir(dest_dir) as tmp:
        head = _read_head(source, 512)
        mode = _tar_mode(head)
        reader = _HashingReader(source, head, stats)
        seen: set[str] = set()
        total = 0
        try:
            with tarfile.open(fileobj=reader, mode=mode, bufsize=_CHUNK) as tar:
                for member in tar:
                    _check_member(member, seen, total)
                    seen.add(member.name)
                    total += member.size
                    _write_member(tar, member, tmp)
            reader.drain()  # tar padding and anything after the end-of-archive blocks count too
        except tarfile.TarError as exc:
            raise BundleError(f"corrupt or truncated bundle: {exc}") from exc
        except EOFError as exc:
            raise BundleError(f"truncated bundle: {exc}") from exc
        except OSError as exc:
            remedy = "raise the function's ephemeral storage or free the cache directory"
            raise _write_error(exc, "extract the model", dest_dir.parent, remedy) from exc
        actual = reader.digest.hexdigest()
        if actual != digest:
            raise BundleError(f"bundle sha256 mismatch: expected {digest}, got {actual}; refusing it")
        names = seen
        if "config.json" not in names or not any(_WEIGHTS_RE.fullmatch(n) for n in names):
            raise BundleError("bundle holds no model: config.json or safetensors weights missing")
        try:
            (tmp / COMPLETE_MARKER).write_text(digest + "\n", encoding="ascii")
        except OSError as exc:
            raise BundleError(f"cannot finish extracting into {dest_dir.parent}: {exc}") from exc
        stats.bytes += reader.size
        result = _publish_dir(tmp, dest_dir, digest)
    elapsed = time.perf_counter() - started
    stats.extract_s += elapsed - (stats.download_s - download_before) - (stats.verify_s - verify_before)
    return result


def _prepare_dest(dest_dir: Path, digest: str) -> bool:
    """True if ``dest_dir`` already holds this bundle; :class:`BundleError` if it holds something else."""
    if _is_complete(dest_dir, digest):
        return True
    if dest_dir.is_symlink() or (dest_dir.exists() and not dest_dir.is_dir()):
        raise BundleError(f"destination {dest_dir} exists and is not a directory")
    if dest_dir.is_dir() and any(dest_dir.iterdir()):
        raise BundleError(f"destination {dest_dir} exists and is not an extraction of bundle {digest}")
    return False


def extract(archive_path: Path, dest_dir: Path, expected_sha256: str) -> Path:
    """Verify and safely extract the bundle at ``archive_path`` into ``dest_dir`` (created atomically).

    ``dest_dir`` must not exist, be empty, or already hold this very bundle (then it is returned as is).
    The archive is read once: hashed while its members are checked and written to a temporary sibling,
    which only becomes ``dest_dir`` once the digest matched.
    """
    digest = _normalize_digest(expected_sha256)
    dest_dir = Path(dest_dir)
    if _prepare_dest(dest_dir, digest):
        return dest_dir
    try:
        with Path(archive_path).open("rb") as source:
            return _extract_stream(source, dest_dir, digest, FetchStats())
    except FileNotFoundError as exc:
        raise BundleError(f"bundle not found: {archive_path}") from exc
    except OSError as exc:  # opening it; errors while extracting are already BundleErrors
        raise BundleError(f"cannot read bundle {archive_path}: {exc}") from exc


def cached_model_dir(cache_dir: Path, expected_sha256: str) -> Path | None:
    """The extracted bundle for this digest under ``cache_dir`` if a previous fetch completed it."""
    digest = _normalize_digest(expected_sha256)
    target = Path(cache_dir) / digest
    return target if _is_complete(target, digest) else None


def _write_error(exc: OSError, action: str, where: Path, remedy: str) -> BundleError:
    """Writing into ``where`` failed: a full disk (or quota) says so and what ``remedy`` makes room."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return BundleError(f"not enough disk space to {action} into {where} ({exc.strerror}); {remedy}")
    return BundleError(f"cannot {action} into {where}: {exc}")


def _s3_error(bucket: str, key: str, exc: Exception) -> BundleError:
    if isinstance(exc, ClientError):
        from sentiment_shared.aws import error_code  # boto3 stays out of the import path until a fetch needs it

        return BundleError(f"cannot download s3://{bucket}/{key}: {error_code(exc) or 'ClientError'}")
    return BundleError(f"cannot download s3://{bucket}/{key}: {exc}")


def fetch(
    bucket: str,
    key: str,
    expected_sha256: str,
    cache_dir: Path,
    *,
    s3_client: S3Client | None = None,
    strategy: Literal["stream", "ranged"] = "stream",
    stats: FetchStats | None = None,
    version_id: str | None = None,
) -> Path:
    """The extracted model for ``s3://bucket/key``, verified against ``expected_sha256``.

    ``version_id`` (the S3 object version the stack published) fetches exactly that version, so a
    later overwrite of the key cannot reach a function still configured for the old model.

    Extracted once per digest into ``cache_dir/<sha256>/``; a later call (a warm start) finds the
    completion marker and returns without touching S3. ``strategy="stream"`` makes one streamed
    GET, hashed and extracted on the fly, so the archive never sits on disk (archive + model would
    not both fit Lambda's default ``/tmp``). ``strategy="ranged"`` uses boto3's parallel ranged
    download to a temporary file next to the cache, then verifies, extracts and deletes it.
    """
    stats = stats if stats is not None else FetchStats()
    digest = _normalize_digest(expected_sha256)
    cache_dir = Path(cache_dir)
    target = cache_dir / digest
    if _is_complete(target, digest):
        stats.cached = True
        return target
    if strategy not in ("stream", "ranged"):
        raise BundleError(f"unknown fetch strategy {strategy!r} (use 'stream' or 'ranged')")
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        lock = _digest_lock(cache_dir, digest)
    except OSError as exc:
        raise BundleError(f"cannot create the model cache directory {cache_dir}: {exc}") from exc
    with lock:
        if _is_complete(target, digest):  # another process (or thread) finished it while we waited
            stats.cached = True
            return target
        stats.cached = False
        _remove_stale_work(cache_dir, digest)
        _prepare_dest(target, digest)
        if s3_client is None:
            from sentiment_shared import aws

            s3_client = aws.client("s3")
        if strategy == "stream":
            return _fetch_stream(
                s3_client, bucket=bucket, key=key, version_id=version_id, target=target, digest=digest, stats=stats
            )
        return _fetch_ranged(
            s3_client, bucket=bucket, key=key, version_id=version_id, target=target, digest=digest, stats=stats
        )


@contextlib.contextmanager
def _digest_lock(cache_dir: Path, digest: str) -> Iterator[None]:
    """An exclusive lock per digest under ``cache_dir``, so one process at a time downloads a model."""
    fd = os.open(cache_dir / f".{digest}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _remove_stale_work(cache_dir: Path, digest: str) -> None:
    """Delete what a killed fetch of this digest left (a timed-out cold start would otherwise fill ``/tmp``).

    Only called under the digest's lock, so nothing matching is still being written.
    """
    for pattern in (f".{digest}.*.partial", f".{digest}.*.download"):
        for leftover in cache_dir.glob(pattern):
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)


def _fetch_stream(
    client: S3Client, *, bucket: str, key: str, version_id: str | None, target: Path, digest: str, stats: FetchStats
) -> Path:
    try:
        started = time.perf_counter()
        if version_id:
            body = client.get_object(Bucket=bucket, Key=key, VersionId=version_id)["Body"]
        else:
            body = client.get_object(Bucket=bucket, Key=key)["Body"]
        stats.download_s += time.perf_counter() - started
        with contextlib.closing(body):
            return _extract_stream(body, target, digest, stats)
    except (ClientError, BotoCoreError) as exc:
        raise _s3_error(bucket, key, exc) from exc


def _fetch_ranged(
    client: S3Client, *, bucket: str, key: str, version_id: str | None, target: Path, digest: str, stats: FetchStats
) -> Path:
    archive = target.parent / f".{digest}.{uuid.uuid4().hex}.download"
    try:
        started = time.perf_counter()
        extra = {"VersionId": version_id} if version_id else None
        client.download_file(bucket, key, str(archive), ExtraArgs=extra)
        stats.download_s += time.perf_counter() - started
        with archive.open("rb") as source:
            read_stats = FetchStats()
            result = _extract_stream(source, target, digest, read_stats)
        # The file is local: its read time is part of verifying/extracting, not of the download.
        stats.bytes += read_stats.bytes
        stats.verify_s += read_stats.verify_s
        stats.extract_s += read_stats.extract_s + read_stats.download_s
        return result
    except (ClientError, BotoCoreError) as exc:
        raise _s3_error(bucket, key, exc) from exc
    except OSError as exc:
        remedy = "use the 'stream' strategy or raise the function's ephemeral storage"
        raise _write_error(exc, f"download s3://{bucket}/{key}", target.parent, remedy) from exc
    finally:
        archive.unlink(missing_ok=True)
