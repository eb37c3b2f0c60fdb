"""The checkov families AWS-FACTS.md lists, checked on every resource of both stacks under the Pulumi mocks.

checkov cannot read a Pulumi program, so each family is one predicate over the resources the program
registers (all of a type, not just the one a component test looks at). The few that do not apply say
why in :data:`NOT_APPLICABLE`, each with the fact that makes the reason true asserted too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from infra_mocks import ProgramRun
from reliability_table import Recorder

pytestmark = pytest.mark.infra

Check = Callable[[ProgramRun], list[str]]


def _all(run: ProgramRun, typ: str) -> list[Any]:
    found = run.of_type(typ)
    assert found, f"no {typ} in the program: the check would pass vacuously"
    return found


def _public_access_block(run: ProgramRun) -> list[str]:
    blocks = {
        r.inputs["bucket"]: r.inputs for r in run.of_type("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    }
    problems = []
    for bucket in _all(run, "aws:s3/bucket:Bucket"):
        block = blocks.get(bucket.outputs["bucket"], {})
        for flag in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"):
            if block.get(flag) is not True:
                problems.append(f"{bucket.name}: {flag} not set")
    return problems


def _versioning(run: ProgramRun) -> list[str]:
    enabled = {
        r.inputs["bucket"]
        for r in run.of_type("aws:s3/bucketVersioning:BucketVersioning")
        if r.inputs["versioningConfiguration"]["status"] == "Enabled"
    }
    return [f"{b.name}: not versioned" for b in _all(run, "aws:s3/bucket:Bucket") if b.outputs["bucket"] not in enabled]


def _tls_only(run: ProgramRun) -> list[str]:
    denied = set()
    for policy in run.of_type("aws:s3/bucketPolicy:BucketPolicy"):
        for statement in json.loads(policy.inputs["policy"])["Statement"]:
            if statement["Effect"] == "Deny" and statement.get("Condition") == {
                "Bool": {"aws:SecureTransport": "false"}
            }:
                denied.add(policy.inputs["bucket"])
    return [
        f"{b.name}: no TLS-only policy" for b in _all(run, "aws:s3/bucket:Bucket") if b.outputs["bucket"] not in denied
    ]


def _sns_encrypted(run: ProgramRun) -> list[str]:
    return [f"{t.name}: not encrypted" for t in _all(run, "aws:sns/topic:Topic") if not t.inputs.get("kmsMasterKeyId")]


def _sqs_encrypted(run: ProgramRun) -> list[str]:
    return [
        f"{q.name}: not encrypted"
        for q in _all(run, "aws:sqs/queue:Queue")
        if not (q.inputs.get("sqsManagedSseEnabled") or q.inputs.get("kmsMasterKeyId"))
    ]


def _dynamodb_pitr(run: ProgramRun) -> list[str]:
    return [
        f"{t.name}: no point-in-time recovery"
        for t in _all(run, "aws:dynamodb/table:Table")
        if not (t.inputs.get("pointInTimeRecovery") or {}).get("enabled")
    ]


def _ecr_scan(run: ProgramRun) -> list[str]:
    return [
        f"{r.name}: no scan on push"
        for r in _all(run, "aws:ecr/repository:Repository")
        if not (r.inputs.get("imageScanningConfiguration") or {}).get("scanOnPush")
    ]


XRAY_ONLY = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}


def _iam_wildcards(run: ProgramRun) -> list[str]:
    problems = []
    for policy in _all(run, "aws:iam/rolePolicy:RolePolicy"):
        for statement in json.loads(policy.inputs["policy"])["Statement"]:
            actions = statement.get("Action", [])
            actions = [actions] if isinstance(actions, str) else actions
            resources = statement.get("Resource", [])
            resources = [resources] if isinstance(resources, str) else resources
            sid = f"{policy.name}/{statement.get('Sid', '?')}"
            problems += [f"{sid}: wildcard action {a}" for a in actions if "*" in a]
            # X-Ray uploads and the dashboard's read of CloudWatch metrics take no resource-level scope.
            if "*" in resources and not (set(actions) <= XRAY_ONLY or set(actions) == {"cloudwatch:GetMetricData"}):
                problems.append(f"{sid}: Resource * for {actions}")
            if "NotAction" in statement or "NotResource" in statement:
                problems.append(f"{sid}: NotAction/NotResource")
    return problems


def _log_retention(run: ProgramRun) -> list[str]:
    groups = {g.outputs.get("name", g.inputs.get("name")): g for g in _all(run, "aws:cloudwatch/logGroup:LogGroup")}
    problems = [f"{g.name}: no retention" for g in groups.values() if not g.inputs.get("retentionInDays")]
    for function in _all(run, "aws:lambda/function:Function"):
        group = (function.inputs.get("loggingConfig") or {}).get("logGroup")
        if group not in groups:
            problems.append(f"{function.name}: logs to {group!r}, not a log group of the stack with retention")
    return problems


def _targets(mapping_function: str, function_arn: str) -> bool:
    """Whether an event source mapping's function (ARN, or a version's / alias's qualified ARN) is this function."""
    return mapping_function == function_arn or mapping_function.rpartition(":")[0] == function_arn


