"""A fix the embedded emulator applies to moto: DynamoDB transactions cost what they touch.

moto 5.2.5's ``DynamoDBBackend.transact_write_items`` deep-copies the *whole table* once per action of
every transaction, as a backup to restore if the transaction is cancelled. A local pipeline writing
one transaction per item therefore copies the table N times for N items: time and memory grow
quadratically (a 2,000-item feed reached 22.9 GB RSS). :func:`transact_write_items` keeps a rollback
log instead: the items the transaction touches, copied before their action runs, put back (or removed,
or the stream records dropped) if it is cancelled. All-or-nothing semantics are unchanged.

Offered upstream with a reproduction: docs/upstream/moto-transact-copy.md.

SQS has the same shape of problem: ``send_message`` reads ``queue.attributes`` (every attribute,
including the three ``Approximate*`` counts, each a scan of the queue's messages) to learn one flag, and
``receive_message`` calls ``get_queue_attributes`` (which builds ``queue.attributes`` three times) for
every message it returns, to read the retention period. A 2,000-item run therefore scanned the queue
~9 times per message received. :func:`install` also makes those two reads cost O(1)
(:func:`_retention_check`, :func:`_send_message_without_counts`); the queue's behaviour is unchanged.

:func:`install` replaces the methods only on the moto version they were written against
(:data:`PATCHED_MOTO_VERSION`); a test fails when the installed moto differs, so an upgrade is checked
rather than silently unpatched.
"""

from __future__ import annotations

import copy
import json
import logging
import threading
from typing import Any

log = logging.getLogger(__name__)

PATCHED_MOTO_VERSION = "5.2.5"
_installed = False


def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:  # noqa: PLR0912, PLR0915 - moto's, kept close to upstream
    """moto's ``DynamoDBBackend.transact_write_items`` with a rollback log in place of table copies."""
    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.exceptions import (
        ConditionalCheckFailed,
        MockValidationException,
        MultipleTransactionsException,
        TooManyTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )
    from moto.dynamodb.models.dynamo_type import DynamoType

    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    # The rollback log: every touched item as it was before its action (None: it did not exist), and
    # each touched table's stream length, so a cancelled transaction leaves no stream record either.
    before: dict[tuple[str, Any, Any], Any] = {}
    stream_lengths: dict[str, int] = {}

    def remember(table_name: str, key: dict[str, Any]) -> None:
        table = self.tables.get(table_name)
        if table is None or table.hash_key_attr not in key or (table.has_range_key and table.range_key_attr not in key):
            return  # the action fails on its own, having touched nothing
        hash_value = DynamoType(key[table.hash_key_attr])
        range_value = DynamoType(key[table.range_key_attr]) if table.has_range_key else None
        log_key = (table_name, hash_value, range_value)
        if log_key not in before:
            before[log_key] = copy.deepcopy(table.get_item(hash_value, range_value))
        if table.stream_shard is not None and table_name not in stream_lengths:
            stream_lengths[table_name] = len(table.stream_shard.items)

    def rollback() -> None:
        for (table_name, hash_value, range_value), item in before.items():
            table = self.tables[table_name]
            if range_value is not None:
                partition = table.items[hash_value]
                if item is None:
                    partition.pop(range_value, None)
                else:
                    partition[range_value] = item
                if not partition:
                    table.items.pop(hash_value, None)
            elif item is None:
                table.items.pop(hash_value, None)
            else:
                table.items[hash_value] = item
        for table_name, length in stream_lengths.items():
            shard = self.tables[table_name].stream_shard
            if shard is not None:
                del shard.items[length:]

    target_items: set[tuple[str, str]] = set()

    def check_unicity(table_name: str, key: dict[str, Any]) -> None:
        item = (str(table_name), str(dict(sorted(key.items()))))
        if item in target_items:
            raise MultipleTransactionsException()
        target_items.add(item)

    errors: list[tuple[str, str, dict[str, Any]] | tuple[None, None, None]] = []  # [(Code, Message, Item), ..]
    for item in transact_items:
        original_item: dict[str, Any] | None = None
        # Check transact writes are not performing multiple operations on the same item
        if len(list(item.keys())) > 1:
            raise TransactWriteSingleOpException
        try:
            op_type, op = next(iter(item.items()))
            if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
                raise ValueError("Unsupported transaction operation")
            table_name = op["TableName"]
            condition_expression = op.get("ConditionExpression")
            expression_attribute_names = op.get("ExpressionAttributeNames")
            expression_attribute_values = op.get("ExpressionAttributeValues")
            return_values_on_condition_check_failure = op.get("ReturnValuesOnConditionCheckFailure")
            if op_type == "Put":
                attrs = op["Item"]
                table = self.get_table(table_name)
                key = {table.hash_key_attr: attrs[table.hash_key_attr]}
                if table.range_key_attr is not None:
                    key[table.range_key_attr] = attrs[table.range_key_attr]
            else:
                key = op["Key"]
            check_unicity(table_name, key)
            current = self.get_item(table_name, key)
            if condition_expression is not None:
                condition_op = get_filter_expression(
                    condition_expression, expression_attribute_names, expression_attribute_values
                )
                if not condition_op.expr(current):
                    if return_values_on_condition_check_failure == "ALL_OLD" and current:
                        original_item = current.to_json()["Attributes"]
                    raise ConditionalCheckFailed(item=original_item)
            if op_type != "ConditionCheck":
                remember(table_name, key)
            conditions = {
                "condition_expression": condition_expression,
                "expression_attribute_names": expression_attribute_names,
                "expression_attribute_values": expression_attribute_values,
            }
            if op_type == "Put":
                self.put_item(table_name, op["Item"], **conditions)
            elif op_type == "Delete":
                self.delete_item(table_name, key, **conditions)
            elif op_type == "Update":
                self.update_item(table_name, key, update_expression=op["UpdateExpression"], **conditions)
            errors.append((None, None, None))
        except (MultipleTransactionsException, MockValidationException):
            rollback()  # undo what the earlier actions did, and reraise the error
            raise
        except ConditionalCheckFailed as e:
            errors.append(("ConditionalCheckFailed", str(e.message), original_item))  # type: ignore[arg-type]
        except Exception as e:  # noqa: BLE001 - moto's behaviour: other errors become cancellation reasons
            errors.append((type(e).__name__, str(e), original_item))  # type: ignore[arg-type]
    if any(code is not None for code, _, _ in errors):
        rollback()
        raise TransactionCanceledException(errors)


