"""Where the dashboard's numbers come from: the items table's counters, plus the measured cost per 1,000 items.

:class:`CachedSummary` keeps one summary per warm container for :data:`~sentiment_dashboard.app.CACHE_TTL_S`,
so a burst of cache misses (many CloudFront edges at once) still reads the table once per TTL.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sentiment_dashboard.items import DETAILS, details, str_attribute
from sentiment_shared import aws
from sentiment_shared.costs import Measured, cost_per_1000
from sentiment_shared.dal.keys import day_of, is_bookkeeping
from sentiment_shared.dal.read_model import SUMMARY_DAYS, read_summary
from sentiment_shared.schemas import SENTIMENTS
from sentiment_shared.stack import ANALYSIS_SERVICE, ITEMS_TABLE_HASH_KEY, Metric

log = logging.getLogger(__name__)

CostLoader = Callable[[], dict[str, Any] | None]


def table_summary(table_name: str, cost: CostLoader | None = None) -> dict[str, Any]:
    """``GET /api/summary``'s body: the counters' summary plus ``cost_per_1000_items`` (None if unmeasured).

    The recent items also get their ``url``, ``title`` and ``published_at`` (one ``BatchGetItem``: the
    recent-items index does not carry them), so the page's first, unfiltered list needs no other read.
    """
    body = read_summary(table_name).as_dict()
    recent = body.get("recent") or []
    found = details(table_name, [str(r["item_id"]) for r in recent])
    for row in recent:
        extra = found.get(str(row["item_id"]), {})
        for key in DETAILS:
            row[key] = str_attribute(extra, key)
    body["cost_per_1000_items"] = cost() if cost is not None else None
    return body


def published_days(
    rows: Iterable[Mapping[str, Any]], *, today: date | None = None, days: int = SUMMARY_DAYS
) -> dict[str, Any]:
    """Analysed items per day of *publication* (the feed's date), over items as plain values
    (:func:`sentiment_shared.dynamo.plain`):
    ``{"days": [{"date", "positive", "negative", "neutral"}, ...], "earlier": {...}, "undated": {...}}``,
    the last ``days`` UTC days oldest first, then the items published before them and those without a date.

    The counters count by day of analysis (the analysis does not know an item's publication date), so this
    needs the items themselves: the local twin has them in its saved state; the hosted page does not scan.
    """
    end = today or datetime.now(UTC).date()
    window = [(end - timedelta(days=back)).isoformat() for back in range(days - 1, -1, -1)]
    per_day: dict[str, dict[str, int]] = {d: dict.fromkeys(SENTIMENTS, 0) for d in window}
    earlier = dict.fromkeys(SENTIMENTS, 0)
    undated = dict.fromkeys(SENTIMENTS, 0)
    for row in rows:
        item_id = str(row.get(ITEMS_TABLE_HASH_KEY, ""))
        sentiment = row.get("sentiment")
        if is_bookkeeping(item_id) or sentiment not in SENTIMENTS:
            continue
        published = str_attribute(row, "published_at")
        try:
            day = day_of(datetime.fromisoformat(published)) if published is not None else None
        except ValueError:
            day = None
        if day is None:
            undated[sentiment] += 1
        elif day in per_day:
            per_day[day][sentiment] += 1
        elif day < window[0]:
            earlier[sentiment] += 1
        else:  # dated after today (a feed's clock ahead): the last day
            per_day[window[-1]][sentiment] += 1
    return {"days": [{"date": d, **per_day[d]} for d in window], "earlier": earlier, "undated": undated}


class CachedSummary:
    def __init__(self, load: Callable[[], dict[str, Any]], ttl_s: float, clock: Callable[[], float] = time.monotonic):
        self._load = load
        self._ttl_s = ttl_s
        self._clock = clock
        self._value: dict[str, Any] | None = None
        self._loaded_at = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> dict[str, Any]:
        with self._lock:
            now = self._clock()
            if self._value is None or now - self._loaded_at >= self._ttl_s:
                self._value = self._load()
                self._loaded_at = now
            return self._value


def cloudwatch_cost(
    *,
    analysis_function: str,
    analysis_memory_mb: int,
    ingestion_function: str | None,
    ingestion_memory_mb: int,
    metrics_namespace: str,
    analysis_service: str = ANALYSIS_SERVICE,
    window: timedelta = timedelta(days=1),
    now: datetime | None = None,
) -> dict[str, Any] | None:
    """Cost per 1,000 items from the last ``window`` of measured CloudWatch data (None without a basis).

    Durations and invocations: ``AWS/Lambda`` ``Duration`` (Sum) and ``Invocations`` (Sum) per function;
    items: the analysis function's own ``ItemsAnalyzed`` EMF metric (Sum, Powertools' ``service`` dimension,
    the function's ``POWERTOOLS_SERVICE_NAME``).
    """
    end = now or datetime.now(UTC)
    queries: list[Any] = []

    def add(query_id: str, namespace: str, metric: str, dimensions: dict[str, str]) -> None:
        queries.append(
            {
                "Id": query_id,
                "MetricStat": {
                    "Metric": {
                        "Namespace": namespace,
                        "MetricName": metric,
                        "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()],
                    },
                    "Period": int(window.total_seconds()),
                    "Stat": "Sum",
                },
            }
        )

    add("a_duration", "AWS/Lambda", "Duration", {"FunctionName": analysis_function})
    add("a_invocations", "AWS/Lambda", "Invocations", {"FunctionName": analysis_function})
    add("items", metrics_namespace, Metric.ITEMS_ANALYZED, {"service": analysis_service})
    if ingestion_function:
        add("i_duration", "AWS/Lambda", "Duration", {"FunctionName": ingestion_function})
        add("i_invocations", "AWS/Lambda", "Invocations", {"FunctionName": ingestion_function})
    try:
        resp = aws.client("cloudwatch").get_metric_data(
            MetricDataQueries=queries, StartTime=end - window, EndTime=end, ScanBy="TimestampDescending"
        )
    except Exception:
        log.warning("CloudWatch metrics unavailable; no cost shown", exc_info=True)
        return None
    values = {r["Id"]: float(sum(r.get("Values", []))) for r in resp.get("MetricDataResults", [])}
    result = cost_per_1000(
        Measured(
            items=int(values.get("items", 0)),
            analysis_seconds=values.get("a_duration", 0.0) / 1000,
            analysis_invocations=int(values.get("a_invocations", 0)),
            analysis_memory_mb=analysis_memory_mb,
            ingestion_seconds=values.get("i_duration", 0.0) / 1000,
            ingestion_invocations=int(values.get("i_invocations", 0)),
            ingestion_memory_mb=ingestion_memory_mb,
        )
    )
    if result is None:
        return None
    hours = window.total_seconds() / 3600
    span = f"{hours:.0f} hours" if hours != 24 else "24 hours"
    return {
        **result.as_dict(),
        "covers": f"the last {span} of measured use (CloudWatch, up to {end:%Y-%m-%d %H:%M} UTC)",
    }
