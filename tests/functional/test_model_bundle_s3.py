"""``model_bundle.fetch`` against moto S3: cold and warm starts, corrupted objects, cut streams."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pytest
from botocore.exceptions import ResponseStreamingError

from sentiment_shared.model_bundle import COMPLETE_MARKER, BundleError, BundleInfo, FetchStats, fetch, pack

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.functional

BUCKET = "models"
KEY = "distilbert/v1.0.0/model.tar"
STRATEGIES: list[Literal["stream", "ranged"]] = ["stream", "ranged"]


def _model_dir(root: Path, weights: bytes) -> Path:
    root.mkdir(parents=True)
    (root / "config.json").write_text('{"model_type": "distilbert"}')
    (root / "vocab.txt").write_text("[PAD]\n[UNK]\n")
    (root / "model.safetensors").write_bytes(weights)
    return root


@pytest.fixture
def bundle(tmp_path: Path, s3: S3Client) -> BundleInfo:
    info = pack(_model_dir(tmp_path / "model", os.urandom(2 * 1024 * 1024)), tmp_path / "model.tar")
    s3.upload_file(str(info.path), BUCKET, KEY)
    return info


@pytest.fixture
def s3_calls(s3: S3Client) -> Iterator[list[str]]:
    """Names of the S3 operations the client makes from now on."""
    calls: list[str] = []

    def record(model: Any, **_: Any) -> None:
        calls.append(model.name)

    s3.meta.events.register("before-call.s3", record)
    yield calls
    s3.meta.events.unregister("before-call.s3", record)


def _leftovers(cache: Path) -> list[str]:
    """What the cache holds besides the (empty, reusable) per-digest lock files."""
    return sorted(p.name for p in cache.iterdir() if not p.name.endswith(".lock")) if cache.exists() else []


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_cold_fetch_downloads_verifies_and_extracts(
    tmp_path: Path, s3: S3Client, bundle: BundleInfo, strategy: Literal["stream", "ranged"]
) -> None:
    # Given a bundle in S3 and an empty cache
    cache = tmp_path / "cache"
    stats = FetchStats()

    # When it is fetched
    model = fetch(BUCKET, KEY, bundle.sha256, cache, s3_client=s3, strategy=strategy, stats=stats)

    # Then the model sits in cache/<sha256>/, complete, and the stats account for the download
    assert model == cache / bundle.sha256
    assert (model / "model.safetensors").read_bytes() == (tmp_path / "model" / "model.safetensors").read_bytes()
    assert (model / COMPLETE_MARKER).is_file()
    assert _leftovers(cache) == [bundle.sha256]  # no archive, no temporary directory
    assert stats.cached is False
    assert stats.bytes == bundle.size
    assert stats.download_s > 0
    assert stats.extract_s >= 0


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_warm_fetch_makes_no_s3_call(
    tmp_path: Path, s3: S3Client, bundle: BundleInfo, s3_calls: list[str], strategy: Literal["stream", "ranged"]
) -> None:
    # Given a model already fetched once
    cache = tmp_path / "cache"
    fetch(BUCKET, KEY, bundle.sha256, cache, s3_client=s3, strategy=strategy)
    assert s3_calls  # the cold fetch did talk to S3
    s3_calls.clear()
    stats = FetchStats()

    # When it is fetched again (a warm start)
    model = fetch(BUCKET, KEY, bundle.sha256, cache, s3_client=s3, strategy=strategy, stats=stats)

    # Then the cached directory is returned without a single S3 call
    assert model == cache / bundle.sha256
    assert s3_calls == []
    assert stats.cached is True


def test_fetch_uses_the_shared_client_by_default(tmp_path: Path, bundle: BundleInfo) -> None:
    model = fetch(BUCKET, KEY, bundle.sha256, tmp_path / "cache")
    assert (model / "config.json").is_file()


@pytest.mark.reliability(
    area="model fetch",
    case="corrupted bundle in S3 (sha256 mismatch), stream and ranged downloads",
    expected="fail closed: digest error, nothing cached; after the object is fixed the next fetch succeeds",
)
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_corrupted_object_is_refused_then_a_clean_retry_works(
    tmp_path: Path, s3: S3Client, bundle: BundleInfo, strategy: Literal["stream", "ranged"]
) -> None:
    # Given the object at the key was replaced by a different (valid) bundle
    other = pack(_model_dir(tmp_path / "other", b"tampered" * 1000), tmp_path / "other.tar")
    s3.upload_file(str(other.path), BUCKET, KEY)
    cache = tmp_path / "cache"

    # When it is fetched against the pinned digest
    with pytest.raises(BundleError, match="sha256 mismatch"):
        fetch(BUCKET, KEY, bundle.sha256, cache, s3_client=s3, strategy=strategy)

    # Then nothing is cached (no directory for the digest, no temporary, no archive)
    assert _leftovers(cache) == []

    # And once the right object is back, the retry succeeds
    s3.upload_file(str(bundle.path), BUCKET, KEY)
    model = fetch(BUCKET, KEY, bundle.sha256, cache, s3_client=s3, strategy=strategy)
    assert _leftovers(cache) == [bundle.sha256]
    assert (model / "config.json").is_file()


class _CutStream:
    """A response body that fails after ``limit`` bytes, as a dropped connection does."""

    def __init__(self, body: Any, limit: int) -> None:
        self._body = body
        self._left = limit

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            raise ResponseStreamingError(error="connection reset by peer")
        data: bytes = self._body.read(min(size, self._left) if size >= 0 else self._left)
        self._left -= len(data)
        return data

    def close(self) -> None:
        self._body.close()


@pytest.mark.reliability(
    area="model fetch",
    case="S3 download cut mid-stream",
    expected="fetch raises, no model directory or temp file left, the next fetch downloads cleanly",
)
def test_a_stream_cut_midway_leaves_nothing_and_a_retry_works(tmp_path: Path, s3: S3Client, bundle: BundleInfo) -> None:
    # Given the connection drops after 1 MiB of the 2 MiB bundle
    def cut(parsed: dict[str, Any], **_: Any) -> None:
        parsed["Body"] = _CutStream(parsed["Body"], 1024 * 1024)

    s3.meta.events.register("after-call.s3.GetObject", cut)
    cache = tmp_path / "cache"

    # When the model is fetched
    with pytest.raises(BundleError, match="cannot download"):
        fetch(BUCKET, KEY, bundle.sha256, cache, s3_client=s3)

    # Then nothing is cached
    assert _leftovers(cache) == []

    # And the next attempt, with a healthy connection, succeeds
    s3.meta.events.unregister("after-call.s3.GetObject", cut)
    assert (fetch(BUCKET, KEY, bundle.sha256, cache, s3_client=s3) / "config.json").is_file()


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_missing_object_is_a_clear_error(tmp_path: Path, s3: S3Client, strategy: Literal["stream", "ranged"]) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(BundleError, match=r"s3://models/nope\.tar"):
        fetch(BUCKET, "nope.tar", "0" * 64, cache, s3_client=s3, strategy=strategy)
    assert _leftovers(cache) == []


@pytest.mark.reliability(
    area="model fetch",
    case="process killed in the middle of a fetch",
    expected="leftovers are ignored and swept by the next fetch",
)
def test_a_killed_fetch_leaves_nothing_that_outlives_the_next_one(
    tmp_path: Path, s3: S3Client, bundle: BundleInfo
) -> None:
    # Given what a cold start killed mid-way (a Lambda timeout) left in the cache
    cache = tmp_path / "cache"
    stale = cache / f".{bundle.sha256}.k1ll3d.partial"
    stale.mkdir(parents=True)
    (stale / "model.safetensors").write_bytes(b"half a model")
    (cache / f".{bundle.sha256}.0123.download").write_bytes(b"half an archive")

    # When the next cold start fetches the model
    fetch(BUCKET, KEY, bundle.sha256, cache, s3_client=s3)

    # Then only the complete model is left
    assert _leftovers(cache) == [bundle.sha256]


def test_concurrent_fetches_download_once(
    tmp_path: Path, s3: S3Client, bundle: BundleInfo, s3_calls: list[str]
) -> None:
    # Given two threads starting cold at the same moment
    cache = tmp_path / "cache"
    barrier = threading.Barrier(2)
    results: list[Path] = []

    def worker() -> None:
        barrier.wait()
        results.append(fetch(BUCKET, KEY, bundle.sha256, cache, s3_client=s3))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    # Then both get the model, and it was downloaded once
    assert results == [cache / bundle.sha256] * 2
    assert s3_calls.count("GetObject") == 1


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_function_pinned_to_its_version_survives_an_overwrite_of_the_key(
    tmp_path: Path, s3: S3Client, strategy: Literal["stream", "ranged"]
) -> None:
    # Given a versioned bucket (as the model store is) and the bundle the running function was deployed with
    old = pack(_model_dir(tmp_path / "old", os.urandom(64 * 1024)), tmp_path / "old.tar")
    old_version = s3.put_object(Bucket=BUCKET, Key=KEY, Body=old.path.read_bytes())["VersionId"]
    # When a model change publishes a new bundle to the same key (before the function's update)
    new = pack(_model_dir(tmp_path / "new", os.urandom(64 * 1024)), tmp_path / "new.tar")
    new_version = s3.put_object(Bucket=BUCKET, Key=KEY, Body=new.path.read_bytes())["VersionId"]
    assert new_version != old_version
    # Then a cold start of the old environment still fetches and verifies its own version
    model_dir = fetch(BUCKET, KEY, old.sha256, tmp_path / "cache-old", strategy=strategy, version_id=old_version)
    assert (model_dir / "model.safetensors").read_bytes() == (tmp_path / "old" / "model.safetensors").read_bytes()
    # And the new environment gets the new one
    model_dir = fetch(BUCKET, KEY, new.sha256, tmp_path / "cache-new", strategy=strategy, version_id=new_version)
    assert (model_dir / "model.safetensors").read_bytes() == (tmp_path / "new" / "model.safetensors").read_bytes()
    # While fetching by key alone (what functions did before) would have failed verification in that window
    with pytest.raises(BundleError, match="sha256"):
        fetch(BUCKET, KEY, old.sha256, tmp_path / "cache-by-key", strategy=strategy)
