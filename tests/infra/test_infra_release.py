"""Releases under the mocks: published versions, the ``live`` alias the queue invokes, SnapStart per stack."""

from __future__ import annotations

from typing import Any

import pulumi
import pytest
from infra_mocks import ProgramRun, run_program, stack_config

from sentiment_infra.config import ConfigError, parse_stack_config

pytestmark = pytest.mark.infra

FUNCTION = "aws:lambda/function:Function"
ALIAS = "aws:lambda/alias:Alias"


def _own_config(run: ProgramRun) -> dict[str, str]:
    prefix = "sentiment-analyzer:"
    return {k.removeprefix(prefix): v for k, v in run.config.items() if k.startswith(prefix)}


def test_the_analysis_publishes_versions_and_the_queue_invokes_the_live_alias(program: ProgramRun) -> None:
    # Given the program run for a stack
    function = program.one(FUNCTION, "analysis")
    alias = program.one(ALIAS, "analysis")
    mapping = program.one("aws:lambda/eventSourceMapping:EventSourceMapping").inputs
    # Then every change publishes a version, and the alias "live" points at a published one
    assert function.inputs["publish"] is True
    assert alias.inputs["name"] == "live"
    assert alias.inputs["functionName"] == function.outputs["name"]
    assert alias.inputs["functionVersion"] == function.outputs["version"] == "1"
    # And the queue's mapping invokes the alias (a qualified ARN), never the function itself ($LATEST)
    assert mapping["functionName"] == alias.outputs["arn"] == f"{function.outputs['arn']}:live"
    # And the outputs say which version is in service and which one this up published
    assert program.outputs["analysisAliasArn"] == alias.outputs["arn"]
    assert program.outputs["analysisLiveVersion"] == "1"
    assert program.outputs["analysisPublishedVersion"] == "1"


def test_prod_runs_snap_start_on_published_versions_within_its_limits_and_dev_does_not(
    programs: dict[str, ProgramRun],
) -> None:
    prod = programs["prod"].one(FUNCTION, "analysis").inputs
    dev = programs["dev"].one(FUNCTION, "analysis").inputs
    assert prod["snapStart"] == {"applyOn": "PublishedVersions"}
    assert programs["prod"].outputs["analysisSnapStart"] is True
    # What Lambda requires next to SnapStart: at most 512 MB of /tmp, no EFS, no provisioned concurrency
    assert prod["ephemeralStorage"]["size"] <= 512
    assert "fileSystemConfig" not in prod
    assert programs["prod"].of_type("aws:lambda/provisionedConcurrencyConfig:ProvisionedConcurrencyConfig") == []
    assert "snapStart" not in dev
    assert programs["dev"].outputs["analysisSnapStart"] is False
    # The committed configs say so explicitly / by default
    assert parse_stack_config(_own_config(programs["prod"])).analysis_snap_start is True
    assert parse_stack_config(_own_config(programs["dev"])).analysis_snap_start is False


def test_snap_start_with_more_than_512_mb_of_ephemeral_storage_stops_the_preview() -> None:
    # Given prod's config with /tmp raised above SnapStart's limit
    config = stack_config("prod") | {"sentiment-analyzer:analysisEphemeralStorageMb": "1024"}
    # When previewing, Then the config check names both keys before anything is created
    with pytest.raises(ConfigError, match=r"analysisSnapStart needs analysisEphemeralStorageMb <= 512"):
        run_program("prod", config, preview=True)
    # And without SnapStart the same size is fine
    assert parse_stack_config({"analysisEphemeralStorageMb": "1024"}).analysis_ephemeral_storage_mb == 1024


@pytest.mark.parametrize(
    ("type_", "props", "problem"),
    [
        (
            FUNCTION,
            {"snap_start": {"apply_on": "PublishedVersions"}, "ephemeral_storage": {"size": 2048}},
            "ephemeral storage <= 512 MB, not 2048 MB",
        ),
        (
            FUNCTION,
            {
                "snap_start": {"apply_on": "PublishedVersions"},
                "file_system_config": {"arn": "arn:efs", "local_mount_path": "/mnt/m"},
            },
            "EFS",
        ),
        (
            "aws:lambda/provisionedConcurrencyConfig:ProvisionedConcurrencyConfig",
            {"function_name": "f", "qualifier": "live", "provisioned_concurrent_executions": 1},
            "provisioned concurrency",
        ),
    ],
)
def test_the_snap_start_guard_refuses_what_lambda_would_refuse(type_: str, props: dict[str, Any], problem: str) -> None:
    from sentiment_infra.snapstart import guard

    check = guard(stack_has_snap_start=True)
    args = pulumi.ResourceTransformationArgs(
        resource=None,
        type_=type_,
        name="analysis",
        props=props,
        opts=pulumi.ResourceOptions(),  # type: ignore[arg-type]
    )
    with pytest.raises(ConfigError, match=problem):
        check(args)
    # Without SnapStart on the function (or in the stack) the same resources pass
    plain = {k: v for k, v in props.items() if k != "snap_start"}
    off = pulumi.ResourceTransformationArgs(
        resource=None,
        type_=type_,
        name="analysis",
        props=plain,
        opts=pulumi.ResourceOptions(),  # type: ignore[arg-type]
    )
    assert guard(stack_has_snap_start=False)(off) is None
