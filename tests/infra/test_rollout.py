"""The rollout ``pulumi up`` drives: CodeDeploy moves ``live`` to the new version, or the up fails and ``live`` stays.

moto (5.2.5) answers CodeDeploy's API (applications, deployment groups, CreateDeployment storing the
AppSpec, GetDeployment) and Lambda's (versions, aliases with routing), but leaves every deployment
``Created`` forever: it has no deployment engine. :class:`CodeDeployEngine` plays CodeDeploy's part
for Lambda deployments on top of moto's answers, as the CodeDeploy user guide describes it: the
``BeforeAllowTraffic`` hook runs before any traffic shifts and a ``Failed`` hook fails the deployment;
a canary shifts its share to the target version by the alias's routing config, waits, then moves the
rest; an alarm in ``ALARM`` while it waits stops the deployment and the automatic rollback puts the
alias back on the original version (``errorInformation`` / ``rollbackInfo`` as GetDeployment reports them).
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3  # noqa: TID251 - CodeDeploy has no adapter in sentiment_shared.aws; moto answers both clients
import pytest
from moto import mock_aws

from sentiment_infra import rollout
from sentiment_infra.rollout import Release, RolloutFailed, RolloutProvider, appspec, roll_out

pytestmark = pytest.mark.infra

REGION = "us-east-1"
CANARY = "CodeDeployDefault.LambdaCanary10Percent5Minutes"
ALL_AT_ONCE = "CodeDeployDefault.LambdaAllAtOnce"


@dataclass
class _Deployment:
    spec: dict[str, Any]
    config: str
    steps: Iterator[None] | None = None
    status: str = "Created"
    error: dict[str, str] = field(default_factory=dict)
    rollback: dict[str, str] = field(default_factory=dict)


class CodeDeployEngine:
    """moto's CodeDeploy API plus the deployment state machine moto lacks (Lambda compute platform)."""

    def __init__(self, codedeploy: Any, lambda_client: Any, *, hook: Callable[[str, str], bool]) -> None:
        self.api, self.lambda_client, self.hook = codedeploy, lambda_client, hook
        self.deployments: dict[str, _Deployment] = {}
        self.alarm_fires = False
        self.hook_calls: list[tuple[str, str]] = []
        self.routing_seen: list[dict[str, float]] = []

    # the CodeDeploy client surface roll_out uses
    def create_deployment(self, **kwargs: Any) -> dict[str, Any]:
        answer = self.api.create_deployment(**kwargs)  # moto checks the application and group exist
        info = self.api.get_deployment(deploymentId=answer["deploymentId"])["deploymentInfo"]
        spec = json.loads(info["revision"]["appSpecContent"]["content"])
        self.deployments[answer["deploymentId"]] = _Deployment(spec=spec, config=info["deploymentConfigName"])
        return dict(answer)

    def get_deployment(self, deploymentId: str) -> dict[str, Any]:
        answer = self.api.get_deployment(deploymentId=deploymentId)
        state = self.deployments[deploymentId]
        if state.steps is None:
            state.steps = self._run(state)
        next(state.steps, None)  # time passes between two polls
        answer["deploymentInfo"] |= {
            "status": state.status,
            "errorInformation": state.error,
            "rollbackInfo": state.rollback,
        }
        return dict(answer)

    def _run(self, state: _Deployment) -> Iterator[None]:
        (resource,) = state.spec["Resources"]
        props = next(iter(resource.values()))["Properties"]
        name, alias, current, target = props["Name"], props["Alias"], props["CurrentVersion"], props["TargetVersion"]
        # CodeDeploy refuses a deployment whose CurrentVersion is not what the alias serves
        assert self.lambda_client.get_alias(FunctionName=name, Name=alias)["FunctionVersion"] == current
        state.status = "InProgress"
        yield
        for hook in state.spec.get("Hooks", []):
            if "BeforeAllowTraffic" in hook:
                self.hook_calls.append((hook["BeforeAllowTraffic"], target))
                if not self.hook(name, target):
                    state.status = "Failed"
                    state.error = {
                        "code": "HOOK_EXECUTION_FAILURE",
                        "message": "The deployment failed because a lifecycle event validation failed.",
                    }
                    state.rollback = {"rollbackMessage": f"Rolled back: {alias} stays on version {current}"}
                    return
                yield
        if state.config == CANARY:
            routing = {target: 0.1}
            self.lambda_client.update_alias(
                FunctionName=name, Name=alias, RoutingConfig={"AdditionalVersionWeights": routing}
            )
            self.routing_seen.append(routing)
            yield  # the canary's 5 minutes
            if self.alarm_fires:
                self.lambda_client.update_alias(
                    FunctionName=name,
                    Name=alias,
                    FunctionVersion=current,
                    RoutingConfig={"AdditionalVersionWeights": {}},
                )
                state.status = "Stopped"
                state.error = {
                    "code": "ALARM_ACTIVE",
                    "message": "One or more alarms have been activated: release-errors",
                }
                state.rollback = {"rollbackMessage": "Automatic rollback: the deployment was stopped by an alarm"}
                return
        self.lambda_client.update_alias(
            FunctionName=name, Name=alias, FunctionVersion=target, RoutingConfig={"AdditionalVersionWeights": {}}
        )
        state.status = "Succeeded"


