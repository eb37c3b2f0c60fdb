"""The stack's configuration: read once from ``pulumi.Config`` into one typed, validated object.

Every key lives under the project namespace (``sentiment-analyzer:<key>``) in ``Pulumi.<stack>.yaml``;
defaults shared with the local pipeline come from :mod:`sentiment_shared.stack`. A bad value (or an
unknown key, usually a typo) stops ``pulumi preview`` with one readable message per problem instead of
surfacing later as an AWS API error. ``docs/DEPLOY.md`` documents every key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Self, get_args

import pulumi
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from sentiment_shared.schemas import FeedUrls, error_messages
from sentiment_shared.stack import (
    DEFAULT_ANALYSIS_FUNCTION,
    DEFAULT_DASHBOARD_MEMORY_MB,
    DEFAULT_INGESTION_MEMORY_MB,
    DEFAULT_MODEL_ID,
    DEFAULT_MODEL_PREFIX,
    DEFAULT_MODEL_REVISION,
    DEFAULT_MODEL_VERSION,
    DEFAULT_NEUTRAL_THRESHOLD,
    DEFAULT_QUEUE,
)

LOG_RETENTION_DAYS = frozenset(
    {1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}
)
"""The only values CloudWatch Logs accepts for a log group's retention."""

MAX_QUEUE_VISIBILITY_S = 12 * 3600
"""SQS's ceiling for a visibility timeout."""

DeploymentConfigName = Literal[
    "CodeDeployDefault.LambdaAllAtOnce",
    "CodeDeployDefault.LambdaCanary10Percent5Minutes",
    "CodeDeployDefault.LambdaCanary10Percent10Minutes",
    "CodeDeployDefault.LambdaCanary10Percent15Minutes",
    "CodeDeployDefault.LambdaCanary10Percent30Minutes",
    "CodeDeployDefault.LambdaLinear10PercentEvery1Minute",
    "CodeDeployDefault.LambdaLinear10PercentEvery2Minutes",
    "CodeDeployDefault.LambdaLinear10PercentEvery3Minutes",
    "CodeDeployDefault.LambdaLinear10PercentEvery10Minutes",
]
"""CodeDeploy's predefined deployment configurations for the Lambda compute platform."""
LAMBDA_DEPLOYMENT_CONFIGS: tuple[str, ...] = get_args(DeploymentConfigName)

SNAP_START_MAX_EPHEMERAL_MB = 512
"""Lambda refuses SnapStart on a function with more ephemeral storage than this."""

RESERVATION_RULE = (
    "Lambda refuses a reservation that leaves fewer than 100 of the account's concurrent executions "
    "unreserved ('... decreases account's UnreservedConcurrentExecution below its minimum value of [100]'), "
    "and new accounts may start with a quota of 10 or 50, where every reservation fails: check "
    "`aws lambda get-account-settings` (AccountLimit.ConcurrentExecutions >= 100 + all reservations in the "
    "account and region) or request more in Service Quotas (docs/DEPLOY.md, first deploy)"
)
"""Why a reserved concurrency the program cannot check (it cannot read the account's quota) may fail."""

_SAFE_SEGMENT = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
_SCHEDULE = re.compile(
    r"^(rate\((1 (minute|hour|day)|([2-9]|[1-9]\d+) (minutes|hours|days))\)|cron\([^()]+\)|at\([^()]+\))$"
)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_FEED_URL = re.compile(r"^https?://[^\s/$.?#][^\s]*$")


def _polled_feeds(urls: tuple[str, ...]) -> tuple[str, ...]:
    """What the deployed function can poll: http(s) URLs, each once (the local pipeline also reads files)."""
    if bad := [url for url in urls if not _FEED_URL.match(url)]:
        raise ValueError(f"feed URLs must be http(s) URLs, got {bad!r}")
    if len(set(urls)) != len(urls):
        raise ValueError("feed URLs must be unique")
    return urls


class ConfigError(pulumi.RunError):
    """Invalid stack configuration; Pulumi prints the message without a Python traceback."""


