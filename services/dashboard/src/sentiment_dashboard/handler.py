"""Lambda entry point of the dashboard (a function URL behind CloudFront, payload format 2.0).

Environment: :class:`sentiment_shared.settings.DashboardSettings` (``ITEMS_TABLE`` required; the cost
section's function names, memory sizes, metrics namespace and the analysis function's service optional).
The function only reads: its role may query the items table and read CloudWatch metrics, nothing else.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Callable
from typing import Any

from sentiment_dashboard.app import CACHE_TTL_S, SummaryLoader, respond
from sentiment_dashboard.items import ItemsLoader, table_items
from sentiment_dashboard.summary import CachedSummary, cloudwatch_cost, table_summary
from sentiment_shared.settings import DashboardSettings

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def _loaders() -> tuple[CachedSummary, ItemsLoader]:
    settings = DashboardSettings()  # type: ignore[call-arg]  # filled from the environment
    analysis = settings.analysis_function_name

    def cost() -> dict[str, Any] | None:
        if not analysis:
            return None
        return cloudwatch_cost(
            analysis_function=analysis,
            analysis_memory_mb=settings.analysis_memory_mb,
            ingestion_function=settings.ingestion_function_name,
            ingestion_memory_mb=settings.ingestion_memory_mb,
            metrics_namespace=settings.metrics_namespace,
            analysis_service=settings.analysis_service_name,
        )

    summary = CachedSummary(lambda: table_summary(settings.items_table, cost), ttl_s=CACHE_TTL_S)
    return summary, table_items(settings.items_table)


def build_handler(load_summary: SummaryLoader | None = None, load_items: ItemsLoader | None = None) -> Handler:
    """The function over its loaders (default: the table's and CloudWatch's, set up on the first request;
    the summary read at most once per TTL). Tests pass fake loaders here."""
    default_loaders = functools.cache(_loaders)

    def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
        http = event.get("requestContext", {}).get("http", {}) if isinstance(event, dict) else {}
        method = str(http.get("method", "GET")).upper()
        path = str(event.get("rawPath", "/")) if isinstance(event, dict) else "/"
        query = str(event.get("rawQueryString", "")) if isinstance(event, dict) else ""
        if load_summary is not None:
            summary, items = load_summary, load_items
        else:
            summary, items = default_loaders()
        response = respond(method, path, summary, query=query, load_items=items)
        return {
            "statusCode": response.status,
            "headers": response.headers,
            "body": base64.b64encode(response.body).decode("ascii"),
            "isBase64Encoded": True,
        }

    return handler


handler = build_handler()
