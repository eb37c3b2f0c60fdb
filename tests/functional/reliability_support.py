"""Shared pieces of the reliability tests: Lambda-shaped events, a warm analysis function on moto, fault hooks.

* :func:`sqs_record` / :func:`sns_envelope` build records exactly as the event source mapping delivers
  them (SNS notification bodies, raw delivery off).
* :func:`configure_analysis` gives the real analysis handler its environment on the current moto and
  uploads the shared model's bundle only when the container cache does not hold it yet (a warm start,
  so the model loads once per test session).
* :class:`FailingCalls` injects faults at the HTTP layer of a boto3 client the test hands to an adapter
  (``before-send``), so botocore's own retry logic and the adapters' error handling run unchanged;
  :class:`FailingEntries` is an SNS client whose PublishBatch partly fails.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config

from sentiment_local.provision import StackResources
from sentiment_shared import aws, model_bundle
from sentiment_shared.schemas import Item
from sentiment_shared.settings import reset_settings_cache
from sentiment_shared.stack import model_key

MODEL_KEY = model_key("sst2-distilbert-minilm", "reliability", model_bundle.BUNDLE_FILE_NAME)
QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:sentiment-analyzer-local-analysis-queue"
TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:sentiment-analyzer-local-items-topic"


def sns_envelope(message: str) -> str:
    """The body SQS holds for an SNS notification (raw message delivery off)."""
    return json.dumps(
        {
            "Type": "Notification",
            "MessageId": str(uuid.uuid4()),
            "TopicArn": TOPIC_ARN,
            "Message": message,
            "Timestamp": "2026-11-23T00:00:00.000Z",
            "SignatureVersion": "1",
        }
    )


def topic_message(item_id: str, text: str) -> str:
    return json.dumps({"item_id": item_id, "text": text, "source": "reliability", "schema_version": 1})


def sqs_record(message_id: str, body: Any) -> dict[str, Any]:
    return {
        "messageId": message_id,
        "receiptHandle": f"handle-{message_id}",
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1763856000000"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": QUEUE_ARN,
        "awsRegion": "us-east-1",
    }


def sns_records(texts: dict[str, str]) -> list[dict[str, Any]]:
    """One SQS record (SNS-wrapped) per item_id → text, message id ``m-<item_id>``."""
    return [sqs_record(f"m-{item_id}", sns_envelope(topic_message(item_id, text))) for item_id, text in texts.items()]


def stored_batch(table: str, texts: dict[str, str]) -> list[dict[str, Any]]:
    """Store the items as ingestion does (pending), and the records that deliver them to the analysis."""
    put_items(table, texts)
    return sns_records(texts)


def failed_ids(response: dict[str, Any]) -> list[str]:
    return sorted(f["itemIdentifier"] for f in response.get("batchItemFailures", []))


def put_items(table: str, texts: dict[str, str]) -> None:
    """Items as ingestion stores them (pending), so the analysis has something to update."""
    from sentiment_shared.adapters import DynamoItemsTable

    items = DynamoItemsTable(table)
    for item_id, text in texts.items():
        assert items.create(Item(item_id=item_id, text=text, source="reliability"))


def analyzed(table: str) -> dict[str, dict[str, Any]]:
    """item_id → its attributes, for items the analysis wrote a sentiment onto.

    Every call also checks the dashboard's counters against those items: whatever fault a test
    injected, each analyzed item is counted exactly once (in total, per sentiment and per source).
    """
    from collections import Counter

    from sentiment_shared.dal.read_model import MAX_SOURCES_READ, read_summary
    from sentiment_shared.dynamo import plain
    from sentiment_shared.schemas import SENTIMENTS

    out: dict[str, dict[str, Any]] = {}
    for page in aws.client("dynamodb").get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        for row in map(plain, page["Items"]):
            if "sentiment" in row:
                out[str(row["item_id"])] = row
    summary = read_summary(table, top_sources=MAX_SOURCES_READ)
    by_sentiment = Counter(str(i["sentiment"]) for i in out.values())
    assert summary.counts.as_dict() == {s: by_sentiment.get(s, 0) for s in SENTIMENTS}, "counters drifted"
    by_source = Counter(str(i.get("source", "direct")) for i in out.values())
    assert {s.source: s.counts.total for s in summary.sources} == dict(by_source), "source counters drifted"
    return out


def shared_model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One container cache for every reliability module of the session: the model loads once (warm)."""
    path = tmp_path_factory.getbasetemp() / "reliability-model-cache"
    path.mkdir(exist_ok=True)
    return path


def clean_stack(server_url: str, monkeypatch: pytest.MonkeyPatch, stack_name: str = "reliability") -> StackResources:
    """The stack on the session's moto server, created once, emptied for this test (items and queues).

    Cheaper than a fresh in-process moto per test (provisioning dominated these tests' time); the
    model bucket is kept, so a warm analysis cache needs no second upload.
    """
    from sentiment_local.provision import provision
    from sentiment_shared.stack import ResourceNames

    monkeypatch.setenv("AWS_ENDPOINT_URL", server_url)
    aws.reset_clients()
    stack = provision(ResourceNames(stack=stack_name))
    ddb = aws.client("dynamodb")
    for page in ddb.get_paginator("scan").paginate(TableName=stack.items_table, ProjectionExpression="item_id"):
        for key in page["Items"]:
            ddb.delete_item(TableName=stack.items_table, Key=dict(key))
    sqs = aws.client("sqs")
    for url in (stack.queue_url, stack.dlq_url):  # PurgeQueue is allowed once a minute: drain instead
        while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            for message in batch:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return stack


