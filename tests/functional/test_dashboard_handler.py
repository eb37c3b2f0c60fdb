"""The dashboard's Lambda handler on moto: the table's counters as JSON and HTML, and the cost from CloudWatch."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
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


def test_the_handler_filters_pages_and_downloads_the_tables_items(
    stack: StackResources, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given 15 analysed items from two feeds (written as the analysis writes them), each with a link
    table = DynamoItemsTable(stack.items_table)
    feeds = {"a": "https://www.kettles.example/feed.xml?utm_source=x", "b": "/srv/feeds/chairs.xml"}
    expected: dict[tuple[str, str], set[str]] = {}
    for n in range(15):
        feed, sentiment = "ab"[n % 2], ("positive", "negative", "neutral")[n % 3]
        item_id = f"f{n:02d}"
        table.create(
            Item(item_id=item_id, text=f"text {n}", source=feeds[feed], url=f"https://example.com/{n}", title=f"T{n}")
        )
        result = SentimentResult(sentiment=sentiment, score=0.8, label="X", model_version="m@1")  # type: ignore[arg-type]
        table.set_sentiment(item_id, result, source=feeds[feed])
        expected.setdefault((feed, sentiment), set()).add(item_id)
    monkeypatch.setenv("ITEMS_TABLE", stack.items_table)
    monkeypatch.delenv("ANALYSIS_FUNCTION_NAME", raising=False)
    handler = build_handler()

    def get(path: str, query: str = "") -> tuple[int, str]:
        out = handler({**_event(path), "rawQueryString": query}, None)
        return int(out["statusCode"]), base64.b64decode(out["body"]).decode()

    def shown(html: str) -> set[str]:
        return set(re.findall(r'<li data-item="([^"]+)"', html))

    # When the page is read unfiltered, then 12 of 15 with their links, and a next page with the other 3
    status, first = get("/")
    assert status == 200
    assert len(shown(first)) == 12
    assert '<a class="original" href="https://example.com/14"' in first
    assert 'rel="next"' in first
    status, second = get("/", "page=2")
    assert shown(first) | shown(second) == {f"f{n:02d}" for n in range(15)}
    # Filtered by sentiment, by short source name, and both: exactly the matching items, page and download
    every = {k for ids in expected.values() for k in ids}
    cases = {
        "sentiment=negative": {i for (_, s), ids in expected.items() if s == "negative" for i in ids},
        "source=kettles.example": {i for (f, _), ids in expected.items() if f == "a" for i in ids},
        "source=chairs.xml&sentiment=positive": expected[("b", "positive")],
    }
    for query, ids in cases.items():
        assert ids < every  # a real filter: some, not all (a proper subset)
        assert ids
        assert shown(get("/", query)[1]) == ids, query
        status, body = get("/items.csv", query)
        assert status == 200
        assert {r["item_id"] for r in csv.DictReader(io.StringIO(body))} == ids, query
        assert {i["item_id"] for i in json.loads(get("/items.json", query)[1])["items"]} == ids, query
    # A bad parameter is a 400 through the function URL too
    assert get("/", "sentiment=great") == (
        400,
        "Bad request: sentiment must be one of positive, negative, neutral, not 'great'\n",
    )
