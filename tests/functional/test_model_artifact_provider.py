"""The ``ModelArtifact`` dynamic provider: dill round-trip and its create/diff/update/read/delete cycle on moto."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import dill
import pytest
from fake_hub import FakeHub, FakeRepo, serving
from model_fixtures import FAKE_COMMIT, hub_repo_files, make_model_dir
from pulumi.dynamic.dynamic import serialize_provider
from versioning_lag import VersioningLag, versioning_lag

from sentiment_infra.model_artifact import UNKNOWN, VERSION_RETRY_ENV, VERSION_WAIT_ENV, ModelArtifactProvider
from sentiment_shared import aws
from sentiment_shared.model_publish import ModelSource, PublishError, publish

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.functional

BUCKET = "models"
KEY = "distilbert/v1.0.0/model.tar"
HF_SECRET = "hf_not_a_real_token_but_secret"


@pytest.fixture
def s3(s3: S3Client, monkeypatch: pytest.MonkeyPatch) -> S3Client:
    monkeypatch.setenv("HF_TOKEN", HF_SECRET)
    return s3


@pytest.fixture
def provider() -> ModelArtifactProvider:
    """The provider as the Pulumi engine gets it: serialised with pulumi's own dill settings and loaded back."""
    loaded = dill.loads(base64.b64decode(serialize_provider(ModelArtifactProvider())))
    assert isinstance(loaded, ModelArtifactProvider)
    return loaded


def _inputs(model_dir: Path | str | None = None, **overrides: Any) -> dict[str, Any]:
    props: dict[str, Any] = {
        "bucket": BUCKET,
        "key": KEY,
        "model_id": None,
        "revision": None,
        "model_dir": str(model_dir) if model_dir else None,
        "provider_version": "1",
        "retain_on_delete": False,
    }
    props.update(overrides)
    return props


def _checked(
    provider: ModelArtifactProvider, news: dict[str, Any], olds: dict[str, Any] | None = None
) -> dict[str, Any]:
    result = provider.check(olds or {}, news)
    assert result.failures == []
    return result.inputs


def _versions(s3: S3Client) -> list[str]:
    return [v["VersionId"] for v in s3.list_object_versions(Bucket=BUCKET, Prefix=KEY).get("Versions", [])]


def test_the_provider_survives_a_dill_round_trip_and_captures_nothing(provider: ModelArtifactProvider) -> None:
    # Given the serialised provider (what goes into the stack state)
    blob = base64.b64decode(serialize_provider(ModelArtifactProvider()))

    # Then it holds no state, no client, no credentials, and loads back as the same class
    assert vars(provider) == {}
    assert b"boto" not in blob
    assert HF_SECRET.encode() not in blob
    assert type(dill.loads(blob)) is ModelArtifactProvider


def test_create_diff_update_read_delete_cycle(tmp_path: Path, s3: S3Client, provider: ModelArtifactProvider) -> None:
    model = make_model_dir(tmp_path / "model")
    news = _checked(provider, _inputs(model))

    # create: uploads, reports the outputs, no credentials in them
    created = provider.create(news)
    outs = created.outs or {}
    assert created.id == f"s3://{BUCKET}/{KEY}"
    assert outs["s3_uri"] == created.id
    assert len(outs["sha256"]) == 64
    assert outs["size"] > 0
    assert outs["version_id"] == _versions(s3)[0]
    assert outs["source_revision"] is None
    dumped = json.dumps(outs)
    assert HF_SECRET not in dumped
    assert "testing" not in dumped  # the sandbox's AWS key id / secret

    # diff with the same inputs: no change
    same = provider.diff(created.id, outs, _checked(provider, _inputs(model), outs))
    assert (same.changes, same.replaces) == (False, [])

    # publishing the same model again (a second create, e.g. after a lost state) uploads nothing
    again = provider.create(_checked(provider, _inputs(model)))
    assert (again.outs or {})["uploaded"] is False
    assert len(_versions(s3)) == 1

    # a changed model (same directory, new weights) → an update with a new sha256 and version
    (model / "model.safetensors").write_bytes(b"retrained" * 500)
    changed = _checked(provider, _inputs(model), outs)
    diff = provider.diff(created.id, outs, changed)
    assert (diff.changes, diff.replaces) == (True, [])
    updated = provider.update(created.id, outs, changed).outs or {}
    assert updated["sha256"] != outs["sha256"]
    assert updated["version_id"] != outs["version_id"]
    assert len(_versions(s3)) == 2

    # read without drift reports the same state
    read = provider.read(created.id, updated)
    assert read.id == created.id
    assert (read.outs or {})["drift"] is None

    # delete removes exactly the version this resource published
    provider.delete(created.id, updated)
    assert _versions(s3) == [outs["version_id"]]


