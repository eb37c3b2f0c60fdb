"""Publishing core against moto S3 and a local fake of the Hugging Face hub (no network)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from fake_hub import FakeHub, FakeRepo, serving
from model_fixtures import FAKE_COMMIT, OTHER_COMMIT, hub_repo_files, make_model_dir, model_files
from versioning_lag import versioning_lag

from sentiment_shared import aws
from sentiment_shared.model_bundle import BundleInfo, fetch
from sentiment_shared.model_publish import (
    ModelSource,
    PublishError,
    SourceUnavailableError,
    VersionWait,
    check_drift,
    delete_artifact,
    publish,
    publish_bundle,
    resolve_source,
)
from sentiment_shared.object_store import MiB, S3ObjectStore
from sentiment_shared.stack import DEFAULT_MODEL_ID, DEFAULT_MODEL_REVISION

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.functional

BUCKET = "models"
KEY = "distilbert/v1.0.0/model.tar"
REPO = "acme/tiny-sst2"


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    """A fake hub with one repo (two commits, ``main`` on the first) and an empty hub cache."""
    repos = {
        REPO: FakeRepo(
            commits={FAKE_COMMIT: hub_repo_files(), OTHER_COMMIT: hub_repo_files(b"\x07" * 4096)},
            refs={"main": FAKE_COMMIT},
        ),
        "acme/pickles-only": FakeRepo(
            commits={FAKE_COMMIT: {k: v for k, v in hub_repo_files().items() if k != "model.safetensors"}},
            refs={"main": FAKE_COMMIT},
        ),
    }
    with serving(repos, tmp_path / "hub-cache", monkeypatch) as fake:
        yield fake


# --------------------------------------------------------------------------- local directories


def test_publishing_twice_uploads_once(tmp_path: Path, s3: S3Client) -> None:
    # Given a local model directory
    model = make_model_dir(tmp_path / "model")

    # When it is published twice to the same key
    first = publish(ModelSource(model_dir=model), BUCKET, KEY)
    second = publish(ModelSource(model_dir=model), BUCKET, KEY)

    # Then the first uploads, the second finds the identical object and uploads nothing
    assert (first.uploaded, second.uploaded) == (True, False)
    assert first.sha256 == second.sha256
    assert first.version_id == second.version_id
    assert first.s3_uri == f"s3://{BUCKET}/{KEY}"
    versions = s3.list_object_versions(Bucket=BUCKET, Prefix=KEY).get("Versions", [])
    assert len(versions) == 1
    # And the object carries the digest and the source in its metadata
    meta = s3.head_object(Bucket=BUCKET, Key=KEY)["Metadata"]
    assert meta["sha256"] == first.sha256
    assert meta["source"].startswith("dir:")


def test_a_changed_model_gets_a_new_sha256_and_a_new_version(tmp_path: Path, s3: S3Client) -> None:
    model = make_model_dir(tmp_path / "model")
    first = publish(ModelSource(model_dir=model), BUCKET, KEY)
    (model / "model.safetensors").write_bytes(b"new weights" * 100)

    second = publish(ModelSource(model_dir=model), BUCKET, KEY)

    assert second.uploaded is True
    assert second.sha256 != first.sha256
    assert second.version_id != first.version_id


def test_a_published_bundle_is_what_the_function_fetches(tmp_path: Path, s3: S3Client) -> None:
    # Given a published model
    model = make_model_dir(tmp_path / "model")
    result = publish(ModelSource(model_dir=model), BUCKET, KEY)

    # When the analysis cold start fetches it with the published digest
    extracted = fetch(BUCKET, KEY, result.sha256, tmp_path / "cache")

    # Then it gets the model files back
    assert (extracted / "model.safetensors").read_bytes() == (model / "model.safetensors").read_bytes()


def test_missing_bucket_is_a_clear_error(tmp_path: Path, moto_aws: None) -> None:
    model = make_model_dir(tmp_path / "model")
    with pytest.raises(PublishError, match="bucket 'nope' does not exist"):
        publish(ModelSource(model_dir=model), "nope", KEY)


@pytest.mark.parametrize(
    ("setup", "match"),
    [
        (lambda d: None, "not found"),
        (lambda d: make_model_dir(d) and (d / "model.safetensors").unlink(), "safetensors weights"),
        (lambda d: make_model_dir(d) and (d / "config.json").unlink(), "config.json"),
    ],
)
def test_a_directory_that_is_not_a_model_is_refused(tmp_path: Path, s3: S3Client, setup: Any, match: str) -> None:
    model = tmp_path / "model"
    setup(model)
    with pytest.raises(PublishError, match=match):
        publish(ModelSource(model_dir=model), BUCKET, KEY)
    assert s3.list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0


def test_an_injected_upload_failure_leaves_no_object(tmp_path: Path, s3: S3Client) -> None:
    def fail(**_: Any) -> None:
        raise ConnectionResetError("connection reset by peer")

    s3.meta.events.register("before-call.s3.PutObject", fail)
    with pytest.raises((PublishError, ConnectionResetError)):
        publish(ModelSource(model_dir=make_model_dir(tmp_path / "model")), BUCKET, KEY)
    s3.meta.events.unregister("before-call.s3.PutObject", fail)
    assert s3.list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0


def test_drift_is_detected_after_overwrite_and_delete(tmp_path: Path, s3: S3Client) -> None:
    # Given a published model
    result = publish(ModelSource(model_dir=make_model_dir(tmp_path / "model")), BUCKET, KEY)
    assert check_drift(BUCKET, KEY, result.sha256) is None

    # When someone overwrites the object
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"something else")
    drift = check_drift(BUCKET, KEY, result.sha256)

    # Then the overwrite is reported
    assert drift is not None
    assert "overwritten" in drift.reason

    # And when the object is deleted, it is reported missing
    s3.delete_object(Bucket=BUCKET, Key=KEY)
    drift = check_drift(BUCKET, KEY, result.sha256)
    assert drift is not None
    assert drift.head is None
    assert "missing" in drift.reason


def test_delete_without_version_spares_someone_elses_object(tmp_path: Path, moto_aws: None) -> None:
    # Given an unversioned bucket where the key now holds another upload
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="plain")
    result = publish(ModelSource(model_dir=make_model_dir(tmp_path / "model")), "plain", KEY)
    assert result.version_id is None
    s3.put_object(Bucket="plain", Key=KEY, Body=b"theirs", Metadata={"sha256": "f" * 64})

    # When our artifact is deleted
    deleted = delete_artifact("plain", KEY, version_id=None, expected_sha256=result.sha256)

    # Then their object stays
    assert deleted is False
    assert s3.get_object(Bucket="plain", Key=KEY)["Body"].read() == b"theirs"


# --------------------------------------------------------------------------- hub


def test_hub_source_downloads_only_config_tokenizer_and_safetensors(hub: FakeHub, s3: S3Client) -> None:
    # Given a hub repo that also holds pickles, other frameworks' weights and docs
    # When it is published at a branch
    result = publish(ModelSource.parse(f"{REPO}@main"), BUCKET, KEY)

    # Then the branch was resolved to its commit, and only the model files were downloaded
    assert result.source_revision == FAKE_COMMIT
    assert result.source == f"hf://{REPO}"
    assert hub.downloaded() == set(model_files())
    assert s3.head_object(Bucket=BUCKET, Key=KEY)["Metadata"]["revision"] == FAKE_COMMIT


def test_hub_source_at_a_pinned_commit(hub: FakeHub, tmp_path: Path) -> None:
    resolved = resolve_source(ModelSource(model_id=REPO, revision=OTHER_COMMIT))
    assert resolved.revision == OTHER_COMMIT
    assert (resolved.path / "model.safetensors").read_bytes() == b"\x07" * 4096
    assert not any("/revision/" in path for _, path in hub.requests)  # a commit needs no resolving


def test_the_default_model_defaults_to_its_pinned_revision() -> None:
    assert ModelSource(model_id=DEFAULT_MODEL_ID).effective_revision == DEFAULT_MODEL_REVISION
    assert ModelSource.parse("acme/other").effective_revision == "main"
    assert ModelSource.parse("acme/other@v2").effective_revision == "v2"


def test_same_hub_model_published_twice_uploads_once(hub: FakeHub, s3: S3Client) -> None:
    first = publish(ModelSource.parse(f"{REPO}@{FAKE_COMMIT}"), BUCKET, KEY)
    second = publish(ModelSource.parse(f"{REPO}@{FAKE_COMMIT}"), BUCKET, KEY)
    assert (first.uploaded, second.uploaded, first.sha256) == (True, False, second.sha256)


@pytest.mark.parametrize(
    ("ref", "error", "match"),
    [
        ("acme/missing@main", SourceUnavailableError, "not found"),
        (f"{REPO}@no-such-branch", SourceUnavailableError, "no-such-branch"),
        ("acme/pickles-only@main", PublishError, "safetensors"),
    ],
)
def test_hub_errors_are_one_clear_line(
    hub: FakeHub, s3: S3Client, ref: str, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match) as err:
        publish(ModelSource.parse(ref), BUCKET, KEY)
    assert "\n" not in str(err.value)
    assert s3.list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0


def test_an_unreachable_hub_says_to_pass_a_model_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a hub endpoint nobody listens on
    with FakeHub({}) as fake:
        endpoint = fake.endpoint
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", "2")

    # When the model is resolved
    with pytest.raises(SourceUnavailableError, match="--model-dir") as err:
        resolve_source(ModelSource.parse(f"{REPO}@main"), endpoint=endpoint)

    # Then the error names the hub and the way out, and comes at once (no retries against a dead network)
    assert endpoint in str(err.value)
    assert "unreachable" in str(err.value)


def test_an_unreachable_hub_still_serves_a_cached_snapshot(hub: FakeHub) -> None:
    # Given a pinned model resolved once while the hub was up
    online = resolve_source(ModelSource(model_id=REPO, revision=FAKE_COMMIT))
    with FakeHub({}) as gone:
        dead_endpoint = gone.endpoint
    # When it is asked for again with the hub unreachable
    offline = resolve_source(ModelSource(model_id=REPO, revision=FAKE_COMMIT), endpoint=dead_endpoint)
    # Then the hub cache answers with the same directory and commit
    assert (offline.path, offline.revision) == (online.path, online.revision)


def test_source_must_be_exactly_one_of_hub_and_dir(tmp_path: Path) -> None:
    with pytest.raises(PublishError, match="exactly one"):
        ModelSource()
    with pytest.raises(PublishError, match="exactly one"):
        ModelSource(model_id=REPO, model_dir=tmp_path)
    with pytest.raises(PublishError, match="not a hub revision"):
        ModelSource(model_id=REPO, revision="main; rm -rf /")
    with pytest.raises(PublishError, match="not a hub revision"):
        ModelSource.parse(f"{REPO}@bad-\udcff")
    with pytest.raises(PublishError, match="not a Hugging Face model id"):
        ModelSource.parse("../../etc@main")


def test_a_multipart_upload_waits_for_a_version_too(
    tmp_path: Path, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a bundle above the multipart threshold and S3 that stores the first completed upload unversioned
    aws.client("s3").create_bucket(Bucket=BUCKET)
    bundle = tmp_path / "model.tar"
    bundle.write_bytes(os.urandom(11 * MiB))
    info = BundleInfo(sha256=hashlib.sha256(bundle.read_bytes()).hexdigest(), size=bundle.stat().st_size, path=bundle)
    waits: list[str] = []
    with versioning_lag(moto_endpoint, BUCKET, writes=1, answer="null") as lag:
        monkeypatch.setenv("AWS_ENDPOINT_URL", lag.url)
        aws.reset_clients()
        store = S3ObjectStore(multipart_threshold=5 * MiB, part_size=5 * MiB)

        # When it is published insisting on a version
        result = publish_bundle(
            info,
            BUCKET,
            KEY,
            source="dir:/x",
            revision=None,
            store=store,
            version_wait=VersionWait(first_delay_s=0.01, report=waits.append),
        )

        # Then the second complete upload is versioned, and that version is the result
        assert (lag.unversioned_writes, lag.versioned_writes) == (1, 1)
        assert all("POST" in line for line in lag.log)  # CompleteMultipartUpload, not PutObject
        assert result.version_id == aws.client("s3").head_object(Bucket=BUCKET, Key=KEY)["VersionId"]
        assert len(waits) == 2  # the wait, then the version it got
