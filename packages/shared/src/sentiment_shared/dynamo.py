"""DynamoDB's wire level in one place: an item's attribute values decoded by boto3's ``TypeDeserializer``
(:func:`plain`, never by hand) and encoded by its ``TypeSerializer`` (:func:`attr`, :func:`encode`), and the
batch calls with what botocore cannot retry for them (:func:`get_items` reads items by id through them).

``BatchGetItem`` answers a partial result with ``UnprocessedKeys`` (throttled partitions, the 16 MB response
limit) and ``BatchWriteItem`` with ``UnprocessedItems``; the call itself succeeded, so botocore's retry mode
never sees them. DynamoDB's API reference: "If DynamoDB returns any unprocessed items, you should retry the
batch operation on those items. However, we strongly recommend that you use an exponential backoff
algorithm. If you retry the batch operation immediately, the underlying read or write requests can still fail
due to throttling on the individual tables." So the rest is re-sent after :func:`sentiment_shared.aws.
backoff_delay` (full jitter), at most :data:`MAX_ROUNDS` calls per request, then :class:`UnprocessedError`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer  # noqa: TID251 - DynamoDB's codec, no client

from sentiment_shared import aws
from sentiment_shared.stack import ITEMS_TABLE_HASH_KEY

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

MAX_KEYS_PER_GET = 100
"""BatchGetItem takes at most 100 keys per call."""
MAX_WRITES_PER_BATCH = 25
"""BatchWriteItem takes at most 25 writes per call."""
MAX_ROUNDS = 8
"""Calls per request at most: the first and 7 re-sends of what is left (pauses up to 0.05 … 2 s)."""
BASE_DELAY_S = 0.05
MAX_DELAY_S = 2.0


_deserializer = TypeDeserializer()
_serializer = TypeSerializer()


def attr(value: Any) -> Any:
    """One Python value as a DynamoDB attribute value (boto3's ``TypeSerializer``): floats go through
    ``Decimal(repr(...))`` (their shortest exact digits), datetimes as ISO 8601 strings, a set's members
    sorted (DynamoDB keeps sets unordered; sorted, the same set makes the same request whatever the hash seed)."""
    if isinstance(value, float):
        value = Decimal(repr(value))
    elif isinstance(value, datetime):
        value = value.isoformat()
    elif isinstance(value, (set, frozenset)):
        ((kind, members),) = _serializer.serialize(value).items()
        return {kind: sorted(cast("list[str]", members))}
    return _serializer.serialize(value)


def encode(row: Mapping[str, Any]) -> dict[str, Any]:
    """An item of plain values as attribute values (:func:`attr` each): the inverse of :func:`plain`."""
    return {key: attr(value) for key, value in row.items()}


def plain(raw: Mapping[str, Any]) -> dict[str, Any]:
    """An item (or the attributes a query projected) as Python values: ``{"S": "x"}`` → ``"x"``, numbers as
    ``int`` or ``float`` (not ``Decimal``), string sets as ``set[str]``, lists and maps as lists and dicts."""
    return {key: _number(_deserializer.deserialize(value)) for key, value in raw.items()}


def _number(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, list):
        return [_number(v) for v in value]
    if isinstance(value, dict):
        return {k: _number(v) for k, v in value.items()}
    return value


class UnprocessedError(RuntimeError):
    """DynamoDB still left part of a batch unprocessed after :data:`MAX_ROUNDS` calls."""


def _rounds(
    call: Callable[[dict[str, Any]], Mapping[str, Any]],
    request: dict[str, Any],
    left_key: str,
    *,
    what: str,
    sleep: Callable[[float], None],
) -> list[Mapping[str, Any]]:
    answers: list[Mapping[str, Any]] = []
    for round_number in range(1, MAX_ROUNDS + 1):
        if round_number > 1:
            sleep(aws.backoff_delay(round_number - 1, base_s=BASE_DELAY_S, cap_s=MAX_DELAY_S))
        answer = call(request)
        answers.append(answer)
        request = dict(answer.get(left_key) or {})
        if not request:
            return answers
    left = sum(len(rest["Keys"]) if isinstance(rest, dict) else len(rest) for rest in request.values())
    raise UnprocessedError(f"{what}: DynamoDB left {left} unprocessed after {MAX_ROUNDS} calls (throttled?)")


def batch_get(
    ddb: DynamoDBClient, request: dict[str, Any], *, sleep: Callable[[float], None] | None = None
) -> dict[str, list[dict[str, Any]]]:
    """``BatchGetItem`` of ``request`` (its ``RequestItems``, ≤ 100 keys) until nothing is left: table → raw items."""
    answers = _rounds(
        lambda items: ddb.batch_get_item(RequestItems=items),
        request,
        "UnprocessedKeys",
        what="BatchGetItem",
        sleep=sleep or time.sleep,
    )
    found: dict[str, list[dict[str, Any]]] = {}
    for answer in answers:
        for table, raws in (answer.get("Responses") or {}).items():
            found.setdefault(table, []).extend(dict(raw) for raw in raws)
    return found


def batch_write(ddb: DynamoDBClient, request: dict[str, Any], *, sleep: Callable[[float], None] | None = None) -> None:
    """``BatchWriteItem`` of ``request`` (its ``RequestItems``, ≤ 25 writes) until nothing is left."""
    _rounds(
        lambda items: ddb.batch_write_item(RequestItems=items),
        request,
        "UnprocessedItems",
        what="BatchWriteItem",
        sleep=sleep or time.sleep,
    )


def get_items(
    ddb: DynamoDBClient,
    table_name: str,
    ids: Iterable[str],
    *,
    consistent: bool = False,
    attributes: Sequence[str] = (),
    sleep: Callable[[float], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """item_id → the item as plain values (:func:`plain`), for those of ``ids`` the items table holds.

    :func:`batch_get` of :data:`MAX_KEYS_PER_GET` keys a call (duplicates asked once); ``attributes``
    projects the item (its ``item_id`` always comes back), ``consistent`` asks for a strongly consistent read."""
    wanted = list(dict.fromkeys(ids))
    projection: dict[str, Any] = {}
    if attributes:
        names = dict.fromkeys([ITEMS_TABLE_HASH_KEY, *attributes])
        aliases = {f"#a{n}": name for n, name in enumerate(names)}
        projection = {"ProjectionExpression": ", ".join(aliases), "ExpressionAttributeNames": aliases}
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(wanted), MAX_KEYS_PER_GET):
        keys = [{ITEMS_TABLE_HASH_KEY: attr(i)} for i in wanted[start : start + MAX_KEYS_PER_GET]]
        request: dict[str, Any] = {table_name: {"Keys": keys, **projection}}
        if consistent:
            request[table_name]["ConsistentRead"] = True
        for raw in batch_get(ddb, request, sleep=sleep).get(table_name, []):
            row = plain(raw)
            found[row[ITEMS_TABLE_HASH_KEY]] = row
    return found
