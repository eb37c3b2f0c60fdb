"""Canary releases of the analysis function by AWS CodeDeploy (compute platform Lambda), driven by ``pulumi up``.

* A CodeDeploy application and a deployment group over the ``live`` alias. The group's deployment config
  comes from the stack (``analysisDeploymentConfig``: prod shifts 10 % for 5 minutes, then the rest; dev
  all at once).
* Rollback on alarms of the version being rolled out: errors, throttles and p99 duration on the alias
  (``Resource = <function>:live``: during a canary the alias carries both versions, the old one already
  proven), and dead-letter queue growth. ``DEPLOYMENT_STOP_ON_ALARM`` and ``DEPLOYMENT_FAILURE`` roll back.
* A ``BeforeAllowTraffic`` hook (``sentiment_analysis.release_check``, a small ZIP function) invokes the
  new version directly with known texts and fails the deployment on a wrong or slow answer.
* :class:`sentiment_infra.rollout.Rollout` starts the deployment when ``up`` published a new version and
  waits for it: the ``up`` fails when CodeDeploy rolls back, and ``live`` stays where it was.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pulumi
import pulumi_aws as aws

from sentiment_infra import iam
from sentiment_infra.components.alarms import DURATION_ALARM_FRACTION, AlarmMetric, alarm_above
from sentiment_infra.components.analysis_function import LIVE_ALIAS
from sentiment_infra.components.lambda_function import LambdaFunction, LambdaFunctionArgs, zip_code
from sentiment_infra.config import Deployment
from sentiment_infra.packaging import RELEASE_CHECK_HANDLER, ZipBuild
from sentiment_infra.rollout import Rollout, RolloutArgs

if TYPE_CHECKING:
    from sentiment_infra.components.analysis_function import AnalysisFunction
    from sentiment_infra.components.messaging import Messaging

RELEASE_CHECK_SERVICE = "sentiment-release-check"
RELEASE_CHECK_MEMORY_MB = 256
ALARM_PERIOD_S = 60
"""Rollback alarms look at one-minute periods: a 5-minute canary sees five of them."""
ROLLBACK_EVENTS = ("DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM")
DEPLOYMENT_GROUP = "analysis-live"


@dataclass(frozen=True, slots=True)
class ReleaseArgs:
    stack: Deployment
    analysis: AnalysisFunction
    messaging: Messaging
    alarm_topic_arn: pulumi.Input[str]
    hook_package: ZipBuild


class Release(pulumi.ComponentResource):
    """The CodeDeploy application, deployment group, rollback alarms, hook and the rollout of ``live``."""

    application: aws.codedeploy.Application
    deployment_group: aws.codedeploy.DeploymentGroup
    alarms: dict[str, aws.cloudwatch.MetricAlarm]
    rollout: Rollout

    def __init__(self, name: str, args: ReleaseArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("sentiment:release:Release", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        stack, config, analysis = args.stack, args.stack.config, args.analysis

        self.application = aws.codedeploy.Application(f"{name}-app", compute_platform="Lambda", opts=child)
        self.alarms = self._alarms(name, args)

        # CodeDeploy's service role: move this alias, run this hook, read these alarms. Nothing else.
        this_account = iam.Condition("StringEquals", "aws:SourceAccount", [stack.account_id])
        self.service_role = aws.iam.Role(
            f"{name}-codedeploy-role",
            assume_role_policy=iam.service_policy(
                "CodeDeployAssumeRole", "codedeploy.amazonaws.com", ["sts:AssumeRole"], [], this_account
            ),
            opts=child,
        )
        self.deployment_group = aws.codedeploy.DeploymentGroup(
            f"{name}-group",
            app_name=self.application.name,
            deployment_group_name=DEPLOYMENT_GROUP,
            service_role_arn=self.service_role.arn,
            deployment_config_name=config.analysis_deployment_config,
            deployment_style=aws.codedeploy.DeploymentGroupDeploymentStyleArgs(
                deployment_option="WITH_TRAFFIC_CONTROL", deployment_type="BLUE_GREEN"
            ),
            alarm_configuration=aws.codedeploy.DeploymentGroupAlarmConfigurationArgs(
                enabled=True, alarms=[alarm.name for alarm in self.alarms.values()]
            ),
            auto_rollback_configuration=aws.codedeploy.DeploymentGroupAutoRollbackConfigurationArgs(
                enabled=True, events=list(ROLLBACK_EVENTS)
            ),
            opts=child,
        )

        # The hook: the analysis function's versions (qualified ARNs) and this group's deployments only.
        versions = pulumi.Output.concat(analysis.function_arn, ":*")
        hook = LambdaFunction(
            f"{name}-check",
            LambdaFunctionArgs(
                stack=stack,
                service=RELEASE_CHECK_SERVICE,
                statements=[
                    iam.allow(
                        "ReportHookStatus",
                        ["codedeploy:GetDeployment", "codedeploy:PutLifecycleEventHookExecutionStatus"],
                        [self.deployment_group.arn],
                    ),
                    # The deployment's AppSpec (which version to check) is an application revision.
                    iam.allow("ReadAppSpec", ["codedeploy:GetApplicationRevision"], [self.application.arn]),
                    iam.allow("InvokeAnalysisVersions", ["lambda:InvokeFunction"], [versions]),
                ],
                environment={
                    "ANALYSIS_FUNCTION_NAME": analysis.function_name,
                    "RELEASE_CHECK_MAX_MS": str(config.release_check_max_ms),
                },
                memory_mb=RELEASE_CHECK_MEMORY_MB,
                # Two invocations of the new version at most release_check_max_ms each, and the calls around them.
                timeout_s=min(900, math.ceil(2 * config.release_check_max_ms / 1000) + 30),
                code=zip_code(RELEASE_CHECK_HANDLER, args.hook_package),
            ),
            opts=child,
        )
        self.hook_function = hook.function

        self.service_policy = aws.iam.RolePolicy(
            f"{name}-codedeploy-policy",
            role=self.service_role.id,
            policy=iam.document(
                [
                    iam.allow(
                        "ShiftLiveAlias",
                        ["lambda:GetAlias", "lambda:UpdateAlias", "lambda:GetProvisionedConcurrencyConfig"],
                        [analysis.function_arn, analysis.alias_arn],
                    ),
                    iam.allow("RunReleaseCheck", ["lambda:InvokeFunction"], [hook.function.arn]),
                    iam.allow(
                        "ReadRollbackAlarms",
                        ["cloudwatch:DescribeAlarms"],
                        [alarm.arn for alarm in self.alarms.values()],
                    ),
                ]
            ),
            opts=child,
        )

        self.rollout = Rollout(
            f"{name}-rollout",
            RolloutArgs(
                region=stack.region,
                application=self.application.name,
                deployment_group=self.deployment_group.deployment_group_name,
                function_name=analysis.function_name,
                alias=LIVE_ALIAS,
                target_version=analysis.published_version,
                before_allow_traffic=hook.function.name,
            ),
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[analysis.alias, self.service_policy, hook.function, hook.policy]
            ),
        )
        self.live_version = self.rollout.live_version
        self.register_outputs(
            {
                "application": self.application.name,
                "deployment_group": self.deployment_group.deployment_group_name,
                "live_version": self.live_version,
            }
        )

    def _alarms(self, name: str, args: ReleaseArgs) -> dict[str, aws.cloudwatch.MetricAlarm]:
        config = args.stack.config
        alias: dict[str, pulumi.Input[str]] = {
            "FunctionName": args.analysis.function_name,
            "Resource": pulumi.Output.concat(args.analysis.function_name, ":", LIVE_ALIAS),
        }

        def alarm(
            suffix: str,
            description: str,
            measure: AlarmMetric | list[aws.cloudwatch.MetricAlarmMetricQueryArgs],
            threshold: int,
        ) -> aws.cloudwatch.MetricAlarm:
            return alarm_above(
                f"{name}-{suffix}",
                measure,
                threshold,
                description=f"Release: {description} (rolls a deployment back)",
                topic_arn=args.alarm_topic_arn,
                parent=self,
            )

        def on_alias(metric: str, statistic: str) -> AlarmMetric:
            return AlarmMetric("AWS/Lambda", metric, statistic, alias, ALARM_PERIOD_S)

        near_timeout = int(config.analysis_timeout_s * 1000 * DURATION_ALARM_FRACTION)
        # Growth, not depth: messages parked before the deployment must not block every release.
        dlq_growth = [
            aws.cloudwatch.MetricAlarmMetricQueryArgs(
                id="depth",
                metric=aws.cloudwatch.MetricAlarmMetricQueryMetricArgs(
                    namespace="AWS/SQS",
                    metric_name="ApproximateNumberOfMessagesVisible",
                    dimensions={"QueueName": args.messaging.dlq_name},
                    period=ALARM_PERIOD_S,
                    stat="Maximum",
                ),
                return_data=False,
            ),
            aws.cloudwatch.MetricAlarmMetricQueryArgs(
                id="growth", expression="DIFF(depth)", label="DLQ growth", return_data=True
            ),
        ]
        return {
            "errors": alarm("errors", "invocations of the live alias failed", on_alias("Errors", "Sum"), 0),
            "throttles": alarm(
                "throttles", "invocations of the live alias were throttled", on_alias("Throttles", "Sum"), 0
            ),
            "duration-p99": alarm(
                "duration-p99",
                f"p99 duration of the live alias over {int(DURATION_ALARM_FRACTION * 100)} % of the timeout",
                on_alias("Duration", "p99"),
                near_timeout,
            ),
            "dlq-growth": alarm("dlq-growth", "messages were parked in the dead-letter queue", dlq_growth, 0),
        }
