"""``ModelArtifact`` as the Pulumi program sees it: type token, inputs, serialised provider, typed outputs."""

from __future__ import annotations

import base64
from typing import Any

import dill
import pulumi
import pytest

from sentiment_infra.model_artifact import PROVIDER_VERSION, ModelArtifact, ModelArtifactArgs, ModelArtifactProvider

pytestmark = pytest.mark.infra

SHA = "ab" * 32


class _Mocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.registered: list[pulumi.runtime.MockResourceArgs] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        self.registered.append(args)
        outputs = {
            **args.inputs,
            "s3_uri": f"s3://{args.inputs['bucket']}/{args.inputs['key']}",
            "sha256": SHA,
            "size": 123,
            "version_id": "v1",
            "source_revision": "c" * 40,
        }
        return outputs["s3_uri"], outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None


@pytest.fixture
def mocks() -> _Mocks:
    mocks = _Mocks()
    pulumi.runtime.set_mocks(mocks, preview=False)
    return mocks


def test_model_artifact_registers_with_its_type_and_exposes_outputs(mocks: _Mocks) -> None:
    # Given a ModelArtifact as the infra program declares it
    artifact = ModelArtifact(
        "model",
        ModelArtifactArgs(bucket="models-bucket", key="distilbert/v1.0.0/model.tar", model_id="acme/m", revision="r"),
    )

    @pulumi.runtime.test  # type: ignore[untyped-decorator]  # pulumi does not type its test decorator
    def check() -> pulumi.Output[Any]:
        def verify(values: list[Any]) -> None:
            s3_uri, sha256, size, version_id, source_revision, key = values
            # Then it is registered as dynamic/model:Artifact with the inputs and a pickled provider only
            (registered,) = mocks.registered
            assert registered.typ == "pulumi-python:dynamic/model:Artifact"
            inputs = registered.inputs
            assert inputs["provider_version"] == PROVIDER_VERSION
            assert inputs["retain_on_delete"] is False
            assert not {k for k in inputs if "secret" in k.lower() or "token" in k.lower() or "credential" in k}
            provider = dill.loads(base64.b64decode(inputs["__provider"]))
            assert isinstance(provider, ModelArtifactProvider)
            # And its outputs are typed attributes
            assert (s3_uri, sha256, size, version_id, source_revision, key) == (
                "s3://models-bucket/distilbert/v1.0.0/model.tar",
                SHA,
                123,
                "v1",
                "c" * 40,
                "distilbert/v1.0.0/model.tar",
            )

        return pulumi.Output.all(
            artifact.s3_uri,
            artifact.sha256,
            artifact.size,
            artifact.version_id,
            artifact.source_revision,
            artifact.key,
        ).apply(verify)

    check()
