"""The ``ModelArtifact`` dynamic resource: publishing the model bundle is part of ``pulumi up``.

Seed 000 failed because the model upload was a script nobody ran. Here the bundle is a resource:
``create`` resolves the source (hub model at a pinned revision, or a local directory), packs it
reproducibly and uploads it verified, skipping the upload when the identical object is already
there; ``diff`` replaces on a bucket/key change and updates on a source, revision or
``provider_version`` change (or a drifted object); ``read`` reports drift; ``delete`` removes the
version this resource published unless ``retain_on_delete``.

A publish always records a real S3 version id (the function is pinned to it). On a bucket whose
versioning was only just enabled, S3 may store writes unversioned for up to 15 minutes: ``create`` /
``update`` then upload again, backing off, until S3 answers with a version id
(:class:`sentiment_shared.model_publish.VersionWait`, bounded by ``SENTIMENT_VERSION_WAIT_S``, default
1200 s; first retry after ``SENTIMENT_VERSION_RETRY_S``, default 5 s), printing one line per wait to
stderr, which the engine shows for dynamic providers (``pulumi-resource-pulumi-python``'s stderr
becomes a diagnostic). A state recorded without a version (by an earlier provider) is published again:
``diff`` reports a change.

The provider is dill-pickled into the stack state when the resource is constructed, so it holds no
state, no clients and no credentials: every method builds what it needs from the environment
(AWS credentials, ``HF_TOKEN``, ``HF_ENDPOINT``) and calls the plain functions of
:mod:`sentiment_shared.model_publish`, which the CLI and the local pipeline share.
"""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi.dynamic

PROVIDER_VERSION = "1"
"""Bump when the provider's behaviour changes, to force an update of every ModelArtifact."""

UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
"""How the engine passes a not-yet-known input (e.g. a bucket created in the same preview) to a dynamic provider."""

_REPLACE_ON = ("bucket", "key")
_UPDATE_ON = ("model_id", "revision", "model_dir", "source_fingerprint", "provider_version", "retain_on_delete")
_INPUTS = ("bucket", "key", "model_id", "revision", "model_dir", "provider_version", "retain_on_delete")


VERSION_WAIT_ENV = "SENTIMENT_VERSION_WAIT_S"
VERSION_RETRY_ENV = "SENTIMENT_VERSION_RETRY_S"


def _seconds(name: str, default: float) -> float:
    from sentiment_shared.model_publish import PublishError

    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise PublishError(f"{name} must be a positive number of seconds, not {raw!r}")
    return value


def _engine_log(line: str) -> None:
    # The engine turns each stderr line of a dynamic provider into a diagnostic on the console.
    sys.stderr.write(f"model bundle: {line}\n")
    sys.stderr.flush()


def _unknown(value: Any) -> bool:
    return isinstance(value, str) and value == UNKNOWN


def _known_str(props: dict[str, Any], name: str) -> str | None:
    value = props.get(name)
    return value if isinstance(value, str) and value and not _unknown(value) else None


def source_fingerprint(model_dir: str) -> str | None:
    """sha256 over the names and contents of the files a bundle of ``model_dir`` would hold.

    Lets ``diff`` notice a local model that changed in place (same path, new weights). None when
    the directory is not a model (``create`` then reports why).
    """
    from sentiment_shared.model_bundle import BundleError, model_files

    try:
        files = model_files(Path(model_dir).expanduser())
    except BundleError:
        return None
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0")
        file_digest = hashlib.sha256()
        with path.open("rb") as f:
            while chunk := f.read(1024 * 1024):
                file_digest.update(chunk)
        digest.update(file_digest.digest())
    return digest.hexdigest()


