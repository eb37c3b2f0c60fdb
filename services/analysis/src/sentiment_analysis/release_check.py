"""CodeDeploy's ``BeforeAllowTraffic`` hook: the new analysis version must classify known texts, quickly.

CodeDeploy calls this function (its own small ZIP: this module, the standard library and the runtime's
boto3, see ``sentiment_infra.packaging.build_release_check_zip``) with ``DeploymentId`` and
``LifecycleEventHookExecutionId`` before any traffic reaches the version being deployed. It reads the
target version from the deployment's AppSpec (GetDeployment, then GetApplicationRevision), invokes
exactly that version directly (twice: the first call pays its cold start or SnapStart restore, the
second is warm) with texts whose sentiment is not in doubt, and reports ``Succeeded`` only when both
answers are right and each came within ``RELEASE_CHECK_MAX_MS``. Anything else (a wrong or malformed
answer, a function error, a slow answer, an AppSpec it cannot read) reports ``Failed``, and CodeDeploy
stops the deployment and leaves the alias where it was. It always reports: a hook that never reports
holds the deployment for an hour.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)
logger.setLevel(logging.INFO)

KNOWN_TEXTS: tuple[tuple[str, str], ...] = (
    ("I absolutely love this, it is wonderful and works perfectly.", "positive"),
    ("This is terrible. It broke after one day and I hate it.", "negative"),
    ("What a fantastic, delightful experience. Highly recommended!", "positive"),
    ("Awful service, rude staff and a complete waste of money.", "negative"),
)
"""Texts any sentiment model in service must get right (the analysis contract's ``sentiment`` values)."""

INVOCATIONS = 2
"""The first pays the version's cold start (or SnapStart restore); the second must be as quick."""


@dataclass(frozen=True, slots=True)
class Verdict:
    passed: bool
    reasons: tuple[str, ...]
    timings_ms: tuple[float, ...]


def target_version(codedeploy: Any, deployment_id: str) -> tuple[str, str]:
    """``(function name, target version)`` of a deployment, from its Lambda AppSpec.

    GetDeployment names the revision (for an AppSpec given inline, only its sha256); the AppSpec itself
    comes from GetApplicationRevision, as a ``String`` revision (as seek-oss/aws-codedeploy-hooks reads it).
    """
    info = codedeploy.get_deployment(deploymentId=deployment_id)["deploymentInfo"]
    answer = codedeploy.get_application_revision(applicationName=info["applicationName"], revision=info["revision"])
    revision = answer["revision"]
    content = (revision.get("string") or revision.get("appSpecContent") or {}).get("content")
    if not content:
        raise ValueError(f"deployment {deployment_id}: its revision holds no AppSpec ({revision.get('revisionType')})")
    spec = json.loads(content)
    (resource,) = spec["Resources"]
    props = next(iter(resource.values()))["Properties"]
    return str(props["Name"]), str(props["TargetVersion"])


def check_answer(payload: bytes, function_error: str | None) -> list[str]:
    """Why one answer of the analysis to :data:`KNOWN_TEXTS` is wrong (empty: it is right)."""
    if function_error:
        return [f"the function failed ({function_error}): {payload[:300]!r}"]
    try:
        answer = json.loads(payload)
    except ValueError:
        return [f"the answer is not JSON: {payload[:300]!r}"]
    if not isinstance(answer, dict) or answer.get("statusCode") != 200:
        return [f"the answer is not a 200: {str(answer)[:300]}"]
    results = answer.get("results")
    if not isinstance(results, list) or len(results) != len(KNOWN_TEXTS):
        return [f"expected {len(KNOWN_TEXTS)} results, got {str(results)[:300]}"]
    problems = []
    for (text, expected), result in zip(KNOWN_TEXTS, results, strict=True):
        got = result.get("sentiment") if isinstance(result, dict) else None
        if got != expected:
            problems.append(f"{text!r}: expected {expected}, got {got!r}")
    return problems


def check_version(
    lambda_client: Any,
    function_name: str,
    version: str,
    *,
    max_ms: float,
    clock: Callable[[], float] = time.perf_counter,
) -> Verdict:
    """Invoke ``function_name:version`` :data:`INVOCATIONS` times with the known texts and judge the answers."""
    body = json.dumps({"texts": [text for text, _ in KNOWN_TEXTS]}).encode()
    reasons: list[str] = []
    timings: list[float] = []
    for attempt in range(1, INVOCATIONS + 1):
        started = clock()
        response = lambda_client.invoke(
            FunctionName=function_name, Qualifier=version, InvocationType="RequestResponse", Payload=body
        )
        payload = response["Payload"].read()
        elapsed_ms = (clock() - started) * 1000
        timings.append(elapsed_ms)
        reasons += [f"invocation {attempt}: {p}" for p in check_answer(payload, response.get("FunctionError"))]
        if elapsed_ms > max_ms:
            reasons.append(f"invocation {attempt}: answered in {elapsed_ms:.0f} ms, over the {max_ms:.0f} ms allowed")
        if reasons:
            break
    return Verdict(passed=not reasons, reasons=tuple(reasons), timings_ms=tuple(timings))


def _clients() -> tuple[Any, Any]:
    import boto3  # noqa: TID251 - this ZIP ships without sentiment_shared: the runtime's boto3, directly
    from botocore.config import Config

    max_s = float(os.environ.get("RELEASE_CHECK_MAX_MS", "10000")) / 1000
    # One attempt per invocation (a retry would hide a slow or failing version), and room for a cold start.
    invoke_config = Config(read_timeout=max(60.0, 3 * max_s), retries={"total_max_attempts": 1})
    return boto3.client("codedeploy"), boto3.client("lambda", config=invoke_config)


def run_hook(
    event: dict[str, Any],
    codedeploy: Any,
    lambda_client: Any,
    *,
    expected_function: str,
    max_ms: float,
    clock: Callable[[], float] = time.perf_counter,
) -> str:
    """Judge the deployment's target version and report the verdict to CodeDeploy; return the status sent."""
    deployment_id = event["DeploymentId"]
    status = "Failed"
    try:
        function_name, version = target_version(codedeploy, deployment_id)
        if function_name != expected_function:
            logger.error("Refusing to check %s: this hook checks %s only", function_name, expected_function)
        else:
            verdict = check_version(lambda_client, function_name, version, max_ms=max_ms, clock=clock)
            status = "Succeeded" if verdict.passed else "Failed"
            logger.info(
                json.dumps(
                    {
                        "message": "Release check",
                        "deployment_id": deployment_id,
                        "version": version,
                        "status": status,
                        "timings_ms": [round(t) for t in verdict.timings_ms],
                        "reasons": list(verdict.reasons),
                    }
                )
            )
    except Exception:
        logger.exception("Release check of deployment %s could not run", deployment_id)
    finally:
        codedeploy.put_lifecycle_event_hook_execution_status(
            deploymentId=deployment_id,
            lifecycleEventHookExecutionId=event["LifecycleEventHookExecutionId"],
            status=status,
        )
    return status


def handler(event: dict[str, Any], _context: object) -> dict[str, str]:
    codedeploy, lambda_client = _clients()
    status = run_hook(
        event,
        codedeploy,
        lambda_client,
        expected_function=os.environ["ANALYSIS_FUNCTION_NAME"],
        max_ms=float(os.environ.get("RELEASE_CHECK_MAX_MS", "10000")),
    )
    return {"status": status}
