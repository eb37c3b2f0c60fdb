"""Lazily created, cached boto3 clients with the standard retry mode.

The only module (with the adapters) that imports boto3. Endpoints come from boto3's own support for
``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_<SERVICE>``, so tests and the local pipeline point every
client at the emulator through the environment. The cache key includes those variables and the
region, so changing them (as the local pipeline and tests do) yields a fresh client.
"""

from __future__ import annotations

import functools
import os
import random
import weakref
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, cast, overload

import boto3  # noqa: TID251 - this is the adapter layer
from botocore.config import Config
from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient

ServiceName = Literal["s3", "dynamodb", "sns", "sqs", "lambda", "cloudwatch"]
C = TypeVar("C")

RETRY_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5},
    connect_timeout=5,
    read_timeout=60,
    max_pool_connections=16,
)


def _env_key(service: str) -> tuple[str | None, ...]:
    names = (
        "AWS_ENDPOINT_URL",
        f"AWS_ENDPOINT_URL_{service.upper()}",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_PROFILE",
    )
    return tuple(os.environ.get(n) for n in names)


_made: weakref.WeakSet[Any] = weakref.WeakSet()
"""Every client :func:`client` made and not yet forgotten, so :func:`reset_clients` can close them."""


@functools.lru_cache(maxsize=32)
def _cached_client(service: str, _env: tuple[str | None, ...], config: Config) -> Any:
    session = boto3.session.Session()
    made = session.client(service, config=config)  # type: ignore[call-overload]
    _made.add(made)
    return made


@overload
def client(service: Literal["s3"], *, config: Config | None = None) -> S3Client: ...
@overload
def client(service: Literal["dynamodb"], *, config: Config | None = None) -> DynamoDBClient: ...
@overload
def client(service: Literal["sns"], *, config: Config | None = None) -> SNSClient: ...
@overload
def client(service: Literal["sqs"], *, config: Config | None = None) -> SQSClient: ...
@overload
def client(service: Literal["lambda"], *, config: Config | None = None) -> LambdaClient: ...
@overload
def client(service: Literal["cloudwatch"], *, config: Config | None = None) -> CloudWatchClient: ...
def client(service: ServiceName, *, config: Config | None = None) -> Any:
    """A boto3 client for ``service``, created on first use and cached per environment."""
    merged = RETRY_CONFIG if config is None else RETRY_CONFIG.merge(config)
    return _cached_client(service, _env_key(service), merged)


def reset_clients(*, close: bool = False) -> None:
    """Forget cached clients (tests that start and stop emulators): the next :func:`client` makes a new one,
    with a new session and credentials read again. ``close``: also close the forgotten clients' connection
    pools (SnapStart's hooks: no pooled connection is kept in a snapshot or reused after a restore)."""
    _cached_client.cache_clear()
    forgotten = list(_made)
    _made.clear()
    if close:
        for made in forgotten:
            made.close()


class LazyClient(Generic[C]):
    """An adapter's ``client`` attribute: the client its constructor kept in ``self._client``, else one
    from :func:`client` made on first use (never at import or construction) and kept by the instance."""

    def __init__(self, service: ServiceName) -> None:
        self.service = service

    def __get__(self, adapter: Any, owner: type | None = None) -> C:
        if adapter._client is None:
            adapter._client = client(self.service)
        return cast(C, adapter._client)


def backoff_delay(retry: int, *, base_s: float, cap_s: float, rng: random.Random | None = None) -> float:
    """The pause before retry number ``retry`` (1 = the first) of what botocore cannot retry itself.

    Full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter", as botocore's standard mode):
    uniform in ``[0, min(cap_s, base_s * 2 ** (retry - 1))]``, so callers that failed together do not
    retry together. ``rng`` makes it reproducible in tests.
    """
    ceiling = min(cap_s, base_s * 2 ** (retry - 1))
    return (rng or _jitter).uniform(0, ceiling)


_jitter = random.Random()  # noqa: S311 - jitter, not crypto


def error_code(exc: ClientError) -> str:
    """The AWS error code of a failed call (``"NoSuchKey"``, ``"404"``, ...), or ``""`` when it has none."""
    return str(exc.response.get("Error", {}).get("Code", ""))