class ModelArtifactProvider(pulumi.dynamic.ResourceProvider):
    """CRUD of one published model bundle; stateless, so it pickles (and unpickles) cleanly."""

    # Nothing secret is captured (no credentials ever reach the provider object), so the serialised
    # provider need not be a secret in the state.
    serialize_as_secret_always = False

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.CheckResult:
        failures: list[pulumi.dynamic.CheckFailure] = []
        for name in ("bucket", "key"):
            value = news.get(name)
            if not _unknown(value) and not (isinstance(value, str) and value.strip()):
                failures.append(pulumi.dynamic.CheckFailure(name, f"{name} must be a non-empty string"))
        key = news.get("key")
        if isinstance(key, str) and not _unknown(key) and (key.startswith("/") or key.endswith("/")):
            failures.append(pulumi.dynamic.CheckFailure("key", "key must name a file: <prefix>/<version>/<bundle>"))
        model_id, model_dir = news.get("model_id"), news.get("model_dir")
        if not _unknown(model_id) and not _unknown(model_dir) and bool(model_id) == bool(model_dir):
            failures.append(pulumi.dynamic.CheckFailure("model_id", "give exactly one of model_id and model_dir"))
        if model_dir and news.get("revision") and not _unknown(news.get("revision")):
            failures.append(pulumi.dynamic.CheckFailure("revision", "a revision applies to hub models only"))
        inputs = dict(news)
        if isinstance(model_dir, str) and model_dir and not _unknown(model_dir):
            inputs["source_fingerprint"] = source_fingerprint(model_dir)
        else:
            inputs["source_fingerprint"] = UNKNOWN if _unknown(model_dir) else None
        return pulumi.dynamic.CheckResult(inputs, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.DiffResult:
        # An unknown input (preview, before e.g. the bucket exists) may change: say so conservatively.
        replaces = [k for k in _REPLACE_ON if _unknown(news.get(k)) or olds.get(k) != news.get(k)]
        updates = [k for k in _UPDATE_ON if k in news and (_unknown(news.get(k)) or olds.get(k) != news.get(k))]
        drifted = bool(olds.get("drift"))
        # Published, but recorded without an S3 version id (written before versioning took effect, by a
        # provider that accepted that): publish again, so the function gets a version to pin.
        unversioned = bool(olds.get("sha256")) and not olds.get("version_id")
        return pulumi.dynamic.DiffResult(
            changes=bool(replaces or updates or drifted or unversioned),
            replaces=replaces,
            # Create the new object (at its new key) before deleting the old one: no gap in service.
            delete_before_replace=False,
        )

    def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
        outs = self._publish(props)
        return pulumi.dynamic.CreateResult(id_=outs["s3_uri"], outs=outs)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.UpdateResult:
        content_inputs = [k for k in _UPDATE_ON if k != "retain_on_delete"]
        unchanged = all(olds.get(k) == news.get(k) for k in content_inputs)
        if not olds.get("drift") and olds.get("version_id") and unchanged:
            # Only retain_on_delete changed: nothing to publish.
            outs = {**olds, "retain_on_delete": bool(news.get("retain_on_delete"))}
            outs.pop("__provider", None)
            return pulumi.dynamic.UpdateResult(outs=outs)
        return pulumi.dynamic.UpdateResult(outs=self._publish(news))

    def read(self, id_: str, props: dict[str, Any]) -> pulumi.dynamic.ReadResult:
        from sentiment_shared.model_publish import check_drift

        bucket, key, sha256 = props.get("bucket"), props.get("key"), props.get("sha256")
        if not (isinstance(bucket, str) and isinstance(key, str) and isinstance(sha256, str)):
            return pulumi.dynamic.ReadResult(id_, props)
        drift = check_drift(bucket, key, sha256)
        outs = {k: v for k, v in props.items() if k != "__provider"}
        if drift is not None and drift.head is None:
            # The object is gone: report the resource as deleted, so the next `up` publishes it again.
            return pulumi.dynamic.ReadResult("", {})
        if drift is None:
            outs.update(drift=None, observed_sha256=sha256)
        else:
            # Overwritten by someone else: keep `sha256` (what this resource published and what the
            # function pins) and report what is there now; `diff` then asks for an update.
            observed = drift.head.metadata.get("sha256") if drift.head is not None else None
            outs.update(drift=drift.reason, observed_sha256=observed)
        return pulumi.dynamic.ReadResult(id_, outs)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        if props.get("retain_on_delete"):
            return
        from sentiment_shared.model_publish import delete_artifact

        bucket, key, sha256 = props.get("bucket"), props.get("key"), props.get("sha256")
        if isinstance(bucket, str) and isinstance(key, str) and isinstance(sha256, str):
            delete_artifact(bucket, key, version_id=props.get("version_id") or None, expected_sha256=sha256)

    @staticmethod
    def _publish(props: dict[str, Any]) -> dict[str, Any]:
        from sentiment_shared.model_publish import ModelSource, VersionWait, publish

        model_dir = _known_str(props, "model_dir")
        source = ModelSource(
            model_id=_known_str(props, "model_id"),
            revision=_known_str(props, "revision"),
            model_dir=Path(model_dir) if model_dir else None,
        )
        wait = VersionWait(
            timeout_s=_seconds(VERSION_WAIT_ENV, 20 * 60),
            first_delay_s=_seconds(VERSION_RETRY_ENV, 5.0),
            report=_engine_log,
        )
        result = publish(source, str(props["bucket"]), str(props["key"]), version_wait=wait)
        outs = {name: props.get(name) for name in _INPUTS}
        outs["retain_on_delete"] = bool(props.get("retain_on_delete"))
        outs["source_fingerprint"] = props.get("source_fingerprint")
        # Every field of the result (bucket and key as given), and no drift: what was just published.
        outs.update(asdict(result), drift=None, observed_sha256=result.sha256)
        return outs


@dataclass(frozen=True)
class ModelArtifactArgs:
    """Inputs of :class:`ModelArtifact`: where to publish, and exactly one source (hub id or local dir)."""

    bucket: pulumi.Input[str]
    key: pulumi.Input[str]
    """``<prefix>/<version>/<bundle file>`` (see :func:`sentiment_shared.stack.model_key`)."""
    model_id: pulumi.Input[str] | None = None
    revision: pulumi.Input[str] | None = None
    """A commit (pinned); None means the pinned default for the default model, else ``main``."""
    model_dir: pulumi.Input[str] | None = None
    provider_version: pulumi.Input[str] = PROVIDER_VERSION
    retain_on_delete: pulumi.Input[bool] = False


class ModelArtifact(pulumi.dynamic.Resource, module="model", name="Artifact"):
    """A model bundle published to S3, verified and idempotent (type ``dynamic/model:Artifact``)."""

    bucket: pulumi.Output[str]
    key: pulumi.Output[str]
    s3_uri: pulumi.Output[str]
    sha256: pulumi.Output[str]
    size: pulumi.Output[int]
    version_id: pulumi.Output[str | None]
    source_revision: pulumi.Output[str | None]

    def __init__(self, name: str, args: ModelArtifactArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        props: dict[str, Any] = {
            "bucket": args.bucket,
            "key": args.key,
            "model_id": args.model_id,
            "revision": args.revision,
            "model_dir": args.model_dir,
            "provider_version": args.provider_version,
            "retain_on_delete": args.retain_on_delete,
            # Outputs, filled in by the provider.
            "s3_uri": None,
            "sha256": None,
            "size": None,
            "version_id": None,
            "source_revision": None,
        }
        super().__init__(ModelArtifactProvider(), name, props, opts)
