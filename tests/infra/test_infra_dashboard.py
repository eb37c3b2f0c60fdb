"""The hosted dashboard and the operations dashboard under the mocks: origin only via CloudFront, read-only role."""

from __future__ import annotations

import json
import re

import pytest
from infra_mocks import REPO_ROOT, ProgramRun, run_program, stack_config
from test_infra_iam import grants

from sentiment_infra.components.dashboard import CACHE_TTL_S
from sentiment_infra.components.operations_dashboard import ANALYSIS_EMF_METRICS, INGESTION_EMF_METRICS
from sentiment_infra.packaging import DASHBOARD
from sentiment_shared.stack import Metric

pytestmark = pytest.mark.infra


def test_dashboard_url_is_the_cloudfront_domain(program: ProgramRun) -> None:
    cdn = program.one("aws:cloudfront/distribution:Distribution")
    assert program.outputs["dashboardUrl"] == f"https://{cdn.outputs['domainName']}/"


def test_the_origin_is_reachable_only_through_this_distribution(program: ProgramRun) -> None:
    url = program.one("aws:lambda/functionUrl:FunctionUrl")
    function = program.one("aws:lambda/function:Function", "dashboard")
    cdn = program.one("aws:cloudfront/distribution:Distribution")
    oac = program.one("aws:cloudfront/originAccessControl:OriginAccessControl")
    # The URL refuses unsigned requests; CloudFront signs every one with SigV4 through the OAC
    assert url.inputs["authorizationType"] == "AWS_IAM"
    assert url.inputs["functionName"] == function.outputs["name"]
    assert oac.inputs["originAccessControlOriginType"] == "lambda"
    assert (oac.inputs["signingBehavior"], oac.inputs["signingProtocol"]) == ("always", "sigv4")
    (origin,) = cdn.inputs["origins"]
    assert origin["originAccessControlId"]
    assert f"https://{origin['domainName']}/" == url.outputs["functionUrl"]
    assert origin["customOriginConfig"]["originProtocolPolicy"] == "https-only"
    # And only this distribution may invoke it: every permission is for CloudFront, pinned to its ARN
    permissions = [p for p in program.of_type("aws:lambda/permission:Permission") if "dashboard" in p.name]
    assert {p.inputs["action"] for p in permissions} == {"lambda:InvokeFunctionUrl", "lambda:InvokeFunction"}
    for permission in permissions:
        assert permission.inputs["principal"] == "cloudfront.amazonaws.com"
        assert permission.inputs["sourceArn"] == cdn.outputs["arn"]
        assert permission.inputs["function"] == function.outputs["name"]
    by_action = {p.inputs["action"]: p.inputs for p in permissions}
    assert by_action["lambda:InvokeFunctionUrl"]["functionUrlAuthType"] == "AWS_IAM"
    assert by_action["lambda:InvokeFunction"]["invokedViaFunctionUrl"] is True


def test_viewers_get_https_get_and_head_only_from_a_short_cache(program: ProgramRun) -> None:
    cdn = program.one("aws:cloudfront/distribution:Distribution").inputs
    behaviour = cdn["defaultCacheBehavior"]
    assert behaviour["viewerProtocolPolicy"] == "redirect-to-https"
    assert sorted(behaviour["allowedMethods"]) == ["GET", "HEAD"]
    assert cdn["viewerCertificate"]["minimumProtocolVersion"] == "TLSv1.2_2021"
    cache = program.one("aws:cloudfront/cachePolicy:CachePolicy").inputs
    assert cache["maxTtl"] == cache["defaultTtl"] == CACHE_TTL_S <= 60
    keys = cache["parametersInCacheKeyAndForwardedToOrigin"]
    assert keys["cookiesConfig"]["cookieBehavior"] == "none"
    # The filters are in the query string: each filtered page is its own cache entry (with "none" every
    # ?sentiment=… page would be answered with the cached unfiltered one)
    assert keys["queryStringsConfig"]["queryStringBehavior"] == "all"


def test_the_dashboard_role_only_reads_the_table_and_metrics(program: ProgramRun) -> None:
    table = program.one("aws:dynamodb/table:Table").outputs["arn"]
    resources = [table, f"{table}/index/pending-by-age", f"{table}/index/recent-by-day"]
    expected = {
        *((action, r) for action in ("dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query") for r in resources),
        ("cloudwatch:GetMetricData", "*"),
    }
    assert grants(program, "dashboard") == expected


