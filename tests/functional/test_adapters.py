"""The shared adapters against moto: insert-once, update-existing, pending index, PublishBatch retries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from botocore.awsrequest import AWSResponse
from botocore.stub import Stubber
from queue_support import drain_topic_messages
from reliability_support import FailingCalls, FailingEntries

from sentiment_local.provision import StackResources, provision
from sentiment_shared import aws
from sentiment_shared.adapters import SNS_BATCH_MAX_BYTES, DynamoItemsTable, SnsPublisher, chunk_messages
from sentiment_shared.ports import ItemNotFoundError
from sentiment_shared.schemas import Item, SentimentResult, TopicMessage

pytestmark = pytest.mark.functional


@pytest.fixture
def stack(moto_aws: None) -> StackResources:
    return provision()


def test_conditional_create_twice_stores_one_item(stack: StackResources) -> None:
    # Given a table and an item
    table = DynamoItemsTable(stack.items_table)
    item = Item(item_id="a1", text="great", source="test")
    # When it is created twice
    first, second = table.create(item), table.create(item.model_copy(update={"text": "changed"}))
    # Then the second is a duplicate and the first write is kept
    assert (first, second) == (True, False)
    stored = table.get("a1")
    assert stored is not None
    assert stored.text == "great"
    assert stored.status == "pending"


def test_update_of_missing_item_raises_and_creates_nothing(stack: StackResources) -> None:
    table = DynamoItemsTable(stack.items_table)
    result = SentimentResult(sentiment="positive", score=0.9, label="POSITIVE", model_version="v1")
    with pytest.raises(ItemNotFoundError, match="ghost"):
        table.set_sentiment("ghost", result)
    assert table.get("ghost") is None


def test_set_sentiment_writes_fields_and_leaves_pending_index(stack: StackResources) -> None:
    table = DynamoItemsTable(stack.items_table)
    old = datetime.now(UTC) - timedelta(hours=1)
    table.create(Item(item_id="b1", text="meh", ingested_at=old))
    assert [i.item_id for i in table.pending_items(datetime.now(UTC), 10)] == ["b1"]

    table.set_sentiment("b1", SentimentResult(sentiment="neutral", score=0.55, label="POSITIVE", model_version="v1"))

    stored = table.get("b1")
    assert stored is not None
    assert (stored.sentiment, stored.score, stored.label, stored.status) == ("neutral", 0.55, "POSITIVE", "analyzed")
    assert table.pending_items(datetime.now(UTC), 10) == []


def test_pending_items_are_oldest_first_bounded_and_age_filtered(stack: StackResources) -> None:
    table = DynamoItemsTable(stack.items_table)
    now = datetime.now(UTC)
    for minutes, item_id in [(30, "old"), (20, "older-than-cutoff"), (1, "fresh")]:
        table.create(Item(item_id=item_id, text="x", ingested_at=now - timedelta(minutes=minutes)))
    cutoff = now - timedelta(minutes=5)
    assert [i.item_id for i in table.pending_items(cutoff, 10)] == ["old", "older-than-cutoff"]
    assert [i.item_id for i in table.pending_items(cutoff, 1)] == ["old"]
    table.mark_published("old")
    assert [i.item_id for i in table.pending_items(cutoff, 10)] == ["older-than-cutoff"]


def test_mark_published_never_downgrades_an_analysed_item(stack: StackResources) -> None:
    table = DynamoItemsTable(stack.items_table)
    table.create(Item(item_id="c1", text="x"))
    table.set_sentiment("c1", SentimentResult(sentiment="positive", score=0.99, label="POSITIVE", model_version="v"))
    table.mark_published("c1")
    stored = table.get("c1")
    assert stored is not None
    assert stored.status == "analyzed"


def test_publish_batch_delivers_all_messages_in_chunks_of_ten(stack: StackResources) -> None:
    publisher = SnsPublisher(stack.topic_arn)
    messages = [TopicMessage(item_id=f"id-{i}", text=f"text {i}") for i in range(23)]
    report = publisher.publish(messages)
    assert sorted(report.published) == sorted(m.item_id for m in messages)
    assert report.failed == {}
    delivered = drain_topic_messages(stack.queue_url)
    assert sorted(d["item_id"] for d in delivered) == sorted(m.item_id for m in messages)
    assert all({"item_id", "text", "source", "ingested_at", "schema_version"} <= d.keys() for d in delivered)


@pytest.mark.reliability(
    area="ingestion publish",
    case="SNS PublishBatch partial failure (some entries failed, retryable)",
    expected="only the failed entries are retried; every message delivered once",
)
def test_publish_batch_partial_failure_is_retried_and_delivered(stack: StackResources) -> None:
    # Given SNS that fails two entries of the first PublishBatch (a partial failure)
    sns = FailingEntries(lambda call, entry: call == 1 and entry["Id"] in ("0", "1"))
    publisher = SnsPublisher(stack.topic_arn, client=sns, sleep=lambda _: None)
    messages = [TopicMessage(item_id=f"m{i}", text="t") for i in range(5)]
    # When publishing
    report = publisher.publish(messages)
    # Then only the failed entries were sent again, and everything arrived exactly once
    assert sns.calls == [["0", "1", "2", "3", "4"], ["0", "1"]]
    assert sorted(report.published) == [f"m{i}" for i in range(5)]
    assert sorted(d["item_id"] for d in drain_topic_messages(stack.queue_url)) == [f"m{i}" for i in range(5)]


@pytest.mark.reliability(
    area="ingestion publish",
    case="SNS PublishBatch entries that keep failing",
    expected="reported failed after the retries, never dropped silently",
)
def test_publish_reports_entries_that_keep_failing(stack: StackResources) -> None:
    sns = aws.client("sns")
    stubber = Stubber(sns)
    for _ in range(3):
        stubber.add_response(
            "publish_batch",
            {"Successful": [], "Failed": [{"Id": "0", "Code": "Throttled", "SenderFault": False}]},
        )
    with stubber:
        report = SnsPublisher(stack.topic_arn, client=sns, max_attempts=3, sleep=lambda _: None).publish(
            [TopicMessage(item_id="stuck", text="t")]
        )
        stubber.assert_no_pending_responses()  # exactly max_attempts calls: a 4th would find no response
    assert report.published == []
    assert report.failed == {"stuck": "Throttled:"}


def _sns_error(status: int, code: str) -> AWSResponse:
    """An SNS (query protocol) error answer, before the request leaves the process."""
    body = f"<ErrorResponse><Error><Type>Receiver</Type><Code>{code}</Code><Message>injected</Message></Error>"
    body += "<RequestId>injected</RequestId></ErrorResponse>"
    raw = type("Raw", (), {"stream": lambda self, **_: iter([body.encode()]), "read": lambda self, *_: body.encode()})
    return AWSResponse("https://injected.invalid/", status, {}, raw())


def test_a_failing_publish_batch_is_retried_by_botocore_alone(stack: StackResources) -> None:
    # Given a topic whose PublishBatch answers HTTP 500 on every call
    messages = [TopicMessage(item_id=f"m{i}", text="t") for i in range(12)]
    calls = FailingCalls("sns", "PublishBatch", lambda _: _sns_error(500, "InternalError"))
    publisher = SnsPublisher(stack.topic_arn, client=calls.client, sleep=lambda _: None)
    # When 12 messages (two batches) are published
    with calls.installed():
        report = publisher.publish(messages)
    # Then each batch went out once plus botocore's 5 retries (not 5 x 6 with a loop on top), all reported
    assert calls.attempts == 2 * 6
    assert report.failed == {m.item_id: "InternalError" for m in messages}


def test_parallel_batches_cover_every_message_once_and_an_oversized_one_fails_alone(stack: StackResources) -> None:
    messages = [TopicMessage(item_id=f"m{i:02}", text="t") for i in range(95)]
    huge = TopicMessage(item_id="huge", text="x" * 300_000)
    calls = FailingCalls("sns", "PublishBatch", lambda _: None)
    with calls.installed():
        report = SnsPublisher(stack.topic_arn, client=calls.client, concurrency=4).publish(
            [*messages[:50], huge, *messages[50:]]
        )
    assert calls.attempts == 10
    assert sorted(report.published) == [m.item_id for m in messages]
    assert list(report.failed) == ["huge"]
    assert "over the SNS limit" in report.failed["huge"]
    assert sorted(d["item_id"] for d in drain_topic_messages(stack.queue_url)) == [m.item_id for m in messages]


def test_chunks_respect_the_batch_byte_limit_with_multibyte_text() -> None:
    big = "é" * 60_000  # 120 kB of UTF-8 per message
    chunks = chunk_messages([TopicMessage(item_id=str(i), text=big) for i in range(5)])
    assert [len(c) for c in chunks] == [2, 2, 1]
    assert all(sum(len(body.encode()) for _, body in c) <= SNS_BATCH_MAX_BYTES for c in chunks)


def test_provisioned_table_expires_bookkeeping_items_by_ttl(stack: StackResources) -> None:
    ttl = aws.client("dynamodb").describe_time_to_live(TableName=stack.items_table)["TimeToLiveDescription"]
    assert ttl["TimeToLiveStatus"] == "ENABLED"
    assert ttl["AttributeName"] == "expires_at"