@pytest.mark.parametrize(
    ("change", "replaces", "changes"),
    [
        ({"key": "distilbert/v1.1.0/model.tar"}, ["key"], True),
        ({"bucket": "other-bucket"}, ["bucket"], True),
        ({"bucket": UNKNOWN}, ["bucket"], True),
        ({"provider_version": "2"}, [], True),
        ({"revision": "abc"}, [], True),
        ({"retain_on_delete": True}, [], True),
    ],
)
def test_diff_replaces_on_location_and_updates_on_source(
    tmp_path: Path, provider: ModelArtifactProvider, change: dict[str, Any], replaces: list[str], changes: bool
) -> None:
    # Given the state of a published artifact (no AWS needed to diff)
    model = make_model_dir(tmp_path / "model")
    olds = {**_checked(provider, _inputs(model)), "sha256": "0" * 64, "drift": None}

    # When an input changes
    news = {**_checked(provider, _inputs(model)), **change}
    diff = provider.diff("id", olds, news)

    # Then location changes replace (create-before-delete), source changes update
    assert (diff.replaces, diff.changes, diff.delete_before_replace) == (replaces, changes, False)


def test_check_copes_with_unknowns_and_reports_bad_inputs(tmp_path: Path, provider: ModelArtifactProvider) -> None:
    # Unknown inputs during preview are not failures
    unknown = provider.check({}, _inputs(bucket=UNKNOWN, model_dir=UNKNOWN))
    assert unknown.failures == []
    # Bad inputs are, each with its property
    bad = provider.check({}, _inputs(tmp_path, bucket="", model_id="acme/x", key="prefix/"))
    assert sorted(f.property for f in bad.failures) == ["bucket", "key", "model_id"]


def test_drift_after_overwrite_then_update_repairs_it(
    tmp_path: Path, s3: S3Client, provider: ModelArtifactProvider
) -> None:
    # Given a published artifact whose object was overwritten out of band
    model = make_model_dir(tmp_path / "model")
    created = provider.create(_checked(provider, _inputs(model)))
    outs = created.outs or {}
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"tampered", Metadata={"sha256": "e" * 64})

    # When it is refreshed
    read = provider.read(created.id, outs)
    refreshed = read.outs or {}

    # Then the drift is reported (what is there now), the published sha256 is kept
    assert "overwritten" in refreshed["drift"]
    assert refreshed["observed_sha256"] == "e" * 64
    assert refreshed["sha256"] == outs["sha256"]

    # And the next diff asks for an update, which republishes the model
    news = _checked(provider, _inputs(model), refreshed)
    assert provider.diff(created.id, refreshed, news).changes is True
    repaired = provider.update(created.id, refreshed, news).outs or {}
    assert repaired["drift"] is None
    assert s3.head_object(Bucket=BUCKET, Key=KEY)["Metadata"]["sha256"] == outs["sha256"]


def test_a_deleted_object_reads_as_gone(tmp_path: Path, s3: S3Client, provider: ModelArtifactProvider) -> None:
    created = provider.create(_checked(provider, _inputs(make_model_dir(tmp_path / "model"))))
    s3.delete_object(Bucket=BUCKET, Key=KEY)  # a delete marker on a versioned bucket
    read = provider.read(created.id, created.outs or {})
    assert (read.id, read.outs) == ("", {})  # the engine drops it from state; the next `up` recreates it


