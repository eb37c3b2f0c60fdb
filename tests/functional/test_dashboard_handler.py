"""The dashboard's Lambda handler on moto: the table's counters as JSON and HTML, and the cost from CloudWatch."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from sentiment_dashboard.handler import build_handler
from sentiment_dashboard.summary import cloudwatch_cost
from sentiment_local.provision import StackResources, provision
from sentiment_shared import aws
from sentiment_shared.adapters import DynamoItemsTable
from sentiment_shared.costs import PRICES
from sentiment_shared.schemas import Item, SentimentResult

pytestmark = pytest.mark.functional


@pytest.fixture
def stack(moto_aws: None) -> StackResources:
    return provision()


def _event(path: str, method: str = "GET") -> dict[str, object]:
    return {"rawPath": path, "requestContext": {"http": {"method": method}}}


def test_the_handler_serves_the_tables_counts(stack: StackResources, monkeypatch: pytest.MonkeyPatch) -> None:
    table = DynamoItemsTable(stack.items_table)
    for n, sentiment in enumerate(["positive", "negative", "positive", None]):
        table.create(Item(item_id=f"h{n}", text=f"<b>text</b> {n}", source="feed"))
        if sentiment:
            result = SentimentResult(sentiment=sentiment, score=0.9, label="X", model_version="m@1")  # type: ignore[arg-type]
            table.set_sentiment(f"h{n}", result, source="feed")
    monkeypatch.setenv("ITEMS_TABLE", stack.items_table)
    monkeypatch.delenv("ANALYSIS_FUNCTION_NAME", raising=False)
    handler = build_handler()  # a new container: it reads this environment on its first request
    api, page = handler(_event("/api/summary"), None), handler(_event("/"), None)
    body = json.loads(base64.b64decode(api["body"]))
    assert {k: body[k] for k in ("total", "analyzed", "pending", "positive", "negative", "neutral")} == {
        "total": 4,
        "analyzed": 3,
        "pending": 1,
        "positive": 2,
        "negative": 1,
        "neutral": 0,
    }
    html = base64.b64decode(page["body"]).decode()
    assert page["statusCode"] == 200
    assert "&lt;b&gt;text&lt;/b&gt;" in html
    assert "<b>text" not in html


def test_cost_comes_from_the_functions_measured_metrics(moto_aws: None) -> None:
    cw = aws.client("cloudwatch")
    now = datetime.now(UTC)
    data = [
        ("AWS/Lambda", "Duration", [{"Name": "FunctionName", "Value": "analysis-fn"}], 20_000.0),
        ("AWS/Lambda", "Invocations", [{"Name": "FunctionName", "Value": "analysis-fn"}], 10.0),
        ("SentimentAnalyzer", "ItemsAnalyzed", [{"Name": "service", "Value": "sentiment-analysis"}], 100.0),
    ]
    for namespace, name, dimensions, value in data:
        cw.put_metric_data(
            Namespace=namespace,
            MetricData=[{"MetricName": name, "Dimensions": dimensions, "Value": value, "Timestamp": now}],  # type: ignore[typeddict-item]
        )
    cost = cloudwatch_cost(
        analysis_function="analysis-fn",
        analysis_memory_mb=2048,
        ingestion_function=None,
        ingestion_memory_mb=512,
        metrics_namespace="SentimentAnalyzer",
        now=now + timedelta(minutes=1),
    )
    assert cost is not None
    assert cost["items_measured"] == 100
    assert cost["analysis_ms_per_item"] == 200.0
    # 20 s x 2 GB for 100 items → 400 GB-s per 1,000 items
    assert cost["lambda_compute_usd"] == pytest.approx(400 * PRICES["lambda_gb_second"], rel=1e-3)


def test_no_metrics_no_cost(moto_aws: None) -> None:
    assert (
        cloudwatch_cost(
            analysis_function="nothing-here",
            analysis_memory_mb=2048,
            ingestion_function="nor-here",
            ingestion_memory_mb=512,
            metrics_namespace="SentimentAnalyzer",
        )
        is None
    )