class StackConfig(BaseModel):
    """Everything the program reads from stack config, with the project's defaults."""

    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True)

    # ---------------------------------------------------------------- model
    model_id: str | None = Field(default=None, min_length=1, max_length=256)
    """Hugging Face model id; unset with ``modelDir`` unset means the project's default model."""
    model_revision: str | None = Field(default=None, pattern=r"^[0-9a-f]{40}$")
    """The pinned commit of ``modelId`` (40 hex); required whenever ``modelId`` is set."""
    model_dir: str | None = Field(default=None, min_length=1)
    """Publish a local model directory instead of a hub model."""
    model_prefix: str = Field(default=DEFAULT_MODEL_PREFIX, pattern=_SAFE_SEGMENT)
    model_version: str = Field(default=DEFAULT_MODEL_VERSION, pattern=_SAFE_SEGMENT)
    model_retain_on_delete: bool = False
    model_noncurrent_days: int = Field(default=30, ge=1, le=3650)

    # ---------------------------------------------------------------- analysis function
    analysis_memory_mb: int = Field(default=DEFAULT_ANALYSIS_FUNCTION.memory_mb, ge=1024, le=10240)
    analysis_ephemeral_storage_mb: int = Field(default=DEFAULT_ANALYSIS_FUNCTION.ephemeral_storage_mb, ge=512, le=10240)
    analysis_timeout_s: int = Field(default=DEFAULT_ANALYSIS_FUNCTION.timeout_s, ge=10, le=900)
    analysis_reserved_concurrency: int | None = Field(default=None, ge=1, le=1000)
    """Unset by default: see :data:`RESERVATION_RULE` (the mapping's ``analysisMaximumConcurrency`` is the cap)."""
    analysis_maximum_concurrency: int = Field(default=DEFAULT_QUEUE.maximum_concurrency, ge=2, le=1000)
    neutral_threshold: float = Field(default=DEFAULT_NEUTRAL_THRESHOLD, ge=0.0, le=1.0)
    analysis_snap_start: bool = False
    """SnapStart on the analysis function's published versions (``analysisSnapStart``); see docs/DEPLOY.md."""
    analysis_deployment_config: DeploymentConfigName = "CodeDeployDefault.LambdaAllAtOnce"
    """How CodeDeploy shifts ``live`` to a new version (canary, linear or all at once)."""
    release_check_max_ms: int = Field(default=10_000, ge=500, le=120_000)
    """The ``BeforeAllowTraffic`` hook fails a new version whose answer takes longer than this."""

    # ---------------------------------------------------------------- queue
    batch_size: int = Field(default=DEFAULT_QUEUE.batch_size, ge=1, le=10000)
    batching_window_s: int = Field(default=DEFAULT_QUEUE.batching_window_s, ge=0, le=300)
    max_receive_count: int = Field(default=DEFAULT_QUEUE.max_receive_count, ge=1, le=1000)
    queue_retention_s: int = Field(default=DEFAULT_QUEUE.retention_s, ge=60, le=1_209_600)
    dlq_retention_s: int = Field(default=DEFAULT_QUEUE.dlq_retention_s, ge=60, le=1_209_600)
    raw_message_delivery: bool = False
    """SNS envelope (the local pipeline's default too); the analysis reads both shapes."""

    # ---------------------------------------------------------------- ingestion
    feeds: Annotated[FeedUrls, AfterValidator(_polled_feeds)] = ()
    ingestion_schedule: str = "rate(15 minutes)"
    ingestion_memory_mb: int = Field(default=DEFAULT_INGESTION_MEMORY_MB, ge=128, le=10240)
    ingestion_timeout_s: int = Field(default=60, ge=3, le=900)

    # ---------------------------------------------------------------- dashboard
    dashboard: bool = True
    """The hosted dashboard (CloudFront + a small read-only function) and its ``dashboardUrl`` output."""
    dashboard_memory_mb: int = Field(default=DEFAULT_DASHBOARD_MEMORY_MB, ge=128, le=10240)
    dashboard_price_class: Literal["PriceClass_100", "PriceClass_200", "PriceClass_All"] = "PriceClass_100"
    dashboard_reserved_concurrency: int | None = Field(default=None, ge=1, le=1000)
    """Unset by default (see :data:`RESERVATION_RULE`); a cap on what a flood of cache misses can cost."""

    # ---------------------------------------------------------------- operations
    alarm_email: str | None = None
    queue_age_alarm_s: int = Field(default=900, ge=60, le=1_209_600)
    log_retention_days: int = 30
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    tracing: bool = True
    deletion_protection: bool = True
    image_keep_count: int = Field(default=10, ge=1, le=1000)

    @field_validator("ingestion_schedule")
    @classmethod
    def _check_schedule(cls, value: str) -> str:
        if not _SCHEDULE.match(value):
            raise ValueError(
                f"{value!r} is not an EventBridge schedule: use e.g. 'rate(15 minutes)', 'rate(1 hour)' "
                "or 'cron(0/15 * * * ? *)'"
            )
        return value

    @field_validator("alarm_email")
    @classmethod
    def _check_email(cls, value: str | None) -> str | None:
        if value is not None and not _EMAIL.match(value):
            raise ValueError(f"{value!r} is not an e-mail address")
        return value

    @field_validator("log_retention_days")
    @classmethod
    def _check_retention(cls, value: int) -> int:
        if value not in LOG_RETENTION_DAYS:
            raise ValueError(f"CloudWatch Logs accepts only {sorted(LOG_RETENTION_DAYS)}")
        return value

    @model_validator(mode="after")
    def _check_model_source(self) -> Self:
        if self.model_dir is not None and (self.model_id is not None or self.model_revision is not None):
            raise ValueError("set either modelDir or modelId + modelRevision, not both")
        if self.model_id is not None and self.model_revision is None:
            raise ValueError(f"modelRevision (a 40-hex commit) must pin modelId {self.model_id!r}")
        if self.model_revision is not None and self.model_id is None:
            raise ValueError("modelRevision needs modelId")
        return self

    @model_validator(mode="after")
    def _check_queue(self) -> Self:
        visibility = DEFAULT_QUEUE.visibility_multiplier * self.analysis_timeout_s
        if visibility > MAX_QUEUE_VISIBILITY_S:
            raise ValueError(
                f"analysisTimeoutS {self.analysis_timeout_s} needs a visibility timeout of {visibility} s "
                f"(x{DEFAULT_QUEUE.visibility_multiplier}), above SQS's {MAX_QUEUE_VISIBILITY_S} s"
            )
        if self.dlq_retention_s <= self.queue_retention_s:
            raise ValueError(
                f"dlqRetentionS ({self.dlq_retention_s}) must exceed queueRetentionS ({self.queue_retention_s}): "
                "a dead-letter queue keeps the original enqueue time"
            )
        if self.batch_size > 10 and self.batching_window_s < 1:
            raise ValueError("batchSize above 10 needs batchingWindowS >= 1 (an SQS event source rule)")
        if (
            self.analysis_reserved_concurrency is not None
            and self.analysis_reserved_concurrency < self.analysis_maximum_concurrency
        ):
            raise ValueError(
                f"analysisReservedConcurrency ({self.analysis_reserved_concurrency}) below "
                f"analysisMaximumConcurrency ({self.analysis_maximum_concurrency}) throttles the queue's "
                "pollers and pushes messages towards the DLQ; leave it unset (the mapping's maximum is the "
                "cap), or reserve at least the maximum where the account's quota allows it"
            )
        return self

    @model_validator(mode="after")
    def _check_snap_start(self) -> Self:
        # AWS refuses SnapStart with ephemeral storage above 512 MB (also with provisioned concurrency and
        # EFS, which this program never configures; sentiment_infra.snapstart refuses them at preview).
        if self.analysis_snap_start and self.analysis_ephemeral_storage_mb > SNAP_START_MAX_EPHEMERAL_MB:
            raise ValueError(
                f"analysisSnapStart needs analysisEphemeralStorageMb <= {SNAP_START_MAX_EPHEMERAL_MB} "
                f"(got {self.analysis_ephemeral_storage_mb}): Lambda refuses SnapStart with more /tmp"
            )
        return self

    # ---------------------------------------------------------------- derived
    @property
    def reserved_concurrency(self) -> dict[str, int]:
        """The reservations this stack asks for (config key → executions); none by default."""
        reservations = {
            "analysisReservedConcurrency": self.analysis_reserved_concurrency,
            "dashboardReservedConcurrency": self.dashboard_reserved_concurrency if self.dashboard else None,
        }
        return {key: value for key, value in reservations.items() if value is not None}

    @property
    def model_source_id(self) -> str | None:
        """The hub model to publish (the default when no model source is configured)."""
        if self.model_dir is not None:
            return None
        return self.model_id or DEFAULT_MODEL_ID

    @property
    def model_source_revision(self) -> str | None:
        if self.model_dir is not None:
            return None
        return self.model_revision or DEFAULT_MODEL_REVISION

    @property
    def queue_visibility_timeout_s(self) -> int:
        return DEFAULT_QUEUE.visibility_timeout_s(self.analysis_timeout_s)