@dataclass
class Stack:
    codedeploy: Any
    lambda_client: Any
    engine: CodeDeployEngine
    hook_answers: dict[str, bool]

    def release(self, target: str, config: str = CANARY) -> Release:
        group = "canary" if config == CANARY else "all-at-once"
        return Release("analysis", group, "analysis", "live", target, before_allow_traffic="release-check")

    def live(self) -> dict[str, Any]:
        return dict(self.lambda_client.get_alias(FunctionName="analysis", Name="live"))

    def roll_out(
        self, target: str, config: str = CANARY, report: Callable[[str], None] = lambda _message: None
    ) -> rollout.Outcome:
        """``pulumi up``'s rollout of version ``target`` to ``live`` (no waits between polls)."""
        return roll_out(
            self.engine, self.lambda_client, self.release(target, config), sleep=lambda _s: None, report=report
        )

    def failed_roll_out(self, target: str) -> str:
        """What the :class:`RolloutFailed` the rollout of version ``target`` raises says."""
        with pytest.raises(RolloutFailed) as failed:
            self.roll_out(target)
        return str(failed.value)


@pytest.fixture
def stack() -> Iterator[Stack]:
    """A function with versions 1 and 2, ``live`` on 1, and a CodeDeploy application with two groups."""
    with mock_aws():
        iam = boto3.client("iam", region_name=REGION)
        role = iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        lambda_client = boto3.client("lambda", region_name=REGION)
        package = io.BytesIO()
        with zipfile.ZipFile(package, "w") as archive:
            archive.writestr("h.py", "def handler(event, context):\n    return event\n")
        lambda_client.create_function(
            FunctionName="analysis",
            Runtime="python3.12",
            Role=role,
            Handler="h.handler",
            Code={"ZipFile": package.getvalue()},
            Publish=True,
        )
        # A new model (MODEL_* environment) is a new version
        lambda_client.update_function_configuration(
            FunctionName="analysis", Environment={"Variables": {"MODEL_SHA256": "b" * 64}}
        )
        assert lambda_client.publish_version(FunctionName="analysis")["Version"] == "2"
        lambda_client.create_alias(FunctionName="analysis", Name="live", FunctionVersion="1")
        codedeploy = boto3.client("codedeploy", region_name=REGION)
        codedeploy.create_application(applicationName="analysis", computePlatform="Lambda")
        for group, config in (("canary", CANARY), ("all-at-once", ALL_AT_ONCE)):
            codedeploy.create_deployment_group(
                applicationName="analysis",
                deploymentGroupName=group,
                serviceRoleArn=role,
                deploymentConfigName=config,
                deploymentStyle={"deploymentType": "BLUE_GREEN", "deploymentOption": "WITH_TRAFFIC_CONTROL"},
                autoRollbackConfiguration={
                    "enabled": True,
                    "events": ["DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM"],
                },
            )
        answers: dict[str, bool] = {}
        engine = CodeDeployEngine(codedeploy, lambda_client, hook=lambda _name, version: answers.get(version, True))
        yield Stack(codedeploy, lambda_client, engine, answers)


