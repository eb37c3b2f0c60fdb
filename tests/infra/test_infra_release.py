"""Releases under the mocks: published versions, the ``live`` alias the queue invokes, SnapStart per stack."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pulumi
import pytest
from infra_mocks import ACCOUNT, ROLLOUT, ProgramRun, run_program, stack_config
from test_infra_iam import as_list, grants

from sentiment_infra.config import ConfigError, parse_stack_config
from sentiment_infra.packaging import RELEASE_CHECK_HANDLER

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

    def transformation(props: dict[str, Any]) -> pulumi.ResourceTransformationArgs:
        opts = pulumi.ResourceOptions()
        return pulumi.ResourceTransformationArgs(resource=None, type_=type_, name="analysis", props=props, opts=opts)  # type: ignore[arg-type]

    with pytest.raises(ConfigError, match=problem):
        guard(stack_has_snap_start=True)(transformation(props))
    # Without SnapStart on the function (or in the stack) the same resources pass
    plain = {k: v for k, v in props.items() if k != "snap_start"}
    assert guard(stack_has_snap_start=False)(transformation(plain)) is None


def test_pulumi_leaves_the_live_alias_to_codedeploy(program: ProgramRun) -> None:
    # The alias starts on the version the first up published; after that only CodeDeploy moves it, so an
    # up never switches all traffic at once nor undoes a rollback
    alias = program.one(ALIAS, "analysis")
    assert set(alias.ignore_changes) == {"functionVersion", "routingConfig"}


def test_codedeploy_rolls_live_out_per_stack_and_rolls_back_on_the_new_versions_alarms(
    programs: dict[str, ProgramRun],
) -> None:
    expected_configs = {
        "prod": "CodeDeployDefault.LambdaCanary10Percent5Minutes",
        "dev": "CodeDeployDefault.LambdaAllAtOnce",
    }
    for stack, deployment_config in expected_configs.items():
        run = programs[stack]
        app = run.one("aws:codedeploy/application:Application")
        group = run.one("aws:codedeploy/deploymentGroup:DeploymentGroup").inputs
        # A CodeDeploy application for Lambda, and one deployment group over the alias
        assert app.inputs["computePlatform"] == "Lambda", stack
        assert group["appName"] == app.outputs["name"]
        assert group["deploymentConfigName"] == deployment_config, stack
        assert group["deploymentStyle"] == {"deploymentOption": "WITH_TRAFFIC_CONTROL", "deploymentType": "BLUE_GREEN"}
        # Rollback: on a failed deployment (the hook) and when a listed alarm fires
        assert group["autoRollbackConfiguration"]["enabled"] is True
        assert set(group["autoRollbackConfiguration"]["events"]) == {"DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM"}
        assert group["alarmConfiguration"]["enabled"] is True
        release_alarms = {
            r.name.removeprefix("release-"): r
            for r in run.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
            if r.parent_type == "sentiment:release:Release"
        }
        assert sorted(group["alarmConfiguration"]["alarms"]) == sorted(
            r.outputs["name"] for r in release_alarms.values()
        )
        assert release_alarms.keys() == {"errors", "throttles", "duration-p99", "dlq-growth"}
        function = run.one(FUNCTION, "analysis").outputs["name"]
        on_alias = {"FunctionName": function, "Resource": f"{function}:live"}
        timeout_ms = parse_stack_config(_own_config(run)).analysis_timeout_s * 1000
        for suffix, metric in (("errors", "Errors"), ("throttles", "Throttles"), ("duration-p99", "Duration")):
            alarm = release_alarms[suffix].inputs
            assert (alarm["namespace"], alarm["metricName"]) == ("AWS/Lambda", metric), suffix
            assert alarm["dimensions"] == on_alias, suffix  # the alias the rollout shifts, not the whole function
            assert alarm["period"] == 60, suffix
        assert release_alarms["duration-p99"].inputs["extendedStatistic"] == "p99"
        assert 0 < release_alarms["duration-p99"].inputs["threshold"] < timeout_ms
        # DLQ growth (a difference), so messages parked before a release do not block every release
        queries = {q["id"]: q for q in release_alarms["dlq-growth"].inputs["metricQueries"]}
        dlq = run.one("aws:sqs/queue:Queue", "dlq").outputs["name"]
        assert queries["depth"]["metric"]["dimensions"] == {"QueueName": dlq}
        assert queries["growth"]["expression"] == "DIFF(depth)"
        assert queries["growth"]["returnData"] is True
        topic = run.one("aws:sns/topic:Topic", "alarms").outputs["arn"]
        assert all(r.inputs["alarmActions"] == [topic] for r in release_alarms.values())
        assert run.outputs["analysisDeploymentConfig"] == deployment_config
        assert run.outputs["codedeployApplicationName"] == app.outputs["name"]


def test_the_rollout_moves_live_to_the_published_version_with_the_release_check(program: ProgramRun) -> None:
    rollout = program.one(ROLLOUT).inputs
    function = program.one(FUNCTION, "analysis").outputs
    hook = program.one(FUNCTION, "release-check")
    group = program.one("aws:codedeploy/deploymentGroup:DeploymentGroup").inputs
    assert rollout["function_name"] == function["name"]
    assert rollout["alias"] == "live"
    assert rollout["target_version"] == function["version"]  # a new image or model is a new version
    assert rollout["application"] == group["appName"]
    assert rollout["deployment_group"] == group["deploymentGroupName"]
    assert rollout["before_allow_traffic"] == hook.outputs["name"]
    assert rollout["region"] == program.config["aws:region"]
    # And the outputs say what serves
    assert program.outputs["analysisLiveVersion"] == program.one(ROLLOUT).outputs["live_version"]
    assert program.outputs["releaseCheckFunctionName"] == hook.outputs["name"]


def test_the_release_check_is_a_small_zip_that_may_only_judge_this_groups_deployments(program: ProgramRun) -> None:
    hook = program.one(FUNCTION, "release-check")
    inputs = hook.inputs
    assert inputs["packageType"] == "Zip"
    assert inputs["handler"] == RELEASE_CHECK_HANDLER
    assert Path(inputs["code"].path).name.startswith("release-check-")
    env = inputs["environment"]["variables"]
    config = parse_stack_config(_own_config(program))
    analysis = program.one(FUNCTION, "analysis").outputs
    assert env["ANALYSIS_FUNCTION_NAME"] == analysis["name"]
    assert int(env["RELEASE_CHECK_MAX_MS"]) == config.release_check_max_ms
    # Two invocations at the limit each fit in its timeout
    assert inputs["timeout"] * 1000 > 2 * config.release_check_max_ms
    group_arn = program.one("aws:codedeploy/deploymentGroup:DeploymentGroup").outputs["arn"]
    app_arn = program.one("aws:codedeploy/application:Application").outputs["arn"]
    assert grants(program, "release-check") == {
        ("codedeploy:GetDeployment", group_arn),
        ("codedeploy:GetApplicationRevision", app_arn),
        ("codedeploy:PutLifecycleEventHookExecutionStatus", group_arn),
        ("lambda:InvokeFunction", f"{analysis['arn']}:*"),  # the analysis function's versions, nothing else
    }


def test_codedeploys_role_may_move_the_alias_run_the_check_and_read_the_rollback_alarms_only(
    program: ProgramRun,
) -> None:
    role = program.one("aws:iam/role:Role", "codedeploy")
    (trust,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert trust["Principal"] == {"Service": "codedeploy.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}
    assert program.one("aws:codedeploy/deploymentGroup:DeploymentGroup").inputs["serviceRoleArn"] == role.outputs["arn"]
    policy = json.loads(program.one("aws:iam/rolePolicy:RolePolicy", "codedeploy").inputs["policy"])
    found = {
        (action, resource)
        for statement in policy["Statement"]
        for action in as_list(statement["Action"])
        for resource in as_list(statement["Resource"])
    }
    analysis = program.one(FUNCTION, "analysis").outputs["arn"]
    alias = program.one(ALIAS, "analysis").outputs["arn"]
    hook = program.one(FUNCTION, "release-check").outputs["arn"]
    alarms = [
        r.outputs["arn"]
        for r in program.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
        if r.parent_type == "sentiment:release:Release"
    ]
    alias_actions = ("lambda:GetAlias", "lambda:UpdateAlias", "lambda:GetProvisionedConcurrencyConfig")
    assert found == {
        *((action, arn) for action in alias_actions for arn in (analysis, alias)),
        ("lambda:InvokeFunction", hook),
        *(("cloudwatch:DescribeAlarms", arn) for arn in alarms),
    }
