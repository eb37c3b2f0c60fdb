"""The operators' CloudWatch dashboard: both functions, the queues, and the functions' own EMF metrics.

The custom metrics are :class:`sentiment_shared.stack.Metric`, the names the handlers emit through Powertools
(``metrics.add_metric`` in ``services/*/src/*/handler.py``; ``ColdStart`` from ``capture_cold_start_metric``),
under the stack's namespace with Powertools' ``service`` dimension; tests/infra checks each is emitted.
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_aws as aws

from sentiment_infra.components.alarms import WatchedArgs
from sentiment_shared.stack import ANALYSIS_SERVICE, INGESTION_SERVICE, METRICS_NAMESPACE, Metric

ANALYSIS_EMF_METRICS: dict[str, tuple[Metric, ...]] = {
    "cold start breakdown (ms)": (Metric.MODEL_DOWNLOAD_MS, Metric.MODEL_EXTRACT_MS, Metric.MODEL_LOAD_MS),
    "inference (ms per batch)": (Metric.INFERENCE_MS,),
    "items analyzed / failed": (Metric.ITEMS_ANALYZED, Metric.ITEMS_FAILED),
    "cold starts, load failures, invalid requests": (
        Metric.COLD_START,
        Metric.MODEL_LOAD_FAILURES,
        Metric.INVALID_REQUESTS,
    ),
}
INGESTION_EMF_METRICS: dict[str, tuple[Metric, ...]] = {
    "ingestion: items": (
        Metric.ITEMS_STORED,
        Metric.ITEMS_DUPLICATE,
        Metric.ITEMS_PUBLISHED,
        Metric.ITEMS_FAILED,
        Metric.ITEMS_REPUBLISHED,
    ),
    "ingestion: feeds": (Metric.FEEDS_FAILED, Metric.EVENTS_REJECTED),
}
PERIOD_S = 300


def _widget(title: str, metrics: list[list[Any]], region: str, *, stat: str = "Sum") -> dict[str, Any]:
    return {
        "type": "metric",
        "width": 12,
        "height": 6,
        "properties": {
            "title": title,
            "region": region,
            "stat": stat,
            "period": PERIOD_S,
            "view": "timeSeries",
            "metrics": metrics,
        },
    }


def dashboard_body(region: str, *, analysis: str, ingestion: str, dashboard: str | None, queue: str, dlq: str) -> str:
    """The dashboard's JSON (``DashboardBody``): one metric widget per concern."""
    functions = [f for f in (analysis, ingestion, dashboard) if f]
    lam = "AWS/Lambda"
    widgets = [
        _widget(
            "functions: duration p50 / p99 (ms)",
            [
                [lam, "Duration", "FunctionName", f, {"stat": s, "label": f"{f} {s}"}]
                for f in functions
                for s in ("p50", "p99")
            ],
            region,
            stat="p50",
        ),
        _widget("functions: errors", [[lam, "Errors", "FunctionName", f] for f in functions], region),
        _widget("functions: throttles", [[lam, "Throttles", "FunctionName", f] for f in functions], region),
        _widget(
            "work queue: age of oldest message (s)",
            [["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", queue]],
            region,
            stat="Maximum",
        ),
        _widget(
            "work queue: depth (visible / in flight)",
            [
                ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", queue],
                ["AWS/SQS", "ApproximateNumberOfMessagesNotVisible", "QueueName", queue],
            ],
            region,
            stat="Maximum",
        ),
        _widget(
            "dead-letter queue: depth",
            [["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", dlq]],
            region,
            stat="Maximum",
        ),
    ]
    for title, names in ANALYSIS_EMF_METRICS.items():
        stat = "Average" if title.endswith("(ms)") or "(ms" in title else "Sum"
        metrics = [[METRICS_NAMESPACE, n, "service", ANALYSIS_SERVICE] for n in names]
        if Metric.COLD_START in names:
            # Powertools emits ColdStart with the function's name as a second dimension.
            metrics = [
                [METRICS_NAMESPACE, Metric.COLD_START, "function_name", analysis, "service", ANALYSIS_SERVICE],
                *[m for m in metrics if m[1] != Metric.COLD_START],
            ]
        widgets.append(_widget(f"analysis: {title}", metrics, region, stat=stat))
    for title, names in INGESTION_EMF_METRICS.items():
        widgets.append(_widget(title, [[METRICS_NAMESPACE, n, "service", INGESTION_SERVICE] for n in names], region))
    for index, widget in enumerate(widgets):
        widget["x"] = (index % 2) * 12
        widget["y"] = (index // 2) * 6
    return json.dumps({"widgets": widgets}, sort_keys=True)


class OperationsDashboard(pulumi.ComponentResource):
    """A CloudWatch dashboard for whoever runs the stack."""

    dashboard: aws.cloudwatch.Dashboard

    def __init__(self, name: str, args: WatchedArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("sentiment:operations_dashboard:OperationsDashboard", name, None, opts)
        body = pulumi.Output.all(
            args.stack.region,
            args.analysis.function_name,
            args.ingestion.function_name,
            args.dashboard.function_name if args.dashboard else None,
            args.messaging.queue_name,
            args.messaging.dlq_name,
        ).apply(lambda v: dashboard_body(v[0], analysis=v[1], ingestion=v[2], dashboard=v[3], queue=v[4], dlq=v[5]))
        self.dashboard = aws.cloudwatch.Dashboard(
            f"{name}-dashboard",
            dashboard_name=pulumi.Output.concat(pulumi.get_project(), "-", pulumi.get_stack(), "-operations"),
            dashboard_body=body,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"dashboard_name": self.dashboard.dashboard_name})