def test_retain_on_delete_keeps_the_object(tmp_path: Path, s3: S3Client, provider: ModelArtifactProvider) -> None:
    model = make_model_dir(tmp_path / "model")
    created = provider.create(_checked(provider, _inputs(model, retain_on_delete=True)))
    provider.delete(created.id, created.outs or {})
    assert len(_versions(s3)) == 1


def test_only_retain_on_delete_changed_publishes_nothing(
    tmp_path: Path, s3: S3Client, provider: ModelArtifactProvider
) -> None:
    model = make_model_dir(tmp_path / "model")
    outs = provider.create(_checked(provider, _inputs(model))).outs or {}
    calls: list[str] = []
    s3.meta.events.register("before-call.s3", lambda model, **_: calls.append(model.name))
    updated = provider.update("id", outs, _checked(provider, _inputs(model, retain_on_delete=True), outs)).outs or {}
    assert updated["retain_on_delete"] is True
    assert updated["sha256"] == outs["sha256"]
    assert calls == []


def test_missing_bucket_fails_clearly(tmp_path: Path, moto_aws: None, provider: ModelArtifactProvider) -> None:
    with pytest.raises(PublishError, match="bucket 'models' does not exist"):
        provider.create(_checked(provider, _inputs(make_model_dir(tmp_path / "model"))))


def test_an_injected_upload_failure_leaves_no_object(
    tmp_path: Path, s3: S3Client, provider: ModelArtifactProvider
) -> None:
    def fail(**_: Any) -> None:
        raise ConnectionResetError("connection reset by peer")

    s3.meta.events.register("before-call.s3.PutObject", fail)
    with pytest.raises((PublishError, ConnectionResetError)):
        provider.create(_checked(provider, _inputs(make_model_dir(tmp_path / "model"))))
    s3.meta.events.unregister("before-call.s3.PutObject", fail)
    assert _versions(s3) == []


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    repos = {"acme/tiny-sst2": FakeRepo(commits={FAKE_COMMIT: hub_repo_files()}, refs={"main": FAKE_COMMIT})}
    with serving(repos, tmp_path / "hub-cache", monkeypatch) as fake:
        yield fake


def test_hub_source_reports_the_resolved_commit(hub: FakeHub, s3: S3Client, provider: ModelArtifactProvider) -> None:
    outs = provider.create(_checked(provider, _inputs(model_id="acme/tiny-sst2", revision="main"))).outs or {}
    assert outs["source_revision"] == FAKE_COMMIT
    assert outs["revision"] == "main"
    assert HF_SECRET not in json.dumps(outs)


@pytest.mark.slow
def test_the_shared_model_dir_publishes(shared_model_dir: Path, s3: S3Client, provider: ModelArtifactProvider) -> None:
    outs = provider.create(_checked(provider, _inputs(shared_model_dir))).outs or {}
    # the compact bundle (int8 weight-only, sentiment_shared.model_compact): 24 MB, not the 92 MB of fp32 weights
    assert 20_000_000 < outs["size"] < 30_000_000
    assert s3.head_object(Bucket=BUCKET, Key=KEY)["Metadata"]["sha256"] == outs["sha256"]


# --------------------------------------------------------------------------- a bucket whose versioning is new


@pytest.fixture
def lagging_s3(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., VersioningLag]]:
    """``lagging_s3(writes=N, answer=...)``: S3 whose versioning takes effect only after N object writes.

    The bucket exists (unversioned) on the moto server; every client then talks to the proxy in front of it.
    """
    boto = aws.client("s3")
    boto.create_bucket(Bucket=BUCKET)
    monkeypatch.setenv(VERSION_RETRY_ENV, "0.01")
    with ExitStack() as stack:

        def start(writes: int, answer: Literal["absent", "null"] = "absent") -> VersioningLag:
            lag = stack.enter_context(versioning_lag(moto_endpoint, BUCKET, writes=writes, answer=answer))
            monkeypatch.setenv("AWS_ENDPOINT_URL", lag.url)
            aws.reset_clients()
            return lag

        yield start


def _current_version(key: str = KEY) -> str:
    return str(aws.client("s3").head_object(Bucket=BUCKET, Key=key)["VersionId"])


