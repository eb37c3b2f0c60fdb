"""The counter deltas of a batch's first writes, as ``TransactWriteItems`` actions on one shard.

:meth:`sentiment_shared.adapters.DynamoItemsTable.set_sentiments` sends them in the same transaction as the
item updates they count (the layout: :mod:`sentiment_shared.dal`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sentiment_shared.dal.keys import TOTAL_COUNTER_ID, day_counter_id, shard_id, source_counter_id
from sentiment_shared.dynamo import attr
from sentiment_shared.schemas import SENTIMENTS
from sentiment_shared.stack import ITEMS_TABLE_HASH_KEY

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef


@dataclass(frozen=True, slots=True)
class Counted:
    """One item counted by a first write: its sentiment, the UTC day it was analyzed, its source."""

    sentiment: str
    day: str
    source: str


def _add(counts: Counter[str]) -> tuple[str, dict[str, str], dict[str, Any]]:
    """``ADD #total :total, #<sentiment> :<sentiment> ...`` for the non-zero counts."""
    names = {"#total": "total"}
    values: dict[str, Any] = {":total": attr(sum(counts.values()))}
    parts = ["#total :total"]
    for sentiment in SENTIMENTS:
        if counts.get(sentiment):
            names[f"#{sentiment}"] = sentiment
            values[f":{sentiment}"] = attr(counts[sentiment])
            parts.append(f"#{sentiment} :{sentiment}")
    return "ADD " + ", ".join(parts), names, values


def counter_deltas(table_name: str, counted: Iterable[Counted], shard: int | None) -> list[TransactWriteItemTypeDef]:
    """The counter increments of a batch's first writes, on one shard: total, per day, per source.

    One action per counter touched (1 + days + sources), whatever the number of items counted. ``shard``
    None writes the unsharded ids (the layout before the shards: the benchmarks' "today's path")."""
    total: Counter[str] = Counter()
    per_day: dict[str, Counter[str]] = {}
    per_source: dict[str, Counter[str]] = {}
    for c in counted:
        if c.sentiment not in SENTIMENTS:
            raise ValueError(f"unknown sentiment {c.sentiment!r}")
        total[c.sentiment] += 1
        per_day.setdefault(c.day, Counter())[c.sentiment] += 1
        per_source.setdefault(c.source, Counter())[c.sentiment] += 1
    if not total:
        return []
    actions: list[TransactWriteItemTypeDef] = []

    def update(counter_id: str, counts: Counter[str], sets: dict[str, Any], add: dict[str, Any] | None = None) -> None:
        expression, names, values = _add(counts)
        for attribute, value in (add or {}).items():
            names[f"#{attribute}"], values[f":{attribute}"] = attribute, value
            expression += f", #{attribute} :{attribute}"
        for n, (attribute, value) in enumerate(sets.items()):
            names[f"#{attribute}"], values[f":{attribute}"] = attribute, value
            expression += (" SET " if n == 0 else ", ") + f"#{attribute} = :{attribute}"
        actions.append(
            {
                "Update": {
                    "TableName": table_name,
                    "Key": {ITEMS_TABLE_HASH_KEY: attr(counter_id if shard is None else shard_id(counter_id, shard))},
                    "UpdateExpression": expression,
                    "ExpressionAttributeNames": names,
                    "ExpressionAttributeValues": values,
                }
            }
        )

    update(TOTAL_COUNTER_ID, total, {}, {"sources": attr({source_counter_id(s) for s in per_source})})
    for day, counts in sorted(per_day.items()):
        update(day_counter_id(day), counts, {"date": attr(day)})
    for source, counts in sorted(per_source.items()):
        update(source_counter_id(source), counts, {"source": attr(source)})
    return actions
