"""Provider launch rehearsal: the model-publish dynamic provider started exactly as the Pulumi engine starts it.

What the engine does (pulumi/pulumi at 1b5949891b3cefcb9974752b24a5ecef0acc86c8):

* ``pkg/engine/project.go`` ``getPwdMain``: when ``main`` in ``Pulumi.yaml`` is a directory, the plugin
  context's working directory is that directory (here ``infra/``), not the project root;
* ``sdk/go/common/resource/plugin/provider_plugin.go``: the provider plugin (``pulumi-resource-pulumi-python``)
  is started in that directory with the runtime options as ``PULUMI_RUNTIME_<OPTION>`` (plus ``PULUMI_PROJECT``);
* ``sdk/python/dist/pulumi-resource-pulumi-python`` (the launcher): without ``PULUMI_RUNTIME_VIRTUALENV`` and
  with ``PULUMI_RUNTIME_TOOLCHAIN=uv`` the venv is ``.venv`` made absolute against ``$PWD``; if
  ``$VENV/bin/python`` is not a file it stops with "... doesn't exist", else it runs
  ``$VENV/bin/python -u -m pulumi.dynamic`` with ``$VENV/bin`` first on ``PATH``;
* ``sdk/python/toolchain/uv.go`` (the language host, which runs the program): with no ``virtualenv`` option the
  venv is ``.venv`` next to the nearest ``uv.lock`` searched up from the project root: the root's ``.venv``.

So the program and the provider only agree when ``infra/.venv`` is the root's venv, which is why the
repository commits ``infra/.venv`` as a symlink to ``../.venv`` (docs/DEPLOY.md explains the choice).

The test resolves the venv with the launcher's rule, starts ``python -u -m pulumi.dynamic`` from it with only
the runtime options (and moto's endpoint and dummy credentials) in the environment, reads the port from
stdout and drives the provider over gRPC with the ``pulumi.runtime.proto`` stubs and the provider string the
SDK serialises: GetPluginInfo, Configure, Check, Create (into a moto S3 server), Read (no drift), Read after
an overwrite (drift), Diff, Update on a model change, Delete.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import grpc
import pytest
import yaml
from google.protobuf import empty_pb2, struct_pb2
from infra_mocks import REPO_ROOT
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.runtime import proto, rpc
from pulumi.runtime.proto import provider_pb2_grpc

from sentiment_infra.model_artifact import ModelArtifactProvider
from sentiment_shared import aws

sys.path.insert(0, str(REPO_ROOT / "tests" / "functional"))
from model_fixtures import make_model_dir
from versioning_lag import versioning_lag

pytestmark = [pytest.mark.infra, pytest.mark.slow]

BUCKET = "launch-models"
KEY = "distilbert/v1.0.0/model.tar"
URN = "urn:pulumi:dev::sentiment-analyzer::sentiment:model_store:ModelStore$pulumi-python:dynamic/model:Artifact::x"
TYPE = "pulumi-python:dynamic/model:Artifact"


def launcher_venv(program_dir: Path, env: dict[str, str]) -> Path:
    """The venv ``pulumi-resource-pulumi-python`` picks, by its own rule (see the module docstring)."""
    venv = env.get("PULUMI_RUNTIME_VIRTUALENV", "")
    if not venv and env.get("PULUMI_RUNTIME_TOOLCHAIN") == "uv":
        venv = ".venv"
    assert venv, "the launcher would run the system python3: set toolchain uv (or virtualenv) in Pulumi.yaml"
    venv = venv.rstrip("/")
    path = Path(venv) if venv.startswith("/") else program_dir / venv
    if not (path / "bin" / "python").is_file():
        state = "doesn't appear to be a virtual environment" if path.is_dir() else "doesn't exist"
        pytest.fail(f"launcher: the 'virtualenv' option in Pulumi.yaml is set to {str(path)!r}, but it {state}")
    return path


def engine_launch() -> tuple[Path, dict[str, str]]:
    """(working directory, environment) of the provider plugin as the engine starts it, from ``Pulumi.yaml``."""
    project = yaml.safe_load((REPO_ROOT / "Pulumi.yaml").read_text())
    main = project.get("main") or "."
    program_dir = (REPO_ROOT / main).resolve() if (REPO_ROOT / main).is_dir() else (REPO_ROOT / main).parent
    runtime = project["runtime"]
    options = runtime.get("options", {}) if isinstance(runtime, dict) else {}
    env = {f"PULUMI_RUNTIME_{name.upper()}": str(value) for name, value in options.items()}
    env["PULUMI_PROJECT"] = project["name"]
    return program_dir, env


def serialize(props: dict[str, Any]) -> struct_pb2.Struct:
    return asyncio.run(rpc.serialize_properties(props, {}))


def deserialize(struct: struct_pb2.Struct) -> dict[str, Any]:
    return dict(rpc.deserialize_properties(struct, keep_unknowns=True))


@contextmanager
def launched_provider(
    endpoint: str, **extra_env: str
) -> Iterator[tuple[provider_pb2_grpc.ResourceProviderStub, IO[bytes]]]:
    """The provider started as the engine starts it, talking to S3 at ``endpoint``: (gRPC stub, its stderr)."""
    program_dir, env = engine_launch()
    venv = launcher_venv(program_dir, env)
    env.update(
        PATH=f"{venv}/bin:/usr/bin:/bin",  # what the launcher exports (it prepends $VENV/bin)
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1",
        HOME=os.environ.get("HOME", "/tmp"),
        **extra_env,
    )
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(
            [str(venv / "bin" / "python"), "-u", "-m", "pulumi.dynamic"],
            cwd=program_dir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
        try:
            assert process.stdout is not None
            line = process.stdout.readline().decode().strip()
            if not line.isdigit():
                process.kill()
                process.communicate(timeout=10)
                stderr.seek(0)
                pytest.fail(f"provider printed no port: {line!r}\n{stderr.read().decode()}")
            with grpc.insecure_channel(f"127.0.0.1:{int(line)}") as channel:
                grpc.channel_ready_future(channel).result(timeout=30)
                yield provider_pb2_grpc.ResourceProviderStub(channel), stderr
        finally:
            process.kill()
            process.communicate(timeout=10)


@pytest.fixture
def provider_stub(moto_endpoint: str) -> Iterator[provider_pb2_grpc.ResourceProviderStub]:
    with launched_provider(moto_endpoint) as (stub, _stderr):
        yield stub


def _object_sha256(key: str) -> str:
    body = aws.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read()
    return hashlib.sha256(body).hexdigest()


def _artifact_inputs(model_dir: Path) -> dict[str, Any]:
    """A ModelArtifact's inputs as the engine sends them: a local model directory to publish at KEY."""
    return {
        "__provider": serialize_provider(ModelArtifactProvider()),
        "bucket": BUCKET,
        "key": KEY,
        "model_id": None,
        "revision": None,
        "model_dir": str(model_dir),
        "provider_version": "1",
        "retain_on_delete": False,
    }


