"""Lambda entry point of the dashboard (a function URL behind CloudFront, payload format 2.0).

Environment: ``ITEMS_TABLE`` (required); for the cost section ``ANALYSIS_FUNCTION_NAME``,
``ANALYSIS_MEMORY_MB``, ``INGESTION_FUNCTION_NAME``, ``INGESTION_MEMORY_MB``, ``METRICS_NAMESPACE``,
``ANALYSIS_SERVICE_NAME`` (the analysis function's Powertools service: its metrics' ``service`` dimension).
The function only reads: its role may query the items table and read CloudWatch metrics, nothing else.
"""

from __future__ import annotations

import base64
import functools
import os
from typing import Any

from sentiment_dashboard.app import CACHE_TTL_S, respond
from sentiment_dashboard.summary import CachedSummary, cloudwatch_cost, table_summary


@functools.cache
def _summary() -> CachedSummary:
    table = os.environ["ITEMS_TABLE"]
    analysis = os.environ.get("ANALYSIS_FUNCTION_NAME")

    def cost() -> dict[str, Any] | None:
        if not analysis:
            return None
        return cloudwatch_cost(
            analysis_function=analysis,
            analysis_memory_mb=int(os.environ.get("ANALYSIS_MEMORY_MB", "2048")),
            ingestion_function=os.environ.get("INGESTION_FUNCTION_NAME"),
            ingestion_memory_mb=int(os.environ.get("INGESTION_MEMORY_MB", "256")),
            metrics_namespace=os.environ.get("METRICS_NAMESPACE", "SentimentAnalyzer"),
            analysis_service=os.environ.get("ANALYSIS_SERVICE_NAME", "sentiment-analysis"),
        )

    return CachedSummary(lambda: table_summary(table, cost), ttl_s=CACHE_TTL_S)


def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
    http = event.get("requestContext", {}).get("http", {}) if isinstance(event, dict) else {}
    method = str(http.get("method", "GET")).upper()
    path = str(event.get("rawPath", "/")) if isinstance(event, dict) else "/"
    response = respond(method, path, _summary())
    return {
        "statusCode": response.status,
        "headers": response.headers,
        "body": base64.b64encode(response.body).decode("ascii"),
        "isBase64Encoded": True,
    }
