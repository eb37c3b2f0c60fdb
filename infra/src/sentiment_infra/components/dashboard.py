"""The hosted dashboard: a small read-only ZIP Lambda behind CloudFront (function URL + origin access control).

* The function URL takes ``AWS_IAM`` auth only, and its resource policy lets exactly this distribution
  (``AWS:SourceArn``) invoke it, so the origin is reachable only through CloudFront, which signs every
  origin request with SigV4 (origin access control, ``signingBehavior: always``).
* CloudFront caches ``GET``/``HEAD`` for a short TTL (the app's ``s-maxage``; bounded here too), keyed by
  path and query string (the page's filters), so many viewers cost one function call per edge, URL and
  TTL; ``POST`` and friends never reach the origin.
* The role may read the items table (``GetItem``, ``BatchGetItem``, ``Query`` on the table and its two
  indexes) and read CloudWatch metrics for the cost section; it can write nothing but its own logs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pulumi
import pulumi_aws as aws

from sentiment_infra import iam
from sentiment_infra.components.lambda_function import LambdaFunction, LambdaFunctionArgs, zip_code
from sentiment_infra.config import Deployment
from sentiment_infra.packaging import DASHBOARD, ZipBuild
from sentiment_shared.settings import DashboardSettings, environment
from sentiment_shared.stack import ANALYSIS_SERVICE, DASHBOARD_SERVICE, METRICS_NAMESPACE

if TYPE_CHECKING:
    from sentiment_infra.components.analysis_function import AnalysisFunction
    from sentiment_infra.components.ingestion_function import IngestionFunction
    from sentiment_infra.components.items_table import ItemsTable

CACHE_TTL_S = 30
"""CloudFront's default and maximum TTL: the app says ``s-maxage=30`` and the distribution honours at most this."""
TIMEOUT_S = 10
READ_ACTIONS = ("dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query")
# AWS managed origin request policy "AllViewerExceptHostHeader": a function URL must see its own Host.
ALL_VIEWER_EXCEPT_HOST_HEADER = "b689b0a8-53d0-40ab-baf2-68738e2966ac"


@dataclass(frozen=True, slots=True)
class DashboardArgs:
    stack: Deployment
    package: ZipBuild
    table: ItemsTable
    analysis: AnalysisFunction
    ingestion: IngestionFunction