def test_the_engine_launched_provider_publishes_reads_drift_updates_and_deletes(
    provider_stub: provider_pb2_grpc.ResourceProviderStub, tmp_path: Path
) -> None:
    stub = provider_stub
    s3 = aws.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    model_dir = make_model_dir(tmp_path / "model")
    inputs = _artifact_inputs(model_dir)

    # GetPluginInfo and Configure, as the engine opens every provider
    assert stub.GetPluginInfo(empty_pb2.Empty()).version
    configured = stub.Configure(proto.ConfigureRequest(args=serialize({}), acceptSecrets=True))
    assert configured.acceptSecrets is False

    # Check: the inputs come back with the source fingerprint; no failures
    checked = stub.Check(proto.CheckRequest(urn=URN, type=TYPE, olds=serialize({}), news=serialize(inputs)))
    assert list(checked.failures) == []
    checked_inputs = deserialize(checked.inputs)
    assert checked_inputs["source_fingerprint"]

    # Create: publishes into moto, verified
    created = stub.Create(proto.CreateRequest(urn=URN, type=TYPE, properties=checked.inputs))
    outs = deserialize(created.properties)
    assert created.id == f"s3://{BUCKET}/{KEY}"
    assert outs["sha256"] == _object_sha256(KEY)
    assert outs["version_id"]

    # Read: the object is what was published, no drift
    read = stub.Read(proto.ReadRequest(id=created.id, urn=URN, type=TYPE, properties=created.properties))
    assert read.id == created.id
    read_outs = deserialize(read.properties)
    assert read_outs.get("drift") is None  # None properties are dropped on the wire
    assert read_outs["observed_sha256"] == outs["sha256"]

    # Someone overwrites the object: Read reports drift, Diff asks for an update
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"not the bundle")
    drifted = stub.Read(proto.ReadRequest(id=created.id, urn=URN, type=TYPE, properties=created.properties))
    drifted_outs = deserialize(drifted.properties)
    assert drifted_outs["drift"]
    assert drifted_outs["sha256"] == outs["sha256"]
    diff = stub.Diff(proto.DiffRequest(id=created.id, urn=URN, type=TYPE, olds=drifted.properties, news=checked.inputs))
    assert diff.changes == proto.DiffResponse.DIFF_SOME

    # The model changes: Check gives a new fingerprint, Diff an in-place update, Update publishes it
    make_model_dir(model_dir, weights=b"\x02\x03" * 2048)
    rechecked = stub.Check(proto.CheckRequest(urn=URN, type=TYPE, olds=checked.inputs, news=serialize(inputs)))
    assert deserialize(rechecked.inputs)["source_fingerprint"] != checked_inputs["source_fingerprint"]
    diff = stub.Diff(
        proto.DiffRequest(id=created.id, urn=URN, type=TYPE, olds=created.properties, news=rechecked.inputs)
    )
    assert diff.changes == proto.DiffResponse.DIFF_SOME
    assert list(diff.replaces) == []
    updated = stub.Update(
        proto.UpdateRequest(id=created.id, urn=URN, type=TYPE, olds=created.properties, news=rechecked.inputs)
    )
    updated_outs = deserialize(updated.properties)
    assert updated_outs["sha256"] != outs["sha256"]
    assert updated_outs["sha256"] == _object_sha256(KEY)
    assert updated_outs["version_id"] != outs["version_id"]

    # Delete removes the version this resource published (and only that one)
    stub.Delete(proto.DeleteRequest(id=created.id, urn=URN, type=TYPE, properties=updated.properties))
    versions = {v["VersionId"] for v in s3.list_object_versions(Bucket=BUCKET, Prefix=KEY).get("Versions", [])}
    assert updated_outs["version_id"] not in versions
    assert outs["version_id"] in versions


