"""Publishing a model bundle to S3: resolve the source, pack it reproducibly, upload it verified, once.

Plain functions shared by the ``ModelArtifact`` Pulumi dynamic provider, the ``sentiment-model`` CLI
and the local pipeline. A source is either a Hugging Face hub model at a pinned revision (downloaded
with ``huggingface_hub.snapshot_download``, imported lazily: the ``hub`` extra) restricted to config,
tokenizer and safetensors files, or a local model directory. The bundle is uploaded with a SHA-256
checksum S3 verifies and with ``sha256``/``source``/``revision`` in its metadata; an object already
holding the same sha256 is left alone. Credentials (AWS, ``HF_TOKEN``) only ever come from the
environment.
"""

from __future__ import annotations

import os
import re
import socket
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from sentiment_shared import aws
from sentiment_shared.model_bundle import HUB_ALLOW_PATTERNS, BundleError, BundleInfo, model_files, pack
from sentiment_shared.model_compact import compact_model_dir
from sentiment_shared.object_store import ObjectHead, ProgressCallback, S3ObjectStore
from sentiment_shared.stack import DEFAULT_MODEL_ID, DEFAULT_MODEL_REVISION

_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
_HUB_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
_REVISION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,254}$")
"""A commit, branch or tag name as the hub accepts them (ASCII; no spaces or control characters)."""
_DEFAULT_MODEL_ALIASES = frozenset({DEFAULT_MODEL_ID, f"distilbert/{DEFAULT_MODEL_ID}"})

META_SHA256 = "sha256"
META_SOURCE = "source"
META_REVISION = "revision"


WeightsEncoding = Literal["int8", "fp16", "original"]


class PublishError(Exception):
    """Publishing failed; the message is one line a user can act on."""


class SourceUnavailableError(PublishError):
    """The model source could not be fetched (hub unreachable, model or revision not found)."""


@dataclass(frozen=True, slots=True)
class ModelSource:
    """Where the model comes from: a hub model id (+ revision) or a local directory, exactly one."""

    model_id: str | None = None
    revision: str | None = None
    model_dir: Path | None = None

    def __post_init__(self) -> None:
        if (self.model_id is None) == (self.model_dir is None):
            raise PublishError("give exactly one model source: a hub model id or a local model directory")
        if self.revision is not None and not _REVISION_RE.fullmatch(self.revision):
            raise PublishError(f"not a hub revision (a commit, branch or tag): {self.revision!r}")
        if self.model_id is not None and not _HUB_ID_RE.fullmatch(self.model_id):
            raise PublishError(f"not a Hugging Face model id: {self.model_id!r}")
        if self.model_dir is not None and self.revision is not None:
            raise PublishError("a revision applies to hub models only, not to a local model directory")

    @classmethod
    def parse(cls, ref: str) -> ModelSource:
        """``ID`` or ``ID@REVISION`` (the CLI's and the local pipeline's ``--model``)."""
        model_id, _, revision = ref.strip().partition("@")
        return cls(model_id=model_id, revision=revision or None)

    @property
    def effective_revision(self) -> str | None:
        """The revision to download: as given, else the pinned default for the default model, else ``main``."""
        if self.model_id is None:
            return None
        if self.revision:
            return self.revision
        return DEFAULT_MODEL_REVISION if self.model_id in _DEFAULT_MODEL_ALIASES else "main"


@dataclass(frozen=True, slots=True)
class ResolvedSource:
    """A model directory on local disk, and what it is: ``hf://id`` or ``dir:/abs/path``, and the commit."""

    path: Path
    source: str
    revision: str | None


@dataclass(frozen=True, slots=True)
class PublishResult:
    bucket: str
    key: str
    s3_uri: str
    sha256: str
    size: int
    version_id: str | None
    uploaded: bool
    """False when the object at the key already held this very bundle (nothing was uploaded)."""
    source: str
    source_revision: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Drift:
    """How the object at the key differs from what was published."""

    reason: str
    head: ObjectHead | None


