"""Fixtures every layer shares: sandboxed AWS environment, moto (in-process and server), Lambda context, the model."""

from __future__ import annotations

import json
import os
import threading
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from sentiment_local.esm import LocalLambdaContext
from sentiment_shared import aws
from sentiment_shared.settings import reset_settings_cache

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# The reliability table (docs/RELIABILITY.md): the ``reliability`` fixture and marker, ``--reliability-md``.
pytest_plugins = ["reliability_table"]

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DIR = Path(os.environ.get("SENTIMENT_SHARED_DIR", REPO_ROOT.parent / "shared"))
SHARED_MODEL_DIR = SHARED_DIR / "models" / "sst2-distilbert-minilm"
SST2_DEV = SHARED_DIR / "data" / "sst2-dev.tsv"

_AWS_SANDBOX = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


@pytest.fixture(autouse=True)
def aws_sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test can reach real AWS: dummy credentials, a fixed region, no profile, no endpoint left over."""
    for name, value in _AWS_SANDBOX.items():
        monkeypatch.setenv(name, value)
    for name in list(os.environ):
        if name.startswith("AWS_ENDPOINT_URL") or name in ("AWS_PROFILE", "AWS_CONFIG_FILE"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "SentimentTests")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "sentiment-tests")
    aws.reset_clients()
    reset_settings_cache()
    yield
    aws.reset_clients()
    reset_settings_cache()


@pytest.fixture
def moto_aws() -> Iterator[None]:
    """In-process moto for every AWS service."""
    from moto import mock_aws

    with mock_aws():
        yield


@pytest.fixture
def s3(moto_aws: None, request: pytest.FixtureRequest) -> S3Client:
    """In-process moto S3 with the test module's ``BUCKET``, versioned as the stack's model bucket is."""
    bucket = request.module.BUCKET
    client = aws.client("s3")
    client.create_bucket(Bucket=bucket)
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    return client


@pytest.fixture
def emitted_metrics(capsys: pytest.CaptureFixture[str]) -> Callable[[str], dict[str, Any]]:
    """``emitted_metrics(name)``: the last EMF blob Powertools printed so far that carries the metric ``name``."""

    def last_with(name: str) -> dict[str, Any]:
        lines = capsys.readouterr().out.splitlines()
        blobs = [json.loads(line) for line in lines if line.startswith("{") and '"_aws"' in line]
        ours = [b for b in blobs if name in b]
        assert ours, f"no EMF metrics blob with {name} on stdout"
        last: dict[str, Any] = ours[-1]
        return last

    return last_with


@pytest.fixture(scope="session")
def moto_server_url() -> Iterator[str]:
    """A moto server on a free loopback port for the whole session (reset per test by ``moto_endpoint``)."""
    from sentiment_local.emulator import embedded_moto

    with embedded_moto() as url:
        yield url


@pytest.fixture
def moto_endpoint(moto_server_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point every client at the (freshly reset) moto server through ``AWS_ENDPOINT_URL``."""
    request = urllib.request.Request(f"{moto_server_url}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.status == 200
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server_url)
    aws.reset_clients()
    return moto_server_url


@pytest.fixture
def lambda_context() -> LocalLambdaContext:
    """The context Lambda hands a handler (what Powertools reads of it), one per test."""
    return LocalLambdaContext()


@pytest.fixture(scope="session")
def shared_model_dir() -> Path:
    """The small trained DistilBERT SST-2 stand-in from ../shared (absent in a user's clone)."""
    if not (SHARED_MODEL_DIR / "config.json").is_file():
        pytest.skip(f"shared model not found at {SHARED_MODEL_DIR} (set SENTIMENT_SHARED_DIR to the shared/ dir)")
    return SHARED_MODEL_DIR


@pytest.fixture(scope="session")
def sst2_dev() -> list[tuple[str, int]]:
    """The GLUE SST-2 dev set (872 labelled sentences) from ../shared."""
    if not SST2_DEV.is_file():
        pytest.skip(f"SST-2 dev set not found at {SST2_DEV} (set SENTIMENT_SHARED_DIR to the shared/ dir)")
    rows: list[tuple[str, int]] = []
    for line in SST2_DEV.read_text(encoding="utf-8").splitlines()[1:]:
        text, _, label = line.rpartition("\t")
        rows.append((text.strip(), int(label)))
    return rows


class Conflicts:
    """How many transactions the isolation emulation cancelled with TransactionConflict."""

    def __init__(self) -> None:
        self.cancelled = 0
        self.lock = threading.Lock()
        self.in_flight = threading.Lock()


@pytest.fixture
def dynamodb_isolation(monkeypatch: pytest.MonkeyPatch) -> Conflicts:
    """Give moto (in-process, or the session's server thread) DynamoDB's transaction isolation.

    DynamoDB runs transactions serializably and cancels one that collides with another in flight
    (``TransactionCanceledException``, reason ``TransactionConflict``). moto snapshots and restores whole
    tables around each transaction without a lock, so two threads can double-apply or undo each other.
    Here one transaction runs at a time and a concurrent one is cancelled with a conflict, as in AWS.
    """

    from moto.dynamodb.exceptions import TransactionCanceledException
    from moto.dynamodb.models import DynamoDBBackend

    real = DynamoDBBackend.transact_write_items
    state = Conflicts()

    def isolated(self: Any, transact_items: list[dict[str, Any]]) -> None:
        if not state.in_flight.acquire(timeout=0.002):
            with state.lock:
                state.cancelled += 1
            raise TransactionCanceledException(
                [("TransactionConflict", "Transaction is ongoing for the item", None) for _ in transact_items]
            )
        try:
            real(self, transact_items)
        finally:
            state.in_flight.release()

    monkeypatch.setattr(DynamoDBBackend, "transact_write_items", isolated)
    return state