def test_the_engine_launched_provider_waits_out_a_new_buckets_versioning_and_republishes_an_unversioned_state(
    moto_endpoint: str, tmp_path: Path
) -> None:
    # Given a bucket whose versioning has not taken effect for the next two writes (S3, minutes after it was
    # first enabled), reached through a proxy in front of moto, and the provider launched as the engine does
    s3 = aws.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    model_dir = make_model_dir(tmp_path / "model")
    inputs = _artifact_inputs(model_dir)
    with (
        versioning_lag(moto_endpoint, BUCKET, writes=2, answer="null") as lag,
        launched_provider(lag.url, SENTIMENT_VERSION_RETRY_S="0.05") as (stub, stderr),
    ):
        stub.Configure(proto.ConfigureRequest(args=serialize({}), acceptSecrets=True))
        checked = stub.Check(proto.CheckRequest(urn=URN, type=TYPE, olds=serialize({}), news=serialize(inputs)))

        # When the engine creates the bundle
        created = stub.Create(proto.CreateRequest(urn=URN, type=TYPE, properties=checked.inputs))

        # Then the provider uploaded until S3 gave a version, and recorded that one
        outs = deserialize(created.properties)
        assert (lag.unversioned_writes, lag.versioned_writes) == (2, 1)
        assert outs["version_id"] == s3.head_object(Bucket=BUCKET, Key=KEY)["VersionId"]

        # And a state recorded without a version (an earlier provider's) makes Diff ask for an update
        unversioned = serialize({**outs, "__provider": inputs["__provider"], "version_id": None})
        diff = stub.Diff(proto.DiffRequest(id=created.id, urn=URN, type=TYPE, olds=unversioned, news=checked.inputs))
        assert diff.changes == proto.DiffResponse.DIFF_SOME

        # And each wait went to stderr, which the engine shows for a dynamic provider
        stderr.seek(0)
        waits = [line for line in stderr.read().decode().splitlines() if "without a version id" in line]
        assert len(waits) == 2, waits


ROLLOUT_URN = "urn:pulumi:dev::sentiment-analyzer::sentiment:release:Release$pulumi-python:dynamic/release:Rollout::x"
ROLLOUT_TYPE = "pulumi-python:dynamic/release:Rollout"


