"""DynamoDB's wire level in one place: an item's attribute values decoded by boto3's ``TypeDeserializer``
(:func:`plain`, never by hand), and the batch calls with what botocore cannot retry for them.

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
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer  # noqa: TID251 - DynamoDB's codec, no client

from sentiment_shared import aws

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

MAX_ROUNDS = 8
"""Calls per request at most: the first and 7 re-sends of what is left (pauses up to 0.05 … 2 s)."""
BASE_DELAY_S = 0.05
MAX_DELAY_S = 2.0


_deserializer = TypeDeserializer()


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