def _concurrency_cap(run: ProgramRun) -> list[str]:
    mappings = run.of_type("aws:lambda/eventSourceMapping:EventSourceMapping")
    problems = []
    for function in _all(run, "aws:lambda/function:Function"):
        if function.inputs.get("reservedConcurrentExecutions"):
            continue
        own = [m for m in mappings if _targets(m.inputs["functionName"], function.outputs["arn"])]
        capped = own and all((m.inputs.get("scalingConfig") or {}).get("maximumConcurrency") for m in own)
        if not capped and function.name not in UNCAPPED_BY_DESIGN:
            problems.append(f"{function.name}: neither reserved concurrency nor a capped event source mapping")
    return problems


def _xray(run: ProgramRun) -> list[str]:
    return [
        f"{f.name}: tracing {(f.inputs.get('tracingConfig') or {}).get('mode')}"
        for f in _all(run, "aws:lambda/function:Function")
        if (f.inputs.get("tracingConfig") or {}).get("mode") != "Active"
    ]


UNCAPPED_BY_DESIGN = {
    "ingestion-function": "one EventBridge schedule invokes it (one run per tick) and concurrent runs are safe "
    "(conditional puts, tested); reserving concurrency fails outright on accounts with the default "
    "10-execution quota, where no unreserved headroom may be given away",
    "dashboard-function": "only CloudFront can invoke its URL (OAC, IAM auth) and caches its answers; a "
    "reservation (dashboardReservedConcurrency) is opt-in because Lambda refuses any reservation that leaves "
    "fewer than 100 unreserved executions, which fails every deploy into a new account (quota 10 or 50)",
    "release-check-function": "only CodeDeploy invokes it, once per deployment of the one deployment group (CodeDeploy "
    "runs one deployment per group at a time); a reservation would fail on new accounts as above",
}

CHECKS: dict[str, tuple[str, Check]] = {
    "CKV_AWS_53-56": ("S3 public access block (all four flags) on every bucket", _public_access_block),
    "CKV_AWS_21": ("S3 versioning on every bucket", _versioning),
    "CKV_AWS_379": ("S3 TLS-only bucket policy (deny aws:SecureTransport=false)", _tls_only),
    "CKV_AWS_26": ("SNS topics encrypted", _sns_encrypted),
    "CKV_AWS_27": ("SQS queues encrypted (SQS-managed SSE: SNS can deliver, unlike aws/sqs)", _sqs_encrypted),
    "CKV_AWS_28": ("DynamoDB point-in-time recovery", _dynamodb_pitr),
    "CKV_AWS_163": ("ECR scan on push", _ecr_scan),
    "CKV_AWS_62/63/355/286-290": (
        "IAM: no wildcard action; Resource * only for X-Ray and GetMetricData",
        _iam_wildcards,
    ),
    "CKV_AWS_66": ("CloudWatch log retention on every function's log group", _log_retention),
    "CKV_AWS_115": ("Lambda concurrency capped (reserved, or the mapping's MaximumConcurrency)", _concurrency_cap),
    "CKV_AWS_50": ("Lambda X-Ray tracing active", _xray),
}


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_checkov_families_hold_for_every_resource(
    stack: str, programs: dict[str, ProgramRun], reliability: Recorder
) -> None:
    run = programs[stack]
    for check_id, (what, check) in CHECKS.items():
        with reliability.row(
            f"security: checkov families ({stack} stack, Pulumi mocks)", f"{check_id}: {what}", "no finding"
        ) as row:
            problems = check(run)
            assert problems == [], problems
            exceptions = [f for f in UNCAPPED_BY_DESIGN if check_id == "CKV_AWS_115"]
            row.observed("no finding" + (f" (by design: {', '.join(exceptions)})" if exceptions else ""))


def _no_vpc(run: ProgramRun) -> list[str]:
    return [f"{f.name}: in a VPC" for f in _all(run, "aws:lambda/function:Function") if f.inputs.get("vpcConfig")]