_sending = threading.local()


def _retention_check(self: Any, queue_name: str, message: Any) -> bool:
    """``SQSBackend.is_message_valid_based_on_retention_period`` reading the one attribute it needs."""
    from moto.core.utils import unix_time

    queue = self.get_queue(queue_name)
    retain_until = int(queue.message_retention_period) + message.sent_timestamp / 1000
    return bool(retain_until > unix_time())


def _queue_attributes(real: Any) -> Any:
    """``Queue.attributes`` without the ``Approximate*`` counts (queue scans) while a message is being sent."""
    from moto.core.utils import camelcase_to_underscores

    def attributes(self: Any) -> dict[str, Any]:
        if not getattr(_sending, "active", False):
            return dict(real.fget(self))
        # moto 5.2.5's Queue.attributes, the counts left out (send_message reads one flag of it)
        names = [a for a in self.BASE_ATTRIBUTES if not a.startswith("Approximate")]
        if self.fifo_queue:
            names += self.FIFO_ATTRIBUTES
        if self.kms_master_key_id:
            names += self.KMS_ATTRIBUTES
        result: dict[str, Any] = {a: getattr(self, camelcase_to_underscores(a)) for a in names}
        if self.policy:
            result["Policy"] = self.policy
        if self.redrive_policy:
            result["RedrivePolicy"] = json.dumps(self.redrive_policy)
        return {k: str(v).lower() if isinstance(v, bool) else v for k, v in result.items()}

    return property(attributes)


def _send_message_without_counts(real: Any) -> Any:
    def send_message(self: Any, *args: Any, **kwargs: Any) -> Any:
        _sending.active = True
        try:
            return real(self, *args, **kwargs)
        finally:
            _sending.active = False

    return send_message


def install() -> bool:
    """Replace moto's method with :func:`transact_write_items` (idempotent); False on another moto version."""
    global _installed  # noqa: PLW0603 - one process-wide patch
    if _installed:
        return True
    import moto
    from moto.dynamodb.models import DynamoDBBackend

    if moto.__version__ != PATCHED_MOTO_VERSION:
        log.warning(
            "moto %s is not %s: its DynamoDB transactions keep copying the table (docs/upstream/moto-transact-copy.md)",
            moto.__version__,
            PATCHED_MOTO_VERSION,
        )
        return False
    from moto.sqs.models import Queue, SQSBackend

    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
    SQSBackend.is_message_valid_based_on_retention_period = _retention_check  # type: ignore[method-assign]
    SQSBackend.send_message = _send_message_without_counts(SQSBackend.send_message)  # type: ignore[method-assign]
    Queue.attributes = _queue_attributes(Queue.attributes)  # type: ignore[method-assign]
    _installed = True
    return True