@dataclass(frozen=True, slots=True)
class VersionWait:
    """Insist on an S3 version id: re-upload (backing off) while S3 answers a write without one.

    S3 may take up to 15 minutes to propagate versioning after it is first enabled on a bucket, and
    writes before then are stored unversioned (no version id, or ``null``). The stack pins the function
    to the published version, so a publish for the stack never settles for a missing one: it waits
    ``first_delay_s`` (doubling up to ``max_delay_s``), uploads again, and gives up with a
    :class:`PublishError` once ``timeout_s`` would be exceeded. ``report`` gets one line per wait.
    """

    timeout_s: float = 20 * 60
    first_delay_s: float = 5.0
    max_delay_s: float = 60.0
    report: Callable[[str], None] = lambda _line: None
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic


def s3_uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


# --------------------------------------------------------------------------- sources


def validate_model_dir(model_dir: Path) -> Path:
    """``model_dir`` if it holds config, tokenizer and safetensors weights; :class:`PublishError` if not."""
    try:
        model_files(model_dir)
    except BundleError as exc:
        raise PublishError(str(exc)) from exc
    return model_dir


@contextmanager
def _hub_errors(model_id: str, revision: str, endpoint: str, *, online: bool = True) -> Iterator[None]:
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{model_id}@{revision}"
    hint = "pass --model-dir DIR with a local copy of the model"
    try:
        yield
    except GatedRepoError as exc:
        raise SourceUnavailableError(f"{model_id} is gated: set HF_TOKEN to an account with access ({hint})") from exc
    except RepositoryNotFoundError as exc:
        raise SourceUnavailableError(f"model {model_id} not found on the Hugging Face hub at {endpoint}") from exc
    except RevisionNotFoundError as exc:
        raise SourceUnavailableError(f"revision {revision} of {model_id} not found on {endpoint}") from exc
    except LocalEntryNotFoundError as exc:
        if online:
            raise SourceUnavailableError(
                f"cannot download {where} from the Hugging Face hub at {endpoint}; {hint}"
            ) from exc
        raise SourceUnavailableError(
            f"the Hugging Face hub at {endpoint} is unreachable and {where} is not in the local hub cache; {hint}"
        ) from exc
    except (HfHubHTTPError, OSError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SourceUnavailableError(
            f"cannot download {where} from the Hugging Face hub at {endpoint} ({first_line}); {hint}"
        ) from exc


_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def _reachable(endpoint: str, timeout_s: float = 3.0) -> bool:
    """Whether a TCP connection to the endpoint's host opens (always True behind a proxy: ask the proxy)."""
    if any(os.environ.get(name) for name in _PROXY_VARIABLES):
        return True
    url = urllib.parse.urlsplit(endpoint)
    if not url.hostname:
        return True
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def _quiet_tqdm() -> type[Any]:
    from huggingface_hub.utils.tqdm import tqdm as hf_tqdm

    class QuietTqdm(hf_tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]

    return QuietTqdm


def resolve_source(
    source: ModelSource,
    *,
    hub_cache_dir: Path | None = None,
    endpoint: str | None = None,
    progress: bool = False,
) -> ResolvedSource:
    """A local, validated model directory for ``source`` (downloading hub models into the hub cache).

    ``endpoint`` and ``hub_cache_dir`` default to ``HF_ENDPOINT`` / ``HF_HUB_CACHE`` read now (not at
    import time, so a test or the local pipeline can point them elsewhere).
    """
    if source.model_dir is not None:
        model_dir = Path(source.model_dir).expanduser().resolve()
        validate_model_dir(model_dir)
        return ResolvedSource(path=model_dir, source=f"dir:{model_dir}", revision=None)

    assert source.model_id is not None  # guaranteed by ModelSource
    revision = source.effective_revision or "main"
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:  # pragma: no cover - the hub extra is installed wherever this runs
        raise PublishError("hub models need huggingface_hub: install sentiment-shared[hub]") from exc

    endpoint = endpoint or os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    cache = hub_cache_dir or (Path(os.environ["HF_HUB_CACHE"]) if os.environ.get("HF_HUB_CACHE") else None)
    online = _reachable(endpoint)
    with _hub_errors(source.model_id, revision, endpoint, online=online):
        path = Path(
            snapshot_download(
                source.model_id,
                revision=revision,
                allow_patterns=list(HUB_ALLOW_PATTERNS),
                endpoint=endpoint,
                cache_dir=cache,
                tqdm_class=None if progress else _quiet_tqdm(),
                # Offline: answer from the hub cache at once instead of retrying a dead network for ~30 s.
                local_files_only=not online,
            )
        )
    commit = path.name if _COMMIT_RE.fullmatch(path.name) else None
    try:
        model_files(path)
    except BundleError as exc:
        raise PublishError(
            f"{source.model_id}@{revision} is not publishable: {exc.args[0].split(': ', 1)[-1]} "
            "(only safetensors weights are accepted, never .bin pickles)"
        ) from exc
    return ResolvedSource(path=path, source=f"hf://{source.model_id}", revision=commit)


# --------------------------------------------------------------------------- S3


def _metadata(info: BundleInfo, source: str, revision: str | None) -> dict[str, str]:
    # S3 user metadata must be ASCII; a local path may not be.
    return {
        META_SHA256: info.sha256,
        META_SOURCE: urllib.parse.quote(source, safe=":/@._-~"),
        META_REVISION: revision or "",
    }


def _aws_error(action: str, bucket: str, key: str, exc: Exception) -> PublishError:
    if isinstance(exc, NoCredentialsError):
        return PublishError(f"cannot {action} s3://{bucket}/{key}: no AWS credentials found in the environment")
    if isinstance(exc, ClientError):
        code = aws.error_code(exc)
        if code == "NoSuchBucket":
            return PublishError(f"cannot {action} s3://{bucket}/{key}: bucket {bucket!r} does not exist")
        if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"):
            return PublishError(f"cannot {action} s3://{bucket}/{key}: access denied ({code})")
        message = str(exc.response.get("Error", {}).get("Message", "")).strip()
        return PublishError(f"cannot {action} s3://{bucket}/{key}: {code}{': ' + message if message else ''}")
    return PublishError(f"cannot {action} s3://{bucket}/{key}: {exc}")


def _store(store: S3ObjectStore | None) -> S3ObjectStore:
    return store if store is not None else S3ObjectStore()


def head_artifact(bucket: str, key: str, *, store: S3ObjectStore | None = None) -> ObjectHead | None:
    """The object at ``s3://bucket/key`` (its metadata holds the bundle's sha256), or None if absent."""
    try:
        return _store(store).head(bucket, key)
    except (ClientError, BotoCoreError) as exc:
        raise _aws_error("read", bucket, key, exc) from exc


def publish_bundle(
    info: BundleInfo,
    bucket: str,
    key: str,
    *,
    source: str,
    revision: str | None,
    store: S3ObjectStore | None = None,
    progress: ProgressCallback | None = None,
    version_wait: VersionWait | None = None,
) -> PublishResult:
    """Upload a packed bundle unless the object at the key already holds the same sha256.

    With ``version_wait``, the result always carries a real S3 version id: an identical object stored
    without one (written before versioning took effect) is uploaded again, and an upload S3 answers
    without one is repeated as :class:`VersionWait` says.
    """
    store = _store(store)
    existing = head_artifact(bucket, key, store=store)
    identical = (
        existing is not None and existing.metadata.get(META_SHA256) == info.sha256 and existing.size == info.size
    )
    if existing is not None and identical and (existing.version_id or version_wait is None):
        version_id, uploaded = existing.version_id, False
    else:

        def upload() -> str | None:
            try:
                put = store.upload(
                    info.path,
                    bucket,
                    key,
                    sha256=info.sha256,
                    metadata=_metadata(info, source, revision),
                    progress=progress,
                )
            except (ClientError, BotoCoreError) as exc:
                raise _aws_error("upload to", bucket, key, exc) from exc
            return put.version_id

        version_id, uploaded = upload(), True
        if version_wait is not None and not version_id:
            version_id = _until_versioned(upload, bucket, key, version_wait)
    return PublishResult(
        bucket=bucket,
        key=key,
        s3_uri=s3_uri(bucket, key),
        sha256=info.sha256,
        size=info.size,
        version_id=version_id,
        uploaded=uploaded,
        source=source,
        source_revision=revision,
    )


def _until_versioned(upload: Callable[[], str | None], bucket: str, key: str, wait: VersionWait) -> str:
    """Upload again, backing off, until S3 answers with a version id; PublishError past ``wait.timeout_s``."""
    start = wait.clock()
    delay = wait.first_delay_s
    attempts = 1
    while True:
        elapsed = wait.clock() - start
        if elapsed + delay > wait.timeout_s:
            raise PublishError(
                f"{s3_uri(bucket, key)} was stored without an S3 version id {attempts} times in {elapsed:.0f} s: "
                f"versioning on bucket {bucket!r} is not in effect (S3 takes up to 15 minutes after it is first "
                "enabled); check `aws s3api get-bucket-versioning`, then run the deploy again"
            )
        wait.report(
            f"{s3_uri(bucket, key)}: S3 stored upload {attempts} without a version id (versioning on a new "
            f"bucket takes up to 15 minutes to take effect); uploading again in {delay:.0f} s "
            f"({elapsed:.0f} s of {wait.timeout_s:.0f} s waited)"
        )
        wait.sleep(delay)
        attempts += 1
        version_id = upload()
        if version_id:
            wait.report(f"{s3_uri(bucket, key)}: upload {attempts} is version {version_id}")
            return version_id
        delay = min(delay * 2, wait.max_delay_s)


def publish(
    source: ModelSource,
    bucket: str,
    key: str,
    *,
    store: S3ObjectStore | None = None,
    work_dir: Path | None = None,
    hub_cache_dir: Path | None = None,
    endpoint: str | None = None,
    hub_progress: bool = False,
    upload_progress: Callable[[int], ProgressCallback] | None = None,
    weights: WeightsEncoding = "int8",
    version_wait: VersionWait | None = None,
) -> PublishResult:
    """Resolve ``source``, pack it into a temporary directory and publish it to ``s3://bucket/key``.

    ``weights``: ``int8`` (default) stores large weight matrices as int8 rows with per-row scales
    (:mod:`sentiment_shared.model_compact`: a quarter of the bytes to download on every cold start,
    dequantised at load), ``fp16`` halves them, ``original`` keeps the source's files as they are.
    A model that cannot be compacted is published as it is.

    ``upload_progress``, if given, is called with the bundle size and returns the per-chunk callback
    (how the CLI opens a progress bar of the right length). ``version_wait``: see :func:`publish_bundle`.
    """
    if not bucket or not key or key.endswith("/"):
        raise PublishError(f"bucket and key must be non-empty and the key must name a file: {bucket!r}, {key!r}")
    resolved = resolve_source(source, hub_cache_dir=hub_cache_dir, endpoint=endpoint, progress=hub_progress)
    with tempfile.TemporaryDirectory(prefix="sentiment-bundle-", dir=work_dir) as tmp:
        try:
            model_dir = resolved.path
            if weights != "original":
                model_dir = compact_model_dir(model_dir, Path(tmp) / "compact", encoding=weights)
            info = pack(model_dir, Path(tmp) / "bundle.tar")
        except BundleError as exc:
            raise PublishError(str(exc)) from exc
        callback = upload_progress(info.size) if upload_progress is not None else None
        return publish_bundle(
            info,
            bucket,
            key,
            source=resolved.source,
            revision=resolved.revision,
            store=store,
            progress=callback,
            version_wait=version_wait,
        )


def check_drift(
    bucket: str,
    key: str,
    expected_sha256: str,
    *,
    store: S3ObjectStore | None = None,
) -> Drift | None:
    """None if the object at the key still holds ``expected_sha256``; else what changed."""
    head = head_artifact(bucket, key, store=store)
    if head is None:
        return Drift(reason=f"{s3_uri(bucket, key)} is missing", head=None)
    actual = head.metadata.get(META_SHA256)
    if actual != expected_sha256:
        return Drift(
            reason=f"{s3_uri(bucket, key)} was overwritten: sha256 {actual or 'unknown'}, expected {expected_sha256}",
            head=head,
        )
    return None


def delete_artifact(
    bucket: str,
    key: str,
    *,
    version_id: str | None,
    expected_sha256: str,
    store: S3ObjectStore | None = None,
) -> bool:
    """Delete the published object version; True if something was deleted.

    With a version id (versioned bucket) exactly that version goes. Without one (unversioned bucket)
    the object is deleted only if it still holds ``expected_sha256``: never someone else's upload.
    """
    store = _store(store)
    try:
        if version_id:
            if store.head(bucket, key, version_id=version_id) is None:
                return False
            store.delete(bucket, key, version_id=version_id)
            return True
        head = store.head(bucket, key)
        if head is None or head.metadata.get(META_SHA256) != expected_sha256:
            return False
        store.delete(bucket, key)
    except (ClientError, BotoCoreError) as exc:
        raise _aws_error("delete", bucket, key, exc) from exc
    return True