class Dashboard(pulumi.ComponentResource):
    """``dashboardUrl``: the CloudFront URL of the read-only dashboard."""

    function: aws.lambda_.Function
    distribution: aws.cloudfront.Distribution
    url: pulumi.Output[str]

    def __init__(self, name: str, args: DashboardArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("sentiment:dashboard:Dashboard", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        config, table = args.stack.config, args.table

        parts = LambdaFunction(
            name,
            LambdaFunctionArgs(
                stack=args.stack,
                service=DASHBOARD_SERVICE,
                statements=[
                    iam.allow(
                        "ReadItemsAndCounters",
                        list(READ_ACTIONS),
                        [table.arn, table.pending_index_arn, table.recent_index_arn],
                    ),
                    # GetMetricData supports no resource-level scoping (AWS requires "*"); it only reads.
                    iam.allow("ReadCostMetrics", ["cloudwatch:GetMetricData"], ["*"]),
                ],
                environment=environment(
                    DashboardSettings,
                    items_table=table.name,
                    analysis_function_name=args.analysis.function_name,
                    analysis_memory_mb=str(config.analysis_memory_mb),
                    analysis_service_name=ANALYSIS_SERVICE,
                    ingestion_function_name=args.ingestion.function_name,
                    ingestion_memory_mb=str(config.ingestion_memory_mb),
                    metrics_namespace=METRICS_NAMESPACE,
                ),
                memory_mb=config.dashboard_memory_mb,
                timeout_s=TIMEOUT_S,
                # Optional (dashboardReservedConcurrency): a cap on what a flood of cache misses can cost, which
                # Lambda refuses on accounts whose quota leaves no room (config.RESERVATION_RULE).
                code={
                    "reserved_concurrent_executions": config.dashboard_reserved_concurrency,
                    **zip_code(DASHBOARD.handler, args.package),
                },
            ),
            opts=child,
        )
        self.role, self.log_group, self.function = parts.role, parts.log_group, parts.function
        self.function_url = aws.lambda_.FunctionUrl(
            f"{name}-url", function_name=self.function.name, authorization_type="AWS_IAM", opts=child
        )
        self.origin_access = aws.cloudfront.OriginAccessControl(
            f"{name}-oac",
            description="CloudFront signs every request to the dashboard's function URL",
            origin_access_control_origin_type="lambda",
            signing_behavior="always",
            signing_protocol="sigv4",
            opts=child,
        )
        self.cache_policy = aws.cloudfront.CachePolicy(
            f"{name}-cache",
            comment="Dashboard: short TTL, no cookies or headers in the key; the whole query string is",
            min_ttl=0,
            default_ttl=CACHE_TTL_S,
            max_ttl=CACHE_TTL_S,
            parameters_in_cache_key_and_forwarded_to_origin=aws.cloudfront.CachePolicyParametersInCacheKeyAndForwardedToOriginArgs(
                cookies_config=aws.cloudfront.CachePolicyParametersInCacheKeyAndForwardedToOriginCookiesConfigArgs(
                    cookie_behavior="none"
                ),
                headers_config=aws.cloudfront.CachePolicyParametersInCacheKeyAndForwardedToOriginHeadersConfigArgs(
                    header_behavior="none"
                ),
                # The page's filters (?sentiment=, ?source=, ?page=) are in the query string: the whole of it is in
                # the key (with "none" the origin still gets it through the origin request policy, and every
                # filtered page would be cached as the unfiltered one). "all", not a list of the three: an unknown
                # parameter is a 400 from the app, never the cached page of a URL without it.
                query_strings_config=aws.cloudfront.CachePolicyParametersInCacheKeyAndForwardedToOriginQueryStringsConfigArgs(
                    query_string_behavior="all"
                ),
                enable_accept_encoding_gzip=True,
                enable_accept_encoding_brotli=True,
            ),
            opts=child,
        )
        origin_domain = self.function_url.function_url.apply(lambda u: u.removeprefix("https://").rstrip("/"))
        origin_id = "dashboard-function-url"
        self.distribution = aws.cloudfront.Distribution(
            f"{name}-cdn",
            enabled=True,
            comment="sentiment-analyzer dashboard",
            price_class=config.dashboard_price_class,
            http_version="http2and3",
            is_ipv6_enabled=True,
            origins=[
                aws.cloudfront.DistributionOriginArgs(
                    origin_id=origin_id,
                    domain_name=origin_domain,
                    origin_access_control_id=self.origin_access.id,
                    custom_origin_config=aws.cloudfront.DistributionOriginCustomOriginConfigArgs(
                        http_port=80,
                        https_port=443,
                        origin_protocol_policy="https-only",
                        origin_ssl_protocols=["TLSv1.2"],
                    ),
                )
            ],
            default_cache_behavior=aws.cloudfront.DistributionDefaultCacheBehaviorArgs(
                target_origin_id=origin_id,
                viewer_protocol_policy="redirect-to-https",
                allowed_methods=["GET", "HEAD"],
                cached_methods=["GET", "HEAD"],
                compress=True,
                cache_policy_id=self.cache_policy.id,
                origin_request_policy_id=ALL_VIEWER_EXCEPT_HOST_HEADER,
            ),
            restrictions=aws.cloudfront.DistributionRestrictionsArgs(
                geo_restriction=aws.cloudfront.DistributionRestrictionsGeoRestrictionArgs(restriction_type="none")
            ),
            viewer_certificate=aws.cloudfront.DistributionViewerCertificateArgs(
                cloudfront_default_certificate=True, minimum_protocol_version="TLSv1.2_2021"
            ),
            opts=child,
        )
        # Only this distribution may call the URL: both permissions a function URL needs for CloudFront's
        # OAC (InvokeFunctionUrl, and InvokeFunction through the URL), each bound to its ARN.
        self.url_permission = aws.lambda_.Permission(
            f"{name}-cdn-invoke-url",
            action="lambda:InvokeFunctionUrl",
            function=self.function.name,
            principal="cloudfront.amazonaws.com",
            source_arn=self.distribution.arn,
            function_url_auth_type="AWS_IAM",
            opts=child,
        )
        self.invoke_permission = aws.lambda_.Permission(
            f"{name}-cdn-invoke",
            action="lambda:InvokeFunction",
            function=self.function.name,
            principal="cloudfront.amazonaws.com",
            source_arn=self.distribution.arn,
            invoked_via_function_url=True,
            opts=child,
        )
        self.function_name = self.function.name
        self.url = self.distribution.domain_name.apply(lambda d: f"https://{d}/")
        self.register_outputs(
            {"url": self.url, "function_name": self.function_name, "distribution_id": self.distribution.id}
        )