def test_the_engine_launched_rollout_provider_reads_the_alias_and_fails_the_update_with_how_to_stop_it(
    moto_endpoint: str,
) -> None:
    """The Rollout provider, pickled as the SDK pickles it, in the process the engine starts, against a moto
    server speaking Lambda's and CodeDeploy's APIs. moto's CodeDeploy never advances a deployment, so the
    update waits out its (shortened) limit: the gRPC error the engine prints is the one-line reason."""
    import io
    import zipfile

    import boto3  # noqa: TID251 - CodeDeploy has no adapter in sentiment_shared.aws

    from sentiment_infra.rollout import RolloutProvider

    # Given a function with versions 1 and 2, live on 1, and a CodeDeploy application + group for it
    lam, iam = aws.client("lambda"), boto3.client("iam", region_name="us-east-1")
    role = iam.create_role(RoleName="fn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    package = io.BytesIO()
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr("h.py", "def handler(event, context):\n    return event\n")
    lam.create_function(
        FunctionName="analysis", Runtime="python3.12", Role=role, Handler="h.handler",
        Code={"ZipFile": package.getvalue()}, Publish=True,
    )  # fmt: skip
    lam.update_function_configuration(FunctionName="analysis", Environment={"Variables": {"MODEL_SHA256": "b" * 64}})
    assert lam.publish_version(FunctionName="analysis")["Version"] == "2"
    lam.create_alias(FunctionName="analysis", Name="live", FunctionVersion="1")
    codedeploy = boto3.client("codedeploy", region_name="us-east-1")
    codedeploy.create_application(applicationName="analysis-app", computePlatform="Lambda")
    codedeploy.create_deployment_group(
        applicationName="analysis-app", deploymentGroupName="analysis-live", serviceRoleArn=role,
        deploymentConfigName="CodeDeployDefault.LambdaCanary10Percent5Minutes",
        deploymentStyle={"deploymentType": "BLUE_GREEN", "deploymentOption": "WITH_TRAFFIC_CONTROL"},
    )  # fmt: skip
    inputs = {
        "__provider": serialize_provider(RolloutProvider()),
        "region": "us-east-1",
        "application": "analysis-app",
        "deployment_group": "analysis-live",
        "function_name": "analysis",
        "alias": "live",
        "target_version": "1",
        "before_allow_traffic": "release-check",
        "provider_version": "1",
    }
    with launched_provider(moto_endpoint, SENTIMENT_ROLLOUT_TIMEOUT_S="1", SENTIMENT_ROLLOUT_POLL_S="0.2") as (
        stub,
        _stderr,
    ):
        stub.Configure(proto.ConfigureRequest(args=serialize({}), acceptSecrets=True))
        urn, typ = ROLLOUT_URN, ROLLOUT_TYPE
        # The first up: live already serves the version it published, nothing is deployed
        checked = stub.Check(proto.CheckRequest(urn=urn, type=typ, olds=serialize({}), news=serialize(inputs)))
        assert list(checked.failures) == []
        created = stub.Create(proto.CreateRequest(urn=urn, type=typ, properties=checked.inputs))
        assert deserialize(created.properties)["live_version"] == "1"
        assert (
            codedeploy.list_deployments(applicationName="analysis-app", deploymentGroupName="analysis-live")[
                "deployments"
            ]
            == []
        )

        # A new version is a change; Check refuses $LATEST
        news = serialize({**inputs, "target_version": "2"})
        diff = stub.Diff(proto.DiffRequest(id=created.id, urn=urn, type=typ, olds=created.properties, news=news))
        assert diff.changes == proto.DiffResponse.DIFF_SOME
        latest = serialize({**inputs, "target_version": "$LATEST"})
        refused = stub.Check(proto.CheckRequest(urn=urn, type=typ, olds=checked.inputs, news=latest))
        assert [f.property for f in refused.failures] == ["target_version"]

        # When the update's deployment never ends, Then the update fails (the up fails) saying how to stop it
        with pytest.raises(grpc.RpcError) as failed:
            stub.Update(proto.UpdateRequest(id=created.id, urn=urn, type=typ, olds=created.properties, news=news))
    details = failed.value.details() or ""
    (deployment_id,) = codedeploy.list_deployments(applicationName="analysis-app", deploymentGroupName="analysis-live")[
        "deployments"
    ]
    assert f"deployment {deployment_id} of analysis version 2 is still Created after 1 s" in details
    assert f"aws deploy stop-deployment --deployment-id {deployment_id} --auto-rollback-enabled" in details
    # And the deployment asked CodeDeploy to move live from 1 to 2 with the hook; live still serves 1
    info = codedeploy.get_deployment(deploymentId=deployment_id)["deploymentInfo"]
    spec = json.loads(info["revision"]["appSpecContent"]["content"])
    assert spec["Resources"][0]["analysis"]["Properties"]["CurrentVersion"] == "1"
    assert spec["Resources"][0]["analysis"]["Properties"]["TargetVersion"] == "2"
    assert spec["Hooks"] == [{"BeforeAllowTraffic": "release-check"}]
    assert lam.get_alias(FunctionName="analysis", Name="live")["FunctionVersion"] == "1"
