"""Typed settings of the three functions, read from the environment lazily (never at import time).

The variable names are a contract: README.md ("Configuration") lists each function's environment.
Call :func:`analysis_settings` / :func:`ingestion_settings` inside a handler; they are cached per
process and :func:`reset_settings_cache` clears them (tests, the local pipeline).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from sentiment_shared.schemas import FeedUrls
from sentiment_shared.stack import (
    ANALYSIS_SERVICE,
    DEFAULT_ANALYSIS_FUNCTION,
    DEFAULT_INGESTION_MEMORY_MB,
    DEFAULT_NEUTRAL_THRESHOLD,
    METRICS_NAMESPACE,
    Precision,
)

T = TypeVar("T")

Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class AnalysisSettings(BaseSettings):
    """Environment of the analysis function."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    model_bucket: str = Field(min_length=3)
    model_key: str = Field(min_length=1)
    model_sha256: Sha256Hex
    model_version_id: str | None = Field(default=None, min_length=1)
    """The S3 object version of the bundle the stack published: the cold start fetches exactly it.
    None (an unversioned bucket, the local pipeline): the key's current object, still verified."""
    items_table: str = Field(min_length=1)
    neutral_threshold: float = Field(default=DEFAULT_NEUTRAL_THRESHOLD, ge=0.0, le=1.0)
    model_cache_dir: Path = Path("/tmp/sentiment-model")  # noqa: S108 - Lambda's only writable disk
    model_download_strategy: Literal["stream", "ranged"] = "stream"
    """``stream``: one streamed GET, hashed and extracted on the fly (no archive on disk).
    ``ranged``: boto3's parallel ranged download to a file, then verify and extract."""
    model_precision: Precision | None = None
    """None: the classifier's documented default (``auto``: int8 only where measured faster than fp32)."""
    torch_threads: int | None = Field(default=None, ge=1, le=64)
    """None: derived from the CPU quota actually available (cgroup / affinity)."""

    @field_validator("model_sha256", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value


class IngestionSettings(BaseSettings):
    """Environment of the ingestion function."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    items_table: str = Field(min_length=1)
    topic_arn: str = Field(pattern=r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$")
    feeds: Annotated[FeedUrls, NoDecode] = ()
    feed_timeout_s: float = Field(default=10.0, gt=0, le=120)
    feed_max_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    max_text_chars: int = Field(default=10_000, ge=100, le=100_000)
    republish_after_s: int = Field(default=300, ge=0)
    republish_limit: int = Field(default=100, ge=0, le=1000)


class DashboardSettings(BaseSettings):
    """Environment of the dashboard function; without ``analysis_function_name`` it shows no cost section."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    items_table: str = Field(min_length=1)
    analysis_function_name: str | None = None
    analysis_memory_mb: int = Field(default=DEFAULT_ANALYSIS_FUNCTION.memory_mb, ge=128)
    analysis_service_name: str = ANALYSIS_SERVICE
    """The analysis function's Powertools service: its metrics' ``service`` dimension."""
    ingestion_function_name: str | None = None
    ingestion_memory_mb: int = Field(default=DEFAULT_INGESTION_MEMORY_MB, ge=128)
    metrics_namespace: str = METRICS_NAMESPACE


def environment(settings: type[BaseSettings], **values: T) -> dict[str, T]:
    """A function's environment variables named from its settings' fields (``items_table`` → ``ITEMS_TABLE``).

    A name the settings do not read, or a required field left out, is a ``ValueError``: infra, the local
    pipeline and the tests build environments with this, so none can drift from what the function reads.
    """
    fields = settings.model_fields
    if unknown := sorted(values.keys() - fields.keys()):
        raise ValueError(f"{settings.__name__} reads no {', '.join(unknown)}")
    if missing := sorted(n for n, f in fields.items() if f.is_required() and n not in values):
        raise ValueError(f"{settings.__name__} requires {', '.join(missing)}")
    return {name.upper(): value for name, value in values.items()}


@functools.cache
def analysis_settings() -> AnalysisSettings:
    return AnalysisSettings()  # type: ignore[call-arg]  # filled from the environment


@functools.cache
def ingestion_settings() -> IngestionSettings:
    return IngestionSettings()  # type: ignore[call-arg]  # filled from the environment


def reset_settings_cache() -> None:
    analysis_settings.cache_clear()
    ingestion_settings.cache_clear()