def _images_only_or_pinned_zip(run: ProgramRun) -> list[str]:
    problems = []
    for function in _all(run, "aws:lambda/function:Function"):
        if function.inputs.get("packageType") == "Image":
            continue
        path = str(getattr(function.inputs.get("code"), "path", ""))
        if not re.search(r"-[0-9a-f]{16}\.zip$", path):
            problems.append(f"{function.name}: ZIP {path!r} is not content-addressed")
    if not re.fullmatch(r"[0-9a-f]{64}", str(run.outputs.get("ingestionPackageSha256", ""))):
        problems.append("no ingestionPackageSha256 stack output")
    return problems


def _pinned_by_digest(run: ProgramRun) -> list[str]:
    return [
        f"{f.name}: image {f.inputs.get('imageUri')!r} not pinned by digest"
        for f in _all(run, "aws:lambda/function:Function")
        if f.inputs.get("packageType") == "Image" and "@sha256:" not in str(f.inputs.get("imageUri"))
    ]


def _sqs_triggered_has_queue_dlq(run: ProgramRun) -> list[str]:
    queues = {q.outputs["arn"]: q for q in run.of_type("aws:sqs/queue:Queue")}
    problems = []
    for mapping in _all(run, "aws:lambda/eventSourceMapping:EventSourceMapping"):
        queue = queues[mapping.inputs["eventSourceArn"]]
        if "deadLetterTargetArn" not in json.loads(queue.inputs.get("redrivePolicy") or "{}"):
            problems.append(f"{queue.name}: no redrive policy")
    destinations = {
        c.inputs["functionName"]
        for c in _all(run, "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig")
        if c.inputs.get("destinationConfig", {}).get("onFailure", {}).get("destination") in queues
    }
    sqs_triggered = {m.inputs["functionName"] for m in _all(run, "aws:lambda/eventSourceMapping:EventSourceMapping")}
    # A function only CloudFront may call, through its function URL, is only ever invoked synchronously.
    url_only = {
        u.inputs["functionName"]
        for u in _all(run, "aws:lambda/functionUrl:FunctionUrl")
        if all(
            p.inputs["principal"] == "cloudfront.amazonaws.com"
            for p in _all(run, "aws:lambda/permission:Permission")
            if p.inputs["function"] == u.inputs["functionName"]
        )
    }
    # CodeDeploy's hook: a deployment whose hook never reports fails (after an hour) and rolls back: nothing is lost.
    hooks = {r.inputs["before_allow_traffic"] for r in run.of_type("pulumi-python:dynamic/release:Rollout")}
    for function in _all(run, "aws:lambda/function:Function"):
        name = function.outputs["name"]
        if name in hooks:
            continue
        triggered = any(_targets(target, function.outputs["arn"]) for target in sqs_triggered)
        if not triggered and name not in destinations and name not in url_only:
            problems.append(f"{function.name}: asynchronous failures have no destination")
    return problems


NOT_APPLICABLE: dict[str, tuple[str, Check]] = {
    "CKV_AWS_51 (ECR immutable tags)": (
        "a deliberate choice of the infra program: tags are content hashes that a rollback re-pushes, and "
        "the function runs the image pinned by its digest, so a moved tag can never change what runs",
        _pinned_by_digest,
    ),
    "CKV_AWS_117 (Lambda in a VPC)": (
        "the functions reach only AWS APIs (S3, DynamoDB, SNS) and public feeds; a VPC would add NAT or "
        "endpoints and cold-start cost for no private resource to protect",
        _no_vpc,
    ),
    "CKV_AWS_272 (code signing)": (
        "Lambda code signing does not apply to container images (analysis is deployed by image digest); "
        "the ingestion ZIP is built reproducibly from the lock and pinned by its sha256",
        _images_only_or_pinned_zip,
    ),
    "CKV_AWS_116 (function DLQ)": (
        "the analysis is SQS-triggered: failures park in the queue's DLQ (redrive policy), where a function "
        "DLQ never receives anything; ingestion's failed async invocations go to an on-failure destination "
        "queue (the successor of a function DLQ), which checkov's rule does not recognise; the dashboard is "
        "invoked only synchronously, by CloudFront through its function URL (no asynchronous event to lose); "
        "the release check is CodeDeploy's BeforeAllowTraffic hook, and a deployment whose hook never reports "
        "fails and rolls back (no event to lose)",
        _sqs_triggered_has_queue_dlq,
    ),
}


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_checkov_families_that_do_not_apply_hold_their_premise(
    stack: str, programs: dict[str, ProgramRun], reliability: Recorder
) -> None:
    run = programs[stack]
    for check_id, (reason, premise) in NOT_APPLICABLE.items():
        with reliability.row(
            f"security: checkov families ({stack} stack, Pulumi mocks)", f"{check_id}: skipped", reason
        ) as row:
            assert premise(run) == []
            row.observed("skipped; its premise holds")
