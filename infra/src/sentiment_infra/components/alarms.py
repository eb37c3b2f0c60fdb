"""Alarms on the pipeline's failure signals and the encrypted topic they notify."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pulumi
import pulumi_aws as aws

from sentiment_infra import iam
from sentiment_infra.config import Deployment

if TYPE_CHECKING:
    from sentiment_infra.components.analysis_function import AnalysisFunction
    from sentiment_infra.components.dashboard import Dashboard
    from sentiment_infra.components.ingestion_function import IngestionFunction
    from sentiment_infra.components.messaging import Messaging

DURATION_ALARM_FRACTION = 0.8
"""Alarm when an analysis invocation uses this share of its timeout (a timeout redelivers the batch)."""
PERIOD_S = 300


@dataclass(frozen=True, slots=True)
class AlarmMetric:
    """One CloudWatch metric over ``period_s``; ``statistic`` is ``Sum``, ``Maximum``, ... or a percentile (``p99``)."""

    namespace: str
    name: str
    statistic: str
    dimensions: Mapping[str, pulumi.Input[str]]
    period_s: int = PERIOD_S


def alarm_above(
    resource_name: str,
    measure: AlarmMetric | Sequence[aws.cloudwatch.MetricAlarmMetricQueryArgs],
    threshold: int,
    *,
    description: str,
    topic_arn: pulumi.Input[str],
    parent: pulumi.Resource,
) -> aws.cloudwatch.MetricAlarm:
    """In ALARM while ``measure`` (a metric, or metric math: the query that returns data) is above ``threshold``
    for one period; no data is OK; ``topic_arn`` hears of both transitions."""
    source: dict[str, Any]
    if isinstance(measure, AlarmMetric):
        percentile = measure.statistic.startswith("p")
        source = {
            "namespace": measure.namespace,
            "metric_name": measure.name,
            "statistic": None if percentile else measure.statistic,
            "extended_statistic": measure.statistic if percentile else None,
            "dimensions": measure.dimensions,
            "period": measure.period_s,
        }
    else:
        source = {"metric_queries": list(measure)}
    return aws.cloudwatch.MetricAlarm(
        resource_name,
        alarm_description=description,
        threshold=threshold,
        evaluation_periods=1,
        comparison_operator="GreaterThanThreshold",
        treat_missing_data="notBreaching",
        alarm_actions=[topic_arn],
        ok_actions=[topic_arn],
        opts=pulumi.ResourceOptions(parent=parent),
        **source,
    )


@dataclass(frozen=True, slots=True)
class _Spec:
    suffix: str
    metric: AlarmMetric
    threshold: int
    description: str


@dataclass(frozen=True, slots=True)
class WatchedArgs:
    """What the alarms and the operations dashboard watch: the functions and the queues."""

    stack: Deployment
    analysis: AnalysisFunction
    ingestion: IngestionFunction
    messaging: Messaging
    dashboard: Dashboard | None


class Alarms(pulumi.ComponentResource):
    """Errors, throttles, near-timeout durations, DLQ depth and queue age → an alarm topic (+ e-mail)."""

    topic: aws.sns.Topic
    alarms: dict[str, aws.cloudwatch.MetricAlarm]

    def __init__(self, name: str, args: WatchedArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("sentiment:alarms:Alarms", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        stack, config = args.stack, args.stack.config

        # CloudWatch cannot publish to a topic under the AWS-managed aws/sns key, so the alarm topic
        # gets its own key whose policy lets CloudWatch (for this account only) use it.
        this_account = iam.Condition("StringEquals", "aws:SourceAccount", [stack.account_id])
        account_root = pulumi.Output.concat("arn:", stack.partition, ":iam::", stack.account_id, ":root")
        self.key = aws.kms.Key(
            f"{name}-key",
            description="Encrypts the sentiment-analyzer alarm topic",
            enable_key_rotation=True,
            deletion_window_in_days=7,
            policy=iam.document(
                [
                    # A key policy's Resource "*" means "this key"; the account statement keeps the key
                    # manageable through IAM (the default key policy AWS itself writes).
                    iam.Statement(
                        sid="AccountAdministersKey",
                        effect="Allow",
                        principals=[iam.Principal(type="AWS", identifiers=[account_root])],
                        actions=["kms:*"],
                        resources=["*"],
                    ),
                    iam.allow_service(
                        "CloudWatchAlarmsEncrypt",
                        "cloudwatch.amazonaws.com",
                        ["kms:Decrypt", "kms:GenerateDataKey"],
                        ["*"],
                        this_account,
                    ),
                ]
            ),
            opts=child,
        )
        self.topic = aws.sns.Topic(f"{name}-topic", kms_master_key_id=self.key.arn, opts=child)
        self.topic_policy = aws.sns.TopicPolicy(
            f"{name}-topic-policy",
            arn=self.topic.arn,
            policy=iam.service_policy(
                "CloudWatchAlarmsPublish",
                "cloudwatch.amazonaws.com",
                ["sns:Publish"],
                [self.topic.arn],
                this_account,
            ),
            opts=child,
        )
        if config.alarm_email is not None:
            self.email_subscription: aws.sns.TopicSubscription | None = aws.sns.TopicSubscription(
                f"{name}-email", topic=self.topic.arn, protocol="email", endpoint=config.alarm_email, opts=child
            )
        else:
            self.email_subscription = None

        analysis = {"FunctionName": args.analysis.function_name}
        specs = [
            _Spec("analysis-errors", AlarmMetric("AWS/Lambda", "Errors", "Sum", analysis), 0,
                  "The analysis function failed whole invocations (batches are retried, then parked in the DLQ)"),
            _Spec("analysis-throttles", AlarmMetric("AWS/Lambda", "Throttles", "Sum", analysis), 0,
                  "The analysis function was throttled (account concurrency exhausted)"),
            _Spec("analysis-duration", AlarmMetric("AWS/Lambda", "Duration", "Maximum", analysis),
                  int(config.analysis_timeout_s * 1000 * DURATION_ALARM_FRACTION),
                  f"An analysis invocation used over {int(DURATION_ALARM_FRACTION * 100)} % of its timeout"),
            _Spec("ingestion-errors",
                  AlarmMetric("AWS/Lambda", "Errors", "Sum", {"FunctionName": args.ingestion.function_name}), 0,
                  "The ingestion function failed"),
            _Spec("dlq-depth",
                  AlarmMetric("AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum",
                         {"QueueName": args.messaging.dlq_name}), 0,
                  "Messages were parked in the dead-letter queue: inspect, fix, then redrive"),
            _Spec("ingestion-failures",
                  AlarmMetric("AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum",
                         {"QueueName": args.ingestion.failures_queue_name}), 0,
                  "Ingestion invocations failed after Lambda's retries: their events are parked in this queue"),
            _Spec("queue-age",
                  AlarmMetric("AWS/SQS", "ApproximateAgeOfOldestMessage", "Maximum",
                         {"QueueName": args.messaging.queue_name}), config.queue_age_alarm_s,
                  "The work queue is falling behind"),
        ]  # fmt: skip
        self.alarms = {spec.suffix: self._alarm(name, spec) for spec in specs}

        self.topic_arn = self.topic.arn
        self.register_outputs({"topic_arn": self.topic_arn, "alarm_names": [a.name for a in self.alarms.values()]})

    def _alarm(self, name: str, spec: _Spec) -> aws.cloudwatch.MetricAlarm:
        return alarm_above(
            f"{name}-{spec.suffix}",
            spec.metric,
            spec.threshold,
            description=spec.description,
            topic_arn=self.topic.arn,
            parent=self,
        )