@dataclass(frozen=True, slots=True)
class Deployment:
    """What every component reads from: the stack's config, and the account, region and partition it deploys into."""

    config: StackConfig
    account_id: pulumi.Input[str]
    region: pulumi.Input[str]
    partition: pulumi.Input[str]


KEYS: tuple[str, ...] = tuple((field.alias or name) for name, field in StackConfig.model_fields.items())
"""Every config key the program understands (camelCase, as written in ``Pulumi.<stack>.yaml``)."""


def _configured_keys(namespace: str) -> set[str]:
    """Keys set under ``namespace`` in this stack, so a misspelt key is an error rather than ignored."""
    # The language host passes stack config in PULUMI_CONFIG; tests set it through set_all_config.
    raw: dict[str, Any] = {
        **pulumi.runtime.config.get_config_env(),
        **pulumi.runtime.config.CONFIG.get(),
    }
    prefix = f"{namespace}:"
    return {key.removeprefix(prefix) for key in raw if key.startswith(prefix)}


def parse_stack_config(values: dict[str, Any]) -> StackConfig:
    """Validate raw config values (camelCase keys); raise :class:`ConfigError` listing every problem."""
    try:
        return StackConfig.model_validate(values)
    except ValidationError as exc:
        problems = [f"  - {message}" for message in error_messages(exc, whole="config")]
        raise ConfigError("invalid stack configuration:\n" + "\n".join(problems)) from None


def load_stack_config(namespace: str | None = None) -> StackConfig:
    """Read this stack's config (``<project>:<key>``) once into a :class:`StackConfig`."""
    cfg = pulumi.Config(namespace)
    values: dict[str, Any] = {}
    for key in _configured_keys(cfg.name):
        # Every value arrives as a string (structured values as JSON); the model coerces and checks it.
        value = cfg.get(key)
        if value is not None:
            values[key] = value
    config = parse_stack_config(values)
    if config.reserved_concurrency:
        asked = ", ".join(f"{key} {value}" for key, value in config.reserved_concurrency.items())
        pulumi.log.warn(f"{asked}: {RESERVATION_RULE}")
    return config