def test_the_dashboard_function_is_a_small_zip_of_the_dashboard_member(program: ProgramRun) -> None:
    function = program.one("aws:lambda/function:Function", "dashboard").inputs
    assert function["packageType"] == "Zip"
    assert function["handler"] == DASHBOARD.handler
    assert function["memorySize"] <= 512
    env = function["environment"]["variables"]
    assert env["ITEMS_TABLE"] == program.one("aws:dynamodb/table:Table").outputs["name"]
    # The cost section reads the analysis function's metrics: its name, size and Powertools service
    analysis = program.one("aws:lambda/function:Function", "analysis")
    assert env["ANALYSIS_FUNCTION_NAME"] == analysis.outputs["name"]
    assert int(env["ANALYSIS_MEMORY_MB"]) == analysis.inputs["memorySize"]
    analysis_env = analysis.inputs["environment"]["variables"]
    assert env["ANALYSIS_SERVICE_NAME"] == analysis_env["POWERTOOLS_SERVICE_NAME"]
    assert env["METRICS_NAMESPACE"] == analysis_env["POWERTOOLS_METRICS_NAMESPACE"]
    ingestion = program.one("aws:lambda/function:Function", "ingestion")
    assert env["INGESTION_FUNCTION_NAME"] == ingestion.outputs["name"]
    assert int(env["INGESTION_MEMORY_MB"]) == ingestion.inputs["memorySize"]


def test_a_config_switch_turns_the_hosted_dashboard_off() -> None:
    run = run_program("dev", {**stack_config("dev"), "sentiment-analyzer:dashboard": "false"})
    # (outputs are not checked: the mocks' root stack keeps earlier runs' outputs within one process)
    assert run.of_type("sentiment:dashboard:Dashboard") == []
    assert run.of_type("aws:cloudfront/distribution:Distribution") == []
    functions = sorted(r.name for r in run.of_type("aws:lambda/function:Function"))
    assert functions == ["analysis-function", "ingestion-function", "release-check-function"]
    assert len(run.of_type("aws:cloudwatch/dashboard:Dashboard")) == 1  # the operators' view stays


def _emitted_metric_names() -> set[str]:
    names: set[str] = {Metric.COLD_START}  # Powertools' capture_cold_start_metric
    for handler in REPO_ROOT.glob("services/*/src/*/handler.py"):
        names |= {Metric[member] for member in re.findall(r"\bMetric\.([A-Z_]+)\b", handler.read_text())}
    return names


def test_every_metric_name_is_emitted_by_a_handler_and_none_is_spelt_as_a_string() -> None:
    # The names live in sentiment_shared.stack.Metric: a handler passing a literal name would bypass it
    assert set(Metric) == _emitted_metric_names()
    for handler in REPO_ROOT.glob("services/*/src/*/handler.py"):
        assert not re.findall(r"add_metric\(name=\"", handler.read_text()), handler


def test_operations_dashboard_shows_both_functions_queues_and_only_metrics_the_code_emits(program: ProgramRun) -> None:
    body = json.loads(program.one("aws:cloudwatch/dashboard:Dashboard").inputs["dashboardBody"])
    metrics = [m for w in body["widgets"] for m in w["properties"]["metrics"]]
    lambda_metrics = {(m[1], m[3]) for m in metrics if m[0] == "AWS/Lambda"}
    for name in ("analysis", "ingestion", "dashboard"):
        function = program.one("aws:lambda/function:Function", name).outputs["name"]
        for metric in ("Duration", "Errors", "Throttles"):
            assert (metric, function) in lambda_metrics
    queue = program.one("aws:sqs/queue:Queue", "queue").outputs["name"]
    dlq = program.one("aws:sqs/queue:Queue", "dlq").outputs["name"]
    sqs = {(m[1], m[3]) for m in metrics if m[0] == "AWS/SQS"}
    assert ("ApproximateAgeOfOldestMessage", queue) in sqs
    assert ("ApproximateNumberOfMessagesVisible", queue) in sqs
    assert ("ApproximateNumberOfMessagesVisible", dlq) in sqs
    custom = {m[1] for m in metrics if m[0] == "SentimentAnalyzer"}
    wanted = {n for group in (*ANALYSIS_EMF_METRICS.values(), *INGESTION_EMF_METRICS.values()) for n in group}
    assert custom == wanted
    assert custom <= _emitted_metric_names(), custom - _emitted_metric_names()
    assert {"ModelDownloadMs", "ModelExtractMs", "ModelLoadMs", "InferenceMs", "ItemsAnalyzed", "ItemsFailed"} <= custom