def test_a_new_version_rolls_out_through_the_canary_after_the_hook_passed(stack: Stack) -> None:
    # Given live on version 1 and a published version 2 (a new model)
    messages: list[str] = []
    # When pulumi up rolls out version 2
    outcome = stack.roll_out("2", report=messages.append)
    # Then CodeDeploy ran the hook on version 2, shifted 10 % to it, then everything
    assert stack.engine.hook_calls == [("release-check", "2")]
    assert stack.engine.routing_seen == [{"2": 0.1}]
    assert stack.live()["FunctionVersion"] == "2"
    assert not stack.live().get("RoutingConfig", {}).get("AdditionalVersionWeights")
    assert outcome.live_version == "2"
    assert outcome.deployment_id in stack.engine.deployments
    # And the deployment's AppSpec moved exactly this alias from 1 to 2, with the hook
    spec = stack.engine.deployments[outcome.deployment_id].spec
    assert spec == json.loads(appspec(stack.release("2"), "1"))
    assert spec["Resources"][0]["analysis"]["Properties"] == {
        "Name": "analysis",
        "Alias": "live",
        "CurrentVersion": "1",
        "TargetVersion": "2",
    }
    assert spec["Hooks"] == [{"BeforeAllowTraffic": "release-check"}]
    assert any("Succeeded" in m for m in messages)


def test_all_at_once_moves_the_alias_in_one_step(stack: Stack) -> None:
    outcome = stack.roll_out("2", ALL_AT_ONCE)
    assert outcome.live_version == "2"
    assert stack.engine.routing_seen == []  # no canary share
    assert stack.engine.hook_calls == [("release-check", "2")]


def test_nothing_is_deployed_when_live_already_serves_the_version(stack: Stack) -> None:
    outcome = stack.roll_out("1")
    assert outcome == rollout.Outcome(live_version="1", deployment_id=None)
    assert (
        stack.codedeploy.list_deployments(applicationName="analysis", deploymentGroupName="canary")["deployments"] == []
    )


@pytest.mark.reliability(
    area="release: CodeDeploy rollout (moto + engine fake)",
    case="the release check fails the new version",
    expected="the up fails naming HOOK_EXECUTION_FAILURE; live stays on the old version; no traffic shifted",
)
def test_a_failed_hook_fails_the_up_and_live_stays_on_the_old_version(stack: Stack) -> None:
    # Given a version 2 that answers the known texts wrongly (the hook reports Failed)
    stack.hook_answers["2"] = False
    # When rolling it out, Then the up fails saying why and which version still serves
    message = stack.failed_roll_out("2")
    assert "rollout of analysis version 2 failed" in message
    assert "HOOK_EXECUTION_FAILURE" in message
    assert "live serves version 1" in message
    assert "aws deploy get-deployment --deployment-id" in message
    # And no traffic ever reached version 2
    assert stack.engine.routing_seen == []
    assert stack.live()["FunctionVersion"] == "1"


