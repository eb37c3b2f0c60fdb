"""The dashboard's HTTP surface and page: routes, read-only, escaping, CSP, cache headers, the Lambda adapter."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest

from sentiment_dashboard import app, handler, render
from sentiment_dashboard.summary import CachedSummary

pytestmark = pytest.mark.unit

HOSTILE = '<script>document.title="pwned"</script><img src=x onerror=alert(1)> & "quotes"'


def _summary(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "total": 12,
        "analyzed": 10,
        "pending": 2,
        "positive": 6,
        "negative": 3,
        "neutral": 1,
        "days": [{"date": f"2026-11-{d:02d}", "positive": d % 3, "negative": 1, "neutral": 0} for d in range(1, 31)],
        "recent": [
            {
                "item_id": "abc",
                "text": HOSTILE,
                "sentiment": "negative",
                "score": 0.912345,
                "analyzed_at": "2026-11-29T12:00:00+00:00",
                "source": "<b>feed</b>",
                "model_version": "distilbert/v1@3f2a+fp32",
            }
        ],
        "sources": [{"source": '<svg onload="x">', "total": 10, "positive": 6, "negative": 3, "neutral": 1}],
        "model_version": "distilbert/v1@3f2a<i>+fp32",
        "generated_at": "2026-11-29T12:00:05+00:00",
        "cost_per_1000_items": None,
    }
    body.update(overrides)
    return body


def test_the_page_shows_the_counts_and_escapes_every_text() -> None:
    response = app.respond("GET", "/", _summary)
    html = response.body.decode()
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    for key, value in (("total", 12), ("analyzed", 10), ("pending", 2), ("positive", 6), ("negative", 3)):
        assert f'id="{key}">{value}<' in html
    assert 'id="positive-share">60.0 %<' in html
    assert "<script" not in html
    assert "<img" not in html
    assert "<b>feed" not in html
    assert "<svg onload" not in html
    assert "<i>+fp32" not in html
    assert "&lt;script&gt;document.title=&quot;pwned&quot;&lt;/script&gt;" in html
    assert "0.912" in html


def test_every_response_carries_a_strict_csp_whose_style_hash_matches_the_page() -> None:
    response = app.respond("GET", "/", _summary)
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp
    assert "script-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    style = re.search(r"<style>(.*?)</style>", response.body.decode(), re.S)
    assert style is not None
    import base64 as b64
    import hashlib

    digest = b64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode()
    assert f"'sha256-{digest}'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "s-maxage=30" in response.headers["Cache-Control"]


def test_summary_json_is_the_contract() -> None:
    response = app.respond("GET", "/api/summary", _summary)
    body = json.loads(response.body)
    assert response.headers["Content-Type"] == "application/json"
    assert {"total", "analyzed", "pending", "positive", "negative", "neutral", "days", "recent"} <= body.keys()
    assert set(body["days"][0]) == {"date", "positive", "negative", "neutral"}
    assert {"item_id", "text", "sentiment", "score", "analyzed_at"} <= body["recent"][0].keys()


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_nothing_writes(method: str) -> None:
    calls: list[int] = []

    def load() -> dict[str, Any]:
        calls.append(1)
        return _summary()

    response = app.respond(method, "/api/summary", load)
    assert response.status == 405
    assert response.headers["Allow"] == "GET, HEAD"
    assert calls == []


def test_unknown_paths_are_404_and_a_failing_read_is_a_503_without_details() -> None:
    assert app.respond("GET", "/admin", _summary).status == 404

    def broken() -> dict[str, Any]:
        raise RuntimeError("secret internal detail")

    response = app.respond("GET", "/", broken)
    assert response.status == 503
    assert b"secret" not in response.body
    assert response.headers["Cache-Control"] == "no-store"


def test_head_has_headers_and_no_body() -> None:
    response = app.respond("HEAD", "/", _summary)
    assert (response.status, response.body) == (200, b"")


def test_empty_table_renders() -> None:
    empty = _summary(total=0, analyzed=0, pending=0, positive=0, negative=0, neutral=0, recent=[], sources=[])
    empty["model_version"] = None
    html = app.respond("GET", "/", lambda: empty, empty_hint="uv run sentiment-local run").body.decode()
    # The one command a new user needs, and no empty charts (no "0" axis, no grey bar, no "-" shares)
    assert 'id="empty"' in html
    assert "<code>uv run sentiment-local run</code>" in html
    assert "<svg role" not in html
    assert 'id="positive-share"' not in html
    assert 'id="total">0<' in html


def test_cost_section_shows_the_measured_cost() -> None:
    cost = {
        "total_usd": 0.0421,
        "lambda_compute_usd": 0.04,
        "lambda_requests_usd": 0.00002,
        "sqs_usd": 0.00008,
        "sns_usd": 0.0005,
        "dynamodb_usd": 0.00625,
        "items_measured": 20,
        "analysis_ms_per_item": 118.2,
        "analysis_memory_mb": 2048,
        "prices": "AWS list prices, us-east-1, 2026-11-29",
    }
    html = render.page(_summary(cost_per_1000_items={**cost, "covers": "the last local run (2026-12-01 10:01 UTC)"}))
    text = re.sub(r"<[^>]+>", "", html)
    # What it covers (which run, how many items), what is measured and what is priced, in plain words
    assert (
        "$0.042 per 1,000 items: an estimate from the last local run (2026-12-01 10:01 UTC), which analysed 20 items."
        in text
    )
    assert "this estimate only the 20 of that run" in text  # the page's counts cover 10 items, not 20
    assert "Measured: the analysis function took 118 ms per item with 2,048 MB of memory" in text
    assert "Priced:" in text
    # No "$0.0000" hiding $0.00002, and no jargon
    assert "$0.000020" in text
    assert "$0.0000<" not in html
    assert "warm" not in text


def test_lambda_function_url_adapter() -> None:
    function = handler.build_handler(_summary)
    event = {"rawPath": "/api/summary", "requestContext": {"http": {"method": "GET"}}}
    out = function(event, None)
    assert out["statusCode"] == 200
    assert out["isBase64Encoded"] is True
    assert json.loads(base64.b64decode(out["body"]))["total"] == 12
    post = function({"rawPath": "/", "requestContext": {"http": {"method": "POST"}}}, None)
    assert post["statusCode"] == 405


def test_cached_summary_reads_once_per_ttl() -> None:
    now = [0.0]
    reads: list[int] = []

    def load() -> dict[str, Any]:
        reads.append(1)
        return _summary()

    cached = CachedSummary(load, ttl_s=30, clock=lambda: now[0])
    cached()
    cached()
    now[0] = 29.9
    cached()
    assert len(reads) == 1
    now[0] = 30.0
    cached()
    assert len(reads) == 2


@pytest.mark.parametrize("port", ["-1", "65536", "http"])
def test_local_dashboard_refuses_a_bad_port(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    from sentiment_local.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["dashboard", "--port", port])
    assert exited.value.code == 2
    assert "--port" in capsys.readouterr().err