def configure_analysis(
    monkeypatch: pytest.MonkeyPatch, stack: StackResources, bundle: model_bundle.BundleInfo, cache_dir: Path
) -> None:
    """The analysis function's environment on this test's moto; the bundle is uploaded only on a cold cache."""
    if model_bundle.cached_model_dir(cache_dir, bundle.sha256) is None:
        aws.client("s3").upload_file(str(bundle.path), stack.bucket, MODEL_KEY)
    env = {
        "MODEL_BUCKET": stack.bucket,
        "MODEL_KEY": MODEL_KEY,
        "MODEL_SHA256": bundle.sha256,
        "ITEMS_TABLE": stack.items_table,
        "MODEL_CACHE_DIR": str(cache_dir),
        "MODEL_PRECISION": "fp32",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "ERROR",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    reset_settings_cache()


def error_response(status: int, code: str, message: str = "injected") -> AWSResponse:
    """An AWS JSON-protocol error response, as DynamoDB/SNS-query would send it."""

    class _Raw:
        def __init__(self, body: bytes) -> None:
            self._body = body

        def stream(self, **_: Any) -> Iterator[bytes]:
            yield self._body

        def read(self, *_: Any, **__: Any) -> bytes:
            return self._body

    body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": message}).encode()
    return AWSResponse("https://injected.invalid/", status, {"x-amzn-RequestId": "injected"}, _Raw(body))


class FailingCalls:
    """A boto3 client of its own whose chosen calls get an injected error before they leave the process.

    Hand :attr:`client` to the adapter under test (``DynamoItemsTable(..., client=fault.client)``): botocore's
    retries and the adapter's error handling run unchanged on it. ``decide(params)`` runs for every HTTP
    attempt of ``operation`` (retries included) while :meth:`installed`, and returns an :class:`AWSResponse`
    to short-circuit that attempt, or None to send it for real. ``attempts`` counts every attempt seen.
    ``max_attempts`` lowers botocore's retry budget (its throttling backoff grows as 1 s x 2^n).
    """

    def __init__(
        self,
        service: str,
        operation: str,
        decide: Callable[[dict[str, Any]], AWSResponse | None],
        *,
        max_attempts: int | None = None,
    ) -> None:
        self.service = service
        self.operation = operation
        self.decide = decide
        self.attempts = 0
        self.injected = 0
        self._lock = threading.Lock()
        config = Config(user_agent_extra="failing-calls")  # not the code's own cached client
        if max_attempts is not None:
            config = config.merge(Config(retries={"mode": "standard", "max_attempts": max_attempts}))
        self.client: Any = aws.client(service, config=config)  # type: ignore[call-overload]

    def _hook(self, request: Any, **_: Any) -> AWSResponse | None:
        body = request.body
        params = json.loads(body) if body and self.service == "dynamodb" else {}
        with self._lock:
            self.attempts += 1
        response = self.decide(params)
        if response is not None:
            with self._lock:
                self.injected += 1
        return response

    @contextmanager
    def installed(self) -> Iterator[FailingCalls]:
        event = f"before-send.{self.client.meta.service_model.service_id.hyphenize()}.{self.operation}"
        self.client.meta.events.register(event, self._hook)
        try:
            yield self
        finally:
            self.client.meta.events.unregister(event, self._hook)


class FailingEntries:
    """An SNS client whose PublishBatch reports chosen entries failed (a partial failure) and sends the rest.

    ``refuse(call, entry)`` picks the entries to fail in the ``call``-th PublishBatch (from 1); ``calls``
    lists each call's entry ids and ``refused`` the messages refused. Hand it to ``SnsPublisher(client=...)``.
    """

    def __init__(self, refuse: Callable[[int, dict[str, Any]], bool]) -> None:
        self.client = aws.client("sns")
        self.refuse = refuse
        self.calls: list[list[str]] = []
        self.refused: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def publish_batch(self, **kwargs: Any) -> Any:
        entries = kwargs["PublishBatchRequestEntries"]
        with self._lock:
            self.calls.append([e["Id"] for e in entries])
            call = len(self.calls)
        bad = [e for e in entries if self.refuse(call, e)]
        good = [e for e in entries if e not in bad]
        response: Any = {"Successful": []}
        if good:
            response = self.client.publish_batch(**{**kwargs, "PublishBatchRequestEntries": good})
        with self._lock:
            self.refused.extend(json.loads(e["Message"]) for e in bad)
        failed = [{"Id": e["Id"], "Code": "InternalError", "Message": "injected", "SenderFault": False} for e in bad]
        return {**response, "Failed": [*response.get("Failed", []), *failed]}


def clean_ingestion_stack(server_url: str, monkeypatch: pytest.MonkeyPatch) -> StackResources:
    """:func:`clean_stack` with the ingestion function's environment pointing at it."""
    stack = clean_stack(server_url, monkeypatch)
    monkeypatch.setenv("ITEMS_TABLE", stack.items_table)
    monkeypatch.setenv("TOPIC_ARN", stack.topic_arn)
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    reset_settings_cache()
    return stack