@pytest.mark.parametrize("answer", ["absent", "null"])
def test_create_on_a_bucket_whose_versioning_has_not_propagated_waits_for_a_version(
    tmp_path: Path,
    lagging_s3: Callable[..., VersioningLag],
    provider: ModelArtifactProvider,
    capsys: pytest.CaptureFixture[str],
    answer: Literal["absent", "null"],
) -> None:
    # Given S3 that stores the first two writes unversioned (versioning enabled seconds ago)
    lag = lagging_s3(writes=2, answer=answer)

    # When the bundle is created
    outs = provider.create(_checked(provider, _inputs(make_model_dir(tmp_path / "model")))).outs or {}

    # Then it uploaded until S3 answered with a version id, records that version, and said so on stderr
    assert (lag.unversioned_writes, lag.versioned_writes) == (2, 1)
    assert outs["version_id"] not in (None, "", "null")
    assert outs["version_id"] == _current_version()
    waits = [line for line in capsys.readouterr().err.splitlines() if "without a version id" in line]
    assert len(waits) == 2
    assert "takes up to 15 minutes" in waits[0]


def test_an_identical_bundle_stored_without_a_version_is_uploaded_again(
    tmp_path: Path, lagging_s3: Callable[..., VersioningLag], provider: ModelArtifactProvider
) -> None:
    # Given the very bundle already at the key, stored before versioning took effect (the CLI, a lost state)
    model = make_model_dir(tmp_path / "model")
    lag = lagging_s3(writes=1)
    publish(ModelSource(model_dir=model), BUCKET, KEY)
    assert lag.unversioned_writes == 1

    # When the provider creates the resource
    outs = provider.create(_checked(provider, _inputs(model))).outs or {}

    # Then it does not settle for the unversioned copy: it uploads and records a real version
    assert outs["uploaded"] is True
    assert outs["version_id"] == _current_version()


def test_a_state_recorded_without_a_version_is_published_again_by_the_next_up(
    tmp_path: Path, lagging_s3: Callable[..., VersioningLag], provider: ModelArtifactProvider
) -> None:
    # Given a state an earlier provider recorded with version_id None (the upload landed unversioned)
    model = make_model_dir(tmp_path / "model")
    lagging_s3(writes=1)
    news = _checked(provider, _inputs(model))
    result = publish(ModelSource(model_dir=model), BUCKET, KEY)
    olds = {**news, **result.as_dict(), "drift": None, "observed_sha256": result.sha256}
    assert olds["version_id"] is None

    # When the next `up` diffs the same inputs
    diff = provider.diff(result.s3_uri, olds, _checked(provider, _inputs(model), olds))

    # Then it asks for an update, and the update publishes a real version (versioning has propagated by now)
    assert (diff.changes, diff.replaces) == (True, [])
    updated = provider.update(result.s3_uri, olds, _checked(provider, _inputs(model), olds)).outs or {}
    assert updated["version_id"] == _current_version()


def test_versioning_that_never_takes_effect_fails_after_the_bounded_wait(
    tmp_path: Path,
    lagging_s3: Callable[..., VersioningLag],
    provider: ModelArtifactProvider,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given S3 that never versions the writes within the wait
    lag = lagging_s3(writes=1000)
    monkeypatch.setenv(VERSION_WAIT_ENV, "0.2")

    # When the bundle is created, Then it fails with one line saying what to check, and records nothing
    with pytest.raises(PublishError, match=r"without an S3 version id \d+ times.*versioning on bucket 'models'"):
        provider.create(_checked(provider, _inputs(make_model_dir(tmp_path / "model"))))
    assert lag.unversioned_writes >= 2
    assert lag.versioned_writes == 0


def test_a_bad_wait_setting_is_one_clear_line(
    tmp_path: Path, s3: S3Client, provider: ModelArtifactProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(VERSION_WAIT_ENV, "soon")
    with pytest.raises(PublishError, match="SENTIMENT_VERSION_WAIT_S must be a positive number of seconds"):
        provider.create(_checked(provider, _inputs(make_model_dir(tmp_path / "model"))))
