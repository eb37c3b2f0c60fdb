"""The embedded emulator's DynamoDB transactions (sentiment_local.moto_patches): they copy what they touch,
not the table, and keep DynamoDB's all-or-nothing semantics (docs/upstream/moto-transact-copy.md).

On moto 5.2.5 unpatched, ``transact_write_items`` deep-copies the whole table once per action, so
``test_a_transaction_copies_the_items_it_touches_whatever_the_table_size`` sees table copies and a copy
count that grows with the table.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from botocore.exceptions import ClientError

from sentiment_local import moto_patches
from sentiment_shared import aws

pytestmark = pytest.mark.functional

TABLE = "tx-test"


@pytest.fixture
def ddb(moto_aws: None) -> Any:
    assert moto_patches.install(), "moto is not the version the patch was written for: re-check it upstream"
    client = aws.client("dynamodb")
    client.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    return client


def _fill(ddb: Any, n: int) -> None:
    for start in range(0, n, 25):
        ddb.batch_write_item(
            RequestItems={
                TABLE: [
                    {"PutRequest": {"Item": {"pk": {"S": f"filler-{i}"}, "text": {"S": "x" * 200}}}}
                    for i in range(start, min(n, start + 25))
                ]
            }
        )


def _transaction(n: int) -> list[dict[str, Any]]:
    return [
        {
            "Put": {
                "TableName": TABLE,
                "Item": {"pk": {"S": f"new-{n}"}},
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        },
        {
            "Update": {
                "TableName": TABLE,
                "Key": {"pk": {"S": "counter"}},
                "UpdateExpression": "ADD #t :one",
                "ExpressionAttributeNames": {"#t": "total"},
                "ExpressionAttributeValues": {":one": {"N": "1"}},
            }
        },
        {"Delete": {"TableName": TABLE, "Key": {"pk": {"S": "filler-0"}}}},
        {
            "ConditionCheck": {
                "TableName": TABLE,
                "Key": {"pk": {"S": "filler-1"}},
                "ConditionExpression": "attribute_exists(pk)",
            }
        },
    ]


def _copies(ddb: Any, monkeypatch: pytest.MonkeyPatch, table_items: int, n: int) -> tuple[int, int]:
    """(top-level deep copies, copies of a whole table) made by one transaction on a table of ``table_items``."""
    from moto.dynamodb.models.table import Table

    _fill(ddb, table_items)
    real = copy.deepcopy
    depth = 0
    calls = tables = 0

    def counting(obj: Any, memo: Any = None, _nil: Any = None) -> Any:
        nonlocal depth, calls, tables
        if depth == 0:
            calls += 1
            tables += isinstance(obj, Table)
        depth += 1
        try:
            return real(obj, memo)
        finally:
            depth -= 1

    monkeypatch.setattr(copy, "deepcopy", counting)
    try:
        ddb.transact_write_items(TransactItems=_transaction(n))
    finally:
        monkeypatch.setattr(copy, "deepcopy", real)
    return calls, tables


def test_a_transaction_copies_the_items_it_touches_whatever_the_table_size(
    ddb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    small = _copies(ddb, monkeypatch, 10, 1)
    large = _copies(ddb, monkeypatch, 1_000, 2)  # the same table, now 1,000 items larger
    assert small[1] == large[1] == 0, f"whole-table copies per transaction: {small[1]}, then {large[1]}"
    assert small[0] == large[0], f"deep copies per transaction grew with the table: {small[0]} -> {large[0]}"
    assert small[0] <= 2 * len(_transaction(0))


def _state(ddb: Any) -> dict[str, Any]:
    items = ddb.scan(TableName=TABLE, ConsistentRead=True)["Items"]
    return {i["pk"]["S"]: i for i in items}


def _stream_records(ddb: Any) -> int:
    """Records in the table's stream, read from the backend (moto's DynamoDB Streams API has no DescribeStream)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    shard = dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].tables[TABLE].stream_shard
    assert shard is not None
    return len(shard.items)


@pytest.mark.parametrize("failing", [1, 3], ids=["condition-fails-midway", "condition-check-fails-last"])
def test_a_cancelled_transaction_changes_nothing(ddb: Any, failing: int) -> None:
    _fill(ddb, 5)
    counter = {"pk": {"S": "counter"}, "total": {"N": "7"}, "nested": {"M": {"a": {"N": "1"}}}}
    ddb.put_item(TableName=TABLE, Item=counter)
    before, records = _state(ddb), _stream_records(ddb)
    actions = _transaction(0)
    actions.insert(
        3,
        {
            "Update": {
                "TableName": TABLE,
                "Key": {"pk": {"S": "filler-2"}},
                "UpdateExpression": "SET #text = :t",
                "ExpressionAttributeNames": {"#text": "text"},
                "ExpressionAttributeValues": {":t": {"S": "changed"}},
            }
        },
    )
    # the failing action: the counter must not be 7 (midway), or filler-1 must not exist (last)
    if failing == 1:
        actions[1]["Update"]["ConditionExpression"] = "#t = :seven"
        actions[1]["Update"]["ExpressionAttributeValues"][":seven"] = {"N": "8"}
    else:
        actions[-1]["ConditionCheck"]["ConditionExpression"] = "attribute_not_exists(pk)"
    with pytest.raises(ClientError) as raised:
        ddb.transact_write_items(TransactItems=actions)
    reasons = [r["Code"] for r in raised.value.response["CancellationReasons"]]
    assert reasons[failing if failing == 1 else -1] == "ConditionalCheckFailed"
    assert _state(ddb) == before
    assert _stream_records(ddb) == records, "a cancelled transaction left stream records"
    # and the same transaction without the failing condition applies every action
    ddb.transact_write_items(TransactItems=_transaction(0))
    after = _state(ddb)
    assert "new-0" in after
    assert "filler-0" not in after
    assert after["counter"]["total"] == {"N": "8"}


def test_a_duplicate_key_is_rejected_and_rolls_back_the_earlier_actions(ddb: Any) -> None:
    _fill(ddb, 2)
    before = _state(ddb)
    actions = [*_transaction(0)[:2], _transaction(0)[1]]
    with pytest.raises(ClientError, match="multiple operations"):
        ddb.transact_write_items(TransactItems=actions)
    assert _state(ddb) == before


def test_sqs_send_and_receive_do_not_scan_the_queue_per_message(
    moto_aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """moto's send reads every queue attribute (the Approximate* counts scan the queue) for one flag, and its
    receive reads them 3 times per message returned for the retention period: quadratic in the queue's length.
    Unpatched, the count below (scans by ApproximateNumberOfMessages) is 31: 1 for the send, 3 per message received."""
    from moto.sqs.models import Queue

    assert moto_patches.install()
    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName="scan-test", Attributes={"MessageRetentionPeriod": "600"})["QueueUrl"]
    for n in range(30):
        sqs.send_message(QueueUrl=url, MessageBody=f"m{n}")
    scans = {"n": 0}
    real = Queue.approximate_number_of_messages

    def counting(self: Any) -> int:
        scans["n"] += 1
        return int(real.fget(self))  # type: ignore[attr-defined]

    monkeypatch.setattr(Queue, "approximate_number_of_messages", property(counting))
    sqs.send_message(QueueUrl=url, MessageBody="one more")
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert len(received) == 10
    assert scans["n"] == 0, f"{scans['n']} scans of the queue for one send and one receive of 10"
    # the counts themselves still answer
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert (attrs["ApproximateNumberOfMessages"], attrs["ApproximateNumberOfMessagesNotVisible"]) == ("21", "10")
    assert attrs["MessageRetentionPeriod"] == "600"
