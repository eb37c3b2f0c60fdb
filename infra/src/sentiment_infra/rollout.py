"""The ``Rollout`` dynamic resource: ``pulumi up`` moves the ``live`` alias to the new version through CodeDeploy.

The analysis function publishes a version on every change; the alias ``live`` (what the queue invokes)
is left alone by Pulumi (``ignore_changes``) and moved by AWS CodeDeploy, which shifts traffic by the
deployment group's config (canary, linear or all at once), runs the ``BeforeAllowTraffic`` hook on the
new version before any traffic reaches it, and rolls the alias back when a listed alarm fires.

:func:`roll_out` is that step: read the version ``live`` serves, and if it is not the target, start a
deployment whose AppSpec moves ``live`` from it to the target, then wait for CodeDeploy's verdict.
Succeeded: ``live`` is the target. Failed or Stopped (a failed hook, an alarm, a manual stop): CodeDeploy
put the alias back, and the ``up`` fails with a message saying why and which version still serves.

The provider is dill-pickled into the stack state, so it holds no clients and no credentials: each
method builds boto3 clients from the environment (like :mod:`sentiment_infra.model_artifact`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi.dynamic

PROVIDER_VERSION = "1"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
"""How the engine passes a not-yet-known input to a dynamic provider (e.g. the version a preview will publish)."""

TERMINAL = frozenset({"Succeeded", "Failed", "Stopped"})
"""CodeDeploy deployment statuses after which nothing changes any more."""
POLL_S = 10.0
TIMEOUT_S = 3600.0
"""How long ``up`` waits for one deployment (CodeDeploy itself fails a hook that never reports after 1 hour)."""
POLL_ENV, TIMEOUT_ENV = "SENTIMENT_ROLLOUT_POLL_S", "SENTIMENT_ROLLOUT_TIMEOUT_S"
"""Environment overrides of :data:`POLL_S` / :data:`TIMEOUT_S` for the provider process (seconds)."""


def _seconds(env: str, default: float) -> float:
    value = os.environ.get(env, "")
    try:
        return float(value) if value else default
    except ValueError:
        raise RolloutFailed(f"{env}={value!r} is not a number of seconds") from None


_INPUTS = (
    "region",
    "application",
    "deployment_group",
    "function_name",
    "alias",
    "target_version",
    "before_allow_traffic",
)
_UPDATE_ON = (*_INPUTS, "provider_version")


class RolloutFailed(RuntimeError):
    """A deployment did not put the target version in service; the message says why and what serves now."""


@dataclass(frozen=True, slots=True)
class Release:
    """One move of ``alias`` (of ``function_name``) to ``target_version`` by the CodeDeploy group."""

    application: str
    deployment_group: str
    function_name: str
    alias: str
    target_version: str
    before_allow_traffic: str | None = None
    """The hook function CodeDeploy runs before any traffic reaches the target version."""


@dataclass(frozen=True, slots=True)
class Outcome:
    live_version: str
    deployment_id: str | None
    """None when ``live`` already served the target (nothing to deploy)."""


def appspec(release: Release, current_version: str) -> str:
    """The AppSpec (JSON) of a Lambda deployment moving the alias from ``current_version`` to the target."""
    spec: dict[str, Any] = {
        "version": 0.0,
        "Resources": [
            {
                "analysis": {
                    "Type": "AWS::Lambda::Function",
                    "Properties": {
                        "Name": release.function_name,
                        "Alias": release.alias,
                        "CurrentVersion": current_version,
                        "TargetVersion": release.target_version,
                    },
                }
            }
        ],
    }
    if release.before_allow_traffic:
        spec["Hooks"] = [{"BeforeAllowTraffic": release.before_allow_traffic}]
    return json.dumps(spec, sort_keys=True)


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def _live(lambda_client: Any, release: Release) -> str:
    return str(lambda_client.get_alias(FunctionName=release.function_name, Name=release.alias)["FunctionVersion"])


def roll_out(
    codedeploy: Any,
    lambda_client: Any,
    release: Release,
    *,
    poll_s: float | None = None,
    timeout_s: float | None = None,
    report: Callable[[str], None] = lambda _message: None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Outcome:
    """Put ``release.target_version`` in service through CodeDeploy; raise :class:`RolloutFailed` if it is not.

    ``poll_s`` / ``timeout_s`` default to :data:`POLL_S` / :data:`TIMEOUT_S`, or the environment's
    ``SENTIMENT_ROLLOUT_POLL_S`` / ``SENTIMENT_ROLLOUT_TIMEOUT_S`` (read at call time).
    """
    poll_s = _seconds(POLL_ENV, POLL_S) if poll_s is None else poll_s
    timeout_s = _seconds(TIMEOUT_ENV, TIMEOUT_S) if timeout_s is None else timeout_s
    current = _live(lambda_client, release)
    if current == release.target_version:
        return Outcome(live_version=current, deployment_id=None)
    try:
        deployment_id = str(
            codedeploy.create_deployment(
                applicationName=release.application,
                deploymentGroupName=release.deployment_group,
                revision={"revisionType": "AppSpecContent", "appSpecContent": {"content": appspec(release, current)}},
                description=f"{release.function_name}:{release.alias} {current} -> {release.target_version}",
            )["deploymentId"]
        )
    except Exception as exc:
        if _error_code(exc) == "DeploymentLimitExceededException" or "AlreadyInProgress" in _error_code(exc):
            raise RolloutFailed(
                f"cannot start the rollout of {release.function_name} version {release.target_version}: another "
                f"deployment of group {release.deployment_group} is in progress ({exc}); wait for it (aws deploy "
                "list-deployments --include-only-statuses InProgress) or stop it, then run pulumi up again"
            ) from exc
        raise
    report(
        f"CodeDeploy deployment {deployment_id}: {release.alias} {current} -> {release.target_version} "
        f"(group {release.deployment_group})"
    )
    deadline = clock() + timeout_s
    status, last = "", ""
    while True:
        info = codedeploy.get_deployment(deploymentId=deployment_id)["deploymentInfo"]
        status = str(info.get("status", ""))
        if status != last:
            report(f"deployment {deployment_id}: {status}")
            last = status
        if status in TERMINAL:
            break
        if clock() >= deadline:
            raise RolloutFailed(
                f"deployment {deployment_id} of {release.function_name} version {release.target_version} is still "
                f"{status} after {timeout_s:.0f} s; it goes on without pulumi: watch it (aws deploy get-deployment "
                f"--deployment-id {deployment_id}) or stop it and roll back (aws deploy stop-deployment "
                f"--deployment-id {deployment_id} --auto-rollback-enabled)"
            )
        sleep(poll_s)

    live = _live(lambda_client, release)
    if status == "Succeeded":
        if live != release.target_version:
            raise RolloutFailed(
                f"deployment {deployment_id} succeeded but {release.alias} serves version {live}, "
                f"not {release.target_version}: did someone move the alias by hand?"
            )
        return Outcome(live_version=live, deployment_id=deployment_id)
    error = info.get("errorInformation") or {}
    why = f"{error.get('code', 'no error code')}: {error.get('message', 'no message')}"
    rollback = info.get("rollbackInfo") or {}
    rolled_back = rollback.get("rollbackMessage") or (
        f"rollback deployment {rollback['rollbackDeploymentId']}" if rollback.get("rollbackDeploymentId") else ""
    )
    raise RolloutFailed(
        f"rollout of {release.function_name} version {release.target_version} {status.lower()} "
        f"(deployment {deployment_id}, {why})"
        + (f"; {rolled_back}" if rolled_back else "")
        + f"; {release.alias} serves version {live}. Details: aws deploy get-deployment --deployment-id {deployment_id}"
    )


def _release(props: dict[str, Any]) -> Release:
    return Release(
        application=str(props["application"]),
        deployment_group=str(props["deployment_group"]),
        function_name=str(props["function_name"]),
        alias=str(props["alias"]),
        target_version=str(props["target_version"]),
        before_allow_traffic=props.get("before_allow_traffic") or None,
    )


def _clients(region: str) -> tuple[Any, Any]:
    import boto3  # noqa: TID251 - the dynamic provider builds its own clients (no codedeploy in sentiment_shared.aws)

    session = boto3.session.Session(region_name=region)
    return session.client("codedeploy"), session.client("lambda")


class RolloutProvider(pulumi.dynamic.ResourceProvider):
    """Moves the alias through CodeDeploy on create and on every new target version; stateless, so it pickles."""

    serialize_as_secret_always = False

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.CheckResult:
        failures = [
            pulumi.dynamic.CheckFailure(name, f"{name} must be a non-empty string")
            for name in _INPUTS
            if name != "before_allow_traffic"
            and news.get(name) != UNKNOWN
            and not (isinstance(news.get(name), str) and news[name].strip())
        ]
        target = news.get("target_version")
        if isinstance(target, str) and target not in (UNKNOWN, "") and not target.isdigit():
            reason = f"{target!r} is not a published version ($LATEST never is)"
            failures.append(pulumi.dynamic.CheckFailure("target_version", reason))
        return pulumi.dynamic.CheckResult(news, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.DiffResult:
        changed = [k for k in _UPDATE_ON if news.get(k) == UNKNOWN or olds.get(k) != news.get(k)]
        return pulumi.dynamic.DiffResult(changes=bool(changed), replaces=[], delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
        outs = self._roll_out(props)
        return pulumi.dynamic.CreateResult(id_=f"{props['function_name']}:{props['alias']}", outs=outs)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.UpdateResult:
        return pulumi.dynamic.UpdateResult(outs=self._roll_out(news))

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        # Nothing of its own: the alias and the deployment group are resources of their own.
        return None

    @staticmethod
    def _roll_out(props: dict[str, Any]) -> dict[str, Any]:
        codedeploy, lambda_client = _clients(str(props["region"]))
        outcome = roll_out(codedeploy, lambda_client, _release(props), report=pulumi.log.info)
        outs = {name: props.get(name) for name in _UPDATE_ON}
        outs.update(live_version=outcome.live_version, deployment_id=outcome.deployment_id)
        return outs


@dataclass(frozen=True)
class RolloutArgs:
    region: pulumi.Input[str]
    application: pulumi.Input[str]
    deployment_group: pulumi.Input[str]
    function_name: pulumi.Input[str]
    alias: pulumi.Input[str]
    target_version: pulumi.Input[str]
    before_allow_traffic: pulumi.Input[str] | None = None
    provider_version: pulumi.Input[str] = PROVIDER_VERSION


class Rollout(pulumi.dynamic.Resource, module="release", name="Rollout"):
    """The version ``alias`` serves, put there by a CodeDeploy deployment (type ``dynamic/release:Rollout``)."""

    live_version: pulumi.Output[str]
    deployment_id: pulumi.Output[str | None]

    def __init__(self, name: str, args: RolloutArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        props: dict[str, Any] = {
            "region": args.region,
            "application": args.application,
            "deployment_group": args.deployment_group,
            "function_name": args.function_name,
            "alias": args.alias,
            "target_version": args.target_version,
            "before_allow_traffic": args.before_allow_traffic,
            "provider_version": args.provider_version,
            "live_version": None,
            "deployment_id": None,
        }
        super().__init__(RolloutProvider(), name, props, opts)
