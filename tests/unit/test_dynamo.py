"""What DynamoDB's batch calls leave unprocessed is re-sent after a jittered pause, a bounded number of times.

The client is a real botocore DynamoDB client with a ``Stubber`` answering as DynamoDB does under throttling
(a successful call with ``UnprocessedKeys`` / ``UnprocessedItems``): every request is checked against the API.
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.stub import Stubber

from sentiment_shared import aws, dynamo
from sentiment_shared.dal.read_model import read_summary
from sentiment_shared.dynamo import MAX_ROUNDS, UnprocessedError, batch_get, batch_write, encode, get_items, plain

pytestmark = pytest.mark.unit

TABLE = "items"


def _client() -> Any:
    aws.reset_clients()  # a client of its own: the stubs and patches stay in this test
    return aws.client("dynamodb")


def _keys(*ids: str) -> dict[str, Any]:
    return {TABLE: {"Keys": [{"item_id": {"S": i}} for i in ids], "ConsistentRead": True}}


def test_unprocessed_keys_are_read_again_after_a_pause_and_every_item_is_returned() -> None:
    # Given DynamoDB answering a first call with one item and the other key unprocessed (throttled)
    ddb = _client()
    sleeps: list[float] = []
    with Stubber(ddb) as stub:
        first = {"Responses": {TABLE: [{"item_id": {"S": "a"}}]}, "UnprocessedKeys": _keys("b")}
        stub.add_response("batch_get_item", first, {"RequestItems": _keys("a", "b")})
        stub.add_response(
            "batch_get_item", {"Responses": {TABLE: [{"item_id": {"S": "b"}}]}}, {"RequestItems": _keys("b")}
        )
        # When both are read
        found = batch_get(ddb, _keys("a", "b"), sleep=sleeps.append)
        stub.assert_no_pending_responses()
    # Then both came back, the second call asked for the rest only, after one jittered pause
    assert [raw["item_id"]["S"] for raw in found[TABLE]] == ["a", "b"]
    assert len(sleeps) == 1
    assert 0 <= sleeps[0] <= dynamo.BASE_DELAY_S


def test_writes_left_unprocessed_every_time_stop_after_the_bound_with_growing_pauses() -> None:
    # Given DynamoDB leaving the write unprocessed on every call (a table throttled for good)
    ddb = _client()
    writes = {TABLE: [{"PutRequest": {"Item": {"item_id": {"S": "a"}}}}]}
    sleeps: list[float] = []
    with Stubber(ddb) as stub:
        for _ in range(MAX_ROUNDS):
            stub.add_response("batch_write_item", {"UnprocessedItems": writes}, {"RequestItems": writes})
        # When it is written
        with pytest.raises(UnprocessedError, match=f"left 1 unprocessed after {MAX_ROUNDS} calls"):
            batch_write(ddb, writes, sleep=sleeps.append)
        stub.assert_no_pending_responses()
    # Then it stopped after MAX_ROUNDS calls, pausing before each re-send within a doubling, capped ceiling
    assert len(sleeps) == MAX_ROUNDS - 1
    ceilings = [min(dynamo.MAX_DELAY_S, dynamo.BASE_DELAY_S * 2**n) for n in range(MAX_ROUNDS - 1)]
    assert all(0 <= s <= c for s, c in zip(sleeps, ceilings, strict=True))


def test_the_dashboards_counter_reads_do_not_resend_at_once_or_forever(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the counter read model on a table that leaves every key unprocessed
    ddb = _client()
    calls: list[int] = []
    sleeps: list[float] = []
    monkeypatch.setattr(dynamo.time, "sleep", sleeps.append)

    def throttled(**kwargs: Any) -> dict[str, Any]:
        calls.append(1)
        if len(calls) > 50:  # the loop before: at once and without end
            raise AssertionError("re-sent more than 50 times")
        return {"Responses": {TABLE: []}, "UnprocessedKeys": kwargs["RequestItems"]}

    monkeypatch.setattr(ddb, "batch_get_item", throttled)
    # When the dashboard's summary is read (the counters first)
    with pytest.raises(UnprocessedError):
        read_summary(TABLE, client=ddb)
    # Then it paused between calls and gave up after the bound
    assert (len(calls), len(sleeps)) == (MAX_ROUNDS, MAX_ROUNDS - 1)


def test_items_are_read_by_id_100_keys_a_call_once_each_and_come_back_as_plain_values() -> None:
    # Given 150 ids (one of them asked twice) and a table holding the first and the last
    ddb = _client()
    ids = [f"i{n:03}" for n in range(150)]
    projection = {"ProjectionExpression": "#a0, #a1", "ExpressionAttributeNames": {"#a0": "item_id", "#a1": "title"}}

    def keys(chunk: list[str]) -> dict[str, Any]:
        return {TABLE: {"Keys": [{"item_id": {"S": i}} for i in chunk], **projection}}

    first, last = ({TABLE: [{"item_id": {"S": i}, "title": {"S": f"T {i}"}}]} for i in (ids[0], ids[-1]))
    with Stubber(ddb) as stub:
        stub.add_response("batch_get_item", {"Responses": first}, {"RequestItems": keys(ids[:100])})
        stub.add_response("batch_get_item", {"Responses": last}, {"RequestItems": keys(ids[100:])})
        # When they are read
        found = get_items(ddb, TABLE, [*ids, ids[0]], attributes=("title",))
        stub.assert_no_pending_responses()
    # Then two calls asked for each id once, and the items that exist came back decoded
    assert found == {ids[0]: {"item_id": ids[0], "title": "T i000"}, ids[-1]: {"item_id": ids[-1], "title": "T i149"}}


def test_encode_and_plain_are_inverse_on_what_the_table_holds() -> None:
    row = {"item_id": "a", "score": 0.91, "total": 3, "sources": {"x", "y"}, "text_truncated": False, "url": None}
    assert plain(encode(row)) == row
    assert encode({"score": 0.1})["score"] == {"N": "0.1"}  # repr's digits, not the binary float's


def test_a_set_is_encoded_with_its_members_sorted_so_the_same_set_makes_the_same_request() -> None:
    # DynamoDB keeps sets unordered; in hash order the request would differ with PYTHONHASHSEED (a counter's
    # sources in a transaction, the backfill's rows), and 20 members in hash order are all but never sorted.
    members = {f"source#{i:02d}-{chr(97 + i)}" for i in range(20)}
    assert dynamo.attr(members) == {"SS": sorted(members)}
    assert dynamo.attr(frozenset({3, 1, 2})) == {"NS": ["1", "2", "3"]}