@pytest.mark.reliability(
    area="release: CodeDeploy rollout (moto + engine fake)",
    case="a rollback alarm fires during the 10 % canary",
    expected="deployment Stopped (ALARM_ACTIVE), alias back on the old version, the up fails saying so",
)
def test_an_alarm_during_the_canary_rolls_back_and_fails_the_up(stack: Stack) -> None:
    # Given version 2 passes the hook but its errors raise an alarm during the canary
    stack.engine.alarm_fires = True
    message = stack.failed_roll_out("2")
    assert "version 2 stopped" in message
    assert "ALARM_ACTIVE" in message
    assert "Automatic rollback" in message
    assert "live serves version 1" in message
    # The canary had 10 % on version 2; after the rollback all traffic is on version 1 again
    assert stack.engine.routing_seen == [{"2": 0.1}]
    live = stack.live()
    assert live["FunctionVersion"] == "1"
    assert not live.get("RoutingConfig", {}).get("AdditionalVersionWeights")


@pytest.mark.reliability(
    area="release: CodeDeploy rollout (moto + engine fake)",
    case="a deployment that never ends",
    expected="the up fails after its limit with the stop-deployment command; live unchanged",
)
def test_a_deployment_that_never_ends_fails_the_up_with_how_to_stop_it(stack: Stack) -> None:
    clock = iter(range(0, 10_000, 100))
    stuck = CodeDeployEngine(stack.codedeploy, stack.lambda_client, hook=lambda _n, _v: True)
    stuck._run = lambda state: iter(lambda: None, 0)  # type: ignore[method-assign]  # stays InProgress
    with pytest.raises(RolloutFailed, match=r"aws deploy stop-deployment --deployment-id .* --auto-rollback-enabled"):
        roll_out(
            stuck,
            stack.lambda_client,
            stack.release("2"),
            sleep=lambda _s: None,
            clock=lambda: next(clock),
            timeout_s=500,
        )
    assert stack.live()["FunctionVersion"] == "1"


def test_the_provider_fails_the_update_on_a_rollback_and_reports_the_live_version_on_success(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the provider as pulumi up runs it (its own clients, here answered by moto + the engine)
    monkeypatch.setattr(rollout, "_clients", lambda region: (stack.engine, stack.lambda_client))
    monkeypatch.setattr(rollout, "POLL_S", 0.0)
    monkeypatch.setattr(rollout.pulumi.log, "info", lambda *_a, **_k: None)
    provider = RolloutProvider()
    props = {
        "region": REGION,
        "application": "analysis",
        "deployment_group": "canary",
        "function_name": "analysis",
        "alias": "live",
        "target_version": "1",
        "before_allow_traffic": "release-check",
        "provider_version": rollout.PROVIDER_VERSION,
    }
    # The first up: live was created on the version it published, nothing to deploy
    created = provider.create(props)
    assert created.outs is not None
    assert created.outs["live_version"] == "1"
    assert created.outs["deployment_id"] is None
    # A new version (a new image or model) is a change
    news = props | {"target_version": "2"}
    assert provider.diff(created.id, created.outs, news).changes is True
    assert provider.diff(created.id, created.outs, dict(props)).changes is False
    # When its canary trips an alarm, Then the update raises (pulumi up fails) and live stays on 1
    stack.engine.alarm_fires = True
    with pytest.raises(RolloutFailed, match="live serves version 1"):
        provider.update(created.id, created.outs, news)
    assert stack.live()["FunctionVersion"] == "1"
    # And the next up retries the same version; once it passes, live_version says 2
    stack.engine.alarm_fires = False
    updated = provider.update(created.id, created.outs, news)
    assert updated.outs is not None
    assert updated.outs["live_version"] == "2"
    assert stack.live()["FunctionVersion"] == "2"


def test_the_provider_refuses_latest_and_empty_names() -> None:
    check = RolloutProvider().check(
        {}, {"region": "us-east-1", "application": "", "deployment_group": "g", "function_name": "f", "alias": "live",
             "target_version": "$LATEST"}
    )  # fmt: skip
    reasons = {f.property: f.reason for f in check.failures}
    assert "application" in reasons
    assert "$LATEST" in reasons["target_version"]
